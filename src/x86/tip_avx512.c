/*
 * tip_avx512.c - TIP kernels for AVX-512 F/BW/VL: label-tile scoring
 * (f32/f16/bf16), label converts and the top-k scan (compare + compress).
 * Every function carries exactly the target features it uses, so the file
 * builds with baseline flags; it is empty on non-x86 targets.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include "topk_filter.h"

#include <immintrin.h>

#include "store_avx512.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* 16 labels of channel-major tile row `p` as f32. */
INLINE __m512 load_f32(const float *p) { return _mm512_loadu_ps(p); }
INLINE __m512 load_f16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* Accumulators of up to 4 rows x 64 tokens as named variables, so they stay
 * in registers (16 of the 32 zmm). RB is a constant in every expansion. */
#define ACC_DECL(r) __m512 a##r##0 = _mm512_setzero_ps(), a##r##1 = a##r##0, a##r##2 = a##r##0, \
                           a##r##3 = a##r##0
#define ACC_FMA(r, wv, x0, x1, x2, x3)                                                       \
    do {                                                                                     \
        a##r##0 = _mm512_fmadd_ps(wv, x0, a##r##0);                                          \
        a##r##1 = _mm512_fmadd_ps(wv, x1, a##r##1);                                          \
        a##r##2 = _mm512_fmadd_ps(wv, x2, a##r##2);                                          \
        a##r##3 = _mm512_fmadd_ps(wv, x3, a##r##3);                                          \
    } while (0)
#define ACC_STORE(r)                                                                         \
    fasa__store_row_avx512(out + (r0 + r) * out_stride + j0, a##r##0, a##r##1, a##r##2, a##r##3, \
                           nt)
#define W(r, c) _mm512_set1_ps(w[(r0 + (r)) * n_ch + (c)])

/* One tile, RB rows, channel-major f32 / f16: vertical FMAs only, no
 * per-token horizontal reduction. */
#define TILE_BODY(RB, LOAD, T)                                                               \
    do {                                                                                     \
        ACC_DECL(0);                                                                         \
        ACC_DECL(1);                                                                         \
        ACC_DECL(2);                                                                         \
        ACC_DECL(3);                                                                         \
        for (size_t c = 0; c < n_ch; c++) {                                                  \
            const T *xp = (const T *)tile + c * FASA_TILE;                                   \
            __m512 x0 = LOAD(xp), x1 = LOAD(xp + 16), x2 = LOAD(xp + 32), x3 = LOAD(xp + 48); \
            ACC_FMA(0, W(0, c), x0, x1, x2, x3);                                             \
            if (RB > 1)                                                                      \
                ACC_FMA(1, W(1, c), x0, x1, x2, x3);                                         \
            if (RB > 2)                                                                      \
                ACC_FMA(2, W(2, c), x0, x1, x2, x3);                                         \
            if (RB > 3)                                                                      \
                ACC_FMA(3, W(3, c), x0, x1, x2, x3);                                         \
        }                                                                                    \
        ACC_STORE(0);                                                                        \
        if (RB > 1)                                                                          \
            ACC_STORE(1);                                                                    \
        if (RB > 2)                                                                          \
            ACC_STORE(2);                                                                    \
        if (RB > 3)                                                                          \
            ACC_STORE(3);                                                                    \
    } while (0)

/* One row: even and odd channels go to two accumulator sets, so two FMA
 * chains per token block hide the FMA latency; summed at the end. */
