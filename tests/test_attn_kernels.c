/*
 * test_attn_kernels.c - every registered `attn` kernel the host can run
 * against the scalar reference fasa__attn_ref, plus the vectorized exp
 * against expf.
 *
 * Cases: n = 0, 1, 15, 16, 17, 63, 64, 65, 1000 tokens; head_dim 64, 80,
 * 128, 256 and tail sizes (36, 20); head_dim_v != head_dim; 1..8, 16 and 17
 * rows (17 > the kernels' 16-row pass); index lists and ranges; all 25
 * (K dtype, V dtype) pairs of F32/F16/BF16/Q8_0/Q4_0 (block formats: head
 * dims 32..256, rows padded by whole blocks); pointers offset by one
 * element (block formats: one byte, so scales and quants are read at odd
 * addresses); a fresh state
 * and a state carried over from a first half of the tokens (exercises the
 * rescale of an existing acc); very spread logits (exp underflow).
 * Tolerance on out = acc / l: 1e-5 * max|v| * (1 + log2 n), and on
 * lse = m + log(l): 1e-5 * (1 + |lse|) * (1 + log2 n).
 * Then the threaded public calls (fasa_attend_dense decode and prefill,
 * fasa_attend in both GQA modes, sets longer than one KV chunk): output
 * bit-identical for 1..4 threads, and within 1e-5 * max|v| * (1 + log2 t)
 * of double precision. FASA_TEST_LEVEL=<level> tests that level's kernels
 * only (the public calls then run at that level).
 */
#include "internal.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "simd/exp_x86.h"
#endif
#if defined(__aarch64__)
#include <arm_neon.h>

#include "simd/exp_neon.h"
#endif

typedef struct kern {
    const char *name;
    int lvl;
    fasa__attn_fn run;
} kern;

static kern g_kernels[16];
static size_t g_n_kernels;

