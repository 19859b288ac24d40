/*
 * tip_avx2.c - TIP kernels for AVX2 + FMA + F16C: label-tile scoring
 * (f32/f16/bf16), label converts and the top-k scan (compare, then a
 * mask -> lane-permutation table for the compress). Builds with baseline
 * flags (per-function target attributes); empty on non-x86 targets.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include "topk_filter.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

INLINE __m256 load_f32(const float *p) { return _mm256_loadu_ps(p); }
INLINE __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* 32 scores of one row at o (a0..a3), only the first nt of them. */
INLINE void store_half(float *o, __m256 a0, __m256 a1, __m256 a2, __m256 a3, size_t nt)
{
    if (nt >= 32) {
        _mm256_storeu_ps(o, a0);
        _mm256_storeu_ps(o + 8, a1);
        _mm256_storeu_ps(o + 16, a2);
        _mm256_storeu_ps(o + 24, a3);
        return;
    }
    float tmp[32];
    _mm256_storeu_ps(tmp, a0);
    _mm256_storeu_ps(tmp + 8, a1);
    _mm256_storeu_ps(tmp + 16, a2);
    _mm256_storeu_ps(tmp + 24, a3);
    memcpy(o, tmp, nt * sizeof *o);
}

/* Two rows x 32 tokens of accumulators: 8 of the 16 ymm registers. */
#define ACC_DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = a##r##0, a##r##2 = a##r##0, \
                           a##r##3 = a##r##0
#define ACC_FMA(r, wv, x0, x1, x2, x3)                                                       \
    do {                                                                                     \
        a##r##0 = _mm256_fmadd_ps(wv, x0, a##r##0);                                          \
        a##r##1 = _mm256_fmadd_ps(wv, x1, a##r##1);                                          \
        a##r##2 = _mm256_fmadd_ps(wv, x2, a##r##2);                                          \
        a##r##3 = _mm256_fmadd_ps(wv, x3, a##r##3);                                          \
    } while (0)
#define ACC_STORE(r) store_half(out + (r0 + r) * out_stride + j0 + h, a##r##0, a##r##1, a##r##2, \
                                a##r##3, nt - h)
#define W(r, c) _mm256_broadcast_ss(w + (r0 + (r)) * n_ch + (c))

#define TILE_BODY(RB, LOAD, T)                                                               \
    for (size_t h = 0; h < nt; h += 32) {                                                    \
        ACC_DECL(0);                                                                         \
        ACC_DECL(1);                                                                         \
        for (size_t c = 0; c < n_ch; c++) {                                                  \
            const T *xp = (const T *)tile + c * FASA_TILE + h;                               \
            __m256 x0 = LOAD(xp), x1 = LOAD(xp + 8), x2 = LOAD(xp + 16), x3 = LOAD(xp + 24);  \
            ACC_FMA(0, W(0, c), x0, x1, x2, x3);                                             \
            if (RB > 1)                                                                      \
                ACC_FMA(1, W(1, c), x0, x1, x2, x3);                                         \
        }                                                                                    \
        ACC_STORE(0);                                                                        \
        if (RB > 1)                                                                          \
            ACC_STORE(1);                                                                    \
    }

#define PAIR_BODY(RB)                                                                        \
    for (size_t h = 0; h < nt; h += 32) {                                                    \
        ACC_DECL(0);                                                                         \
        ACC_DECL(1);                                                                         \
        const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);                         \
        for (size_t u = 0; u < n_fc; u++) {                                                  \
            const uint32_t *xp = (const uint32_t *)(tile + u * 2 * FASA_TILE) + h;           \
            __m256i y0 = _mm256_loadu_si256((const __m256i *)xp),                            \
                    y1 = _mm256_loadu_si256((const __m256i *)(xp + 8)),                      \
                    y2 = _mm256_loadu_si256((const __m256i *)(xp + 16)),                     \
                    y3 = _mm256_loadu_si256((const __m256i *)(xp + 24));                     \
            __m256 l0 = _mm256_castsi256_ps(_mm256_slli_epi32(y0, 16)),                      \
                   l1 = _mm256_castsi256_ps(_mm256_slli_epi32(y1, 16)),                      \
                   l2 = _mm256_castsi256_ps(_mm256_slli_epi32(y2, 16)),                      \
                   l3 = _mm256_castsi256_ps(_mm256_slli_epi32(y3, 16));                      \
            ACC_FMA(0, W(0, 2 * u), l0, l1, l2, l3);                                         \
            if (RB > 1)                                                                      \
                ACC_FMA(1, W(1, 2 * u), l0, l1, l2, l3);                                     \
            l0 = _mm256_castsi256_ps(_mm256_and_si256(y0, hi_mask));                         \
            l1 = _mm256_castsi256_ps(_mm256_and_si256(y1, hi_mask));                         \
            l2 = _mm256_castsi256_ps(_mm256_and_si256(y2, hi_mask));                         \
            l3 = _mm256_castsi256_ps(_mm256_and_si256(y3, hi_mask));                         \
            ACC_FMA(0, W(0, 2 * u + 1), l0, l1, l2, l3);                                     \
            if (RB > 1)                                                                      \
                ACC_FMA(1, W(1, 2 * u + 1), l0, l1, l2, l3);                                 \
        }                                                                                    \
        ACC_STORE(0);                                                                        \
        if (RB > 1)                                                                          \
            ACC_STORE(1);                                                                    \
    }