#define ONE_ROW_BODY(LOAD, T)                                                                \
    do {                                                                                     \
        ACC_DECL(0);                                                                         \
        ACC_DECL(1);                                                                         \
        size_t c = 0;                                                                        \
        for (; c + 2 <= n_ch; c += 2) {                                                      \
            const T *xp = (const T *)tile + c * FASA_TILE;                                   \
            ACC_FMA(0, W(0, c), LOAD(xp), LOAD(xp + 16), LOAD(xp + 32), LOAD(xp + 48));      \
            xp += FASA_TILE;                                                                 \
            ACC_FMA(1, W(0, c + 1), LOAD(xp), LOAD(xp + 16), LOAD(xp + 32), LOAD(xp + 48));  \
        }                                                                                    \
        if (c < n_ch) {                                                                      \
            const T *xp = (const T *)tile + c * FASA_TILE;                                   \
            ACC_FMA(0, W(0, c), LOAD(xp), LOAD(xp + 16), LOAD(xp + 32), LOAD(xp + 48));      \
        }                                                                                    \
        a00 = _mm512_add_ps(a00, a10);                                                       \
        a01 = _mm512_add_ps(a01, a11);                                                       \
        a02 = _mm512_add_ps(a02, a12);                                                       \
        a03 = _mm512_add_ps(a03, a13);                                                       \
        ACC_STORE(0);                                                                        \
    } while (0)

#define SCORE_KERNEL(NAME, BODY, T)                                                          \
    TARGET void NAME(const void *tiles, size_t n_fc, size_t n, const float *w, size_t n_rows, \
                     float *out, size_t out_stride)                                          \
    {                                                                                        \
        size_t n_ch = 2 * n_fc;                                                              \
        for (size_t j0 = 0; j0 < n; j0 += FASA_TILE) {                                       \
            const T *tile = (const T *)tiles + (j0 / FASA_TILE) * n_ch * FASA_TILE;          \
            size_t nt = n - j0 < FASA_TILE ? n - j0 : FASA_TILE;                             \
            size_t r0 = 0;                                                                   \
            for (; r0 + 4 <= n_rows; r0 += 4)                                                \
                BODY(4);                                                                     \
            switch (n_rows - r0) {                                                           \
            case 3: BODY(3); break;                                                          \
            case 2: BODY(2); break;                                                          \
            case 1: BODY(1); break;                                                          \
            default: break;                                                                  \
            }                                                                                \
        }                                                                                    \
    }

#define BODY_F32(RB)                                                                         \
    if (RB == 1)                                                                             \
        ONE_ROW_BODY(load_f32, float);                                                       \
    else                                                                                     \
        TILE_BODY(RB, load_f32, float)
#define BODY_F16(RB)                                                                         \
    if (RB == 1)                                                                             \
        ONE_ROW_BODY(load_f16, uint16_t);                                                    \
    else                                                                                     \
        TILE_BODY(RB, load_f16, uint16_t)
SCORE_KERNEL(fasa__score_labels_f32_avx512, BODY_F32, float)
SCORE_KERNEL(fasa__score_labels_f16_avx512, BODY_F16, uint16_t)

/* bf16 pair tiles [fc][64][2]: each 32-bit lane is one token's (d0, d1);
 * shifting / masking turns the halves into f32 without any conversion. */
#define PAIR_BODY(RB)                                                                        \
    do {                                                                                     \
        ACC_DECL(0);                                                                         \
        ACC_DECL(1);                                                                         \
        ACC_DECL(2);                                                                         \
        ACC_DECL(3);                                                                         \
        const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);                         \
        for (size_t u = 0; u < n_fc; u++) {                                                  \
            const uint32_t *xp = (const uint32_t *)(tile + u * 2 * FASA_TILE);               \
            __m512i y0 = _mm512_loadu_si512((const void *)xp),                               \
                    y1 = _mm512_loadu_si512((const void *)(xp + 16)),                        \
                    y2 = _mm512_loadu_si512((const void *)(xp + 32)),                        \
                    y3 = _mm512_loadu_si512((const void *)(xp + 48));                        \
            __m512 l0 = _mm512_castsi512_ps(_mm512_slli_epi32(y0, 16)),                      \
                   l1 = _mm512_castsi512_ps(_mm512_slli_epi32(y1, 16)),                      \
                   l2 = _mm512_castsi512_ps(_mm512_slli_epi32(y2, 16)),                      \
                   l3 = _mm512_castsi512_ps(_mm512_slli_epi32(y3, 16));                      \
            __m512 h0 = _mm512_castsi512_ps(_mm512_and_si512(y0, hi_mask)),                  \
                   h1 = _mm512_castsi512_ps(_mm512_and_si512(y1, hi_mask)),                  \
                   h2 = _mm512_castsi512_ps(_mm512_and_si512(y2, hi_mask)),                  \
                   h3 = _mm512_castsi512_ps(_mm512_and_si512(y3, hi_mask));                  \
            ACC_FMA(0, W(0, 2 * u), l0, l1, l2, l3);                                         \
            if (RB == 1) /* second FMA chain, summed below */                                \
                ACC_FMA(1, W(0, 2 * u + 1), h0, h1, h2, h3);                                 \
            else                                                                             \
                ACC_FMA(0, W(0, 2 * u + 1), h0, h1, h2, h3);                                 \
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
        if (RB == 1) {                                                                       \
            a00 = _mm512_add_ps(a00, a10);                                                   \
            a01 = _mm512_add_ps(a01, a11);                                                   \
            a02 = _mm512_add_ps(a02, a12);                                                   \
            a03 = _mm512_add_ps(a03, a13);                                                   \
        }                                                                                    \
        ACC_STORE(0);                                                                        \
        if (RB > 1)                                                                          \
            ACC_STORE(1);                                                                    \
        if (RB > 2)                                                                          \
            ACC_STORE(2);                                                                    \
        if (RB > 3)                                                                          \
            ACC_STORE(3);                                                                    \
    } while (0)

