/*
 * matmul.h - y[M][N] = x[M][K] . w[N][K]^T for f32 row-major weights.
 *
 * Every output element is one dot product with a fixed summation order (8
 * lanes, a fixed lane reduction, then the tail), whatever M, the blocking or
 * the thread count: a sequence decoded alone or inside a batch gets
 * bit-identical results, and so do runs with different thread counts.
 */
#ifndef LLAMA_MATMUL_H
#define LLAMA_MATMUL_H

#include <stddef.h>

void mm_gemm(const float *x, size_t M, size_t K, const float *w, size_t N, float *y,
             int n_threads);

/* Same with weight rows ldw floats apart (e.g. one head of a KV cache). */
void mm_gemm_ld(const float *x, size_t M, size_t K, const float *w, size_t ldw, size_t N,
                float *y, int n_threads);

/* Name of the kernel in use ("avx2-fma" or "generic"). */
const char *mm_kernel_name(void);

#endif