static void collect_kernels(void)
{
#define FASA_KERNEL(op, level, fn, slot, type)                                           \
    if (strcmp(#op, "attn") == 0 && (level) != FASA_CPU_SCALAR && g_n_kernels < 16) {    \
        if (test_level_selected(level)) {                                                 \
            g_kernels[g_n_kernels].name = #fn;                                            \
            g_kernels[g_n_kernels].lvl = (level);                                       \
            g_kernels[g_n_kernels].run = (fasa__attn_fn)(void (*)(void))fn;                \
            g_n_kernels++;                                                                \
        } else if (test_forced_level() < 0) {                                             \
            printf("SKIP test_attn_kernels/%s: this CPU cannot run level %s\n", #fn,        \
                   test_level_get(level)->name);                                          \
        }                                                                                 \
    }
#include "kernels.def"
#undef FASA_KERNEL
}

/* One buffer of n_tok rows with a given stride, elements at +offset. */
typedef struct buf {
    void *mem;
    void *data;
} buf;

static void buf_make(buf *b, int dtype, size_t n_tok, size_t stride, size_t dim, size_t offset,
                     double scale)
{
    if (test_dtype_quant(dtype)) { /* offset in bytes; rows quantized whole */
        size_t bytes = test_dtype_bytes(dtype, n_tok ? (n_tok - 1) * stride + dim : 32) + offset;
        b->mem = test_xmalloc(bytes);
        memset(b->mem, 0xff, bytes); /* NaN scales in the padding */
        b->data = (char *)b->mem + offset;
        float *row = test_xmalloc(dim * sizeof(float));
        for (size_t t = 0; t < n_tok; t++) {
            for (size_t i = 0; i < dim; i++)
                row[i] = (float)(scale * test_rand_normal());
            test_quantize_row(dtype, row, dim, (char *)b->data + test_dtype_bytes(dtype, t * stride));
        }
        free(row);
        return;
    }
    size_t es = fasa__dtype_size(dtype);
    size_t elems = (n_tok ? (n_tok - 1) * stride + dim : 1) + offset;
    b->mem = test_xmalloc(elems * es);
    memset(b->mem, 0xff, elems * es); /* NaN padding: reading it shows */
    b->data = (char *)b->mem + offset * es;
    for (size_t t = 0; t < n_tok; t++)
        for (size_t i = 0; i < dim; i++)
            test_store(b->data, dtype, t * stride + i, scale * test_rand_normal());
}

typedef struct state {
    float *m, *l, *acc, *acc_mem;
} state;

static void state_make(state *s, size_t rows, size_t acc_stride, size_t offset)
{
    s->m = test_xmalloc(rows * sizeof(float));
    s->l = test_xmalloc(rows * sizeof(float));
    s->acc_mem = test_xmalloc((rows * acc_stride + offset) * sizeof(float));
    s->acc = s->acc_mem + offset;
    for (size_t r = 0; r < rows; r++) {
        s->m[r] = -INFINITY;
        s->l[r] = 0.0f;
        for (size_t c = 0; c < acc_stride; c++)
            s->acc[r * acc_stride + c] = 0.0f;
    }
}

static void state_copy(state *dst, const state *src, size_t rows, size_t acc_stride)
{
    memcpy(dst->m, src->m, rows * sizeof(float));
    memcpy(dst->l, src->l, rows * sizeof(float));
    memcpy(dst->acc, src->acc, rows * acc_stride * sizeof(float));
}

static void state_free(state *s)
{
    free(s->m);
    free(s->l);
    free(s->acc_mem);
}

typedef struct cfg {
    int kdt, vdt;
    size_t n, d, dv, rows;
    int use_idx, misalign, carry;
    double qscale;
} cfg;

static size_t g_cases;

static void run_case(const kern *kn, const cfg *c)
{
    const size_t t_all = c->use_idx ? c->n * 3 + 5 : c->n + 7; /* cache tokens */
    const size_t off = c->misalign ? 1 : 0;
    const size_t kstride = c->d + (test_dtype_quant(c->kdt) ? 32 : 3);
    const size_t vstride = c->dv + (test_dtype_quant(c->vdt) ? 64 : 5);
    const size_t qs = c->d + 1, accs = c->dv + 2;
    buf k, v, q;
    buf_make(&k, c->kdt, t_all, kstride, c->d, off, 1.0);
    buf_make(&v, c->vdt, t_all, vstride, c->dv, off, 1.0);
    buf_make(&q, FASA_DTYPE_F32, c->rows, qs, c->d, off, c->qscale / sqrt((double)c->d));

    uint32_t *idx = NULL;
    size_t first = 0;
    if (c->use_idx) { /* sorted, random gaps */
        idx = test_xmalloc((c->n + 1) * sizeof(uint32_t));
        size_t pos = test_rand_range(0, 2);
        for (size_t i = 0; i < c->n; i++) {
            idx[i] = (uint32_t)pos;
            pos += test_rand_range(1, 3);
        }
    } else {
        first = test_rand_range(0, 7);
    }
    double vmax = 0.0;
    for (size_t t = 0; t < t_all; t++)
        for (size_t i = 0; i < c->dv; i++) {
            double a = fabs((double)fasa__load(v.data, c->vdt, t * vstride + i));
            vmax = a > vmax ? a : vmax;
        }

    state sr, sk;
    state_make(&sr, c->rows, accs, 0);
    state_make(&sk, c->rows, accs, off);
    fasa__attn_job job = {0};
    job.q = q.data;
    job.n_rows = c->rows;
    job.q_stride = qs;
    job.k = k.data;
    job.k_stride = kstride;
    job.k_dtype = c->kdt;
    job.v = v.data;
    job.v_stride = vstride;
    job.v_dtype = c->vdt;
    job.head_dim = c->d;
    job.head_dim_v = c->dv;
    job.acc_stride = accs;

    size_t split = c->carry ? c->n / 2 : 0;
    if (split > 0) { /* first half by the reference into both states */
        job.idx = idx;
        job.first = first;
        job.n = split;
        job.m = sr.m;
        job.l = sr.l;
        job.acc = sr.acc;
        fasa__attn_ref(&job);
        state_copy(&sk, &sr, c->rows, accs);
    }
    job.idx = idx ? idx + split : NULL;
    job.first = first + split;
    job.n = c->n - split;
    job.m = sr.m;
    job.l = sr.l;
    job.acc = sr.acc;
    fasa__attn_ref(&job);
    job.m = sk.m;
    job.l = sk.l;
    job.acc = sk.acc;
    kn->run(&job);

    double lg = 1.0 + (c->n > 1 ? log2((double)c->n) : 0.0);
    double tol_o = 1e-5 * (vmax > 0 ? vmax : 1.0) * lg;
    double worst_o = 0.0, worst_l = 0.0;
    int bad = 0;
    for (size_t r = 0; r < c->rows; r++) {
        if (c->n == 0) {
            bad |= !(sk.m[r] == -INFINITY && sk.l[r] == 0.0f);
            for (size_t i = 0; i < c->dv; i++)
                bad |= sk.acc[r * accs + i] != 0.0f;
            continue;
        }
        double lse_r = sr.m[r] + log(sr.l[r]), lse_k = sk.m[r] + log(sk.l[r]);
        double el = fabs(lse_r - lse_k);
        if (!(el <= 1e-5 * (1.0 + fabs(lse_r)) * lg))
            bad = 1;
        worst_l = el > worst_l ? el : worst_l;
        for (size_t i = 0; i < c->dv; i++) {
            double o_r = sr.acc[r * accs + i] / sr.l[r], o_k = sk.acc[r * accs + i] / sk.l[r];
            double e = fabs(o_r - o_k);
            if (!(e <= tol_o))
                bad = 1;
            worst_o = e > worst_o ? e : worst_o;
        }
        /* the kernel must not write acc padding */
        for (size_t i = c->dv; i < accs; i++)
            bad |= sk.acc[r * accs + i] != 0.0f;
    }
    CHECKF(!bad,
           "%s k=%s v=%s n=%zu d=%zu dv=%zu rows=%zu %s misalign=%d carry=%d qscale=%g: "
           "max|dout| %.3g (tol %.3g), max|dlse| %.3g",
           kn->name, test_dtype_name(c->kdt), test_dtype_name(c->vdt), c->n, c->d, c->dv,
           c->rows, c->use_idx ? "idx" : "range", c->misalign, c->carry, c->qscale, worst_o,
           tol_o, worst_l);
    g_cases++;
    state_free(&sr);
    state_free(&sk);
    free(idx);
    free(k.mem);
    free(v.mem);
    free(q.mem);
}

static void test_kernel(const kern *kn)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 63, 64, 65, 1000};
    static const size_t dims[] = {64, 80, 128, 256, 36, 20};
    static const size_t qdims[] = {64, 96, 128, 256, 32, 160}; /* whole blocks */
    static const size_t rows[] = {1, 2, 3, 4, 5, 6, 7, 8, 16, 17};
    size_t ci = 0;
    for (int kdt = 0; kdt < 5; kdt++)
        for (int vdt = 0; vdt < 5; vdt++)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
                /* pairs with a block format: one case per size (the
                 * options still vary with ci), to keep valgrind short */
                for (int rep = 0; rep < 3; rep++, ci++) {
                    const int quant = test_dtype_quant(kdt) || test_dtype_quant(vdt);
                    if (quant && rep != (int)(si % 3))
                        continue;
                    cfg c;
                    c.kdt = kdt;
                    c.vdt = vdt;
                    c.n = sizes[si];
                    c.d = quant ? qdims[ci % 6] : dims[ci % 6];
                    c.dv = (ci % 5 == 3) ? c.d / 2 + 4 : c.d;
                    if (test_dtype_quant(vdt)) /* whole blocks: 32 .. 128 */
                        c.dv = (ci % 5 == 3) ? (c.d / 2 + 31) / 32 * 32 : c.d;
                    c.rows = rows[(ci * 7 + si) % 10];
                    if (c.n == 1000 && c.rows > 8) /* keep the run short */
                        c.rows = 4;
                    c.use_idx = (int)(ci & 1);
                    c.misalign = (int)((ci >> 1) & 1);
                    c.carry = rep == 2;
                    c.qscale = (ci % 11 == 5) ? 60.0 : 3.0;
                    run_case(kn, &c);
                }
    /* every row count x the main head dims, one mid size; f16 and q8_0 */
    static const int eq[2] = {FASA_DTYPE_F16, FASA_DTYPE_Q8_0};
    for (int e = 0; e < 2; e++)
        for (size_t d = 0; d < 4; d++)
            for (size_t ri = 0; ri < 10; ri++) {
                size_t dd = e ? qdims[d] : dims[d];
                cfg c = {eq[e], eq[e], 65, dd, dd, rows[ri], (int)(ri & 1), (int)(d & 1),
                         (int)(ri % 3 == 0), 3.0};
                run_case(kn, &c);
            }
}

