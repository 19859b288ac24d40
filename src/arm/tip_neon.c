/*
 * tip_neon.c - TIP kernels for AArch64 Advanced SIMD: label-tile scoring
 * (f32/f16/bf16), label converts and the top-k scan. Advanced SIMD and the
 * f16 <-> f32 vector conversions (FCVTL/FCVTN) are part of the AArch64
 * baseline, so these functions need no target attribute. Empty elsewhere.
 */
#include "internal.h"

#if defined(__aarch64__)
#include "topk_filter.h"

#include <arm_neon.h>

static inline float32x4_t load_f32(const float *p) { return vld1q_f32(p); }
static inline float32x4_t load_f16(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/* 16 scores of one row, only the first nt. */
static inline void store16(float *o, float32x4_t a0, float32x4_t a1, float32x4_t a2,
                           float32x4_t a3, size_t nt)
{
    if (nt >= 16) {
        vst1q_f32(o, a0);
        vst1q_f32(o + 4, a1);
        vst1q_f32(o + 8, a2);
        vst1q_f32(o + 12, a3);
        return;
    }
    float tmp[16];
    vst1q_f32(tmp, a0);
    vst1q_f32(tmp + 4, a1);
    vst1q_f32(tmp + 8, a2);
    vst1q_f32(tmp + 12, a3);
    memcpy(o, tmp, nt * sizeof *o);
}

/* Four rows x 16 tokens of accumulators: 16 of the 32 q registers. */
#define ACC_DECL(r) float32x4_t a##r##0 = vdupq_n_f32(0.0f), a##r##1 = a##r##0, \
                                a##r##2 = a##r##0, a##r##3 = a##r##0
#define ACC_FMA(r, wv, x0, x1, x2, x3)                                                       \
    do {                                                                                     \
        a##r##0 = vfmaq_f32(a##r##0, wv, x0);                                                \
        a##r##1 = vfmaq_f32(a##r##1, wv, x1);                                                \
        a##r##2 = vfmaq_f32(a##r##2, wv, x2);                                                \
        a##r##3 = vfmaq_f32(a##r##3, wv, x3);                                                \
    } while (0)
#define ACC_STORE(r) store16(out + (r0 + r) * out_stride + j0 + q, a##r##0, a##r##1, a##r##2, \
                             a##r##3, nt - q)
#define W(r, c) vdupq_n_f32(w[(r0 + (r)) * n_ch + (c)])
#define STORES(RB)                                                                           \
    ACC_STORE(0);                                                                            \
    if (RB > 1)                                                                              \
        ACC_STORE(1);                                                                        \
    if (RB > 2)                                                                              \
        ACC_STORE(2);                                                                        \
    if (RB > 3)                                                                              \
        ACC_STORE(3);
#define DECLS                                                                                \
    ACC_DECL(0);                                                                             \
    ACC_DECL(1);                                                                             \
    ACC_DECL(2);                                                                             \
    ACC_DECL(3);

#define TILE_BODY(RB, LOAD, T)                                                               \
    for (size_t q = 0; q < nt; q += 16) {                                                    \
        DECLS                                                                                \
        for (size_t c = 0; c < n_ch; c++) {                                                  \
            const T *xp = (const T *)tile + c * FASA_TILE + q;                               \
            float32x4_t x0 = LOAD(xp), x1 = LOAD(xp + 4), x2 = LOAD(xp + 8),                 \
                        x3 = LOAD(xp + 12);                                                  \
            ACC_FMA(0, W(0, c), x0, x1, x2, x3);                                             \
            if (RB > 1)                                                                      \
                ACC_FMA(1, W(1, c), x0, x1, x2, x3);                                         \
            if (RB > 2)                                                                      \
                ACC_FMA(2, W(2, c), x0, x1, x2, x3);                                         \
            if (RB > 3)                                                                      \
                ACC_FMA(3, W(3, c), x0, x1, x2, x3);                                         \
        }                                                                                    \
        STORES(RB)                                                                           \
    }

/* bf16 pairs: shift / mask the 32-bit lane into the two f32 halves. */
#define PAIR_BODY(RB)                                                                        \
    for (size_t q = 0; q < nt; q += 16) {                                                    \
        DECLS                                                                                \
        const uint32x4_t hi_mask = vdupq_n_u32(0xffff0000u);                                 \
        for (size_t u = 0; u < n_fc; u++) {                                                  \
            const uint32_t *xp = (const uint32_t *)(tile + u * 2 * FASA_TILE) + q;           \
            uint32x4_t y0 = vld1q_u32(xp), y1 = vld1q_u32(xp + 4), y2 = vld1q_u32(xp + 8),   \
                       y3 = vld1q_u32(xp + 12);                                              \
            float32x4_t l0 = vreinterpretq_f32_u32(vshlq_n_u32(y0, 16)),                     \
                        l1 = vreinterpretq_f32_u32(vshlq_n_u32(y1, 16)),                     \
                        l2 = vreinterpretq_f32_u32(vshlq_n_u32(y2, 16)),                     \
                        l3 = vreinterpretq_f32_u32(vshlq_n_u32(y3, 16));                     \
            float32x4_t h0 = vreinterpretq_f32_u32(vandq_u32(y0, hi_mask)),                  \
                        h1 = vreinterpretq_f32_u32(vandq_u32(y1, hi_mask)),                  \
                        h2 = vreinterpretq_f32_u32(vandq_u32(y2, hi_mask)),                  \
                        h3 = vreinterpretq_f32_u32(vandq_u32(y3, hi_mask));                  \
            ACC_FMA(0, W(0, 2 * u), l0, l1, l2, l3);                                         \
            ACC_FMA(0, W(0, 2 * u + 1), h0, h1, h2, h3);                                     \
            if (RB > 1) {                                                                    \
                ACC_FMA(1, W(1, 2 * u), l0, l1, l2, l3);                                     \
                ACC_FMA(1, W(1, 2 * u + 1), h0, h1, h2, h3);                                 \
            }                                                                                \
            if (RB > 2) {                                                                    \
                ACC_FMA(2, W(2, 2 * u), l0, l1, l2, l3);                                     \
                ACC_FMA(2, W(2, 2 * u + 1), h0, h1, h2, h3);                                 \
            }                                                                                \
            if (RB > 3) {                                                                    \
                ACC_FMA(3, W(3, 2 * u), l0, l1, l2, l3);                                     \
                ACC_FMA(3, W(3, 2 * u + 1), h0, h1, h2, h3);                                 \
            }                                                                                \
        }                                                                                    \
        STORES(RB)                                                                           \
    }

#define SCORE_KERNEL(NAME, BODY, T)                                                          \
    void NAME(const void *tiles, size_t n_fc, size_t n, const float *w, size_t n_rows,       \
              float *out, size_t out_stride)                                                 \
    {                                                                                        \
        size_t n_ch = 2 * n_fc;                                                              \
        for (size_t j0 = 0; j0 < n; j0 += FASA_TILE) {                                       \
            const T *tile = (const T *)tiles + (j0 / FASA_TILE) * n_ch * FASA_TILE;          \
            size_t nt = n - j0 < FASA_TILE ? n - j0 : FASA_TILE;                             \
            size_t r0 = 0;                                                                   \
            for (; r0 + 4 <= n_rows; r0 += 4) {                                              \
                BODY(4)                                                                      \
            }                                                                                \
            switch (n_rows - r0) {                                                           \
            case 3: {                                                                        \
                BODY(3)                                                                      \
            } break;                                                                         \
            case 2: {                                                                        \
                BODY(2)                                                                      \
            } break;                                                                         \
            case 1: {                                                                        \
                BODY(1)                                                                      \
            } break;                                                                         \
            default: break;                                                                  \
            }                                                                                \
        }                                                                                    \
    }

#define BODY_F32(RB) TILE_BODY(RB, load_f32, float)
#define BODY_F16(RB) TILE_BODY(RB, load_f16, uint16_t)
SCORE_KERNEL(fasa__score_labels_f32_neon, BODY_F32, float)
SCORE_KERNEL(fasa__score_labels_f16_neon, BODY_F16, uint16_t)
SCORE_KERNEL(fasa__score_labels_bf16_neon, PAIR_BODY, uint16_t)

/* ---------------------------------------------------------- converts */

/* FCVTN rounds to nearest even (default FPCR); NaN lanes get the
 * reference's sign | 0x7e00 so results are bit-identical. */
void fasa__convert_f16_neon(const float *src, size_t n, void *dst)
{
    size_t i = 0;
    const uint16x4_t qnan = vdup_n_u16(0x7e00), sign = vdup_n_u16(0x8000);
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(src + i);
        uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(x));
        uint16x4_t nan = vmovn_u32(vmvnq_u32(vceqq_f32(x, x)));
        uint16x4_t fixed = vorr_u16(vand_u16(h, sign), qnan);
        h = vbsl_u16(nan, fixed, h);
        uint16_t tmp[4];
        vst1_u16(tmp, h);
        memcpy((uint16_t *)dst + i, tmp, sizeof tmp);
    }
    if (i < n)
        fasa__convert_f16_ref(src + i, n - i, (uint16_t *)dst + i);
}

