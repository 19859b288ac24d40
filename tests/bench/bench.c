/*
 * bench.c - `make bench`: time one decode step of one attention layer shaped
 * like Llama-3-8B (32 query heads, 8 KV heads, head_dim 128) with the KV
 * cache in the llama.cpp layout ([t][Hkv][d], heads interleaved), and the
 * machine's read bandwidth measured in the same run: once at the start and
 * again just before each (t, dtype, threads) group, whose rows are
 * compared with that second figure (the 2-vCPU VM's two-thread bandwidth
 * was seen to switch between about 35 and about 60 GB/s within one run).
 *
 * Paths per (t, KV dtype, threads): fasa_attend_dense; a naive scalar loop;
 * FASA per query head and FASA group-shared at each budget, split into TIP
 * (fasa_predict_cached on a label cache), FAC (fasa_attend) and their sum.
 * Also: top-k alone (the library's kernel through the dispatch table, a
 * timing hook) against a qsort baseline, and label-cache append per token.
 *
 * Each timed call runs on a different copy of the layer (enough copies that
 * K/V and the label caches each exceed 4x the LLC), so caches are cold as
 * in a real decode step that walks 32 layers. Times are medians over BENCH_REPS runs after a warm-up
 * (the CSV also keeps the fastest run, useful on a shared machine).
 *
 * Environment (all optional):
 *   BENCH_QUICK=1          t = 4k,16k; f16 only; threads 1
 *   BENCH_T=4096,16384     context lengths
 *   BENCH_DTYPES=f16,bf16,f32 (also q8_0, q4_0: llama.cpp's quantized KV
 *                          blocks, with f16 label caches; with a
 *                          quantized dtype in the list, dense decode of
 *                          f16 and of each quantized dtype is also timed
 *                          interleaved, round by round, as time ratios)
 *   BENCH_KV_ONLY=1        only that interleaved dense comparison
 *   BENCH_BUDGETS=256,1024
 *   BENCH_THREADS=1,2      (any list, e.g. 1,2,4,8,16)
 *   BENCH_REPS=N           repetitions (default 15, 9 at t >= 64k, 5 at 128k)
 *   BENCH_FC_POOL=24       each head's 16 FCs are drawn from the this many
 *                          lowest-frequency FCs (see docs/performance.md)
 *   BENCH_OUT=dir          results.csv / results.md go there (default .)
 *   BENCH_BW_MB=1024       size of the bandwidth buffer
 *   BENCH_HUGEPAGES=1      ask for transparent huge pages (madvise) on
 *                          every buffer of 4 MiB or more: K/V, label
 *                          caches, the bandwidth buffer (0 = plain pages)
 */
#define _DEFAULT_SOURCE /* madvise / MADV_HUGEPAGE: a Linux extension */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "bench_util.h"

#define HQ 32
#define HKV 8
#define HD 128
#define NTIP 16
#define MAX_LIST 16

/* ------------------------------------------------------------- helpers */


static size_t parse_list(const char *env, const char *def, size_t *out, size_t cap)
{
    const char *s = getenv(env);
    if (s == NULL || *s == 0)
        s = def;
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s)
            break;
        if (*end == 'k' || *end == 'K') {
            v *= 1024;
            end++;
        }
        out[n++] = (size_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    return n;
}

static size_t env_size(const char *env, size_t def)
{
    const char *s = getenv(env);
    return s && *s ? (size_t)strtoull(s, NULL, 10) : def;
}

/* Large buffers get 2 MiB alignment and, unless BENCH_HUGEPAGES=0, a
 * request for transparent huge pages: gathered K/V rows are 2 KiB apart
 * and scattered, so with 4 KiB pages nearly every row of a sparse step is
 * a TLB miss (FAC per query head at 64k: 60 -> 41 ns per gathered row with
 * huge pages on this machine). A runtime that wants the same speed
 * allocates its KV cache this way (docs/performance.md). */
static int hugepages = 1;
static void *xalloc(size_t bytes)
{
    void *p = NULL;
    const size_t big = (size_t)4 << 20, align = bytes >= big ? (size_t)2 << 20 : 64;
    if (posix_memalign(&p, align, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (hugepages && bytes >= big)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: failure is fine */
#endif
    return p;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
/* Roughly N(0,1) (sum of four uniforms), cheap enough for gigabytes. */
static float rng_normalish(void)
{
    uint64_t r = rng_u64();
    float s = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) +
              (float)(r >> 48);
    return (s / 65536.0f - 2.0f) * 1.7320508f;
}

static const char *dtype_name(int dt)
{
    static const char *const nm[FASA__N_DTYPES] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    return fasa__dtype_known(dt) ? nm[dt] : "?";
}

/* Label caches hold f32/f16/bf16: quantized K gets f16 labels. */
static int label_dtype(int dt) { return fasa__dtype_quant(dt) ? FASA_DTYPE_F16 : dt; }

/* Last-level cache size: sysfs first (sysconf reports 10x too much on
 * some VMs), then sysconf, then 32 MiB. */
static size_t llc_bytes(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    if (f != NULL) {
        unsigned long kb = 0;
        char unit = 0;
        int ok = fscanf(f, "%lu%c", &kb, &unit) >= 1;
        fclose(f);
        if (ok && kb > 0)
            return (size_t)kb * (unit == 'M' ? 1u << 20 : 1u << 10);
    }
    long v = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    return v > 0 ? (size_t)v : (size_t)32 << 20;
}

/* --------------------------------------------------- read bandwidth */

__attribute__((noinline)) static float read_sum(const float *p, size_t n)
{
    /* eight independent sums so the loop is bound by loads, not adds */
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += p[i + j];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* The same with 32-byte loads, four sums and a software prefetch 2 KiB
 * ahead: the fastest plain read measured on the development machine (the
 * portable loop reads about 20% slower), so kernels are compared against
 * the best the core can do. */
__attribute__((noinline, target("avx2"))) static float read_sum_avx2(const float *p, size_t n)
{
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __builtin_prefetch(p + i + 512, 0, 2);
        a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
        b = _mm256_add_ps(b, _mm256_loadu_ps(p + i + 8));
        c = _mm256_add_ps(c, _mm256_loadu_ps(p + i + 16));
        d = _mm256_add_ps(d, _mm256_loadu_ps(p + i + 24));
    }
    float o[8];
    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d)));
    return o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7] + read_sum(p + i, n - i);
}
static float read_best(const float *p, size_t n)
{
    if (__builtin_cpu_supports("avx2"))
        return read_sum_avx2(p, n);
    return read_sum(p, n);
}
#else
static float read_best(const float *p, size_t n) { return read_sum(p, n); }
#endif

