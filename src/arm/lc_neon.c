/*
 * lc_neon.c - label-cache staging kernels for AArch64 Advanced SIMD: the
 * dim gather of one key row (TBL / TBX byte lookups over 64-byte windows
 * of the row) and the 64-token transpose of a staged tile (8 x 8 words /
 * 4 x 4 dwords per block, TRN1 / TRN2 at 16, 32 and 64 bits). Advanced
 * SIMD is AArch64 baseline, so no target attribute. Empty elsewhere.
 */
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* ------------------------------------------------------------- gather */

/* Rows of up to 512 bytes (head_dim 256 f16, 128 f32) go through TBL;
 * longer ones through the scalar loop. */
#define MAX_WIN 8

#define INLINE static inline __attribute__((always_inline))

/* Output bytes of eight words s[ix[0..7]]: byte addresses 2x, 2x + 1
 * modulo 256 (TBL indices are bytes), and a mask of those at or past
 * byte 256 (x < 256). */
INLINE uint8x16_t bytes16(const uint16_t *ix, uint8x16_t *hi)
{
    uint16x8_t x = vld1q_u16(ix), b = vshlq_n_u16(x, 1);
    *hi = vreinterpretq_u8_u16(vcgtq_u16(x, vdupq_n_u16(127)));
    return vreinterpretq_u8_u16(vsliq_n_u16(b, vaddq_u16(b, vdupq_n_u16(1)), 8));
}

/* Four dwords s[ix[0..3]]: byte addresses 4x .. 4x + 3 (x < 128). */
INLINE uint8x16_t bytes32(const uint16_t *ix, uint8x16_t *hi)
{
    uint32x4_t b = vshll_n_u16(vld1_u16(ix), 2);
    *hi = vreinterpretq_u8_u32(vcgtq_u32(b, vdupq_n_u32(255)));
    uint32x4_t lo = vandq_u32(b, vdupq_n_u32(0xFF)); /* no carries: lo + 3 <= 255 */
    return vreinterpretq_u8_u32(
        vmlaq_u32(vdupq_n_u32(0x03020100), lo, vdupq_n_u32(0x01010101)));
}

/* Bytes q0, q1 out of windows w0 .. w0 + 3. Each window is loaded where
 * it is used, with one LD1 into the four consecutive registers TBL wants
 * (an L1 hit; tables held across the loop were copied register to
 * register or spilled by GCC 12 and clang 14), and serves two vectors.
 * TBL then TBX keep the byte of whichever window holds it; overlapping
 * windows hold the same bytes. Window w holds bytes only if nb > 64 w, a
 * loop-invariant test that spares short rows the lookups. */
INLINE void lookup2(const uint8_t *const *wp, const uint8x16_t *sub, size_t w0, size_t nb,
                    uint8x16_t q0, uint8x16_t q1, uint8x16_t *r0, uint8x16_t *r1)
{
    uint8x16x4_t t = vld1q_u8_x4(wp[w0]);
    *r0 = vqtbl4q_u8(t, vsubq_u8(q0, sub[w0]));
    *r1 = vqtbl4q_u8(t, vsubq_u8(q1, sub[w0]));
#pragma GCC unroll 4
    for (size_t k = 1; k < 4; k++)
        if (nb > 64 * (w0 + k)) {
            t = vld1q_u8_x4(wp[w0 + k]);
            *r0 = vqtbx4q_u8(*r0, t, vsubq_u8(q0, sub[w0 + k]));
            *r1 = vqtbx4q_u8(*r1, t, vsubq_u8(q1, sub[w0 + k]));
        }
}

/* n elements of es bytes out of a row of nb bytes, two vectors a step.
 * Window k is the 64 bytes from min(64k, nb - 64): a partial last window
 * ends at the row's end and those past it repeat it, so no load leaves
 * the row; a row shorter than 64 bytes is read from a zero-padded copy.
 * sub[k] is the window's first byte modulo 256. Rows of up to 256 bytes
 * (halves = 0) need windows 0..3 only. Longer rows (halves = 1) take
 * bytes >= 256 from windows 4..7, blended by bit 8 of the byte address:
 * within one half, an address modulo 256 names one byte (a window
 * straddling byte 256 is one of 4..7, and window 3 holds its lower part). */
