/*
 * lc_pack.c - scalar references of the label-cache staging ops (the
 * specification of lc_gather and lc_transpose, kernels.h). They are also
 * what levels without their own kernels run, so each element size gets
 * its own plain loop.
 */
#include "internal.h"

/* Unrolled by 4 so the counter and branch are paid once per 4 elements:
 * this loop is also what the AVX2 and NEON levels run. SIMD gathers were
 * measured no faster on Zen 4 for 8 KV heads x 32-48 dims of 128-dim rows
 * (vpgatherdd for f32 level with this loop, a dword gather for f16 about
 * 10% behind; a Xeon within noise either way); the unrolled loop was
 * 15-25% faster than the plain one (commit aade4fb). */
#define GATHER(T)                                                                      \
    for (size_t h = 0; h < n_heads; h++) {                                             \
        const T *s = (const T *)row + h * row_stride;                                  \
        const uint16_t *ix = idx + h * idx_stride;                                     \
        T *o = (T *)dst + h * dst_stride;                                              \
        size_t i = 0, n = 2 * (size_t)n_fc[h];                                         \
        for (; i + 4 <= n; i += 4) {                                                   \
            o[i] = s[ix[i]];                                                           \
            o[i + 1] = s[ix[i + 1]];                                                   \
            o[i + 2] = s[ix[i + 2]];                                                   \
            o[i + 3] = s[ix[i + 3]];                                                   \
        }                                                                              \
        for (; i < n; i++)                                                             \
            o[i] = s[ix[i]];                                                           \
    }

void fasa__lc_gather_ref(const void *row, size_t row_stride, size_t d, const uint16_t *idx,
                         size_t idx_stride, const uint32_t *n_fc, size_t n_heads, size_t es,
                         void *dst, size_t dst_stride)
{
    (void)d;
    if (es == 2)
        GATHER(uint16_t)
    else
        GATHER(uint32_t)
}

/* Token rows in order (reads contiguous), zeros after the staged rows. */
#define TRANSPOSE(T)                                                                   \
    {                                                                                  \
        const T *s = stage;                                                            \
        T *o = tile;                                                                   \
        for (size_t j = 0; j < rows && j < FASA_TILE; j++)                             \
            for (size_t c = 0; c < m; c++)                                             \
                o[c * FASA_TILE + j] = s[j * ld + c];                                  \
        for (size_t c = 0; c < m; c++)                                                 \
            for (size_t j = rows; j < FASA_TILE; j++)                                  \
                o[c * FASA_TILE + j] = 0;                                              \
    }

void fasa__lc_transpose_ref(const void *stage, size_t ld, size_t rows, size_t m, size_t es,
                            void *tile)
{
    if (es == 2)
        TRANSPOSE(uint16_t)
    else
        TRANSPOSE(uint32_t)
}