void fasa__convert_bf16_neon(const float *src, size_t n, void *dst)
{
    size_t i = 0;
    const uint32x4_t bias = vdupq_n_u32(0x7fff), one = vdupq_n_u32(1), quiet = vdupq_n_u32(0x40);
    for (; i + 4 <= n; i += 4) {
        float32x4_t x = vld1q_f32(src + i);
        uint32x4_t u = vreinterpretq_u32_f32(x);
        uint32x4_t r = vaddq_u32(u, vaddq_u32(bias, vandq_u32(vshrq_n_u32(u, 16), one)));
        r = vshrq_n_u32(r, 16);
        uint32x4_t nan = vmvnq_u32(vceqq_f32(x, x));
        r = vbslq_u32(nan, vorrq_u32(vshrq_n_u32(u, 16), quiet), r);
        uint16_t tmp[4];
        vst1_u16(tmp, vmovn_u32(r));
        memcpy((uint16_t *)dst + i, tmp, sizeof tmp);
    }
    if (i < n)
        fasa__convert_bf16_ref(src + i, n - i, (uint16_t *)dst + i);
}

/* ----------------------------------------------------------- top-k scan */

/* Compare 16 scores at a time; most blocks have no candidate and are
 * skipped after one across-vector max, the rest are compressed in scalar
 * code with branchless stores. */
