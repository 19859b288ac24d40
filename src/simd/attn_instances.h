/*
 * attn_instances.h - instantiate attn_body.h for every (K dtype, V dtype)
 * pair and define the kernel FA_KERNEL_NAME (a fasa__attn_fn) that picks
 * the instance. Equal-dtype pairs are the common case, but mixed pairs cost
 * nothing extra this way, so all nine are specialized.
 * Needs the ISA macros of attn_body.h plus FA_LD_F32/FA_LD_F16/FA_LD_BF16.
 */


#define FA_KLOAD FA_LD_F32
#define FA_KSIZE 4
#define FA_KDT FASA_DTYPE_F32
#define FA_VLOAD FA_LD_F32
#define FA_VSIZE 4
#define FA_VDT FASA_DTYPE_F32
#define FA_SUFFIX f32_f32
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#define FA_VLOAD FA_LD_F16
#define FA_VSIZE 2
#define FA_VDT FASA_DTYPE_F16
#define FA_SUFFIX f32_f16
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#define FA_VLOAD FA_LD_BF16
#define FA_VSIZE 2
#define FA_VDT FASA_DTYPE_BF16
#define FA_SUFFIX f32_bf16
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#undef FA_KLOAD
#undef FA_KSIZE
#undef FA_KDT

#define FA_KLOAD FA_LD_F16
#define FA_KSIZE 2
#define FA_KDT FASA_DTYPE_F16
#define FA_VLOAD FA_LD_F32
#define FA_VSIZE 4
#define FA_VDT FASA_DTYPE_F32
#define FA_SUFFIX f16_f32
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#define FA_VLOAD FA_LD_F16
#define FA_VSIZE 2
#define FA_VDT FASA_DTYPE_F16
#define FA_SUFFIX f16_f16
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#define FA_VLOAD FA_LD_BF16
#define FA_VSIZE 2
#define FA_VDT FASA_DTYPE_BF16
#define FA_SUFFIX f16_bf16
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#undef FA_KLOAD
#undef FA_KSIZE
#undef FA_KDT

#define FA_KLOAD FA_LD_BF16
#define FA_KSIZE 2
#define FA_KDT FASA_DTYPE_BF16
#define FA_VLOAD FA_LD_F32
#define FA_VSIZE 4
#define FA_VDT FASA_DTYPE_F32
#define FA_SUFFIX bf16_f32
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#define FA_VLOAD FA_LD_F16
#define FA_VSIZE 2
#define FA_VDT FASA_DTYPE_F16
#define FA_SUFFIX bf16_f16
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#define FA_VLOAD FA_LD_BF16
#define FA_VSIZE 2
#define FA_VDT FASA_DTYPE_BF16
#define FA_SUFFIX bf16_bf16
#include "attn_body.h"
#undef FA_SUFFIX
#undef FA_VLOAD
#undef FA_VSIZE
#undef FA_VDT
#undef FA_KLOAD
#undef FA_KSIZE
#undef FA_KDT

typedef void (*FA_CAT(fa_rows_fn, FA_ISA))(const fasa__attn_job *, size_t, size_t);

FA_ATTR void FA_KERNEL_NAME(const fasa__attn_job *job)
{
    /* [k_dtype][v_dtype], fasa_dtype order F32, F16, BF16 */
    static const FA_CAT(fa_rows_fn, FA_ISA) table[3][3] = {
        {rows_f32_f32, rows_f32_f16, rows_f32_bf16},
        {rows_f16_f32, rows_f16_f16, rows_f16_bf16},
        {rows_bf16_f32, rows_bf16_f16, rows_bf16_bf16},
    };
    FA_CAT(fa_rows_fn, FA_ISA) fn = table[job->k_dtype][job->v_dtype];
    for (size_t r0 = 0; r0 < job->n_rows; r0 += FA_RMAX) {
        size_t nr = job->n_rows - r0 < FA_RMAX ? job->n_rows - r0 : FA_RMAX;
        fn(job, r0, nr);
    }
}