INLINE void gather_row(const uint8_t *s, size_t nb, size_t es, int halves, const uint16_t *ix,
                       size_t n, uint8_t *o)
{
    uint8_t pad[64];
    uint16_t x[16];
    const uint8_t *wp[MAX_WIN];
    uint8x16_t sub[MAX_WIN];
    size_t nw = halves ? 8 : 4, per = 16 / es;
    if (nb < 64) {
        memcpy(pad, s, nb);
        memset(pad + nb, 0, 64 - nb);
    }
#pragma GCC unroll 8
    for (size_t k = 0; k < nw; k++) {
        size_t start = nb < 64 ? 0 : 64 * k < nb - 64 ? 64 * k : nb - 64;
        wp[k] = nb < 64 ? pad : s + start;
        sub[k] = vdupq_n_u8((uint8_t)start);
    }
    for (size_t i = 0; i < n; i += 2 * per) {
        size_t live = n - i < 2 * per ? n - i : 2 * per;
        const uint16_t *xi = ix + i;
        if (live < 2 * per) {
            /* Indices padded with 0 (a valid dim); only live bytes stored. */
            memset(x, 0, sizeof x);
            memcpy(x, xi, live * sizeof *x);
            xi = x;
        }
        uint8x16_t hi0, hi1, r0, r1;
        uint8x16_t q0 = es == 2 ? bytes16(xi, &hi0) : bytes32(xi, &hi0);
        uint8x16_t q1 = es == 2 ? bytes16(xi + per, &hi1) : bytes32(xi + per, &hi1);
        lookup2(wp, sub, 0, nb, q0, q1, &r0, &r1);
        if (halves) {
            uint8x16_t u0, u1;
            lookup2(wp, sub, 4, nb, q0, q1, &u0, &u1);
            r0 = vbslq_u8(hi0, u0, r0);
            r1 = vbslq_u8(hi1, u1, r1);
        }
        if (live == 2 * per) {
            vst1q_u8(o + i * es, r0);
            vst1q_u8(o + i * es + 16, r1);
        } else {
            uint8_t tmp[32];
            vst1q_u8(tmp, r0);
            vst1q_u8(tmp + 16, r1);
            memcpy(o + i * es, tmp, live * es);
        }
    }
}

void fasa__lc_gather_neon(const void *row, size_t row_stride, size_t d, const uint16_t *idx,
                          size_t idx_stride, const uint32_t *n_fc, size_t n_heads, size_t es,
                          void *dst, size_t dst_stride)
{
    size_t nb = d * es;
    for (size_t h = 0; h < n_heads; h++) {
        size_t n = 2 * (size_t)n_fc[h];
        const uint16_t *ix = idx + h * idx_stride;
        const uint8_t *s = (const uint8_t *)row + h * row_stride * es;
        uint8_t *o = (uint8_t *)dst + h * dst_stride * es;
        if (n == 0)
            continue;
        if (nb <= 256 && es == 2)
            gather_row(s, nb, 2, 0, ix, n, o);
        else if (nb <= 256)
            gather_row(s, nb, 4, 0, ix, n, o);
        else if (nb <= 64 * MAX_WIN && es == 2)
            gather_row(s, nb, 2, 1, ix, n, o);
        else if (nb <= 64 * MAX_WIN)
            gather_row(s, nb, 4, 1, ix, n, o);
        else if (es == 2)
            for (size_t i = 0; i < n; i++)
                ((uint16_t *)(void *)o)[i] = ((const uint16_t *)(const void *)s)[ix[i]];
        else
            for (size_t i = 0; i < n; i++)
                ((uint32_t *)(void *)o)[i] = ((const uint32_t *)(const void *)s)[ix[i]];
    }
}

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