#define SCORE_KERNEL(NAME, BODY, T)                                                          \
    TARGET void NAME(const void *tiles, size_t n_fc, size_t n, const float *w, size_t n_rows, \
                     float *out, size_t out_stride)                                          \
    {                                                                                        \
        size_t n_ch = 2 * n_fc;                                                              \
        for (size_t j0 = 0; j0 < n; j0 += FASA_TILE) {                                       \
            const T *tile = (const T *)tiles + (j0 / FASA_TILE) * n_ch * FASA_TILE;          \
            size_t nt = n - j0 < FASA_TILE ? n - j0 : FASA_TILE;                             \
            size_t r0 = 0;                                                                   \
            for (; r0 + 2 <= n_rows; r0 += 2) {                                              \
                BODY(2)                                                                      \
            }                                                                                \
            if (r0 < n_rows) {                                                               \
                BODY(1)                                                                      \
            }                                                                                \
        }                                                                                    \
    }

#define BODY_F32(RB) TILE_BODY(RB, load_f32, float)
#define BODY_F16(RB) TILE_BODY(RB, load_f16, uint16_t)
SCORE_KERNEL(fasa__score_labels_f32_avx2, BODY_F32, float)
SCORE_KERNEL(fasa__score_labels_f16_avx2, BODY_F16, uint16_t)
SCORE_KERNEL(fasa__score_labels_bf16_avx2, PAIR_BODY, uint16_t)

/* ---------------------------------------------------------- converts */

/* f16 with the reference's NaN (sign | 0x7e00): bit-identical results. */
TARGET void fasa__convert_f16_avx2(const float *src, size_t n, void *dst)
{
    size_t i = 0;
    const __m128i qnan = _mm_set1_epi16(0x7e00), sign = _mm_set1_epi16((short)0x8000);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256i nan32 = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        __m128i nan16 = _mm_packs_epi32(_mm256_castsi256_si128(nan32),
                                        _mm256_extracti128_si256(nan32, 1));
        __m128i fixed = _mm_or_si128(_mm_and_si128(h, sign), qnan);
        _mm_storeu_si128((__m128i *)((uint16_t *)dst + i), _mm_blendv_epi8(h, fixed, nan16));
    }
    if (i < n)
        fasa__convert_f16_ref(src + i, n - i, (uint16_t *)dst + i);
}

/* bf16 by integer round-to-nearest-even, as the reference. */
TARGET void fasa__convert_bf16_avx2(const float *src, size_t n, void *dst)
{
    size_t i = 0;
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1),
                  quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        __m256i u = _mm256_castps_si256(x);
        __m256i r = _mm256_add_epi32(
            u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
        r = _mm256_srli_epi32(r, 16);
        __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet), nan);
        __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)((uint16_t *)dst + i), p);
    }
    if (i < n)
        fasa__convert_bf16_ref(src + i, n - i, (uint16_t *)dst + i);
}

/* ----------------------------------------------------------- top-k scan */

/* For each 8-bit compare mask, the indices of its set lanes packed first,
 * 4 bits each (lane p of the permutation in bits 4p..4p+3). */
