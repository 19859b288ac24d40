/*
 * lc_pack.c - scalar references of the label-cache staging ops (the
 * specification of lc_gather and lc_transpose, kernels.h).
 */
#include "internal.h"

void fasa__lc_gather_ref(const void *row, size_t row_stride, size_t d, const uint16_t *idx,
                         size_t idx_stride, const uint32_t *n_fc, size_t n_heads, size_t es,
                         void *dst, size_t dst_stride)
{
    (void)d;
    for (size_t h = 0; h < n_heads; h++) {
        const uint16_t *ix = idx + h * idx_stride;
        for (size_t i = 0; i < 2 * (size_t)n_fc[h]; i++) {
            if (es == 2)
                ((uint16_t *)dst)[h * dst_stride + i] =
                    ((const uint16_t *)row)[h * row_stride + ix[i]];
            else
                ((uint32_t *)dst)[h * dst_stride + i] =
                    ((const uint32_t *)row)[h * row_stride + ix[i]];
        }
    }
}

void fasa__lc_transpose_ref(const void *stage, size_t ld, size_t rows, size_t m, size_t es,
                            void *tile)
{
    for (size_t c = 0; c < m; c++)
        for (size_t j = 0; j < FASA_TILE; j++) {
            if (es == 2)
                ((uint16_t *)tile)[c * FASA_TILE + j] =
                    j < rows ? ((const uint16_t *)stage)[j * ld + c] : 0;
            else
                ((uint32_t *)tile)[c * FASA_TILE + j] =
                    j < rows ? ((const uint32_t *)stage)[j * ld + c] : 0;
        }
}
