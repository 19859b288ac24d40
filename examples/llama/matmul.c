/* matmul.c - see matmul.h. */
#include "matmul.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MM_X86 1
#else
#define MM_X86 0
#endif

/* Output columns (weight rows) per block: the block's weights stay in L2
 * while every x row passes over them. */
#define NB 64

static float reduce8(const float a[8])
{
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* Generic 1x1 dot product with the same lane structure as the SIMD kernel. */
static float dot_generic(const float *x, const float *w, size_t K)
{
    float acc[8] = {0};
    size_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[k + l] * w[k + l];
    float s = reduce8(acc);
    for (; k < K; k++)
        s += x[k] * w[k];
    return s;
}

static void block_generic(const float *x, size_t M, size_t K, const float *w, size_t ldw,
                          size_t n0, size_t n1, float *y, size_t N)
{
    for (size_t m = 0; m < M; m++)
        for (size_t n = n0; n < n1; n++)
            y[m * N + n] = dot_generic(x + m * K, w + n * ldw, K);
}

#if MM_X86
__attribute__((target("avx2,fma"))) static float hsum_avx(__m256 v, const float *x,
                                                          const float *w, size_t k, size_t K)
{
    float a[8];
    _mm256_storeu_ps(a, v);
    float s = reduce8(a);
    for (; k < K; k++)
        s += x[k] * w[k];
    return s;
}

/* 2 x rows times 4 weight rows per pass: 8 accumulators + 6 loads fit the
 * 16 ymm registers. Missing rows/columns alias valid ones and are not stored. */
__attribute__((target("avx2,fma"))) static void block_avx2(const float *x, size_t M, size_t K,
                                                           const float *w, size_t ldw, size_t n0,
                                                           size_t n1, float *y, size_t N)
{
    size_t K8 = K & ~(size_t)7;
    for (size_t m = 0; m < M; m += 2) {
        const float *x0 = x + m * K, *x1 = (m + 1 < M) ? x0 + K : x0;
        for (size_t n = n0; n < n1; n += 4) {
            const float *w0 = w + n * ldw;
            const float *w1 = (n + 1 < n1) ? w0 + ldw : w0;
            const float *w2 = (n + 2 < n1) ? w0 + 2 * ldw : w0;
            const float *w3 = (n + 3 < n1) ? w0 + 3 * ldw : w0;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
            __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            for (size_t k = 0; k < K8; k += 8) {
                __m256 u0 = _mm256_loadu_ps(x0 + k), u1 = _mm256_loadu_ps(x1 + k);
                __m256 b = _mm256_loadu_ps(w0 + k);
                a00 = _mm256_fmadd_ps(u0, b, a00);
                a10 = _mm256_fmadd_ps(u1, b, a10);
                b = _mm256_loadu_ps(w1 + k);
                a01 = _mm256_fmadd_ps(u0, b, a01);
                a11 = _mm256_fmadd_ps(u1, b, a11);
                b = _mm256_loadu_ps(w2 + k);
                a02 = _mm256_fmadd_ps(u0, b, a02);
                a12 = _mm256_fmadd_ps(u1, b, a12);
                b = _mm256_loadu_ps(w3 + k);
                a03 = _mm256_fmadd_ps(u0, b, a03);
                a13 = _mm256_fmadd_ps(u1, b, a13);
            }
            float r[2][4];
            r[0][0] = hsum_avx(a00, x0, w0, K8, K);
            r[0][1] = hsum_avx(a01, x0, w1, K8, K);
            r[0][2] = hsum_avx(a02, x0, w2, K8, K);
            r[0][3] = hsum_avx(a03, x0, w3, K8, K);
            r[1][0] = hsum_avx(a10, x1, w0, K8, K);
            r[1][1] = hsum_avx(a11, x1, w1, K8, K);
            r[1][2] = hsum_avx(a12, x1, w2, K8, K);
            r[1][3] = hsum_avx(a13, x1, w3, K8, K);
            for (size_t i = 0; i < 2 && m + i < M; i++)
                for (size_t j = 0; j < 4 && n + j < n1; j++)
                    y[(m + i) * N + n + j] = r[i][j];
        }
    }
}

static int have_avx2(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#endif

const char *mm_kernel_name(void)
{
#if MM_X86
    if (have_avx2())
        return "avx2-fma";
#endif
    return "generic";
}

void mm_gemm(const float *x, size_t M, size_t K, const float *w, size_t N, float *y,
             int n_threads)
{
    mm_gemm_ld(x, M, K, w, K, N, y, n_threads);
}

void mm_gemm_ld(const float *x, size_t M, size_t K, const float *w, size_t ldw, size_t N,
                float *y, int n_threads)
{
    long n_blocks = (long)((N + NB - 1) / NB);
#if MM_X86
    int avx = have_avx2();
#endif
    (void)n_threads;
    /* Parallel over output columns only: no reduction is split. */
#pragma omp parallel for schedule(static) num_threads(n_threads > 0 ? n_threads : 1) if (n_threads > 1)
    for (long b = 0; b < n_blocks; b++) {
        size_t n0 = (size_t)b * NB, n1 = n0 + NB < N ? n0 + NB : N;
#if MM_X86
        if (avx) {
            block_avx2(x, M, K, w, ldw, n0, n1, y, N);
            continue;
        }
#endif
        block_generic(x, M, K, w, ldw, n0, n1, y, N);
    }
}