/* GB/s (1e9 B/s) of one streaming read of buf with nt threads, median of
 * passes. */
static double read_bandwidth(const float *buf, size_t n, int nt, int passes)
{
    double t[16];
    volatile float sink = 0.0f;
    if (passes > 16)
        passes = 16;
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        float tot = 0.0f;
#pragma omp parallel for num_threads(nt) reduction(+ : tot) schedule(static)
        for (int c = 0; c < nt; c++) {
            size_t lo = n / (size_t)nt * (size_t)c, hi = c == nt - 1 ? n : lo + n / (size_t)nt;
            tot += read_best(buf + lo, hi - lo);
        }
        t[p] = now_s() - t0;
        sink += tot;
    }
    (void)sink;
    return (double)n * sizeof(float) / median(t, (size_t)passes) / 1e9;
}

/* ------------------------------------------------------ the KV layers */

typedef struct layer {
    void *k, *v;
    fasa_view kv, vv;
    fasa_label_cache *cache[2]; /* [mode] */
    void *cache_mem[2];
} layer;

typedef struct setup {
    size_t t;
    int dt;
    size_t n_layers;
    layer *layers;
    fasa_profile *profile;
    size_t label_bytes_tok[2]; /* label bytes per token (all KV heads), per mode */
    float *q;
    fasa_view qv;
} setup;

/* n elements (block formats: n a multiple of 32, quantized per block as
 * ggml's Q8_0 / Q4_0 reference quantizers do) of roughly N(0,1). */
static void fill(void *p, int dt, size_t n)
{
    if (!fasa__dtype_quant(dt)) {
        for (size_t i = 0; i < n; i++)
            fasa__store(p, dt, i, rng_normalish());
        return;
    }
    unsigned char *b = p;
    for (size_t i0 = 0; i0 < n; i0 += 32, b += fasa__qblock_bytes(dt)) {
        float x[32], amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < 32; j++) {
            x[j] = rng_normalish();
            if (fabsf(x[j]) > amax)
                amax = fabsf(x[j]), vmax = x[j];
        }
        const float d = dt == FASA_DTYPE_Q8_0 ? amax / 127.0f : vmax / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t h = fasa__f32_to_f16(d);
        memcpy(b, &h, 2);
        for (int j = 0; j < 16 + 16 * (dt == FASA_DTYPE_Q8_0); j++) {
            if (dt == FASA_DTYPE_Q8_0) {
                b[2 + j] = (unsigned char)(int8_t)roundf(x[j] * id);
                continue;
            }
            int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + 16] * id + 8.5f);
            b[2 + j] = (unsigned char)((lo > 15 ? 15 : lo) | (hi > 15 ? 15 : hi) << 4);
        }
    }
}

/* FC sets: every head draws NTIP distinct FCs from the `pool` lowest
 * frequency FCs (FC f of the HALF layout has theta = base^(-2f/d), so the
 * highest indices). */
static fasa_profile *make_profile(size_t pool)
{
    fasa_model_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.struct_size = sizeof sh;
    sh.n_layers = 1;
    sh.n_q_heads = HQ;
    sh.n_kv_heads = HKV;
    sh.head_dim = HD;
    sh.pair_layout = FASA_PAIRS_HALF;
    if (pool < NTIP)
        pool = NTIP;
    if (pool > HD / 2)
        pool = HD / 2;
    uint32_t fcs[HQ * NTIP];
    for (size_t h = 0; h < HQ; h++) {
        uint32_t cand[HD / 2];
        for (size_t i = 0; i < pool; i++)
            cand[i] = (uint32_t)(HD / 2 - pool + i);
        for (size_t i = 0; i < NTIP; i++) { /* partial Fisher-Yates */
            size_t j = i + (size_t)(rng_u64() % (pool - i));
            uint32_t tmp = cand[i];
            cand[i] = cand[j];
            cand[j] = tmp;
            fcs[h * NTIP + i] = cand[i];
        }
    }
    fasa_profile *p = NULL;
    fasa_status st = fasa_profile_create(&sh, fcs, NTIP, NULL, &p);
    if (st != FASA_OK) {
        fprintf(stderr, "bench: fasa_profile_create: %s\n", fasa_status_name(st));
        exit(1);
    }
    return p;
}

