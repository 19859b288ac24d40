/*
 * exp_neon.h - vectorized expf for the NEON kernels; the same algorithm,
 * constants and domain notes as exp_x86.h (x <= -87.33 gives +0, NaN
 * propagates, large x saturates near 2^127). Include after <arm_neon.h>,
 * AArch64 only.
 */
#ifndef FASA_SIMD_EXP_NEON_H
#define FASA_SIMD_EXP_NEON_H

static inline float32x4_t fasa__exp_neon(float32x4_t x)
{
    /* vmaxq/vminq propagate NaN, so NaN inputs stay NaN. */
    x = vmaxq_f32(x, vdupq_n_f32(-88.0f));
    x = vminq_f32(x, vdupq_n_f32(88.0f));
    float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t y = vdupq_n_f32(1.9875691500e-4f);
    y = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), y, r);
    y = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), y, r);
    y = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), y, r);
    y = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), y, r);
    y = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), y, r);
    y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), y, vmulq_f32(r, r));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    float32x4_t res = vmulq_f32(y, vreinterpretq_f32_s32(e));
    /* keep where !(x < -87.33): NaN lanes are kept */
    uint32x4_t drop = vcltq_f32(x, vdupq_n_f32(-87.33f));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(res), drop));
}

#endif
