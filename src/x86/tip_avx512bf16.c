/*
 * tip_avx512bf16.c - label scoring of bf16 pair tiles with vdpbf16ps
 * (AVX512_BF16): one instruction multiplies a token's RoPE pair (d0, d1)
 * by the row's weight pair and adds both products to the fp32 accumulator.
 * The f32 weights are split into bf16 hi + lo halves (two dot products), so
 * the weights keep about 16 significant bits instead of 8. vdpbf16ps flushes
 * denormal inputs to zero. Registered only at FASA_CPU_AVX512_BF16.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "store_avx512.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define MAX_PAIRS 1024 /* rows x FCs of weights converted per pass */

#define ACC_DECL(r) __m512 a##r##0 = _mm512_setzero_ps(), a##r##1 = a##r##0, a##r##2 = a##r##0, \
                           a##r##3 = a##r##0
#define DP(r, wv)                                                                            \
    do {                                                                                     \
        a##r##0 = _mm512_dpbf16_ps(a##r##0, y0, wv);                                         \
        a##r##1 = _mm512_dpbf16_ps(a##r##1, y1, wv);                                         \
        a##r##2 = _mm512_dpbf16_ps(a##r##2, y2, wv);                                         \
        a##r##3 = _mm512_dpbf16_ps(a##r##3, y3, wv);                                         \
    } while (0)
#define WP(tab, r) ((__m512bh)_mm512_set1_epi32((int)tab[(rr + (r)) * n_fc + u]))
#define ROW(r)                                                                               \
    do {                                                                                     \
        DP(r, WP(whi, r));                                                                   \
        DP(r, WP(wlo, r));                                                                   \
    } while (0)
#define STORE(r)                                                                             \
    fasa__store_row_avx512(out + (r0 + rr + (r)) * out_stride + j0, a##r##0, a##r##1, a##r##2, \
                           a##r##3, nt)

#define BODY(RB)                                                                             \
    do {                                                                                     \
        ACC_DECL(0);                                                                         \
        ACC_DECL(1);                                                                         \
        ACC_DECL(2);                                                                         \
        ACC_DECL(3);                                                                         \
        for (size_t u = 0; u < n_fc; u++) {                                                  \
            const uint32_t *xp = (const uint32_t *)(tile + u * 2 * FASA_TILE);               \
            __m512bh y0 = (__m512bh)_mm512_loadu_si512((const void *)xp),                    \
                     y1 = (__m512bh)_mm512_loadu_si512((const void *)(xp + 16)),             \
                     y2 = (__m512bh)_mm512_loadu_si512((const void *)(xp + 32)),             \
                     y3 = (__m512bh)_mm512_loadu_si512((const void *)(xp + 48));             \
            ROW(0);                                                                          \
            if (RB > 1)                                                                      \
                ROW(1);                                                                      \
            if (RB > 2)                                                                      \
                ROW(2);                                                                      \
            if (RB > 3)                                                                      \
                ROW(3);                                                                      \
        }                                                                                    \
        STORE(0);                                                                            \
        if (RB > 1)                                                                          \
            STORE(1);                                                                        \
        if (RB > 2)                                                                          \
            STORE(2);                                                                        \
        if (RB > 3)                                                                          \
            STORE(3);                                                                        \
    } while (0)

/* Weight pair (w[2u], w[2u+1]) as two bf16 in one 32-bit lane, d0 low. */
static uint32_t pair_bits(float a, float b)
{
    return (uint32_t)fasa__f32_to_bf16(a) | (uint32_t)fasa__f32_to_bf16(b) << 16;
}

TARGET void fasa__score_labels_bf16_avx512bf16(const void *tiles, size_t n_fc, size_t n,
                                               const float *w, size_t n_rows, float *out,
                                               size_t out_stride)
{
    if (n_fc == 0 || n_fc > MAX_PAIRS) {
        fasa__score_labels_bf16_avx512(tiles, n_fc, n, w, n_rows, out, out_stride);
        return;
    }
    uint32_t whi[MAX_PAIRS], wlo[MAX_PAIRS];
    size_t pass_rows = MAX_PAIRS / n_fc;
    for (size_t r0 = 0; r0 < n_rows; r0 += pass_rows) {
        size_t rows = n_rows - r0 < pass_rows ? n_rows - r0 : pass_rows;
        for (size_t r = 0; r < rows; r++)
            for (size_t u = 0; u < n_fc; u++) {
                float a = w[(r0 + r) * 2 * n_fc + 2 * u], b = w[(r0 + r) * 2 * n_fc + 2 * u + 1];
                uint32_t hi = pair_bits(a, b);
                whi[r * n_fc + u] = hi;
                wlo[r * n_fc + u] = pair_bits(a - fasa__bf16_to_f32((uint16_t)hi),
                                              b - fasa__bf16_to_f32((uint16_t)(hi >> 16)));
            }
        for (size_t j0 = 0; j0 < n; j0 += FASA_TILE) {
            const uint16_t *tile =
                (const uint16_t *)tiles + (j0 / FASA_TILE) * 2 * n_fc * FASA_TILE;
            size_t nt = n - j0 < FASA_TILE ? n - j0 : FASA_TILE;
            size_t rr = 0;
            for (; rr + 4 <= rows; rr += 4)
                BODY(4);
            switch (rows - rr) {
            case 3: BODY(3); break;
            case 2: BODY(2); break;
            case 1: BODY(1); break;
            default: break;
            }
        }
    }
}

#endif
