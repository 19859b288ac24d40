/*
 * score_dims.c - scalar reference of TIP scoring from a strided key view:
 * out[j] = sum_c w[c] * k[j*token_stride + dims[c]], fp32 in c order.
 * SIMD versions are tested against these.
 */
#include "internal.h"

void fasa__score_dims_f32_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                              size_t n_dims, const float *w, float *out)
{
    const float *kf = k;
    for (size_t j = 0; j < n; j++) {
        const float *row = kf + j * token_stride;
        float s = 0.0f;
        for (size_t c = 0; c < n_dims; c++)
            s += w[c] * row[dims[c]];
        out[j] = s;
    }
}

void fasa__score_dims_f16_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                              size_t n_dims, const float *w, float *out)
{
    const uint16_t *kh = k;
    for (size_t j = 0; j < n; j++) {
        const uint16_t *row = kh + j * token_stride;
        float s = 0.0f;
        for (size_t c = 0; c < n_dims; c++)
            s += w[c] * fasa__f16_to_f32(row[dims[c]]);
        out[j] = s;
    }
}

void fasa__score_dims_bf16_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                               size_t n_dims, const float *w, float *out)
{
    const uint16_t *kb = k;
    for (size_t j = 0; j < n; j++) {
        const uint16_t *row = kb + j * token_stride;
        float s = 0.0f;
        for (size_t c = 0; c < n_dims; c++)
            s += w[c] * fasa__bf16_to_f32(row[dims[c]]);
        out[j] = s;
    }
}

/* Block formats: token j's row starts at block j*token_stride/32; the
 * element loads decode one value each (fasa__load). */
static void score_dims_quant(const void *k, int32_t dtype, size_t token_stride, size_t n,
                             const uint32_t *dims, size_t n_dims, const float *w, float *out)
{
    for (size_t j = 0; j < n; j++) {
        const void *row = (const char *)k + fasa__bytes(dtype, j * token_stride);
        float s = 0.0f;
        for (size_t c = 0; c < n_dims; c++)
            s += w[c] * fasa__load(row, dtype, dims[c]);
        out[j] = s;
    }
}

void fasa__score_dims_q8_0_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                               size_t n_dims, const float *w, float *out)
{
    score_dims_quant(k, FASA_DTYPE_Q8_0, token_stride, n, dims, n_dims, w, out);
}

void fasa__score_dims_q4_0_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                               size_t n_dims, const float *w, float *out)
{
    score_dims_quant(k, FASA_DTYPE_Q4_0, token_stride, n, dims, n_dims, w, out);
}