SCORE_KERNEL(fasa__score_labels_bf16_avx512, PAIR_BODY, uint16_t)

/* ---------------------------------------------------------- converts */

/* f16 with the reference's NaN (sign | 0x7e00) so results are bit-identical. */
TARGET void fasa__convert_f16_avx512(const float *src, size_t n, void *dst)
{
    size_t i = 0;
    const __m256i qnan = _mm256_set1_epi16(0x7e00), sign = _mm256_set1_epi16((short)0x8000);
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        __m256i fixed = _mm256_or_si256(_mm256_and_si256(h, sign), qnan);
        h = _mm256_mask_blend_epi16(nan, h, fixed);
        _mm256_storeu_si256((__m256i *)((uint16_t *)dst + i), h);
    }
    if (i < n)
        fasa__convert_f16_ref(src + i, n - i, (uint16_t *)dst + i);
}

/* bf16 by integer round-to-nearest-even (vcvtneps2bf16 would flush
 * denormals; this matches the reference bit for bit). */
TARGET void fasa__convert_bf16_avx512(const float *src, size_t n, void *dst)
{
    size_t i = 0;
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1),
                  quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        __m512i u = _mm512_castps_si512(x);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(
                                                                   _mm512_srli_epi32(u, 16), one)));
        r = _mm512_srli_epi32(r, 16);
        __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), quiet));
        _mm256_storeu_si256((__m256i *)((uint16_t *)dst + i), _mm512_cvtepi32_epi16(r));
    }
    if (i < n)
        fasa__convert_bf16_ref(src + i, n - i, (uint16_t *)dst + i);
}

/* ----------------------------------------------------------- top-k scan */

/* Compress in a register and store all 16 lanes (cand has 16 of slack):
 * the memory form of vpcompressd is microcoded and slow on AMD Zen 4. */
TARGET static size_t scan_avx512(const float *s, size_t n, float tau, uint32_t *cand,
                                 size_t cap)
{
    const __m512 t = _mm512_set1_ps(tau);
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    size_t c = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + j), t, _CMP_GE_OQ);
        if (m) {
            _mm512_storeu_si512((void *)(cand + c), _mm512_maskz_compress_epi32(m, idx));
            c += (size_t)__builtin_popcount(m);
            if (c > cap)
                return cap + 1;
        }
        idx = _mm512_add_epi32(idx, step);
    }
    return fasa__topk_scan_tail(s, j, n, tau, cand, c, cap);
}

FASA_TOPK_KERNELS(avx512, scan_avx512)

/* ------------------------------------------------- score_dims (strided K) */

/* 16 tokens at a time with gathers: lane l reads token j0 + l. 16-bit keys
 * are gathered as the 32-bit word that holds the element and its in-row
 * neighbour (the one before, or after for dim 0), so no read leaves the
 * row. Needs 15 * token_stride + head_dim to fit the 32-bit gather index;
 * larger strides use the reference. */
