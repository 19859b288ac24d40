/*
 * exp_x86.h - vectorized expf for the AVX2 and AVX-512 kernels.
 *
 * Cephes-style: x = n*ln2 + r with |r| <= ln2/2 (ln2 split in two parts so
 * the reduction is exact enough), exp(r) by a degree-7 polynomial, 2^n built
 * in the exponent field. Measured max error about 1-2 ulp over [-87, 88]
 * (tests/test_attn_kernels.c checks <= 3 ulp against expf).
 * Domain notes, chosen for the softmax (arguments are <= 0 there):
 *  - x <= -87.33 (including -inf) gives +0 (expf would give a subnormal
 *    below 1.2e-38; flushing it is far inside the attention tolerance);
 *  - NaN propagates; x >= 88.38 saturates near 2^127 instead of +inf.
 * Include after <immintrin.h>, x86 only.
 */
#ifndef FASA_SIMD_EXP_X86_H
#define FASA_SIMD_EXP_X86_H

#define FASA__EXP_HI 88.0f
#define FASA__EXP_LO (-88.0f)
#define FASA__LOG2E 1.44269504088896341f
#define FASA__LN2_HI 0.693359375f
#define FASA__LN2_LO (-2.12194440e-4f)
#define FASA__EXP_P0 1.9875691500e-4f
#define FASA__EXP_P1 1.3981999507e-3f
#define FASA__EXP_P2 8.3334519073e-3f
#define FASA__EXP_P3 4.1665795894e-2f
#define FASA__EXP_P4 1.6666665459e-1f
#define FASA__EXP_P5 5.0000001201e-1f

__attribute__((target("avx2,fma"))) static inline __m256 fasa__exp_avx2(__m256 x)
{
    /* max/min return the second operand when one is NaN: keep x second. */
    x = _mm256_max_ps(_mm256_set1_ps(FASA__EXP_LO), x);
    x = _mm256_min_ps(_mm256_set1_ps(FASA__EXP_HI), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(FASA__LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FASA__LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FASA__LN2_LO), r);
    __m256 y = _mm256_set1_ps(FASA__EXP_P0);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FASA__EXP_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FASA__EXP_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FASA__EXP_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FASA__EXP_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FASA__EXP_P5));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* n = -127 makes the scale field 0, i.e. a clean +0 result. */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_and_ps(res, _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_NLT_UQ));
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m512 fasa__exp_avx512(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(FASA__EXP_LO), x);
    x = _mm512_min_ps(_mm512_set1_ps(FASA__EXP_HI), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(FASA__LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FASA__LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FASA__LN2_LO), r);
    __m512 y = _mm512_set1_ps(FASA__EXP_P0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FASA__EXP_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FASA__EXP_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FASA__EXP_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FASA__EXP_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FASA__EXP_P5));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 res = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
    __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33f), _CMP_NLT_UQ);
    return _mm512_maskz_mov_ps(keep, res);
}

#endif
