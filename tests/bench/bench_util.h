/*
 * bench_util.h - timing helpers shared by the benchmark programs of `make
 * bench` (bench.c, prefill.c): a monotonic clock, the thread's CPU time,
 * medians, and the fp32 FMA peak of one core measured in the same run. Static functions: each
 * program includes it once.
 */
#ifndef FASA_BENCH_UTIL_H
#define FASA_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: excludes the time it waits for a core,
 * which on a shared machine is most of the noise of a one-thread run. */
static inline double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double minimum(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static inline double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* Peak fp32 FMA rate of one core (ten independent chains), to tell
 * compute-bound from bandwidth-bound: dense decode with a GQA group of G
 * does 4*G flops per K/V element pair. */
__attribute__((noinline, target("avx512f"))) static float fma_loop512(long n)
{
    __m512 a[10], x = _mm512_set1_ps(1.0001f), y = _mm512_set1_ps(0.9999f);
    for (int i = 0; i < 10; i++)
        a[i] = _mm512_set1_ps((float)i);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 10
        for (int j = 0; j < 10; j++) /* unrolled: the chains must stay in registers */
            a[j] = _mm512_fmadd_ps(a[j], x, y);
    __m512 t = a[0];
    for (int i = 1; i < 10; i++)
        t = _mm512_add_ps(t, a[i]);
    return _mm512_reduce_add_ps(t);
}
__attribute__((noinline, target("avx2,fma"))) static float fma_loop256(long n)
{
    __m256 a[10], x = _mm256_set1_ps(1.0001f), y = _mm256_set1_ps(0.9999f);
    for (int i = 0; i < 10; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (long i = 0; i < n; i++)
#pragma GCC unroll 10
        for (int j = 0; j < 10; j++)
            a[j] = _mm256_fmadd_ps(a[j], x, y);
    __m256 t = a[0];
    for (int i = 1; i < 10; i++)
        t = _mm256_add_ps(t, a[i]);
    float o[8];
    _mm256_storeu_ps(o, t);
    return o[0];
}
/* GFLOP/s, best of 40 runs of about 2 ms (short runs: on a shared machine
 * some run in 40 escapes the neighbours; three 0.1 s runs read half the
 * peak there); 0 when neither ISA is there. */
static inline double fma_peak_clock(double (*clk)(void))
{
    const long n = 100000;
    double best = 0.0;
    volatile float sink = 0.0f;
    for (int r = 0; r < 40; r++) {
        double t0 = clk(), flops;
        if (__builtin_cpu_supports("avx512f")) {
            sink += fma_loop512(n);
            flops = (double)n * 10 * 32;
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            sink += fma_loop256(n);
            flops = (double)n * 10 * 16;
        } else {
            return 0.0;
        }
        double g = flops / (clk() - t0) / 1e9;
        best = g > best ? g : best;
    }
    (void)sink;
    return best;
}
static inline double fma_peak(void) { return fma_peak_clock(now_s); }
#else
static inline double fma_peak_clock(double (*clk)(void))
{
    (void)clk;
    return 0.0;
}
static inline double fma_peak(void) { return 0.0; }
#endif

#endif