/* ---------------------------------------------------------------- exp */

static int64_t ulp_diff(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0)
        ia = INT32_MIN - ia;
    if (ib < 0)
        ib = INT32_MIN - ib;
    int64_t d = (int64_t)ia - (int64_t)ib;
    return d < 0 ? -d : d;
}

/* Largest ulp error of exp_fn over [-87.3, 88] (through 4-lane groups) and
 * checks of -inf, very negative, NaN and 0. */
static void check_exp(const char *name, void (*exp4)(const float *in, float *out))
{
    int64_t worst = 0;
    float worst_x = 0.0f;
    float in[4], out[4];
    for (int i = 0; i < 200000; i += 4) {
        for (int j = 0; j < 4; j++)
            in[j] = -87.3f + (float)(i + j) * (175.3f / 200000.0f);
        exp4(in, out);
        for (int j = 0; j < 4; j++) {
            float want = (float)exp((double)in[j]);
            int64_t u = ulp_diff(out[j], want);
            if (u > worst) {
                worst = u;
                worst_x = in[j];
            }
        }
    }
    CHECKF(worst <= 3, "%s: max error %lld ulp at x=%.9g", name, (long long)worst, (double)worst_x);
    test_note("%s: max error %lld ulp over [-87.3, 88]", name, (long long)worst);
    in[0] = -INFINITY;
    in[1] = -1000.0f;
    in[2] = NAN;
    in[3] = 0.0f;
    exp4(in, out);
    CHECKF(out[0] == 0.0f && out[1] == 0.0f && isnan(out[2]) && out[3] == 1.0f,
           "%s special values: %g %g %g %g", name, (double)out[0], (double)out[1],
           (double)out[2], (double)out[3]);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static void exp4_avx2(const float *in, float *out)
{
    float a[8] = {in[0], in[1], in[2], in[3], in[3], in[2], in[1], in[0]}, b[8];
    _mm256_storeu_ps(b, fasa__exp_avx2(_mm256_loadu_ps(a)));
    memcpy(out, b, 4 * sizeof(float));
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void exp4_avx512(const float *in,
                                                                            float *out)
{
    float a[16], b[16];
    for (int i = 0; i < 16; i++)
        a[i] = in[i % 4];
    _mm512_storeu_ps(b, fasa__exp_avx512(_mm512_loadu_ps(a)));
    memcpy(out, b + 12, 4 * sizeof(float));
}
#endif
#if defined(__aarch64__)
static void exp4_neon(const float *in, float *out) { vst1q_f32(out, fasa__exp_neon(vld1q_f32(in))); }
#endif

/* ------------------------------------------- threaded public calls */

/* Double-precision attention of query (i, h) over tokens tok[0..n). */
static void ref_attention(const test_tensor *q, const test_tensor *k, const test_tensor *v,
                          size_t i, size_t h, size_t kvh, const uint32_t *tok, size_t n,
                          double scale, double *outrow)
{
    size_t d = q->view.head_dim, dv = v->view.head_dim;
    double mx = -INFINITY;
    double *s = test_xmalloc(n * sizeof(double));
    for (size_t j = 0; j < n; j++) {
        double a = 0.0;
        for (size_t c = 0; c < d; c++)
            a += test_tensor_get(q, i, h, c) * test_tensor_get(k, tok[j], kvh, c);
        s[j] = a * scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    double z = 0.0;
    for (size_t c = 0; c < dv; c++)
        outrow[c] = 0.0;
    for (size_t j = 0; j < n; j++) {
        double e = exp(s[j] - mx);
        z += e;
        for (size_t c = 0; c < dv; c++)
            outrow[c] += e * test_tensor_get(v, tok[j], kvh, c);
    }
    for (size_t c = 0; c < dv; c++)
        outrow[c] /= z;
    free(s);
}

/* One configuration through fasa_attend_dense (mode < 0) or fasa_attend,
 * for 1..4 threads: output and lse must be bit-identical to 1 thread, and
 * (for a few rows) within tolerance of double precision. */
static void check_threads_case(size_t n_q, size_t t, size_t hq, size_t hkv, size_t d, int mode,
                               size_t set_len, int kv_dtype)
{
    test_tensor q, k, v, out;
    test_tensor_make(&q, FASA_DTYPE_F32, n_q, hq, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&k, kv_dtype, t, hkv, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&v, kv_dtype, t, hkv, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&out, FASA_DTYPE_F32, n_q, hq, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_randn(&q, 2.0);
    test_tensor_randn(&k, 1.0);
    test_tensor_randn(&v, 1.0);

    size_t n_sets = mode == FASA_GQA_PER_HEAD ? hq : hkv;
    size_t stride = set_len;
    uint32_t *idx = NULL, *counts = NULL;
    if (mode >= 0) { /* random sorted subsets of each query's visible tokens */
        idx = test_xmalloc(n_q * n_sets * stride * sizeof(uint32_t));
        counts = test_xmalloc(n_q * n_sets * sizeof(uint32_t));
        for (size_t i = 0; i < n_q; i++) {
            size_t t_i = t - n_q + i + 1;
            for (size_t s = 0; s < n_sets; s++) {
                uint32_t *row = idx + (i * n_sets + s) * stride;
                size_t cnt = 0;
                for (size_t j = 0; j < t_i && cnt < stride; j++) /* selection sampling */
                    if (test_rand_uniform() * (double)(t_i - j) < (double)(stride - cnt))
                        row[cnt++] = (uint32_t)j;
                counts[i * n_sets + s] = (uint32_t)cnt;
            }
        }
    }
    size_t n_out = n_q * hq * d;
    float *first = test_xmalloc(n_out * sizeof(float));
    float *lse = test_xmalloc(n_q * hq * sizeof(float));
    float *lse1 = test_xmalloc(n_q * hq * sizeof(float));
    int identical = 1, ok_all = 1;
    for (int nt = 1; nt <= 4; nt++) {
        fasa_ctx_options o;
        fasa_ctx_options_default(&o);
        o.n_threads = nt;
        fasa_ctx *ctx = NULL;
        if (!CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK))
            break;
        size_t ws = 0;
        fasa_status st = mode < 0
                             ? fasa_attend_dense_workspace_size(ctx, &q.view, &k.view, &v.view, &ws)
                             : fasa_attend_workspace_size(ctx, &q.view, &k.view, &v.view,
                                                          (fasa_gqa_mode)mode, stride, &ws);
        CHECK_STATUS(st, FASA_OK);
        void *w = test_xmalloc(ws);
        st = mode < 0 ? fasa_attend_dense(ctx, &q.view, &k.view, &v.view, 0.0f, &out.view, lse, w, ws)
                      : fasa_attend(ctx, (fasa_gqa_mode)mode, &q.view, &k.view, &v.view, idx,
                                    stride, counts, 0.0f, &out.view, lse, w, ws);
        ok_all &= CHECKF(st == FASA_OK, "threads %d: %s (%s)", nt, fasa_status_name(st),
                         fasa_ctx_last_error(ctx));
        if (nt == 1) {
            memcpy(first, out.mem, n_out * sizeof(float));
            memcpy(lse1, lse, n_q * hq * sizeof(float));
        } else if (memcmp(first, out.mem, n_out * sizeof(float)) != 0 ||
                   memcmp(lse1, lse, n_q * hq * sizeof(float)) != 0) {
            identical = 0;
        }
        free(w);
        fasa_ctx_destroy(ctx);
    }
    CHECKF(identical, "%s n_q=%zu t=%zu: output differs between thread counts",
           mode < 0 ? "dense" : mode == FASA_GQA_PER_HEAD ? "per-head" : "group", n_q, t);

    /* accuracy of the chunked merge: last query, first and last head */
    double *want = test_xmalloc(d * sizeof(double));
    uint32_t *all = test_xmalloc(t * sizeof(uint32_t));
    for (size_t j = 0; j < t; j++)
        all[j] = (uint32_t)j;
    double worst = 0.0;
    size_t i = n_q - 1;
    for (size_t hh = 0; hh < 2; hh++) {
        size_t h = hh ? hq - 1 : 0, g = h / (hq / hkv);
        const uint32_t *tok = all;
        size_t n = t;
        if (mode >= 0) {
            size_t set = i * n_sets + (mode == FASA_GQA_PER_HEAD ? h : g);
            tok = idx + set * stride;
            n = counts[set];
        }
        ref_attention(&q, &k, &v, i, h, g, tok, n, 1.0 / sqrt((double)d), want);
        for (size_t c = 0; c < d; c++) {
            double e = fabs(want[c] - first[(i * hq + h) * d + c]);
            worst = e > worst ? e : worst;
        }
    }
    double vmax = 5.5; /* N(0,1) values over a few thousand draws */
    /* block formats decode exactly in f32: the f32 bound holds for them too */
    const int exact = kv_dtype == FASA_DTYPE_F32 || test_dtype_quant(kv_dtype);
    CHECKF(worst <= 1e-5 * vmax * (1.0 + log2((double)t)) || !exact,
           "%s n_q=%zu t=%zu mode=%d: max abs error %.3g vs double", test_dtype_name(kv_dtype),
           n_q, t, mode, worst);
    if (exact)
        test_note("threads %s n_q=%zu t=%zu mode=%d: max abs error %.3g vs double, threads 1-4 %s",
                  test_dtype_name(kv_dtype), n_q, t, mode, worst,
                  identical ? "bit-identical" : "DIFFERENT");
    (void)ok_all;
    free(want);
    free(all);
    free(first);
    free(lse);
    free(lse1);
    free(idx);
    free(counts);
    test_tensor_free(&q);
    test_tensor_free(&k);
    test_tensor_free(&v);
    test_tensor_free(&out);
}

/* fasa_predict with 1..4 threads: identical indices, counts and scores. */
static void check_predict_threads(void)
{
    const size_t hq = 8, hkv = 2, d = 64, t = 3000, n_q = 2, n_fc = 8;
    fasa_model_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.struct_size = sizeof sh;
    sh.n_layers = 1;
    sh.n_q_heads = hq;
    sh.n_kv_heads = hkv;
    sh.head_dim = d;
    sh.pair_layout = FASA_PAIRS_HALF;
    uint32_t *fcs = test_random_fcs(1, hq, n_fc, d);
    fasa_profile *prof = NULL;
    if (!CHECK_STATUS(fasa_profile_create(&sh, fcs, n_fc, NULL, &prof), FASA_OK)) {
        free(fcs);
        return;
    }
    test_tensor q, k;
    test_tensor_make(&q, FASA_DTYPE_F32, n_q, hq, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&k, FASA_DTYPE_F16, t, hkv, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_randn(&q, 1.0);
    test_tensor_randn(&k, 1.0);
    for (int mode = 0; mode < 2; mode++) {
        size_t n_sets = mode == FASA_GQA_PER_HEAD ? hq : hkv, stride = 0;
        fasa_predict_max_selected(300.0, t, &stride);
        size_t ni = n_q * n_sets * stride, ns = n_q * n_sets * t;
        uint32_t *idx = test_xmalloc(ni * 4), *idx1 = test_xmalloc(ni * 4);
        uint32_t *cnt = test_xmalloc(n_q * n_sets * 4), *cnt1 = test_xmalloc(n_q * n_sets * 4);
        float *sc = test_xmalloc(ns * 4), *sc1 = test_xmalloc(ns * 4);
        int same = 1;
        for (int nt = 1; nt <= 4; nt++) {
            fasa_ctx_options o;
            fasa_ctx_options_default(&o);
            o.n_threads = nt;
            fasa_ctx *ctx = NULL;
            if (!CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK))
                break;
            size_t ws = 0;
            CHECK_STATUS(fasa_predict_workspace_size(ctx, prof, &q.view, t, (fasa_gqa_mode)mode, &ws),
                         FASA_OK);
            void *w = test_xmalloc(ws);
            memset(idx, 0, ni * 4);
            fasa_status st = fasa_predict(ctx, prof, 0, (fasa_gqa_mode)mode, &q.view, &k.view, 300.0,
                                          idx, stride, cnt, sc, w, ws);
            CHECKF(st == FASA_OK, "predict threads %d: %s", nt, fasa_ctx_last_error(ctx));
            if (nt == 1) {
                memcpy(idx1, idx, ni * 4);
                memcpy(cnt1, cnt, n_q * n_sets * 4);
                memcpy(sc1, sc, ns * 4);
            } else {
                same &= memcmp(idx1, idx, ni * 4) == 0 && memcmp(cnt1, cnt, n_q * n_sets * 4) == 0 &&
                        memcmp(sc1, sc, ns * 4) == 0;
            }
            free(w);
            fasa_ctx_destroy(ctx);
        }
        CHECKF(same, "fasa_predict mode %d: results differ between thread counts", mode);
        free(idx);
        free(idx1);
        free(cnt);
        free(cnt1);
        free(sc);
        free(sc1);
    }
    test_tensor_free(&q);
    test_tensor_free(&k);
    fasa_profile_destroy(prof);
    free(fcs);
}

static void check_threads(void)
{
    check_predict_threads();
    check_threads_case(1, 5000, 8, 2, 64, -1, 0, FASA_DTYPE_F32);                /* split-KV */
    check_threads_case(1, 3000, 8, 2, 64, -1, 0, FASA_DTYPE_F16);
    check_threads_case(1, 700, 8, 2, 64, -1, 0, FASA_DTYPE_F32);                 /* one chunk */
    check_threads_case(40, 2100, 4, 2, 64, -1, 0, FASA_DTYPE_F32);               /* prefill */
    check_threads_case(1, 6000, 8, 2, 64, FASA_GQA_PER_HEAD, 2500, FASA_DTYPE_F32);
    check_threads_case(1, 6000, 8, 2, 64, FASA_GQA_GROUP_SHARED, 2500, FASA_DTYPE_BF16);
    check_threads_case(1, 6000, 8, 2, 64, FASA_GQA_GROUP_SHARED, 256, FASA_DTYPE_F32);
    check_threads_case(3, 3000, 8, 2, 64, FASA_GQA_PER_HEAD, 1500, FASA_DTYPE_F32);
    check_threads_case(1, 5000, 8, 2, 64, -1, 0, FASA_DTYPE_Q8_0);              /* quantized */
    check_threads_case(1, 3000, 8, 2, 128, -1, 0, FASA_DTYPE_Q4_0);
    check_threads_case(20, 2100, 4, 2, 64, -1, 0, FASA_DTYPE_Q8_0);
    check_threads_case(1, 6000, 8, 2, 64, FASA_GQA_GROUP_SHARED, 2500, FASA_DTYPE_Q4_0);
    check_threads_case(2, 3000, 8, 2, 96, FASA_GQA_PER_HEAD, 1500, FASA_DTYPE_Q8_0);
}

int main(void)
{
    test_init("test_attn_kernels");
#if defined(__x86_64__) || defined(__i386__)
    if (test_level_selected(FASA_CPU_AVX2))
        check_exp("exp_avx2", exp4_avx2);
    if (test_level_selected(FASA_CPU_AVX512))
        check_exp("exp_avx512", exp4_avx512);
#endif
#if defined(__aarch64__)
    check_exp("exp_neon", exp4_neon);
#endif
    collect_kernels();
    if (g_n_kernels == 0)
        test_note("no SIMD attn kernel %s: only the exp and public-call checks ran",
                  test_forced_level() >= 0 ? "at this level" : "runs on this CPU");
    for (size_t i = 0; i < g_n_kernels; i++) {
        size_t before = g_cases;
        test_kernel(&g_kernels[i]);
        test_note("%s: %zu cases against fasa__attn_ref", g_kernels[i].name, g_cases - before);
    }
    check_threads();
    return test_summary();
}
