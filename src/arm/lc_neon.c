/*
 * lc_neon.c - label-cache tile transpose for AArch64 Advanced SIMD (8 x 8
 * words / 4 x 4 dwords per block, TRN1 / TRN2 at 16, 32 and 64 bits).
 * Advanced SIMD is AArch64 baseline, so no target attribute. The gather is
 * the reference loop at this level: a TBL/TBX version over 64-byte windows
 * was correct but could not be timed here (qemu only), and on x86 SIMD
 * gathers of this size were no faster than the loop. Empty elsewhere.
 */
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* ---------------------------------------------------------- transpose */

/* Blocks of 8 x 8 words / 4 x 4 dwords (16-byte rows): stage rows j0.. at
 * columns c0.. become tile rows c0.. at tokens j0.. . Rows at or past
 * `rows` read a zero row instead; blocks wholly past it store zeros. Loads
 * may cover columns up to the next multiple of 8 / 4 past m, still inside
 * ld (a multiple of 32 / 16 elements); stores only tile rows c < m. */

static void transpose16(const uint16_t *st, size_t ld, size_t rows, size_t m, uint16_t *tile)
{
    static const uint16_t zero[8];
    for (size_t c0 = 0; c0 < m; c0 += 8) {
        size_t n_out = m - c0 < 8 ? m - c0 : 8;
        for (size_t j0 = 0; j0 < FASA_TILE; j0 += 8) {
            uint16x8_t x[8];
            if (j0 >= rows) {
                for (size_t r = 0; r < n_out; r++)
                    vst1q_u16(tile + (c0 + r) * FASA_TILE + j0, vdupq_n_u16(0));
                continue;
            }
#pragma GCC unroll 8
            for (size_t r = 0; r < 8; r++)
                x[r] = vld1q_u16(j0 + r < rows ? st + (j0 + r) * ld + c0 : zero);
            /* Pairs of words, then of dwords, then of qwords trade places. */
            uint16x8_t a[8];
#pragma GCC unroll 4
            for (size_t r = 0; r < 8; r += 2) {
                a[r] = vtrn1q_u16(x[r], x[r + 1]);
                a[r + 1] = vtrn2q_u16(x[r], x[r + 1]);
            }
            uint32x4_t b[8];
#pragma GCC unroll 4
            for (size_t r = 0; r < 8; r += 4)
#pragma GCC unroll 2
                for (size_t k = 0; k < 2; k++) {
                    uint32x4_t p = vreinterpretq_u32_u16(a[r + k]);
                    uint32x4_t u = vreinterpretq_u32_u16(a[r + k + 2]);
                    b[r + k] = vtrn1q_u32(p, u);
                    b[r + k + 2] = vtrn2q_u32(p, u);
                }
            /* b[r], r < 4: columns r, r + 4 (as 64-bit halves) of tokens
             * j0..j0+3; b[r + 4] the same of tokens j0+4..j0+7. */
#pragma GCC unroll 4
            for (size_t r = 0; r < 4; r++) {
                uint64x2_t p = vreinterpretq_u64_u32(b[r]), u = vreinterpretq_u64_u32(b[r + 4]);
                x[r] = vreinterpretq_u16_u64(vtrn1q_u64(p, u));
                x[r + 4] = vreinterpretq_u16_u64(vtrn2q_u64(p, u));
            }
#pragma GCC unroll 8
            for (size_t r = 0; r < 8; r++)
                if (r < n_out)
                    vst1q_u16(tile + (c0 + r) * FASA_TILE + j0, x[r]);
        }
    }
}

static void transpose32(const uint32_t *st, size_t ld, size_t rows, size_t m, uint32_t *tile)
{
    static const uint32_t zero[4];
    for (size_t c0 = 0; c0 < m; c0 += 4) {
        size_t n_out = m - c0 < 4 ? m - c0 : 4;
        for (size_t j0 = 0; j0 < FASA_TILE; j0 += 4) {
            uint32x4_t x[4];
            if (j0 >= rows) {
                for (size_t r = 0; r < n_out; r++)
                    vst1q_u32(tile + (c0 + r) * FASA_TILE + j0, vdupq_n_u32(0));
                continue;
            }
#pragma GCC unroll 4
            for (size_t r = 0; r < 4; r++)
                x[r] = vld1q_u32(j0 + r < rows ? st + (j0 + r) * ld + c0 : zero);
            uint64x2_t a0 = vreinterpretq_u64_u32(vtrn1q_u32(x[0], x[1]));
            uint64x2_t a1 = vreinterpretq_u64_u32(vtrn2q_u32(x[0], x[1]));
            uint64x2_t a2 = vreinterpretq_u64_u32(vtrn1q_u32(x[2], x[3]));
            uint64x2_t a3 = vreinterpretq_u64_u32(vtrn2q_u32(x[2], x[3]));
            x[0] = vreinterpretq_u32_u64(vtrn1q_u64(a0, a2));
            x[1] = vreinterpretq_u32_u64(vtrn1q_u64(a1, a3));
            x[2] = vreinterpretq_u32_u64(vtrn2q_u64(a0, a2));
            x[3] = vreinterpretq_u32_u64(vtrn2q_u64(a1, a3));
#pragma GCC unroll 4
            for (size_t r = 0; r < 4; r++)
                if (r < n_out)
                    vst1q_u32(tile + (c0 + r) * FASA_TILE + j0, x[r]);
        }
    }
}

void fasa__lc_transpose_neon(const void *stage, size_t ld, size_t rows, size_t m, size_t es,
                             void *tile)
{
    if (es == 2)
        transpose16(stage, ld, rows, m, tile);
    else
        transpose32(stage, ld, rows, m, tile);
}

#endif