static void check(fasa_status st, const char *what, const fasa_ctx *ctx)
{
    if (st != FASA_OK) {
        fprintf(stderr, "bench: %s: %s %s\n", what, fasa_status_name(st),
                ctx ? fasa_ctx_last_error(ctx) : "");
        exit(1);
    }
}

/* labels = 0: K/V only (no label caches; the layer count from K/V). */
static void setup_make(setup *s, size_t t, int dt, size_t pool, int labels)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    s->dt = dt;
    size_t row = fasa__bytes(dt, (size_t)HKV * HD);
    const fasa_dtype ldt = (fasa_dtype)label_dtype(dt);
    s->profile = make_profile(pool);
    for (int m = 0; m < 2; m++) {
        size_t a = 0, b = 0;
        check(fasa_label_cache_size(s->profile, 0, (fasa_gqa_mode)m, ldt, 65536, &a),
              "label_cache_size", NULL);
        check(fasa_label_cache_size(s->profile, 0, (fasa_gqa_mode)m, ldt, 131072, &b),
              "label_cache_size", NULL);
        s->label_bytes_tok[m] = (b - a) / 65536;
    }
    /* Enough layers that what each path reads per step (K/V for dense, the
     * smaller label cache for FASA), times the layers, is 4x the LLC. */
    size_t step_bytes = labels ? t * s->label_bytes_tok[FASA_GQA_GROUP_SHARED] : 0;
    if (2 * t * row < step_bytes || step_bytes == 0)
        step_bytes = 2 * t * row;
    size_t want = 4 * llc_bytes();
    s->n_layers = step_bytes >= want ? 1 : (want + step_bytes - 1) / step_bytes;
    if (s->n_layers > 64)
        s->n_layers = 64;
    s->layers = calloc(s->n_layers, sizeof(layer));
    for (size_t L = 0; L < s->n_layers; L++) {
        layer *ly = &s->layers[L];
        ly->k = xalloc(t * row);
        ly->v = xalloc(t * row);
        fill(ly->k, dt, t * HKV * HD);
        fill(ly->v, dt, t * HKV * HD);
        fasa_view_make(&ly->kv, ly->k, (fasa_dtype)dt, t, HKV, HD, HKV * HD, HD);
        fasa_view_make(&ly->vv, ly->v, (fasa_dtype)dt, t, HKV, HD, HKV * HD, HD);
        for (int m = 0; m < 2 && labels; m++) {
            size_t bytes = 0;
            check(fasa_label_cache_size(s->profile, 0, (fasa_gqa_mode)m, ldt, t, &bytes),
                  "label_cache_size", NULL);
            ly->cache_mem[m] = xalloc(bytes);
            check(fasa_label_cache_init(ly->cache_mem[m], bytes, s->profile, 0, (fasa_gqa_mode)m,
                                        ldt, t, &ly->cache[m]),
                  "label_cache_init", NULL);
            check(fasa_label_cache_build(ly->cache[m], &ly->kv), "label_cache_build", NULL);
        }
    }
    s->q = xalloc(HQ * HD * sizeof(float));
    fill(s->q, FASA_DTYPE_F32, HQ * HD);
    /* a few strong query dims make the logits spread like real ones */
    for (size_t i = 0; i < HQ * HD; i += 17)
        s->q[i] *= 4.0f;
    fasa_view_make(&s->qv, s->q, FASA_DTYPE_F32, 1, HQ, HD, HQ * HD, HD);
}

static void setup_free(setup *s)
{
    for (size_t L = 0; L < s->n_layers; L++) {
        free(s->layers[L].k);
        free(s->layers[L].v);
        free(s->layers[L].cache_mem[0]);
        free(s->layers[L].cache_mem[1]);
    }
    free(s->layers);
    free(s->q);
    fasa_profile_destroy(s->profile);
}

/* ------------------------------------------------------------ naive */

/* The straightforward loop a user would write: per query head, all logits,
 * then softmax, then the weighted sum of V; scalar, element conversion on
 * every load. */
static void naive_attention(const setup *s, const layer *ly, float *out, float *scratch, int nt)
{
    const size_t t = s->t, G = HQ / HKV;
    const float scale = 1.0f / sqrtf((float)HD);
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t h = 0; h < HQ; h++) {
        float *sc = scratch + h * t;
        const float *q = s->q + h * HD;
        size_t g = h / G;
        float mx = -INFINITY;
        for (size_t j = 0; j < t; j++) {
            const void *kr = fasa__row(&ly->kv, j, g);
            float a = 0.0f;
            for (size_t c = 0; c < HD; c++)
                a += q[c] * fasa__load(kr, s->dt, c);
            sc[j] = a * scale;
            mx = sc[j] > mx ? sc[j] : mx;
        }
        float z = 0.0f, acc[HD] = {0};
        for (size_t j = 0; j < t; j++) {
            float p = expf(sc[j] - mx);
            z += p;
            const void *vr = fasa__row(&ly->vv, j, g);
            for (size_t c = 0; c < HD; c++)
                acc[c] += p * fasa__load(vr, s->dt, c);
        }
        for (size_t c = 0; c < HD; c++)
            out[h * HD + c] = acc[c] / z;
    }
}

/* ---------------------------------------------------------- results */

typedef struct row {
    size_t t;
    int dt, threads;
    const char *path;
    size_t budget;
    double tip_ms, topk_ms, fac_ms, total_ms, best_ms;
    double bytes, gbps, speedup, bw_frac, bw;
} row;

static row rows[4096];
static size_t n_rows;

