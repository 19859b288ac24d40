/*
 * attn_instances.h - instantiate attn_body.h and define the kernel
 * FA_KERNEL_NAME (a fasa__attn_fn). The equal-dtype pairs (the common
 * case: one cache dtype; llama.cpp's `-ctk q8_0 -ctv q8_0` too) get
 * specialized bodies; other K/V pairs share one generic body whose loads
 * switch on the dtype per vector (a little slower, and it keeps compile
 * time down).
 * Needs the ISA macros of attn_body.h plus FA_LD_F32/FA_LD_F16/FA_LD_BF16
 * (W elements at a byte pointer) and FA_LD_Q8_0/FA_LD_Q4_0(row, c) (W
 * elements from element c, a multiple of W, of a block-format row).
 */

#define FA_LD_AT(row, c, dt)                                                              \
    ((dt) == FASA_DTYPE_F16    ? FA_LD_F16((row) + (c) * 2)                                \
     : (dt) == FASA_DTYPE_BF16 ? FA_LD_BF16((row) + (c) * 2)                               \
     : (dt) == FASA_DTYPE_Q8_0 ? FA_LD_Q8_0(row, c)                                        \
     : (dt) == FASA_DTYPE_Q4_0 ? FA_LD_Q4_0(row, c)                                        \
                               : FA_LD_F32((row) + (c) * 4))

#define FA_KLOAD(row, c, dt) FA_LD_F32((row) + (c) * 4)
#define FA_VLOAD(row, c, dt) FA_LD_F32((row) + (c) * 4)
#define FA_KDT(job) FASA_DTYPE_F32
#define FA_VDT(job) FASA_DTYPE_F32
#define FA_SUFFIX f32
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(row, c, dt) FA_LD_F16((row) + (c) * 2)
#define FA_VLOAD(row, c, dt) FA_LD_F16((row) + (c) * 2)
#define FA_KDT(job) FASA_DTYPE_F16
#define FA_VDT(job) FASA_DTYPE_F16
#define FA_SUFFIX f16
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(row, c, dt) FA_LD_BF16((row) + (c) * 2)
#define FA_VLOAD(row, c, dt) FA_LD_BF16((row) + (c) * 2)
#define FA_KDT(job) FASA_DTYPE_BF16
#define FA_VDT(job) FASA_DTYPE_BF16
#define FA_SUFFIX bf16
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(row, c, dt) FA_LD_Q8_0(row, c)
#define FA_VLOAD(row, c, dt) FA_LD_Q8_0(row, c)
#define FA_KDT(job) FASA_DTYPE_Q8_0
#define FA_VDT(job) FASA_DTYPE_Q8_0
#define FA_SUFFIX q8_0
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(row, c, dt) FA_LD_Q4_0(row, c)
#define FA_VLOAD(row, c, dt) FA_LD_Q4_0(row, c)
#define FA_KDT(job) FASA_DTYPE_Q4_0
#define FA_VDT(job) FASA_DTYPE_Q4_0
#define FA_SUFFIX q4_0
#include "attn_body.h"
#undef FA_KLOAD
#undef FA_VLOAD
#undef FA_KDT
#undef FA_VDT
#undef FA_SUFFIX

#define FA_KLOAD(row, c, dt) FA_LD_AT(row, c, dt)
#define FA_VLOAD(row, c, dt) FA_LD_AT(row, c, dt)
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
             : job->k_dtype == FASA_DTYPE_Q8_0 ? rows_q8_0
             : job->k_dtype == FASA_DTYPE_Q4_0 ? rows_q4_0
                                               : rows_f32;
    for (size_t r0 = 0; r0 < job->n_rows; r0 += FA_RMAX) {
        size_t nr = job->n_rows - r0 < FA_RMAX ? job->n_rows - r0 : FA_RMAX;
        fn(job, r0, nr);
    }
}
