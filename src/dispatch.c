/*
 * dispatch.c - pick the kernel table for a CPU level (placeholder: scalar
 * references only; the SIMD levels are added with src/kernels.def).
 */
#include "internal.h"

static const fasa__kernels ref_kernels = {
    {fasa__score_dims_f32_ref, fasa__score_dims_f16_ref, fasa__score_dims_bf16_ref},
    fasa__attn_ref,
    fasa__topk_ref,
};

const fasa__kernels *fasa__kernels_get(int level)
{
    (void)level;
    return &ref_kernels;
}