#define DIMS_PROLOGUE(REF)                                                                   \
    size_t maxd = 0;                                                                         \
    for (size_t c = 0; c < n_dims; c++)                                                      \
        maxd = dims[c] > maxd ? dims[c] : maxd;                                              \
    if (token_stride > (size_t)(INT32_MAX - 1 - maxd) / 16) {                                \
        REF(k, token_stride, n, dims, n_dims, w, out);                                       \
        return;                                                                              \
    }                                                                                        \
    const __m512i lane = _mm512_mullo_epi32(                                                 \
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),            \
        _mm512_set1_epi32((int)token_stride));                                               \
    size_t j0 = 0;

TARGET void fasa__score_dims_f32_avx512(const void *k, size_t token_stride, size_t n,
                                        const uint32_t *dims, size_t n_dims, const float *w,
                                        float *out)
{
    DIMS_PROLOGUE(fasa__score_dims_f32_ref)
    for (; j0 + 16 <= n; j0 += 16) {
        const float *base = (const float *)k + j0 * token_stride;
        __m512 acc = _mm512_setzero_ps();
        for (size_t c = 0; c < n_dims; c++) {
            __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32((int)dims[c]));
            acc = _mm512_fmadd_ps(_mm512_set1_ps(w[c]), _mm512_i32gather_ps(idx, base, 4), acc);
        }
        _mm512_storeu_ps(out + j0, acc);
    }
    if (j0 < n)
        fasa__score_dims_f32_ref((const float *)k + j0 * token_stride, token_stride, n - j0, dims,
                                 n_dims, w, out + j0);
}

/* The 16-bit element of each lane as the low half of a 32-bit lane. */
INLINE __m512i gather16(const uint16_t *base, __m512i lane, uint32_t dim)
{
    uint32_t at = dim > 0 ? dim - 1 : 0;
    __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32((int)at));
    __m512i v = _mm512_i32gather_epi32(idx, (const void *)base, 2);
    return dim > 0 ? _mm512_srli_epi32(v, 16) : _mm512_and_si512(v, _mm512_set1_epi32(0xffff));
}

TARGET void fasa__score_dims_f16_avx512(const void *k, size_t token_stride, size_t n,
                                        const uint32_t *dims, size_t n_dims, const float *w,
                                        float *out)
{
    DIMS_PROLOGUE(fasa__score_dims_f16_ref)
    for (; j0 + 16 <= n; j0 += 16) {
        const uint16_t *base = (const uint16_t *)k + j0 * token_stride;
        __m512 acc = _mm512_setzero_ps();
        for (size_t c = 0; c < n_dims; c++) {
            __m512 x = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather16(base, lane, dims[c])));
            acc = _mm512_fmadd_ps(_mm512_set1_ps(w[c]), x, acc);
        }
        _mm512_storeu_ps(out + j0, acc);
    }
    if (j0 < n)
        fasa__score_dims_f16_ref((const uint16_t *)k + j0 * token_stride, token_stride, n - j0,
                                 dims, n_dims, w, out + j0);
}

TARGET void fasa__score_dims_bf16_avx512(const void *k, size_t token_stride, size_t n,
                                         const uint32_t *dims, size_t n_dims, const float *w,
                                         float *out)
{
    DIMS_PROLOGUE(fasa__score_dims_bf16_ref)
    for (; j0 + 16 <= n; j0 += 16) {
        const uint16_t *base = (const uint16_t *)k + j0 * token_stride;
        __m512 acc = _mm512_setzero_ps();
        for (size_t c = 0; c < n_dims; c++) {
            __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(gather16(base, lane, dims[c]), 16));
            acc = _mm512_fmadd_ps(_mm512_set1_ps(w[c]), x, acc);
        }
        _mm512_storeu_ps(out + j0, acc);
    }
    if (j0 < n)
        fasa__score_dims_bf16_ref((const uint16_t *)k + j0 * token_stride, token_stride, n - j0,
                                  dims, n_dims, w, out + j0);
}

#endif
