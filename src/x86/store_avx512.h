/*
 * store_avx512.h - the 64 scores of one label-tile row from four zmm
 * accumulators, shared by the AVX-512 scoring kernels (tip_avx512.c,
 * tip_avx512bf16.c). Include after <immintrin.h>, on x86 only.
 */
#ifndef FASA_STORE_AVX512_H
#define FASA_STORE_AVX512_H

/* Store a0..a3 (tokens 0..63 of a tile) to o, only the first nt (tail tile). */
__attribute__((target("avx512f"))) static inline void fasa__store_row_avx512(
    float *o, __m512 a0, __m512 a1, __m512 a2, __m512 a3, size_t nt)
{
    if (nt == FASA_TILE) {
        _mm512_storeu_ps(o, a0);
        _mm512_storeu_ps(o + 16, a1);
        _mm512_storeu_ps(o + 32, a2);
        _mm512_storeu_ps(o + 48, a3);
        return;
    }
    __m512 a[4] = {a0, a1, a2, a3};
    for (size_t v = 0; v < 4 && 16 * v < nt; v++) {
        size_t left = nt - 16 * v;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        _mm512_mask_storeu_ps(o + 16 * v, m, a[v]);
    }
}

#endif