static void add_row(const row *r)
{
    char b[24] = "-", tip[24] = "-", topk[24] = "-";
    if (r->budget)
        snprintf(b, sizeof b, "%zu", r->budget);
    if (r->budget) {
        snprintf(tip, sizeof tip, "%.3f", r->tip_ms);
        if (r->topk_ms == r->topk_ms)
            snprintf(topk, sizeof topk, "%.3f", r->topk_ms);
    }
    if (n_rows < sizeof rows / sizeof *rows)
        rows[n_rows++] = *r;
    printf("%7zu %-5s %3d %-11s %6s %9s %9s %9.3f %10.3f %9.1f %8.2f %7.1f%% %7.2fx\n", r->t,
           dtype_name(r->dt), r->threads, r->path, b, tip, topk, r->fac_ms, r->total_ms,
           r->bytes / 1e6, r->gbps, 100.0 * r->bw_frac, r->speedup);
    fflush(stdout);
}

/* ------------------------------------------------------------- main */

static int cmp_pair(const void *a, const void *b)
{
    const float *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] > y[0] ? -1 : 1;
    uint32_t i, j;
    memcpy(&i, &x[1], 4);
    memcpy(&j, &y[1], 4);
    return i < j ? -1 : i > j;
}
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* top-k of one set: library kernel (with and without a threshold hint)
 * and the qsort baseline; microseconds, medians. */
static void bench_topk(const float *sc, size_t n, size_t k, double *us_hint, double *us_plain,
                       double *us_qsort)
{
    const fasa__kernels *kern = fasa__kernels_get(FASA_CPU_AUTO);
    void *scratch = xalloc(fasa__topk_scratch_size(n, k));
    uint32_t *out = xalloc(k * sizeof(uint32_t));
    float *pairs = xalloc(2 * n * sizeof(float));
    double a[15], b[15], c[15];
    float tau = NAN;
    kern->topk_hint(sc, n, k, out, scratch, &tau); /* sets the hint */
    for (int r = 0; r < 15; r++) {
        double t0 = now_s();
        kern->topk_hint(sc, n, k, out, scratch, &tau);
        a[r] = now_s() - t0;
        t0 = now_s();
        kern->topk(sc, n, k, out, scratch);
        b[r] = now_s() - t0;
        if (r < 5) {
            t0 = now_s();
            for (size_t j = 0; j < n; j++) {
                uint32_t jj = (uint32_t)j;
                pairs[2 * j] = sc[j];
                memcpy(&pairs[2 * j + 1], &jj, 4);
            }
            qsort(pairs, n, 2 * sizeof(float), cmp_pair);
            for (size_t j = 0; j < k; j++)
                memcpy(&out[j], &pairs[2 * j + 1], 4);
            qsort(out, k, sizeof(uint32_t), cmp_u32);
            c[r] = now_s() - t0;
        }
    }
    *us_hint = 1e6 * median(a, 15);
    *us_plain = 1e6 * median(b, 15);
    *us_qsort = 1e6 * median(c, 5);
    free(scratch);
    free(out);
    free(pairs);
}

/* The attention kernel with its data in L1 (64 tokens, 4 query rows of a
 * GQA group, head_dim 128, contiguous rows), best of 2000 calls: ns per
 * token and KV head. Against the FMA bound (64 FMA instructions of 16
 * lanes per token at the measured peak) it says how much of the kernel is
 * FMAs; from DRAM the dense step cannot beat this rate. */
