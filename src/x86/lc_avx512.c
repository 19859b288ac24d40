/*
 * lc_avx512.c - label-cache staging kernels for AVX-512 F/BW/VL: the dim
 * gather of one key row (vpermt2w / vpermt2d over 64-word / 32-dword
 * windows of the row) and the 64-token transpose of a staged tile
 * (recursive 2x2 block swaps with vpermt2w / vpermt2d). Empty off x86.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* Lanes [start, start + width) of an array of d elements that exist. */
static inline uint64_t lanes(size_t d, size_t start, size_t width)
{
    if (d <= start)
        return 0;
    size_t k = d - start < width ? d - start : width;
    return k == 64 ? ~0ull : (1ull << k) - 1;
}

#define MAX_W16 4 /* 64-word windows kept in registers: head_dim <= 256 */
#define MAX_W32 8 /* 32-dword windows: head_dim <= 256 */

INLINE void gather16(const uint16_t *s, size_t d, const uint16_t *idx, size_t n, uint16_t *o)
{
    size_t nw = (d + 63) / 64;
    __m512i lo[MAX_W16], hi[MAX_W16];
    for (size_t w = 0; w < nw; w++) {
        lo[w] = _mm512_maskz_loadu_epi16((__mmask32)lanes(d, 64 * w, 32), s + 64 * w);
        hi[w] = _mm512_maskz_loadu_epi16((__mmask32)lanes(d, 64 * w + 32, 32), s + 64 * w + 32);
    }
    for (size_t i = 0; i < n; i += 32) {
        __mmask32 m = (__mmask32)lanes(n, i, 32);
        __m512i x = _mm512_maskz_loadu_epi16(m, idx + i);
        __m512i r = _mm512_permutex2var_epi16(lo[0], x, hi[0]);
        if (nw > 1) {
            /* Window of each lane: idx / 64; vpermt2w reads only idx % 64. */
            __m512i win = _mm512_srli_epi16(x, 6);
            for (size_t w = 1; w < nw; w++) {
                __mmask32 sel = _mm512_cmpeq_epi16_mask(win, _mm512_set1_epi16((short)w));
                r = _mm512_mask_mov_epi16(r, sel, _mm512_permutex2var_epi16(lo[w], x, hi[w]));
            }
        }
        _mm512_mask_storeu_epi16(o + i, m, r);
    }
}

INLINE void gather32(const uint32_t *s, size_t d, const uint16_t *idx, size_t n, uint32_t *o)
{
    size_t nw = (d + 31) / 32;
    __m512i lo[MAX_W32], hi[MAX_W32];
    for (size_t w = 0; w < nw; w++) {
        lo[w] = _mm512_maskz_loadu_epi32((__mmask16)lanes(d, 32 * w, 16), s + 32 * w);
        hi[w] = _mm512_maskz_loadu_epi32((__mmask16)lanes(d, 32 * w + 16, 16), s + 32 * w + 16);
    }
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = (__mmask16)lanes(n, i, 16);
        __m512i x = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, idx + i));
        __m512i r = _mm512_permutex2var_epi32(lo[0], x, hi[0]);
        if (nw > 1) {
            __m512i win = _mm512_srli_epi32(x, 5);
            for (size_t w = 1; w < nw; w++) {
                __mmask16 sel = _mm512_cmpeq_epi32_mask(win, _mm512_set1_epi32((int)w));
                r = _mm512_mask_mov_epi32(r, sel, _mm512_permutex2var_epi32(lo[w], x, hi[w]));
            }
        }
        _mm512_mask_storeu_epi32(o + i, m, r);
    }
}

/* head_dim <= 128 words: two windows held in named registers. */
INLINE void gather16_128(const uint16_t *s, size_t d, const uint16_t *idx, size_t n, uint16_t *o)
{
    __m512i a0, a1, b0, b1;
    if (d == 128) {
        a0 = _mm512_loadu_si512(s);
        a1 = _mm512_loadu_si512(s + 32);
        b0 = _mm512_loadu_si512(s + 64);
        b1 = _mm512_loadu_si512(s + 96);
    } else {
        a0 = _mm512_maskz_loadu_epi16((__mmask32)lanes(d, 0, 32), s);
        a1 = _mm512_maskz_loadu_epi16((__mmask32)lanes(d, 32, 32), s + 32);
        b0 = _mm512_maskz_loadu_epi16((__mmask32)lanes(d, 64, 32), s + 64);
        b1 = _mm512_maskz_loadu_epi16((__mmask32)lanes(d, 96, 32), s + 96);
    }
    const __m512i bit6 = _mm512_set1_epi16(64);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i x = _mm512_loadu_si512(idx + i);
        __m512i r = _mm512_permutex2var_epi16(a0, x, a1);
        r = _mm512_mask_mov_epi16(r, _mm512_test_epi16_mask(x, bit6),
                                  _mm512_permutex2var_epi16(b0, x, b1));
        _mm512_storeu_si512(o + i, r);
    }
    if (i < n) {
        __mmask32 m = (__mmask32)lanes(n, i, 32);
        __m512i x = _mm512_maskz_loadu_epi16(m, idx + i);
        __m512i r = _mm512_permutex2var_epi16(a0, x, a1);
        r = _mm512_mask_mov_epi16(r, _mm512_test_epi16_mask(x, bit6),
                                  _mm512_permutex2var_epi16(b0, x, b1));
        _mm512_mask_storeu_epi16(o + i, m, r);
    }
}