static size_t scan_neon(const float *s, size_t n, float tau, uint32_t *cand, size_t cap)
{
    const float32x4_t t = vdupq_n_f32(tau);
    size_t c = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
        uint32x4_t m0 = vcgeq_f32(vld1q_f32(s + j), t), m1 = vcgeq_f32(vld1q_f32(s + j + 4), t),
                   m2 = vcgeq_f32(vld1q_f32(s + j + 8), t),
                   m3 = vcgeq_f32(vld1q_f32(s + j + 12), t);
        if (vmaxvq_u32(vorrq_u32(vorrq_u32(m0, m1), vorrq_u32(m2, m3))) == 0)
            continue;
        for (size_t l = 0; l < 16; l++) {
            cand[c] = (uint32_t)(j + l);
            c += s[j + l] >= tau;
        }
        if (c > cap)
            return cap + 1;
    }
    return fasa__topk_scan_tail(s, j, n, tau, cand, c, cap);
}

FASA_TOPK_KERNELS(neon, scan_neon)

/* ------------------------------------------------- score_dims (strided K) */

/* Four tokens at a time: one lane per token (no gathers in Advanced SIMD,
 * so lanes are inserted one by one), vertical FMAs across the dims. */
void fasa__score_dims_f32_neon(const void *k, size_t token_stride, size_t n,
                               const uint32_t *dims, size_t n_dims, const float *w, float *out)
{
    const float *kf = k;
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *r0 = kf + j * token_stride, *r1 = r0 + token_stride, *r2 = r1 + token_stride,
                    *r3 = r2 + token_stride;
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (size_t c = 0; c < n_dims; c++) {
            uint32_t d = dims[c];
            float32x4_t x = vdupq_n_f32(r0[d]);
            x = vsetq_lane_f32(r1[d], x, 1);
            x = vsetq_lane_f32(r2[d], x, 2);
            x = vsetq_lane_f32(r3[d], x, 3);
            acc = vfmaq_f32(acc, vdupq_n_f32(w[c]), x);
        }
        vst1q_f32(out + j, acc);
    }
    if (j < n)
        fasa__score_dims_f32_ref(kf + j * token_stride, token_stride, n - j, dims, n_dims, w,
                                 out + j);
}

static inline uint16x4_t lanes16(const uint16_t *r0, size_t ts, uint32_t d)
{
    uint16x4_t x = vdup_n_u16(r0[d]);
    x = vset_lane_u16(r0[ts + d], x, 1);
    x = vset_lane_u16(r0[2 * ts + d], x, 2);
    x = vset_lane_u16(r0[3 * ts + d], x, 3);
    return x;
}

void fasa__score_dims_f16_neon(const void *k, size_t token_stride, size_t n,
                               const uint32_t *dims, size_t n_dims, const float *w, float *out)
{
    const uint16_t *kh = k;
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint16_t *r0 = kh + j * token_stride;
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (size_t c = 0; c < n_dims; c++) {
            float32x4_t x = vcvt_f32_f16(vreinterpret_f16_u16(lanes16(r0, token_stride, dims[c])));
            acc = vfmaq_f32(acc, vdupq_n_f32(w[c]), x);
        }
        vst1q_f32(out + j, acc);
    }
    if (j < n)
        fasa__score_dims_f16_ref(kh + j * token_stride, token_stride, n - j, dims, n_dims, w,
                                 out + j);
}

void fasa__score_dims_bf16_neon(const void *k, size_t token_stride, size_t n,
                                const uint32_t *dims, size_t n_dims, const float *w, float *out)
{
    const uint16_t *kh = k;
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint16_t *r0 = kh + j * token_stride;
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (size_t c = 0; c < n_dims; c++) {
            float32x4_t x =
                vreinterpretq_f32_u32(vshll_n_u16(lanes16(r0, token_stride, dims[c]), 16));
            acc = vfmaq_f32(acc, vdupq_n_f32(w[c]), x);
        }
        vst1q_f32(out + j, acc);
    }
    if (j < n)
        fasa__score_dims_bf16_ref(kh + j * token_stride, token_stride, n - j, dims, n_dims, w,
                                  out + j);
}

#endif