static double bench_attn_l1(int dt)
{
    enum { N = 64, D = 128, R = 4 };
    char *k = xalloc(fasa__bytes(dt, N * D)), *v = xalloc(fasa__bytes(dt, N * D));
    fill(k, dt, N * D);
    fill(v, dt, N * D);
    float q[R * D], m[R], l[R], acc[R * D];
    for (size_t i = 0; i < R * D; i++)
        q[i] = (float)(rng_u64() % 2000) / 20000.0f - 0.05f;
    const fasa__kernels *kern = fasa__kernels_get(FASA_CPU_AUTO);
    double best = 1e30;
    for (int r = 0; r < 2000; r++) {
        for (int i = 0; i < R; i++)
            m[i] = -INFINITY, l[i] = 0.0f;
        memset(acc, 0, sizeof acc);
        fasa__attn_job job;
        memset(&job, 0, sizeof job);
        job.q = q, job.n_rows = R, job.q_stride = D;
        job.k = k, job.k_stride = D, job.k_dtype = dt;
        job.v = v, job.v_stride = D, job.v_dtype = dt;
        job.head_dim = job.head_dim_v = D, job.n = N;
        job.m = m, job.l = l, job.acc = acc, job.acc_stride = D;
        double t0 = now_s();
        kern->attn(&job);
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    free(k);
    free(v);
    return 1e9 * best / N;
}

/* Label append: ns per token (one call per token, as a runtime does).
 * hot: the K rows come from a ring of 16 tokens that stays in cache, as
 * the row a runtime has just computed and stored does; otherwise token j
 * reads row j of the layer's cache (from L3 or DRAM). */
static double bench_append(const setup *s, int mode, int hot)
{
    const size_t n = s->t < 8192 ? s->t : 8192;
    size_t bytes = 0;
    const fasa_dtype ldt = (fasa_dtype)label_dtype(s->dt);
    check(fasa_label_cache_size(s->profile, 0, (fasa_gqa_mode)mode, ldt, n, &bytes),
          "label_cache_size", NULL);
    void *mem = xalloc(bytes);
    fasa_label_cache *c = NULL;
    check(fasa_label_cache_init(mem, bytes, s->profile, 0, (fasa_gqa_mode)mode, ldt, n, &c),
          "label_cache_init", NULL);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        fasa_label_cache_reset(c);
        double t0 = now_s();
        for (size_t j = 0; j < n; j++) {
            fasa_view one;
            fasa_view_make(&one, fasa__row(&s->layers[0].kv, hot ? j % 16 : j, 0), (fasa_dtype)s->dt, 1, HKV,
                           HD, HKV * HD, HD);
            check(fasa_label_cache_append(c, &one), "label_cache_append", NULL);
        }
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    free(mem);
    return 1e9 * best / (double)n;
}

/* Dense decode of f16 and of the quantized KV dtypes in the list,
 * interleaved round by round at each t and thread count (this machine's
 * speed drifts within a run, so a ratio is only fair between neighbours):
 * per dtype the median over rounds of each round's median time, and the
 * median of the per-round time ratios to f16. */
static void bench_dense_kv_dtypes(const size_t *ts, size_t n_t, const size_t *threads,
                                  size_t n_th, const int *dts, size_t n_dt, size_t pool,
                                  size_t reps_env)
{
    int kv[FASA__N_DTYPES], n_kv = 0;
    kv[n_kv++] = FASA_DTYPE_F16;
    for (size_t i = 0; i < n_dt; i++)
        if (fasa__dtype_quant(dts[i]))
            kv[n_kv++] = dts[i];
    if (n_kv < 2)
        return;
    enum { ROUNDS = 5 };
    printf("\ndense decode by KV dtype, interleaved (%d rounds; each round: every dtype's median "
           "over its reps, dtypes in turn)\n",
           ROUNDS);
    float *out = xalloc(HQ * HD * sizeof(float));
    fasa_view outv;
    fasa_view_make(&outv, out, FASA_DTYPE_F32, 1, HQ, HD, HQ * HD, HD);
    for (size_t ti = 0; ti < n_t; ti++) {
        const size_t t = ts[ti];
        size_t reps = reps_env ? reps_env : t >= 131072 ? 5 : t >= 65536 ? 9 : 15;
        reps = reps > 64 ? 64 : reps;
        setup s[FASA__N_DTYPES];
        for (int d = 0; d < n_kv; d++)
            setup_make(&s[d], t, kv[d], pool, 0);
        for (size_t th = 0; th < n_th; th++) {
            fasa_ctx_options o;
            fasa_ctx_options_default(&o);
            o.n_threads = (int)threads[th];
            fasa_ctx *ctx = NULL;
            check(fasa_ctx_create(&o, &ctx), "ctx_create", NULL);
            size_t wd = 0;
            for (int d = 0; d < n_kv; d++) {
                size_t w = 0;
                check(fasa_attend_dense_workspace_size(ctx, &s[d].qv, &s[d].layers[0].kv,
                                                       &s[d].layers[0].vv, &w),
                      "dense ws", ctx);
                wd = w > wd ? w : wd;
            }
            void *ws = xalloc(wd);
            double med[FASA__N_DTYPES][ROUNDS], ratio[FASA__N_DTYPES][ROUNDS], tm[64];
            size_t L[FASA__N_DTYPES] = {0};
            for (int r = 0; r < ROUNDS; r++)
                for (int d = 0; d < n_kv; d++) {
                    for (size_t i = 0; i <= reps; i++) {
                        const layer *ly = &s[d].layers[(L[d]++) % s[d].n_layers];
                        double t0 = now_s();
                        check(fasa_attend_dense(ctx, &s[d].qv, &ly->kv, &ly->vv, 0.0f, &outv, NULL,
                                                ws, wd),
                              "attend_dense", ctx);
                        if (i > 0)
                            tm[i - 1] = now_s() - t0;
                    }
                    med[d][r] = 1e3 * median(tm, reps);
                    ratio[d][r] = med[d][r] / med[0][r];
                }
            printf("  t %7zu, %zu thread(s):", t, threads[th]);
            for (int d = 0; d < n_kv; d++) {
                const double bytes = (double)t * HKV * 2.0 * (double)fasa__bytes(kv[d], HD);
                const double ms = median(med[d], ROUNDS);
                printf(" %s %.3f ms (%.1f GB/s)", dtype_name(kv[d]), ms, bytes / (ms * 1e-3) / 1e9);
                if (d > 0) {
                    const double rm = median(ratio[d], ROUNDS); /* sorts the rounds */
                    printf(" = %.2fx f16 (range %.2f-%.2f)", rm, ratio[d][0], ratio[d][ROUNDS - 1]);
                }
                printf("%s", d + 1 < n_kv ? ";" : "\n");
            }
            fflush(stdout);
            free(ws);
            fasa_ctx_destroy(ctx);
        }
        for (int d = 0; d < n_kv; d++)
            setup_free(&s[d]);
    }
    free(out);
}

int main(void)
{
    const int quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK")) != 0;
    size_t ts[MAX_LIST], budgets[MAX_LIST], threads[MAX_LIST];
    size_t n_t = parse_list("BENCH_T", quick ? "4096,16384" : "4096,16384,65536,131072", ts, MAX_LIST);
    size_t n_b = parse_list("BENCH_BUDGETS", "256,1024", budgets, MAX_LIST);
    size_t n_th = parse_list("BENCH_THREADS", quick ? "1" : "1,2", threads, MAX_LIST);
    const char *dts = getenv("BENCH_DTYPES");
    if (dts == NULL || *dts == 0)
        dts = quick ? "f16" : "f16,bf16,f32";
    int dtypes[FASA__N_DTYPES], n_dt = 0;
    if (strstr(dts, "f16") && (strstr(dts, "f16") == dts || strstr(dts, ",f16")))
        dtypes[n_dt++] = FASA_DTYPE_F16;
    if (strstr(dts, "bf16"))
        dtypes[n_dt++] = FASA_DTYPE_BF16;
    if (strstr(dts, "f32"))
        dtypes[n_dt++] = FASA_DTYPE_F32;
    if (strstr(dts, "q8_0"))
        dtypes[n_dt++] = FASA_DTYPE_Q8_0;
    if (strstr(dts, "q4_0"))
        dtypes[n_dt++] = FASA_DTYPE_Q4_0;
    const size_t reps_env = env_size("BENCH_REPS", 0);
    const size_t pool = env_size("BENCH_FC_POOL", 24);
    const char *outdir = getenv("BENCH_OUT") ? getenv("BENCH_OUT") : ".";
    hugepages = getenv("BENCH_HUGEPAGES") == NULL || atoi(getenv("BENCH_HUGEPAGES")) != 0;

    printf("libfasa bench: Llama-3-8B layer (Hq %d, Hkv %d, d %d), N_tip %d FCs per head from "
           "the %zu lowest-frequency FCs\n",
           HQ, HKV, HD, NTIP, pool);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    printf("buffers >= 4 MiB: %s\n", hugepages ? "2 MiB aligned, transparent huge pages requested "
                                                 "(madvise; BENCH_HUGEPAGES=0 disables)"
                                               : "plain pages (BENCH_HUGEPAGES=0)");
#else
    printf("buffers >= 4 MiB: plain pages (no madvise here)\n");
#endif
    printf("kernels: attn=%s topk=%s score_labels_f16=%s; cpu level %d; LLC %zu MiB\n",
           fasa_kernel_name("attn", FASA_CPU_AUTO), fasa_kernel_name("topk_hint", FASA_CPU_AUTO),
           fasa_kernel_name("score_labels_f16", FASA_CPU_AUTO), fasa_cpu_best_level(),
           llc_bytes() >> 20);

    const double peak = fma_peak();
    printf("fp32 FMA peak, one thread: %.1f GFLOP/s; dense decode with G = %d needs %d "
           "flop per K/V element pair, so one thread cannot exceed %.1f GB/s of f16 or "
           "%.1f GB/s of f32 K/V\n",
           peak, HQ / HKV, 4 * HQ / HKV, peak / (4.0 * HQ / HKV) * 4.0,
           peak / (4.0 * HQ / HKV) * 8.0);

    if (peak > 0.0) {
        /* 64 FMA instructions of 16 lanes per token and KV head (G = 4) */
        const double bound_ns = 64.0 * 32.0 / peak, ghz = peak / 32.0;
        printf("attention kernel in L1 (G = 4, head_dim 128), ns per token and KV head: ");
        static const int l1_dts[5] = {FASA_DTYPE_F16, FASA_DTYPE_BF16, FASA_DTYPE_F32,
                                      FASA_DTYPE_Q8_0, FASA_DTYPE_Q4_0};
        for (int i = 0; i < 5; i++) {
            double ns = bench_attn_l1(l1_dts[i]);
            printf("%s %.1f (%.0f cycles at %.2f GHz)%s", dtype_name(l1_dts[i]), ns, ns * ghz, ghz,
                   i < 4 ? ", " : "");
        }
        printf("; FMA bound %.1f ns (64 cycles)\n", bound_ns);
    }

    /* read bandwidth, same run */
    size_t bw_n = env_size("BENCH_BW_MB", 1024) * (1u << 20) / sizeof(float);
    float *bwbuf = xalloc(bw_n * sizeof(float));
    for (size_t i = 0; i < bw_n; i++)
        bwbuf[i] = (float)(i & 7);
    double bw[MAX_LIST];
    for (size_t i = 0; i < n_th; i++) {
        bw[i] = read_bandwidth(bwbuf, bw_n, (int)threads[i], 7);
        printf("read bandwidth, %zu thread(s): %.1f GB/s (median of 7 passes over %zu MiB)\n",
               threads[i], bw[i], bw_n * sizeof(float) >> 20);
    }

    char path[1024];
    snprintf(path, sizeof path, "%s/topk.csv", outdir);
    FILE *ftk = fopen(path, "w");
    if (ftk)
        fprintf(ftk, "t,k,topk_hint_us,topk_us,qsort_us,append_head_ns,append_group_ns,"
                     "append_head_cold_ns,append_group_cold_ns,dtype\n");

    printf("\n%7s %-5s %3s %-11s %6s %9s %9s %9s %10s %9s %8s %8s %7s\n", "t", "kv", "thr",
           "path", "budget", "tip_ms", "topk_ms", "fac_ms", "total_ms", "MB_read", "GB/s",
           "of_bw", "vs_dense");

    const int kv_only = getenv("BENCH_KV_ONLY") && atoi(getenv("BENCH_KV_ONLY")) != 0;
    for (int di = 0; di < (kv_only ? 0 : n_dt); di++)
        for (size_t ti = 0; ti < n_t; ti++) {
            const size_t t = ts[ti];
            const int dt = dtypes[di];
            setup s;
            setup_make(&s, t, dt, pool, 1);
            size_t reps = reps_env ? reps_env : t >= 131072 ? 5 : t >= 65536 ? 9 : 15;
            if (reps > 64)
                reps = 64;
            const double dense_bytes = (double)t * HKV * 2.0 * (double)fasa__bytes(dt, HD);
            float *out = xalloc(HQ * HD * sizeof(float));
            float *naive_sc = xalloc((size_t)HQ * t * sizeof(float));
            fasa_view outv;
            fasa_view_make(&outv, out, FASA_DTYPE_F32, 1, HQ, HD, HQ * HD, HD);
            size_t bmax = 0;
            for (size_t b = 0; b < n_b; b++)
                bmax = budgets[b] > bmax ? budgets[b] : bmax;
            size_t stride = 0;
            check(fasa_predict_max_selected((double)bmax, t, &stride), "max_selected", NULL);
            uint32_t *idx = xalloc((size_t)HQ * stride * sizeof(uint32_t));
            uint32_t *counts = xalloc(HQ * sizeof(uint32_t));
            float *scores = xalloc((size_t)HQ * t * sizeof(float));

            for (size_t th = 0; th < n_th; th++) {
                const int nt = (int)threads[th];
                bw[th] = read_bandwidth(bwbuf, bw_n, nt, 7);
                printf("  read bandwidth now, %d thread(s): %.1f GB/s\n", nt, bw[th]);
                fasa_ctx_options o;
                fasa_ctx_options_default(&o);
                o.n_threads = nt;
                fasa_ctx *ctx = NULL;
                check(fasa_ctx_create(&o, &ctx), "ctx_create", NULL);
                size_t wd = 0, wp = 0, wa = 0, w;
                check(fasa_attend_dense_workspace_size(ctx, &s.qv, &s.layers[0].kv,
                                                       &s.layers[0].vv, &wd),
                      "dense ws", ctx);
                for (int m = 0; m < 2; m++) {
                    check(fasa_predict_workspace_size(ctx, s.profile, &s.qv, t, (fasa_gqa_mode)m, &w),
                          "predict ws", ctx);
                    wp = w > wp ? w : wp;
                    check(fasa_attend_workspace_size(ctx, &s.qv, &s.layers[0].kv, &s.layers[0].vv,
                                                     (fasa_gqa_mode)m, stride, &w),
                          "attend ws", ctx);
                    wa = w > wa ? w : wa;
                }
                void *wsd = xalloc(wd), *wsp = xalloc(wp), *wsa = xalloc(wa);
                double tm[64], tm2[64], tm3[64], tk[8];
                size_t L = 0;
#define NEXT_LAYER (&s.layers[(L++) % s.n_layers])

                /* dense */
                for (size_t r = 0; r <= reps; r++) {
                    const layer *ly = NEXT_LAYER;
                    double t0 = now_s();
                    check(fasa_attend_dense(ctx, &s.qv, &ly->kv, &ly->vv, 0.0f, &outv, NULL, wsd, wd),
                          "attend_dense", ctx);
                    if (r > 0)
                        tm[r - 1] = now_s() - t0;
                }
                const double dense_best = 1e3 * minimum(tm, reps);
                const double dense_ms = 1e3 * median(tm, reps);
                row rr;
                memset(&rr, 0, sizeof rr);
                rr.t = t;
                rr.dt = dt;
                rr.threads = nt;
                rr.bw = bw[th];
                rr.path = "dense";
                rr.total_ms = rr.fac_ms = dense_ms;
                rr.best_ms = dense_best;
                rr.bytes = dense_bytes;
                rr.gbps = dense_bytes / (dense_ms * 1e-3) / 1e9;
                rr.bw_frac = rr.gbps / bw[th];
                rr.speedup = 1.0;
                add_row(&rr);

                /* naive */
                size_t nreps = t >= 65536 ? 1 : 3;
                for (size_t r = 0; r < nreps; r++) {
                    const layer *ly = NEXT_LAYER;
                    double t0 = now_s();
                    naive_attention(&s, ly, out, naive_sc, nt);
                    tm[r] = now_s() - t0;
                }
                rr.path = "naive";
                rr.best_ms = 1e3 * minimum(tm, nreps);
                rr.total_ms = rr.fac_ms = 1e3 * median(tm, nreps);
                rr.gbps = dense_bytes / (rr.total_ms * 1e-3) / 1e9;
                rr.bw_frac = rr.gbps / bw[th];
                rr.speedup = dense_ms / rr.total_ms;
                add_row(&rr);

                for (size_t bi = 0; bi < n_b; bi++) {
                    const double budget = (double)budgets[bi];
                    for (int m = 0; m < 2; m++) {
                        const size_t n_sets = m == FASA_GQA_PER_HEAD ? HQ : HKV;
                        double sel_rows = 0.0;
                        for (size_t r = 0; r <= reps; r++) {
                            layer *ly = NEXT_LAYER;
                            double t0 = now_s();
                            check(fasa_predict_cached(ctx, s.profile, 0, (fasa_gqa_mode)m, &s.qv,
                                                      ly->cache[m], budget, idx, stride, counts,
                                                      NULL, wsp, wp),
                                  "predict_cached", ctx);
                            double t1 = now_s();
                            check(fasa_attend(ctx, (fasa_gqa_mode)m, &s.qv, &ly->kv, &ly->vv, idx,
                                              stride, counts, 0.0f, &outv, NULL, wsa, wa),
                                  "attend", ctx);
                            double t2 = now_s();
                            if (r > 0) {
                                tm[r - 1] = t1 - t0;
                                tm2[r - 1] = t2 - t1;
                                tm3[r - 1] = t2 - t0;
                            }
                        }
                        for (size_t j = 0; j < n_sets; j++)
                            sel_rows += counts[j];
                        /* top-k share: the library's kernel on this step's
                         * real scores, summed over sets, one thread */
                        double topk_ms = 0.0;
                        if (nt == 1) {
                            check(fasa_predict_cached(ctx, s.profile, 0, (fasa_gqa_mode)m, &s.qv,
                                                      s.layers[0].cache[m], budget, idx, stride,
                                                      counts, scores, wsp, wp),
                                  "predict_cached(scores)", ctx);
                            const size_t k = (size_t)budget < t ? (size_t)budget : t;
                            const fasa__kernels *kern = fasa__kernels_get(FASA_CPU_AUTO);
                            void *scr = xalloc(fasa__topk_scratch_size(t, k));
                            for (size_t j = 0; j < n_sets; j++) {
                                /* steady state: tau from the previous call,
                                 * as the label cache's memo provides */
                                float tau = NAN;
                                kern->topk_hint(scores + j * t, t, k, idx, scr, &tau);
                                for (int rep = 0; rep < 5; rep++) {
                                    double t0 = now_s();
                                    kern->topk_hint(scores + j * t, t, k, idx, scr, &tau);
                                    tk[rep] = now_s() - t0;
                                }
                                topk_ms += 1e3 * median(tk, 5);
                            }
                            free(scr);
                        }
                        rr.path = m == FASA_GQA_PER_HEAD ? "fasa_head" : "fasa_group";
                        rr.budget = (size_t)budget;
                        rr.tip_ms = 1e3 * median(tm, reps);
                        rr.fac_ms = 1e3 * median(tm2, reps);
                        rr.best_ms = 1e3 * minimum(tm3, reps);
                        rr.total_ms = 1e3 * median(tm3, reps);
                        rr.topk_ms = nt == 1 ? topk_ms : NAN;
                        rr.bytes = (double)t * (double)s.label_bytes_tok[m] +
                                   sel_rows * 2.0 * (double)fasa__bytes(dt, HD);
                        rr.gbps = rr.bytes / (rr.total_ms * 1e-3) / 1e9;
                        rr.bw_frac = rr.gbps / bw[th];
                        rr.speedup = dense_ms / rr.total_ms;
                        add_row(&rr);
                        rr.budget = 0;
                        rr.tip_ms = rr.topk_ms = 0.0;
                    }
                }
                free(wsd);
                free(wsp);
                free(wsa);
                fasa_ctx_destroy(ctx);
            }

            /* top-k alone and label append (one thread) */
            if (ftk) {
                size_t wp1 = 0;
                check(fasa_predict_workspace_size(NULL, s.profile, &s.qv, t, FASA_GQA_PER_HEAD, &wp1),
                      "predict ws", NULL);
                void *ws1 = xalloc(wp1);
                check(fasa_predict_cached(NULL, s.profile, 0, FASA_GQA_PER_HEAD, &s.qv,
                                          s.layers[0].cache[0], (double)bmax, idx, stride, counts,
                                          scores, ws1, wp1),
                      "predict_cached", NULL);
                free(ws1);
                double app_h = bench_append(&s, FASA_GQA_PER_HEAD, 1);
                double app_g = bench_append(&s, FASA_GQA_GROUP_SHARED, 1);
                double app_hc = bench_append(&s, FASA_GQA_PER_HEAD, 0);
                double app_gc = bench_append(&s, FASA_GQA_GROUP_SHARED, 0);
                for (size_t bi = 0; bi < n_b; bi++) {
                    size_t k = budgets[bi] < t ? budgets[bi] : t;
                    double uh, up, uq;
                    bench_topk(scores, t, k, &uh, &up, &uq);
                    printf("top-k t=%zu k=%zu (%s): filter+hint %.1f us, filter %.1f us, qsort "
                           "%.1f us; label append %.1f ns/token (per-head cache), %.1f "
                           "(group cache); K row not in cache: %.1f, %.1f\n",
                           t, k, dtype_name(dt), uh, up, uq, app_h, app_g, app_hc, app_gc);
                    fprintf(ftk, "%zu,%zu,%.3f,%.3f,%.3f,%.2f,%.2f,%.2f,%.2f,%s\n", t, k, uh, up,
                            uq, app_h, app_g, app_hc, app_gc, dtype_name(dt));
                }
            }
            free(out);
            free(naive_sc);
            free(idx);
            free(counts);
            free(scores);
            setup_free(&s);
        }
    bench_dense_kv_dtypes(ts, n_t, threads, n_th, dtypes, (size_t)n_dt, pool, reps_env);
    free(bwbuf);
    if (ftk)
        fclose(ftk);

    snprintf(path, sizeof path, "%s/results.csv", outdir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench: cannot write %s\n", path);
        return 1;
    }
    fprintf(f, "t,kv_dtype,threads,path,budget,tip_ms,topk_ms,fac_ms,total_ms,best_ms,bytes,"
               "gbps,read_bw_gbps,frac_of_bw,speedup_vs_dense\n");
    for (size_t i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        fprintf(f, "%zu,%s,%d,%s,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,%.0f,%.3f,%.3f,%.4f,%.3f\n", r->t,
                dtype_name(r->dt), r->threads, r->path, r->budget, r->tip_ms, r->topk_ms,
                r->fac_ms, r->total_ms, r->best_ms, r->bytes, r->gbps, r->bw, r->bw_frac,
                r->speedup);
    }
    fclose(f);
    printf("\nwrote %s and %s/topk.csv\n", path, outdir);
    return 0;
}