static const uint32_t compress_lut[256] = {
    0x00000000u, 0x00000000u, 0x00000001u, 0x00000010u, 0x00000002u, 0x00000020u,
    0x00000021u, 0x00000210u, 0x00000003u, 0x00000030u, 0x00000031u, 0x00000310u,
    0x00000032u, 0x00000320u, 0x00000321u, 0x00003210u, 0x00000004u, 0x00000040u,
    0x00000041u, 0x00000410u, 0x00000042u, 0x00000420u, 0x00000421u, 0x00004210u,
    0x00000043u, 0x00000430u, 0x00000431u, 0x00004310u, 0x00000432u, 0x00004320u,
    0x00004321u, 0x00043210u, 0x00000005u, 0x00000050u, 0x00000051u, 0x00000510u,
    0x00000052u, 0x00000520u, 0x00000521u, 0x00005210u, 0x00000053u, 0x00000530u,
    0x00000531u, 0x00005310u, 0x00000532u, 0x00005320u, 0x00005321u, 0x00053210u,
    0x00000054u, 0x00000540u, 0x00000541u, 0x00005410u, 0x00000542u, 0x00005420u,
    0x00005421u, 0x00054210u, 0x00000543u, 0x00005430u, 0x00005431u, 0x00054310u,
    0x00005432u, 0x00054320u, 0x00054321u, 0x00543210u, 0x00000006u, 0x00000060u,
    0x00000061u, 0x00000610u, 0x00000062u, 0x00000620u, 0x00000621u, 0x00006210u,
    0x00000063u, 0x00000630u, 0x00000631u, 0x00006310u, 0x00000632u, 0x00006320u,
    0x00006321u, 0x00063210u, 0x00000064u, 0x00000640u, 0x00000641u, 0x00006410u,
    0x00000642u, 0x00006420u, 0x00006421u, 0x00064210u, 0x00000643u, 0x00006430u,
    0x00006431u, 0x00064310u, 0x00006432u, 0x00064320u, 0x00064321u, 0x00643210u,
    0x00000065u, 0x00000650u, 0x00000651u, 0x00006510u, 0x00000652u, 0x00006520u,
    0x00006521u, 0x00065210u, 0x00000653u, 0x00006530u, 0x00006531u, 0x00065310u,
    0x00006532u, 0x00065320u, 0x00065321u, 0x00653210u, 0x00000654u, 0x00006540u,
    0x00006541u, 0x00065410u, 0x00006542u, 0x00065420u, 0x00065421u, 0x00654210u,
    0x00006543u, 0x00065430u, 0x00065431u, 0x00654310u, 0x00065432u, 0x00654320u,
    0x00654321u, 0x06543210u, 0x00000007u, 0x00000070u, 0x00000071u, 0x00000710u,
    0x00000072u, 0x00000720u, 0x00000721u, 0x00007210u, 0x00000073u, 0x00000730u,
    0x00000731u, 0x00007310u, 0x00000732u, 0x00007320u, 0x00007321u, 0x00073210u,
    0x00000074u, 0x00000740u, 0x00000741u, 0x00007410u, 0x00000742u, 0x00007420u,
    0x00007421u, 0x00074210u, 0x00000743u, 0x00007430u, 0x00007431u, 0x00074310u,
    0x00007432u, 0x00074320u, 0x00074321u, 0x00743210u, 0x00000075u, 0x00000750u,
    0x00000751u, 0x00007510u, 0x00000752u, 0x00007520u, 0x00007521u, 0x00075210u,
    0x00000753u, 0x00007530u, 0x00007531u, 0x00075310u, 0x00007532u, 0x00075320u,
    0x00075321u, 0x00753210u, 0x00000754u, 0x00007540u, 0x00007541u, 0x00075410u,
    0x00007542u, 0x00075420u, 0x00075421u, 0x00754210u, 0x00007543u, 0x00075430u,
    0x00075431u, 0x00754310u, 0x00075432u, 0x00754320u, 0x00754321u, 0x07543210u,
    0x00000076u, 0x00000760u, 0x00000761u, 0x00007610u, 0x00000762u, 0x00007620u,
    0x00007621u, 0x00076210u, 0x00000763u, 0x00007630u, 0x00007631u, 0x00076310u,
    0x00007632u, 0x00076320u, 0x00076321u, 0x00763210u, 0x00000764u, 0x00007640u,
    0x00007641u, 0x00076410u, 0x00007642u, 0x00076420u, 0x00076421u, 0x00764210u,
    0x00007643u, 0x00076430u, 0x00076431u, 0x00764310u, 0x00076432u, 0x00764320u,
    0x00764321u, 0x07643210u, 0x00000765u, 0x00007650u, 0x00007651u, 0x00076510u,
    0x00007652u, 0x00076520u, 0x00076521u, 0x00765210u, 0x00007653u, 0x00076530u,
    0x00076531u, 0x00765310u, 0x00076532u, 0x00765320u, 0x00765321u, 0x07653210u,
    0x00007654u, 0x00076540u, 0x00076541u, 0x00765410u, 0x00076542u, 0x00765420u,
    0x00765421u, 0x07654210u, 0x00076543u, 0x00765430u, 0x00765431u, 0x07654310u,
    0x00765432u, 0x07654320u, 0x07654321u, 0x76543210u,
};