/* head_dim <= 128 dwords: four 32-dword windows in named registers; bits 5
 * and 6 of an index pick the window (blend of the four permutes). */
INLINE void gather32_128(const uint32_t *s, size_t d, const uint16_t *idx, size_t n, uint32_t *o)
{
#define W32(i) _mm512_maskz_loadu_epi32((__mmask16)lanes(d, 16 * (i), 16), s + 16 * (i))
    const __m512i w0 = W32(0), w1 = W32(1), w2 = W32(2), w3 = W32(3);
    const __m512i w4 = W32(4), w5 = W32(5), w6 = W32(6), w7 = W32(7);
#undef W32
    const __m512i bit5 = _mm512_set1_epi32(32), bit6 = _mm512_set1_epi32(64);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = (__mmask16)lanes(n, i, 16);
        __m512i x = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, idx + i));
        __mmask16 b5 = _mm512_test_epi32_mask(x, bit5), b6 = _mm512_test_epi32_mask(x, bit6);
        __m512i r01 = _mm512_mask_mov_epi32(_mm512_permutex2var_epi32(w0, x, w1), b5,
                                            _mm512_permutex2var_epi32(w2, x, w3));
        __m512i r23 = _mm512_mask_mov_epi32(_mm512_permutex2var_epi32(w4, x, w5), b5,
                                            _mm512_permutex2var_epi32(w6, x, w7));
        _mm512_mask_storeu_epi32(o + i, m, _mm512_mask_mov_epi32(r01, b6, r23));
    }
}

TARGET void fasa__lc_gather_avx512(const void *row, size_t row_stride, size_t d,
                                   const uint16_t *idx, size_t idx_stride, const uint32_t *n_fc,
                                   size_t n_heads, size_t es, void *dst, size_t dst_stride)
{
    for (size_t h = 0; h < n_heads; h++) {
        size_t n = 2 * (size_t)n_fc[h];
        const uint16_t *ix = idx + h * idx_stride;
        if (es == 2) {
            const uint16_t *s = (const uint16_t *)row + h * row_stride;
            uint16_t *o = (uint16_t *)dst + h * dst_stride;
            if (d <= 128)
                gather16_128(s, d, ix, n, o);
            else if (d <= 64 * MAX_W16)
                gather16(s, d, ix, n, o);
            else
                for (size_t i = 0; i < n; i++)
                    o[i] = s[ix[i]];
        } else {
            const uint32_t *s = (const uint32_t *)row + h * row_stride;
            uint32_t *o = (uint32_t *)dst + h * dst_stride;
            if (d <= 128)
                gather32_128(s, d, ix, n, o);
            else if (d <= 32 * MAX_W32)
                gather32(s, d, ix, n, o);
            else
                for (size_t i = 0; i < n; i++)
                    o[i] = s[ix[i]];
        }
    }
}

/* The transposes swap 2x2 blocks of size b = 16, 8, 4, 2, 1 elements
 * between rows r and r + b (each swap exchanges one bit of the row and the
 * column index, so together they transpose), with in-lane shuffles only
 * where possible: b >= 4 words / 2 dwords move 128-bit lanes or qwords. */

/* Rows x[0], x[s], x[2s], x[3s]: 4 x 4 transpose of their 128-bit lanes. */
INLINE void lanes4x4(__m512i *x, size_t s)
{
    __m512i t0 = _mm512_shuffle_i64x2(x[0], x[s], 0x88);
    __m512i t1 = _mm512_shuffle_i64x2(x[0], x[s], 0xDD);
    __m512i t2 = _mm512_shuffle_i64x2(x[2 * s], x[3 * s], 0x88);
    __m512i t3 = _mm512_shuffle_i64x2(x[2 * s], x[3 * s], 0xDD);
    x[0] = _mm512_shuffle_i64x2(t0, t2, 0x88);
    x[2 * s] = _mm512_shuffle_i64x2(t0, t2, 0xDD);
    x[s] = _mm512_shuffle_i64x2(t1, t3, 0x88);
    x[3 * s] = _mm512_shuffle_i64x2(t1, t3, 0xDD);
}

/* Block swap of qwords (b = 4 words / 2 dwords) between x[0] and x[s]. */
INLINE void swap_q(__m512i *x, size_t s)
{
    __m512i a = x[0], b = x[s];
    x[0] = _mm512_unpacklo_epi64(a, b);
    x[s] = _mm512_unpackhi_epi64(a, b);
}

