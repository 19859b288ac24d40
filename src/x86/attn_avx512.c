/*
 * attn_avx512.c - attention kernel (fasa__attn_fn) for AVX-512 F/BW/VL:
 * 16 fp32 lanes, F16C-style conversion via vcvtph2ps zmm. The algorithm is
 * in src/simd/attn_body.h. Compiles to nothing off x86.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "simd/exp_x86.h"

#define FA_ISA avx512
#define FA_ATTR __attribute__((target("avx512f,avx512bw,avx512vl")))
#define FA_W 16
#define FA_VEC __m512
#define FA_ZERO() _mm512_setzero_ps()
#define FA_SET1(x) _mm512_set1_ps(x)
#define FA_LOADU(p) _mm512_loadu_ps(p)
#define FA_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define FA_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define FA_MUL(a, b) _mm512_mul_ps((a), (b))
#define FA_ADD(a, b) _mm512_add_ps((a), (b))
#define FA_SUB(a, b) _mm512_sub_ps((a), (b))
#define FA_MAX(a, b) _mm512_max_ps((a), (b))
#define FA_HMAX(v) _mm512_reduce_max_ps(v)
#define FA_HSUM(v) _mm512_reduce_add_ps(v)
#define FA_LANE0(v) _mm512_cvtss_f32(v)
#define FA_EXP(v) fasa__exp_avx512(v)
#define FA_REDUCE(v) fa_reduce16(v)
#define FA_KT1 8
#define FA_KT4 4
#define FA_VCG1 8
#define FA_VCG2 8
#define FA_VCG3 4
#define FA_VCG4 4
#define FA_LD_F32(p) _mm512_loadu_ps((const float *)(const void *)(p))
#define FA_LD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define FA_LD_BF16(p)                                                                           \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                      \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define FA_LD_Q8_0(row, c) fa_ld_q8_0(row, c)
#define FA_LD_Q4_0(row, c) fa_ld_q4_0(row, c)

/* The scale of the quant block at b, in every lane. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512 fa_qscale(const char *b)
{
    uint16_t h;
    memcpy(&h, b, sizeof h);
    return _mm512_cvtph_ps(_mm256_set1_epi16((short)h));
}
/* Elements c .. c+15 of a Q8_0 row: int8 -> int32 -> f32, times d (exact). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512
fa_ld_q8_0(const char *row, size_t c)
{
    const char *b = row + (c / 32) * 34;
    __m512i w = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b + 2 + c % 32)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(w), fa_qscale(b));
}
/* Elements c .. c+15 of a Q4_0 row: the low nibbles of the block's 16
 * bytes (c % 32 = 0) or the high ones (16), minus 8, times d. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512
fa_ld_q4_0(const char *row, size_t c)
{
    const char *b = row + (c / 32) * 18;
    __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b + 2)));
    w = _mm512_srl_epi32(w, _mm_cvtsi32_si128((int)(c & 16) >> 2));
    w = _mm512_sub_epi32(_mm512_and_si512(w, _mm512_set1_epi32(15)), _mm512_set1_epi32(8));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(w), fa_qscale(b));
}

/* Sixteen vectors -> one vector of their lane sums, lane t = sum of v[t].
 * Halving steps pair 256-, 128-, 64- and 32-bit pieces of two vectors, so
 * 15 adds do the work of 16 horizontal sums; the last permute undoes the
 * 4x4 lane transposition the in-lane shuffles leave behind. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512
fa_reduce16(const __m512 *v)
{
    __m512 w[8], x[4], y[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
#pragma GCC unroll 8
    for (int i = 0; i < 2; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0x88),
                             _mm512_shuffle_ps(x[2 * i], x[2 * i + 1], 0xDD));
    __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(perm, z);
}

/* The softmax step of four rows at once (attn_body.h: FA_SOFTMAX4), each
 * row's 16 logits one vector: the row maxima and sums by transposing
 * reductions (every 128-bit lane ends up holding its row's value), the
 * four rescale factors by one vector exp, m / l / alpha read and written
 * as 4-float vectors. Same arithmetic as the per-row step (exp of s - m,
 * one factor exp(m_old - m_new) per row, m_new = -inf -> subtract 0). */
#define FA_SOFTMAX4(s, m, l, alpha) fa_softmax4(s, m, l, alpha)
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512 fa_rows4(__m512 a, __m512 b,
                                                                                 __m512 c, __m512 d,
                                                                                 int is_max)
{
#define FA_OP(x, y) (is_max ? _mm512_max_ps((x), (y)) : _mm512_add_ps((x), (y)))
    __m512 x = FA_OP(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    __m512 y = FA_OP(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
    __m512 z = FA_OP(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
    z = FA_OP(z, _mm512_permute_ps(z, 0x4E));
    return FA_OP(z, _mm512_permute_ps(z, 0xB1));
#undef FA_OP
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline void
fa_softmax4(float *s, float *m, float *l, float *alpha)
{
    const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i gather = _mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12);
    __m512 r0 = _mm512_loadu_ps(s), r1 = _mm512_loadu_ps(s + 16);
    __m512 r2 = _mm512_loadu_ps(s + 32), r3 = _mm512_loadu_ps(s + 48);
    const __m512 mo = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_loadu_ps(m)));
    const __m512 mn = _mm512_max_ps(fa_rows4(r0, r1, r2, r3, 1), mo);
    const __mmask16 none = _mm512_cmp_ps_mask(mn, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
    const __m512 me = _mm512_mask_mov_ps(mn, none, _mm512_setzero_ps());
    const __m512 al = fasa__exp_avx512(_mm512_sub_ps(mo, me));
    r0 = fasa__exp_avx512(_mm512_sub_ps(r0, _mm512_shuffle_f32x4(me, me, 0x00)));
    r1 = fasa__exp_avx512(_mm512_sub_ps(r1, _mm512_shuffle_f32x4(me, me, 0x55)));
    r2 = fasa__exp_avx512(_mm512_sub_ps(r2, _mm512_shuffle_f32x4(me, me, 0xAA)));
    r3 = fasa__exp_avx512(_mm512_sub_ps(r3, _mm512_shuffle_f32x4(me, me, 0xFF)));
    _mm512_storeu_ps(s, r0);
    _mm512_storeu_ps(s + 16, r1);
    _mm512_storeu_ps(s + 32, r2);
    _mm512_storeu_ps(s + 48, r3);
    const __m512 lo = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_loadu_ps(l)));
    const __m512 ln = _mm512_fmadd_ps(lo, al, fa_rows4(r0, r1, r2, r3, 0));
    _mm_storeu_ps(l, _mm512_castps512_ps128(_mm512_permutexvar_ps(gather, ln)));
    _mm_storeu_ps(m, _mm512_castps512_ps128(_mm512_permutexvar_ps(gather, mn)));
    _mm_storeu_ps(alpha, _mm512_castps512_ps128(_mm512_permutexvar_ps(gather, al)));
}

#define FA_KERNEL_NAME fasa__attn_avx512
#include "simd/attn_instances.h"

#endif
