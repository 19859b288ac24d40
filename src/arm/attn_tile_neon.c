/*
 * attn_tile_neon.c - tiled attention kernel (fasa__attn_tile_fn) for
 * AArch64 Advanced SIMD: 4 rows per vector, 32 registers, tiles of 4 keys
 * (dims) x 4 row vectors; f16 via vcvt_f32_f16, bf16 by widening shifts.
 * The algorithm is in src/simd/attn_tile_body.h. Compiles to nothing off
 * AArch64.
 */
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include "simd/exp_neon.h"

#define FT_ISA neon
#define FT_ATTR
#define FT_W 4
#define FT_VEC float32x4_t
#define FT_ZERO() vdupq_n_f32(0.0f)
#define FT_SET1(x) vdupq_n_f32(x)
#define FT_LOAD(p) vld1q_f32(p)
#define FT_LOADU(p) vld1q_f32(p)
#define FT_STORE(p, v) vst1q_f32((p), (v))
#define FT_BCAST(p) vld1q_dup_f32(p)
#define FT_FMA(a, b, c) vfmaq_f32((c), (a), (b))
#define FT_MUL(a, b) vmulq_f32((a), (b))
#define FT_ADD(a, b) vaddq_f32((a), (b))
#define FT_SUB(a, b) vsubq_f32((a), (b))
#define FT_MAX(a, b) vmaxq_f32((a), (b))
#define FT_DIV(a, b) vdivq_f32((a), (b))
#define FT_EXP(v) fasa__exp_neon(v)
#define FT_ABS(v) vabsq_f32(v)
#define FT_COPYSIGN(mag, sgn) vbslq_f32(vdupq_n_u32(0x80000000u), (sgn), (mag))
#define FT_SEL_EQ(a, b, x, y) vbslq_f32(vceqq_f32((a), (b)), (x), (y))
#define FT_SEL_LT(a, b, x, y) vbslq_f32(vcltq_f32((a), (b)), (x), (y))
#define FT_VIS(x, j, lb, le) \
    vbslq_f32(vandq_u32(vcgeq_f32((j), (lb)), vcltq_f32((j), (le))), (x), vdupq_n_f32(-INFINITY))
#define FT_CVT_F16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)(p))))
#define FT_CVT_BF16(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)(p)), 16))
#define FT_RVMAX 4
#define FT_KB1 16
#define FT_KB2 8
#define FT_KB3 4
#define FT_KB4 4
#define FT_CB1 16
#define FT_CB2 8
#define FT_CB3 4
#define FT_CB4 4
#define FT_KERNEL_NAME fasa__attn_tile_neon
#include "simd/attn_tile_body.h"

#endif
