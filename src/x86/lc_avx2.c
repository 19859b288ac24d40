/*
 * lc_avx2.c - label-cache tile transpose for AVX2 (16 x 16 words / 8 x 8
 * dwords per block, 2x2 block swaps as in lc_avx512.c). The gather is the
 * reference loop at this level: SIMD gathers measured no faster (see
 * src/ref/lc_pack.c). Empty off x86.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

INLINE void swap_lane(__m256i *x, size_t s)
{
    __m256i a = x[0], b = x[s];
    x[0] = _mm256_permute2x128_si256(a, b, 0x20);
    x[s] = _mm256_permute2x128_si256(a, b, 0x31);
}
INLINE void swap_q(__m256i *x, size_t s)
{
    __m256i a = x[0], b = x[s];
    x[0] = _mm256_unpacklo_epi64(a, b);
    x[s] = _mm256_unpackhi_epi64(a, b);
}
INLINE void swap_d(__m256i *x, size_t s)
{
    __m256i a = x[0], b = x[s];
    x[0] = _mm256_blend_epi32(a, _mm256_shuffle_epi32(b, 0xA0), 0xAA);
    x[s] = _mm256_blend_epi32(_mm256_shuffle_epi32(a, 0xF5), b, 0xAA);
}
INLINE void swap_w(__m256i *x)
{
    __m256i a = x[0], b = x[1];
    x[0] = _mm256_blend_epi16(a, _mm256_slli_epi32(b, 16), 0xAA);
    x[1] = _mm256_blend_epi16(_mm256_srli_epi32(a, 16), b, 0xAA);
}

INLINE __m256i load_row(const void *p, int live)
{
    return live ? _mm256_loadu_si256((const __m256i *)p) : _mm256_setzero_si256();
}

TARGET void fasa__lc_transpose_avx2(const void *stage, size_t ld, size_t rows, size_t m,
                                    size_t es, void *tile)
{
    /* Elements per block side: 16 words or 8 dwords (one ymm). */
    size_t w = 32 / es;
    for (size_t c0 = 0; c0 < m; c0 += w)
        for (size_t j0 = 0; j0 < FASA_TILE; j0 += w) {
            __m256i x[16];
            size_t n_out = m - c0 < w ? m - c0 : w;
            if (es == 2) {
                const uint16_t *st = stage;
                uint16_t *o = tile;
#pragma GCC unroll 16
                for (size_t r = 0; r < 16; r++)
                    x[r] = load_row(st + (j0 + r) * ld + c0, j0 + r < rows);
#pragma GCC unroll 16
                for (size_t r = 0; r < 16; r++)
                    if (!(r & 8))
                        swap_lane(x + r, 8);
#pragma GCC unroll 16
                for (size_t r = 0; r < 16; r++)
                    if (!(r & 4))
                        swap_q(x + r, 4);
#pragma GCC unroll 16
                for (size_t r = 0; r < 16; r++)
                    if (!(r & 2))
                        swap_d(x + r, 2);
#pragma GCC unroll 16
                for (size_t r = 0; r < 16; r += 2)
                    swap_w(x + r);
#pragma GCC unroll 16
                for (size_t r = 0; r < 16; r++)
                    if (r < n_out)
                        _mm256_storeu_si256((__m256i *)(o + (c0 + r) * FASA_TILE + j0), x[r]);
            } else {
                const uint32_t *st = stage;
                uint32_t *o = tile;
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    x[r] = load_row(st + (j0 + r) * ld + c0, j0 + r < rows);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    if (!(r & 4))
                        swap_lane(x + r, 4);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    if (!(r & 2))
                        swap_q(x + r, 2);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r += 2)
                    swap_d(x + r, 1);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    if (r < n_out)
                        _mm256_storeu_si256((__m256i *)(o + (c0 + r) * FASA_TILE + j0), x[r]);
            }
        }
}

#endif
