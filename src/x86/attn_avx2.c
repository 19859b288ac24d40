/*
 * attn_avx2.c - attention kernel (fasa__attn_fn) for AVX2 + FMA + F16C:
 * 8 fp32 lanes, 16 registers (hence smaller tiles than AVX-512). The
 * algorithm is in src/simd/attn_body.h. Compiles to nothing off x86.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "simd/exp_x86.h"

#define FA_ISA avx2
#define FA_ATTR __attribute__((target("avx2,fma,f16c")))
#define FA_W 8
#define FA_VEC __m256
#define FA_ZERO() _mm256_setzero_ps()
#define FA_SET1(x) _mm256_set1_ps(x)
#define FA_LOADU(p) _mm256_loadu_ps(p)
#define FA_STOREU(p, v) _mm256_storeu_ps((p), (v))
#define FA_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define FA_MUL(a, b) _mm256_mul_ps((a), (b))
#define FA_ADD(a, b) _mm256_add_ps((a), (b))
#define FA_SUB(a, b) _mm256_sub_ps((a), (b))
#define FA_MAX(a, b) _mm256_max_ps((a), (b))
#define FA_HMAX(v) fa_hmax8(v)
#define FA_HSUM(v) fa_hsum8(v)
#define FA_LANE0(v) _mm256_cvtss_f32(v)
#define FA_EXP(v) fasa__exp_avx2(v)
#define FA_REDUCE(v) fa_reduce8(v)
#define FA_KT1 4
#define FA_KT4 2
#define FA_VCG1 8
#define FA_VCG2 4
#define FA_VCG3 2
#define FA_VCG4 2
#define FA_LD_F32(p) _mm256_loadu_ps((const float *)(const void *)(p))
#define FA_LD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define FA_LD_BF16(p)                                                                          \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                     \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#define FA_LD_Q8_0(row, c) fa_ld_q8_0(row, c)
#define FA_LD_Q4_0(row, c) fa_ld_q4_0(row, c)

/* The scale of the quant block at b, in every lane. */
__attribute__((target("avx2,fma,f16c"))) static inline __m256 fa_qscale(const char *b)
{
    uint16_t h;
    memcpy(&h, b, sizeof h);
    return _mm256_cvtph_ps(_mm_set1_epi16((short)h));
}
/* Elements c .. c+7 of a Q8_0 row: int8 -> int32 -> f32, times d (exact). */
__attribute__((target("avx2,fma,f16c"))) static inline __m256 fa_ld_q8_0(const char *row, size_t c)
{
    const char *b = row + (c / 32) * 34;
    __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + c % 32)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(w), fa_qscale(b));
}
/* Elements c .. c+7 of a Q4_0 row: nibbles of bytes c % 16 .. +7, low for
 * c % 32 < 16, high otherwise, minus 8, times d. */
__attribute__((target("avx2,fma,f16c"))) static inline __m256 fa_ld_q4_0(const char *row, size_t c)
{
    const char *b = row + (c / 32) * 18;
    __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + c % 16)));
    w = _mm256_srl_epi32(w, _mm_cvtsi32_si128((int)(c & 16) >> 2));
    w = _mm256_sub_epi32(_mm256_and_si256(w, _mm256_set1_epi32(15)), _mm256_set1_epi32(8));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(w), fa_qscale(b));
}

__attribute__((target("avx2,fma,f16c"))) static inline float fa_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma,f16c"))) static inline float fa_hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Eight vectors -> one vector of their lane sums in order (hadd tree, then
 * one cross-lane add), instead of eight horizontal sums. */
__attribute__((target("avx2,fma,f16c"))) static inline __m256 fa_reduce8(const __m256 *v)
{
    __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

#define FA_KERNEL_NAME fasa__attn_avx2
#include "simd/attn_instances.h"

#endif