/* Block swap of dwords (b = 2 words / 1 dword). */
INLINE void swap_d(__m512i *x, size_t s)
{
    __m512i a = x[0], b = x[s];
    x[0] = _mm512_mask_shuffle_epi32(a, 0xAAAA, b, (_MM_PERM_ENUM)0xA0);
    x[s] = _mm512_mask_shuffle_epi32(b, 0x5555, a, (_MM_PERM_ENUM)0xF5);
}

/* Block swap of words (b = 1 word): byte shuffles under a byte mask. */
INLINE void swap_w(__m512i *x, __m512i ca, __m512i cb)
{
    __m512i a = x[0], b = x[1];
    x[0] = _mm512_mask_shuffle_epi8(a, 0xCCCCCCCCCCCCCCCCull, b, ca);
    x[1] = _mm512_mask_shuffle_epi8(b, 0x3333333333333333ull, a, cb);
}

/* A finished tile is not read again before the next TIP pass, which at
 * long contexts streams it from memory anyway: non-temporal stores skip
 * the read-for-ownership (aligned tiles only, i.e. not after a memcpy to
 * an address that is not 64-byte aligned). The caller fences once per
 * batch of tiles (kernels.h), not per tile: an sfence per tile measured
 * ~15 ns per appended token. */
INLINE void store(void *p, __m512i x, int nt)
{
    if (nt)
        _mm512_stream_si512(p, x);
    else
        _mm512_storeu_si512(p, x);
}

/* 32 x 32 words per block: tokens j0.. of the stage, channels c0.. . Two
 * passes through an L1 buffer keep at most 8 rows live (no spills): the
 * lane swaps mix rows r + 8k, the in-lane swaps rows of one group of 8. */
INLINE void transpose16(const uint16_t *st, size_t ld, size_t rows, size_t m, uint16_t *tile,
                        int nt)
{
    const __m512i ca = _mm512_broadcast_i32x4(
        _mm_set_epi32(0x0D0C0D0C, 0x09080908, 0x05040504, 0x01000100));
    const __m512i cb = _mm512_broadcast_i32x4(
        _mm_set_epi32(0x0F0E0F0E, 0x0B0A0B0A, 0x07060706, 0x03020302));
    __m512i buf[32];
    for (size_t c0 = 0; c0 < m; c0 += 32)
        for (size_t j0 = 0; j0 < FASA_TILE; j0 += 32) {
            size_t n_out = m - c0 < 32 ? m - c0 : 32;
            for (size_t r = 0; r < 8; r++) {
                __m512i x[4];
#pragma GCC unroll 4
                for (size_t q = 0; q < 4; q++) {
                    size_t j = j0 + r + 8 * q;
                    x[q] = _mm512_maskz_loadu_epi16(j < rows ? ~0u : 0u, st + j * ld + c0);
                }
                lanes4x4(x, 1);
#pragma GCC unroll 4
                for (size_t q = 0; q < 4; q++)
                    buf[r + 8 * q] = x[q];
            }
            for (size_t g = 0; g < n_out; g += 8) {
                __m512i x[8];
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    x[r] = buf[g + r];
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    if (!(r & 4))
                        swap_q(x + r, 4);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    if (!(r & 2))
                        swap_d(x + r, 2);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r += 2)
                    swap_w(x + r, ca, cb);
#pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++)
                    if (g + r < n_out)
                        store(tile + (c0 + g + r) * FASA_TILE + j0, x[r], nt);
            }
        }
}

/* 16 x 16 dwords per block. */
INLINE void transpose32(const uint32_t *st, size_t ld, size_t rows, size_t m, uint32_t *tile,
                        int nt)
{
    for (size_t c0 = 0; c0 < m; c0 += 16)
        for (size_t j0 = 0; j0 < FASA_TILE; j0 += 16) {
            __m512i x[16];
#pragma GCC unroll 16
            for (size_t r = 0; r < 16; r++)
                x[r] = _mm512_maskz_loadu_epi32(j0 + r < rows ? 0xffff : 0,
                                                st + (j0 + r) * ld + c0);
#pragma GCC unroll 4
            for (size_t r = 0; r < 4; r++)
                lanes4x4(x + r, 4);
#pragma GCC unroll 16
            for (size_t r = 0; r < 16; r++)
                if (!(r & 2))
                    swap_q(x + r, 2);
#pragma GCC unroll 16
            for (size_t r = 0; r < 16; r += 2)
                swap_d(x + r, 1);
            size_t n_out = m - c0 < 16 ? m - c0 : 16;
#pragma GCC unroll 16
            for (size_t r = 0; r < 16; r++)
                if (r < n_out)
                    store(tile + (c0 + r) * FASA_TILE + j0, x[r], nt);
        }
}

TARGET void fasa__lc_transpose_avx512(const void *stage, size_t ld, size_t rows, size_t m,
                                      size_t es, void *tile)
{
#if defined(__x86_64__)
    int nt = ((uintptr_t)tile & 63) == 0;
#else
    int nt = 0; /* callers fence with an SSE sfence only on x86-64 */
#endif
    if (es == 2)
        transpose16(stage, ld, rows, m, tile, nt);
    else
        transpose32(stage, ld, rows, m, tile, nt);
}

#endif
