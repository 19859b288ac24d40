/*
 * attn_neon.c - attention kernel (fasa__attn_fn) for AArch64 Advanced SIMD:
 * 4 fp32 lanes, 32 registers; f16 via vcvt_f32_f16 (baseline AArch64),
 * bf16 by widening shifts. The algorithm is in src/simd/attn_body.h.
 * Compiles to nothing off AArch64.
 */
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include "simd/exp_neon.h"

#define FA_ISA neon
#define FA_ATTR
#define FA_W 4
#define FA_VEC float32x4_t
#define FA_ZERO() vdupq_n_f32(0.0f)
#define FA_SET1(x) vdupq_n_f32(x)
#define FA_LOADU(p) vld1q_f32(p)
#define FA_STOREU(p, v) vst1q_f32((p), (v))
#define FA_FMA(a, b, c) vfmaq_f32((c), (a), (b))
#define FA_MUL(a, b) vmulq_f32((a), (b))
#define FA_ADD(a, b) vaddq_f32((a), (b))
#define FA_SUB(a, b) vsubq_f32((a), (b))
#define FA_MAX(a, b) vmaxq_f32((a), (b))
#define FA_HMAX(v) vmaxvq_f32(v)
#define FA_HSUM(v) vaddvq_f32(v)
#define FA_EXP(v) fasa__exp_neon(v)
#define FA_REDUCE(v) vpaddq_f32(vpaddq_f32((v)[0], (v)[1]), vpaddq_f32((v)[2], (v)[3]))
#define FA_KT1 8
#define FA_KT4 2
#define FA_VCG1 8
#define FA_VCG2 8
#define FA_VCG3 4
#define FA_VCG4 4
#define FA_LD_F32(p) vld1q_f32((const float *)(const void *)(p))
#define FA_LD_F16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)(p))))
#define FA_LD_BF16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)(p)), 16))

#define FA_KERNEL_NAME fasa__attn_neon
#include "simd/attn_instances.h"

#endif
