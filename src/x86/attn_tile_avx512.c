/*
 * attn_tile_avx512.c - tiled attention kernel (fasa__attn_tile_fn) for
 * AVX-512 F/BW/VL: 16 rows per vector, 32 registers, so logit tiles of 4
 * keys x 4 row vectors and value tiles of 4 dims x 4 row vectors (16
 * accumulators each). The algorithm is in src/simd/attn_tile_body.h.
 * Compiles to nothing off x86.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "simd/exp_x86.h"

#define FT_ISA avx512
#define FT_ATTR __attribute__((target("avx512f,avx512bw,avx512vl")))
#define FT_W 16
#define FT_VEC __m512
#define FT_ZERO() _mm512_setzero_ps()
#define FT_SET1(x) _mm512_set1_ps(x)
#define FT_LOAD(p) _mm512_load_ps(p)
#define FT_LOADU(p) _mm512_loadu_ps(p)
#define FT_STORE(p, v) _mm512_store_ps((p), (v))
#define FT_BCAST(p) _mm512_set1_ps(*(p))
#define FT_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define FT_MUL(a, b) _mm512_mul_ps((a), (b))
#define FT_ADD(a, b) _mm512_add_ps((a), (b))
#define FT_SUB(a, b) _mm512_sub_ps((a), (b))
#define FT_MAX(a, b) _mm512_max_ps((a), (b))
#define FT_DIV(a, b) _mm512_div_ps((a), (b))
#define FT_EXP(v) fasa__exp_avx512(v)
#define FT_ABS(v) \
    _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)))
/* bits of mag outside the sign, sign of sgn (ternary logic: (A & C) | (B & ~C)) */
#define FT_COPYSIGN(mag, sgn)                                                                  \
    _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(mag),                    \
                                                  _mm512_castps_si512(sgn),                    \
                                                  _mm512_set1_epi32(0x7fffffff), 0xe4))
#define FT_SEL_EQ(a, b, x, y) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ), (y), (x))
#define FT_SEL_LT(a, b, x, y) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ), (y), (x))
#define FT_VIS(x, j, lb, le)                                                                    \
    _mm512_mask_blend_ps(                                                                       \
        _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask((j), (lb), _CMP_GE_OQ), (j), (le), _CMP_LT_OQ), \
        _mm512_set1_ps(-INFINITY), (x))
#define FT_CVT_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define FT_CVT_BF16(p)                                                                         \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                                     \
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define FT_RVMAX 4
#define FT_KB1 16
#define FT_KB2 8
#define FT_KB3 4
#define FT_KB4 4
#define FT_CB1 16
#define FT_CB2 8
#define FT_CB3 4
#define FT_CB4 4
#define FT_KERNEL_NAME fasa__attn_tile_avx512
#include "simd/attn_tile_body.h"

#endif
