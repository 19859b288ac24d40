/*
 * score_labels.c - scalar reference of label-tile scoring (the specification
 * of the score_labels op, kernels.h) and of the label converts.
 */
#include "internal.h"

/* Offset of (channel c, token j) inside one tile; bf16 tiles keep the two
 * dims of an FC side by side so one 32-bit lane is one RoPE pair. */
static inline size_t tile_offset(int pairs, size_t c, size_t j)
{
    return pairs ? (c >> 1) * 2 * FASA_TILE + 2 * j + (c & 1) : c * FASA_TILE + j;
}

static void score_labels(const void *tiles, int32_t dtype, size_t n_fc, size_t n,
                         const float *w, size_t n_rows, float *out, size_t out_stride)
{
    size_t n_ch = 2 * n_fc, tile_elems = n_ch * FASA_TILE;
    int pairs = dtype == FASA_DTYPE_BF16;
    for (size_t j = 0; j < n; j++) {
        size_t base = (j / FASA_TILE) * tile_elems, jj = j % FASA_TILE;
        for (size_t r = 0; r < n_rows; r++) {
            const float *wr = w + r * n_ch;
            float acc = 0.0f;
            for (size_t c = 0; c < n_ch; c++)
                acc += wr[c] * fasa__load(tiles, dtype, base + tile_offset(pairs, c, jj));
            out[r * out_stride + j] = acc;
        }
    }
}

void fasa__score_labels_f32_ref(const void *tiles, size_t n_fc, size_t n, const float *w,
                                size_t n_rows, float *out, size_t out_stride)
{
    score_labels(tiles, FASA_DTYPE_F32, n_fc, n, w, n_rows, out, out_stride);
}

void fasa__score_labels_f16_ref(const void *tiles, size_t n_fc, size_t n, const float *w,
                                size_t n_rows, float *out, size_t out_stride)
{
    score_labels(tiles, FASA_DTYPE_F16, n_fc, n, w, n_rows, out, out_stride);
}

void fasa__score_labels_bf16_ref(const void *tiles, size_t n_fc, size_t n, const float *w,
                                 size_t n_rows, float *out, size_t out_stride)
{
    score_labels(tiles, FASA_DTYPE_BF16, n_fc, n, w, n_rows, out, out_stride);
}

/* dst may be unaligned: store through memcpy. */
void fasa__convert_f16_ref(const float *src, size_t n, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = fasa__f32_to_f16(src[i]);
        memcpy((char *)dst + 2 * i, &h, 2);
    }
}

void fasa__convert_bf16_ref(const float *src, size_t n, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h = fasa__f32_to_bf16(src[i]);
        memcpy((char *)dst + 2 * i, &h, 2);
    }
}
