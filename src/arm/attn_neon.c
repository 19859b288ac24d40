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
#define FA_LANE0(v) vgetq_lane_f32((v), 0)
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
#define FA_LD_Q8_0(row, c) fa_ld_q8_0(row, c)
#define FA_LD_Q4_0(row, c) fa_ld_q4_0(row, c)

/* The scale of the quant block at b, in every lane. */
static inline float32x4_t fa_qscale(const char *b)
{
    uint16_t h;
    memcpy(&h, b, sizeof h);
    return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h)));
}
/* Four bytes at p in the low lanes of a vector. */
static inline uint8x8_t fa_ld4(const char *p)
{
    uint32_t x;
    memcpy(&x, p, sizeof x);
    return vreinterpret_u8_u32(vdup_n_u32(x));
}
/* Elements c .. c+3 of a Q8_0 row: int8 -> int32 -> f32, times d (exact). */
static inline float32x4_t fa_ld_q8_0(const char *row, size_t c)
{
    const char *b = row + (c / 32) * 34;
    int32x4_t w = vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_u8(fa_ld4(b + 2 + c % 32)))));
    return vmulq_f32(vcvtq_f32_s32(w), fa_qscale(b));
}
/* Elements c .. c+3 of a Q4_0 row: nibbles of bytes c % 16 .. +3, low for
 * c % 32 < 16, high otherwise, minus 8, times d. */
static inline float32x4_t fa_ld_q4_0(const char *row, size_t c)
{
    const char *b = row + (c / 32) * 18;
    uint32x4_t u = vmovl_u16(vget_low_u16(vmovl_u8(fa_ld4(b + 2 + c % 16))));
    u = vandq_u32(vshlq_u32(u, vdupq_n_s32(-(int32_t)((c & 16) >> 2))), vdupq_n_u32(15));
    int32x4_t w = vsubq_s32(vreinterpretq_s32_u32(u), vdupq_n_s32(8));
    return vmulq_f32(vcvtq_f32_s32(w), fa_qscale(b));
}

#define FA_KERNEL_NAME fasa__attn_neon
#include "simd/attn_instances.h"

#endif
