/*
 * attn_tile_avx2.c - tiled attention kernel (fasa__attn_tile_fn) for AVX2 +
 * FMA + F16C: 8 rows per vector, 16 registers, so tiles of 2 keys (dims)
 * x 4 row vectors (8 accumulators). The algorithm is in
 * src/simd/attn_tile_body.h. Compiles to nothing off x86.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "simd/exp_x86.h"

#define FT_ISA avx2
#define FT_ATTR __attribute__((target("avx2,fma,f16c")))
#define FT_W 8
#define FT_VEC __m256
#define FT_ZERO() _mm256_setzero_ps()
#define FT_SET1(x) _mm256_set1_ps(x)
#define FT_LOAD(p) _mm256_load_ps(p)
#define FT_LOADU(p) _mm256_loadu_ps(p)
#define FT_STORE(p, v) _mm256_store_ps((p), (v))
#define FT_BCAST(p) _mm256_broadcast_ss(p)
#define FT_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define FT_MUL(a, b) _mm256_mul_ps((a), (b))
#define FT_ADD(a, b) _mm256_add_ps((a), (b))
#define FT_SUB(a, b) _mm256_sub_ps((a), (b))
#define FT_MAX(a, b) _mm256_max_ps((a), (b))
#define FT_DIV(a, b) _mm256_div_ps((a), (b))
#define FT_EXP(v) fasa__exp_avx2(v)
#define FT_ABS(v) _mm256_and_ps((v), _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))
#define FT_COPYSIGN(mag, sgn)                                                                  \
    _mm256_or_ps(_mm256_and_ps((mag), _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))),     \
                 _mm256_and_ps((sgn), _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))))
#define FT_SEL_EQ(a, b, x, y) _mm256_blendv_ps((y), (x), _mm256_cmp_ps((a), (b), _CMP_EQ_OQ))
#define FT_SEL_LT(a, b, x, y) _mm256_blendv_ps((y), (x), _mm256_cmp_ps((a), (b), _CMP_LT_OQ))
#define FT_VIS(x, j, lb, le)                                                                    \
    _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), (x),                                            \
                     _mm256_and_ps(_mm256_cmp_ps((j), (lb), _CMP_GE_OQ),                        \
                                   _mm256_cmp_ps((j), (le), _CMP_LT_OQ)))
#define FT_CVT_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define FT_CVT_BF16(p)                                                                         \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                                     \
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#define FT_RVMAX 4
#define FT_KB1 8
#define FT_KB2 4
#define FT_KB3 2
#define FT_KB4 2
#define FT_CB1 8
#define FT_CB2 4
#define FT_CB3 3
#define FT_CB4 2
#define FT_KERNEL_NAME fasa__attn_tile_avx2
#include "simd/attn_tile_body.h"

#endif