TARGET static size_t scan_avx2(const float *s, size_t n, float tau, uint32_t *cand, size_t cap)
{
    const __m256 t = _mm256_set1_ps(tau);
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28),
                  nib = _mm256_set1_epi32(0xf), step = _mm256_set1_epi32(8);
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    size_t c = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + j), t, _CMP_GE_OQ));
        if (m) {
            __m256i perm = _mm256_and_si256(
                _mm256_srlv_epi32(_mm256_set1_epi32((int)compress_lut[m]), shifts), nib);
            _mm256_storeu_si256((__m256i *)(cand + c), _mm256_permutevar8x32_epi32(idx, perm));
            c += (size_t)__builtin_popcount((unsigned)m);
            if (c > cap)
                return cap + 1;
        }
        idx = _mm256_add_epi32(idx, step);
    }
    return fasa__topk_scan_tail(s, j, n, tau, cand, c, cap);
}

FASA_TOPK_KERNELS(avx2, scan_avx2)

/* ------------------------------------------------- score_dims (strided K) */

/* 8 tokens at a time with gathers; 16-bit keys are gathered as the 32-bit
 * word holding the element and its in-row neighbour (see tip_avx512.c). */
#define DIMS_PROLOGUE(REF)                                                                   \
    size_t maxd = 0;                                                                         \
    for (size_t c = 0; c < n_dims; c++)                                                      \
        maxd = dims[c] > maxd ? dims[c] : maxd;                                              \
    if (token_stride > (size_t)(INT32_MAX - 1 - maxd) / 8) {                                 \
        REF(k, token_stride, n, dims, n_dims, w, out);                                       \
        return;                                                                              \
    }                                                                                        \
    const __m256i lane = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),       \
                                            _mm256_set1_epi32((int)token_stride));           \
    size_t j0 = 0;

TARGET void fasa__score_dims_f32_avx2(const void *k, size_t token_stride, size_t n,
                                      const uint32_t *dims, size_t n_dims, const float *w,
                                      float *out)
{
    DIMS_PROLOGUE(fasa__score_dims_f32_ref)
    for (; j0 + 8 <= n; j0 += 8) {
        const float *base = (const float *)k + j0 * token_stride;
        __m256 acc = _mm256_setzero_ps();
        for (size_t c = 0; c < n_dims; c++) {
            __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32((int)dims[c]));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[c]), _mm256_i32gather_ps(base, idx, 4), acc);
        }
        _mm256_storeu_ps(out + j0, acc);
    }
    if (j0 < n)
        fasa__score_dims_f32_ref((const float *)k + j0 * token_stride, token_stride, n - j0, dims,
                                 n_dims, w, out + j0);
}

/* The 16-bit element of each lane as the low half of a 32-bit lane. */
INLINE __m256i gather16(const uint16_t *base, __m256i lane, uint32_t dim)
{
    uint32_t at = dim > 0 ? dim - 1 : 0;
    __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32((int)at));
    __m256i v = _mm256_i32gather_epi32((const int *)(const void *)base, idx, 2);
    return dim > 0 ? _mm256_srli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
}

TARGET void fasa__score_dims_f16_avx2(const void *k, size_t token_stride, size_t n,
                                      const uint32_t *dims, size_t n_dims, const float *w,
                                      float *out)
{
    DIMS_PROLOGUE(fasa__score_dims_f16_ref)
    for (; j0 + 8 <= n; j0 += 8) {
        const uint16_t *base = (const uint16_t *)k + j0 * token_stride;
        __m256 acc = _mm256_setzero_ps();
        for (size_t c = 0; c < n_dims; c++) {
            __m256i v = gather16(base, lane, dims[c]);
            __m128i h = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[c]), _mm256_cvtph_ps(h), acc);
        }
        _mm256_storeu_ps(out + j0, acc);
    }
    if (j0 < n)
        fasa__score_dims_f16_ref((const uint16_t *)k + j0 * token_stride, token_stride, n - j0,
                                 dims, n_dims, w, out + j0);
}

TARGET void fasa__score_dims_bf16_avx2(const void *k, size_t token_stride, size_t n,
                                       const uint32_t *dims, size_t n_dims, const float *w,
                                       float *out)
{
    DIMS_PROLOGUE(fasa__score_dims_bf16_ref)
    for (; j0 + 8 <= n; j0 += 8) {
        const uint16_t *base = (const uint16_t *)k + j0 * token_stride;
        __m256 acc = _mm256_setzero_ps();
        for (size_t c = 0; c < n_dims; c++) {
            __m256 x = _mm256_castsi256_ps(_mm256_slli_epi32(gather16(base, lane, dims[c]), 16));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[c]), x, acc);
        }
        _mm256_storeu_ps(out + j0, acc);
    }
    if (j0 < n)
        fasa__score_dims_bf16_ref((const uint16_t *)k + j0 * token_stride, token_stride, n - j0,
                                  dims, n_dims, w, out + j0);
}

#endif
