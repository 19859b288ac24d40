/*
 * attn_instances.h - instantiate attn_body.h and define the kernel
 * FA_KERNEL_NAME (a fasa__attn_fn). The three equal-dtype pairs (the
 * common case: one cache dtype) get specialized bodies; mixed K/V dtypes
 * share one generic body whose loads switch on the dtype per vector (a
 * little slower, and it keeps compile time down).
 * Needs the ISA macros of attn_body.h plus FA_LD_F32/FA_LD_F16/FA_LD_BF16.
 */

#define FA_LD_ANY(p, dt) \
    ((dt) == FASA_DTYPE_F16 ? FA_LD_F16(p) : (dt) == FASA_DTYPE_BF16 ? FA_LD_BF16(p) : FA_LD_F32(p))

#define FA_KLOAD(p, dt) FA_LD_F32(p)
#define FA_VLOAD(p, dt) FA_LD_F32(p)
#define FA_KDT(job) FASA_DTYPE_F32
#define FA_VDT(job) FASA_DTYPE_F32
#define FA_SUFFIX f32
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(p, dt) FA_LD_F16(p)
#define FA_VLOAD(p, dt) FA_LD_F16(p)
#define FA_KDT(job) FASA_DTYPE_F16
#define FA_VDT(job) FASA_DTYPE_F16
#define FA_SUFFIX f16
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(p, dt) FA_LD_BF16(p)
#define FA_VLOAD(p, dt) FA_LD_BF16(p)
#define FA_KDT(job) FASA_DTYPE_BF16
#define FA_VDT(job) FASA_DTYPE_BF16
#define FA_SUFFIX bf16
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(p, dt) FA_LD_ANY(p, dt)
#define FA_VLOAD(p, dt) FA_LD_ANY(p, dt)
#define FA_KDT(job) ((job)->k_dtype)
#define FA_VDT(job) ((job)->v_dtype)
#define FA_SUFFIX mixed
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

FA_ATTR void FA_KERNEL_NAME(const fasa__attn_job *job)
{
    void (*fn)(const fasa__attn_job *, size_t, size_t) = rows_mixed;
    if (job->k_dtype == job->v_dtype)
        fn = job->k_dtype == FASA_DTYPE_F16    ? rows_f16
             : job->k_dtype == FASA_DTYPE_BF16 ? rows_bf16
                                               : rows_f32;
    for (size_t r0 = 0; r0 < job->n_rows; r0 += FA_RMAX) {
        size_t nr = job->n_rows - r0 < FA_RMAX ? job->n_rows - r0 : FA_RMAX;
        fn(job, r0, nr);
    }
}
