/*
 * test_determinism.c - same inputs give bit-identical results:
 *  1. across repeated runs and across ctx thread counts 1, 2 and 3, at every
 *     CPU level this host runs: predict (both GQA modes), attend over the
 *     predicted sets, attend_dense (decode with split-KV chunks, and a
 *     prefill block), predict_cached (f16 label cache), decode_step and a
 *     whole calibration (saved profile bytes). docs: split-KV execution uses
 *     fixed chunks and an ordered merge so the thread count cannot change a
 *     bit; calibration results are independent of the thread count.
 *  2. across CPU levels, only what fasa.h promises: TIP scores are exact
 *     for exactly representable sums and the selection is exact for the
 *     computed scores (ties to the lower index), so on small-integer data
 *     the scores and index sets of predict / predict_cached must be
 *     identical at every level. Attention outputs are only promised within
 *     1e-5*max|v| across levels (tested in test_attn_kernels), not bit
 *     equality, so they are not compared across levels here.
 * In a build without OpenMP thread counts > 1 are clamped to 1; the test
 * says so and then only checks repeatability.
 */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 64, HQ = 4, HKV = 2, T = 2600, NQ_PREFILL = 24, NFC = 8, LAYERS = 2 };
static const double BUDGET = 1500; /* sets longer than one 1024-token chunk */

/* Every output of one configuration, appended into one byte string. */
typedef struct blob {
    unsigned char *p;
    size_t n, cap;
} blob;

static void put(blob *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static fasa_profile *g_prof;
static test_tensor g_q1, g_qp, g_k, g_v;       /* random data             */
static test_tensor g_iq, g_ik, g_ikb;          /* small integers, exact   */

static fasa_ctx *make_ctx(int level, int threads)
{
    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    o.cpu_level = level;
    o.n_threads = threads;
    fasa_ctx *ctx = NULL;
    fasa_status st = fasa_ctx_create(&o, &ctx);
    if (!CHECK(st == FASA_OK))
        exit(test_summary());
    return ctx;
}

static void *ws_for(size_t bytes)
{
    void *w = test_xmalloc(bytes);
    memset(w, 0x3c, bytes);
    return w;
}

/* predict (+ scores) of q over k, optionally through a label cache. */
static fasa_status run_predict(fasa_ctx *ctx, const test_tensor *q, const test_tensor *k, int mode,
                               int cache_dtype, double budget, blob *b)
{
    const size_t nq = q->view.n_tokens, t = k->view.n_tokens;
    const size_t nsets = mode == FASA_GQA_GROUP_SHARED ? HKV : HQ;
    size_t ms = 0, wsz = 0;
    fasa_status st = fasa_predict_max_selected(budget, t, &ms);
    if (st != FASA_OK)
        return st;
    st = fasa_predict_workspace_size(ctx, g_prof, &q->view, t, (fasa_gqa_mode)mode, &wsz);
    if (st != FASA_OK)
        return st;
    uint32_t *idx = calloc(nq * nsets * ms, sizeof *idx), *cnt = calloc(nq * nsets, sizeof *cnt);
    float *sc = calloc(nq * nsets * t, sizeof *sc);
    void *ws = ws_for(wsz);
    if (cache_dtype < 0) {
        st = fasa_predict(ctx, g_prof, 1, (fasa_gqa_mode)mode, &q->view, &k->view, budget, idx, ms,
                          cnt, sc, ws, wsz);
    } else {
        size_t cb = 0;
        fasa_label_cache *c = NULL;
        void *mem = NULL;
        st = fasa_label_cache_size(g_prof, 1, (fasa_gqa_mode)mode, (fasa_dtype)cache_dtype, t, &cb);
        if (st == FASA_OK) {
            mem = test_xmalloc(cb);
            st = fasa_label_cache_init(mem, cb, g_prof, 1, (fasa_gqa_mode)mode,
                                       (fasa_dtype)cache_dtype, t, &c);
        }
        if (st == FASA_OK)
            st = fasa_label_cache_build(c, &k->view);
        if (st == FASA_OK)
            st = fasa_predict_cached(ctx, g_prof, 1, (fasa_gqa_mode)mode, &q->view, c, budget,
                                     idx, ms, cnt, sc, ws, wsz);
        free(mem);
    }
    put(b, cnt, nq * nsets * sizeof *cnt);
    put(b, idx, nq * nsets * ms * sizeof *idx);
    put(b, sc, nq * nsets * t * sizeof *sc);
    free(idx);
    free(cnt);
    free(sc);
    free(ws);
    return st;
}

/* Dense attention of q over (g_k, g_v) into b (f32 out + lse). */
static fasa_status run_dense(fasa_ctx *ctx, const test_tensor *q, blob *b)
{
    const size_t nq = q->view.n_tokens;
    size_t wsz = 0;
    fasa_status st = fasa_attend_dense_workspace_size(ctx, &q->view, &g_k.view, &g_v.view, &wsz);
    if (st != FASA_OK)
        return st;
    float *out = calloc(nq * HQ * D, sizeof *out), *lse = calloc(nq * HQ, sizeof *lse);
    void *ws = ws_for(wsz);
    fasa_view ov;
    fasa_view_make(&ov, out, FASA_DTYPE_F32, nq, HQ, D, HQ * D, D);
    st = fasa_attend_dense(ctx, &q->view, &g_k.view, &g_v.view, 0.0f, &ov, lse, ws, wsz);
    put(b, out, nq * HQ * D * sizeof *out);
    put(b, lse, nq * HQ * sizeof *lse);
    free(out);
    free(lse);
    free(ws);
    return st;
}

/* predict + attend over the sets, and decode_step through a label cache. */
static fasa_status run_sparse(fasa_ctx *ctx, int mode, blob *b)
{
    const size_t nsets = mode == FASA_GQA_GROUP_SHARED ? HKV : HQ;
    size_t ms = 0, wp = 0, wa = 0, wd = 0, cb = 0;
    fasa_status st = fasa_predict_max_selected(BUDGET, T, &ms);
    if (st == FASA_OK)
        st = fasa_predict_workspace_size(ctx, g_prof, &g_q1.view, T, (fasa_gqa_mode)mode, &wp);
    if (st == FASA_OK)
        st = fasa_attend_workspace_size(ctx, &g_q1.view, &g_k.view, &g_v.view, (fasa_gqa_mode)mode,
                                        ms, &wa);
    if (st == FASA_OK)
        st = fasa_decode_step_workspace_size(ctx, g_prof, &g_q1.view, &g_k.view, &g_v.view,
                                             (fasa_gqa_mode)mode, BUDGET, &wd);
    if (st == FASA_OK)
        st = fasa_label_cache_size(g_prof, 1, (fasa_gqa_mode)mode, FASA_DTYPE_F16, T, &cb);
    if (st != FASA_OK)
        return st;
    size_t wsz = wp > wa ? wp : wa;
    wsz = wd > wsz ? wd : wsz;
    void *ws = ws_for(wsz), *cmem = test_xmalloc(cb);
    uint32_t *idx = calloc(nsets * ms, sizeof *idx), *cnt = calloc(nsets, sizeof *cnt);
    float out[HQ * D], lse[HQ];
    memset(out, 0, sizeof out);
    memset(lse, 0, sizeof lse);
    fasa_view ov;
    fasa_view_make(&ov, out, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D);
    st = fasa_predict(ctx, g_prof, 1, (fasa_gqa_mode)mode, &g_q1.view, &g_k.view, BUDGET, idx, ms,
                      cnt, NULL, ws, wsz);
    if (st == FASA_OK)
        st = fasa_attend(ctx, (fasa_gqa_mode)mode, &g_q1.view, &g_k.view, &g_v.view, idx, ms, cnt,
                         0.0f, &ov, lse, ws, wsz);
    put(b, out, sizeof out);
    put(b, lse, sizeof lse);
    fasa_label_cache *c = NULL;
    if (st == FASA_OK)
        st = fasa_label_cache_init(cmem, cb, g_prof, 1, (fasa_gqa_mode)mode, FASA_DTYPE_F16, T, &c);
    if (st == FASA_OK)
        st = fasa_label_cache_build(c, &g_k.view);
    if (st == FASA_OK)
        st = fasa_decode_step(ctx, g_prof, 1, (fasa_gqa_mode)mode, &g_q1.view, &g_k.view,
                              &g_v.view, c, BUDGET, 0.0f, &ov, lse, ws, wsz);
    put(b, out, sizeof out);
    put(b, lse, sizeof lse);
    free(idx);
    free(cnt);
    free(ws);
    free(cmem);
    return st;
}

/* Calibrate on 3 steps of layers 0 and 1 (prefixes of g_k) -> profile bytes. */
static fasa_status run_calibrate(fasa_ctx *ctx, blob *b)
{
    fasa_calib_config cc;
    memset(&cc, 0, sizeof cc);
    cc.struct_size = sizeof cc;
    cc.shape = (fasa_model_shape){sizeof(fasa_model_shape), LAYERS, HQ, HKV, D,
                                  FASA_PAIRS_HALF, 0};
    cc.n_k = 2;
    cc.k_values[0] = 16;
    cc.k_values[1] = 64;
    fasa_calibrator *cal = NULL;
    fasa_status st = fasa_calibrator_create(&cc, &cal);
    for (size_t s = 0; s < 3 && st == FASA_OK; s++) {
        fasa_view k = g_k.view;
        k.n_tokens = 200 + 150 * s;
        st = fasa_calibrator_add_step(cal, ctx, s % LAYERS, &g_q1.view, &k);
    }
    fasa_profile *p = NULL;
    if (st == FASA_OK)
        st = fasa_calibrator_finish(cal, NULL, &p);
    size_t n = 0;
    if (st == FASA_OK)
        st = fasa_profile_save_buffer(p, NULL, 0, &n);
    if (st == FASA_OK) {
        unsigned char *bytes = test_xmalloc(n);
        st = fasa_profile_save_buffer(p, bytes, n, &n);
        put(b, bytes, n);
        free(bytes);
    }
    fasa_profile_destroy(p);
    fasa_calibrator_destroy(cal);
    return st;
}

static void run_all(int level, int threads, blob *b)
{
    fasa_ctx *ctx = make_ctx(level, threads);
    fasa_status st[8];
    st[0] = run_predict(ctx, &g_q1, &g_k, FASA_GQA_PER_HEAD, -1, BUDGET, b);
    st[1] = run_predict(ctx, &g_q1, &g_k, FASA_GQA_GROUP_SHARED, -1, 0.1, b);
    st[2] = run_predict(ctx, &g_qp, &g_k, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 0.25, b);
    st[3] = run_dense(ctx, &g_q1, b);
    st[4] = run_dense(ctx, &g_qp, b);
    st[5] = run_sparse(ctx, FASA_GQA_PER_HEAD, b);
    st[6] = run_sparse(ctx, FASA_GQA_GROUP_SHARED, b);
    st[7] = run_calibrate(ctx, b);
    for (int i = 0; i < 8; i++)
        CHECKF(st[i] == FASA_OK, "level %d threads %d: call group %d: %s (%s)", level, threads, i,
               fasa_status_name(st[i]), fasa_ctx_last_error(ctx));
    fasa_ctx_destroy(ctx);
}

/* The integer-data selection, compared across levels. */
static void run_exact(int level, blob *b)
{
    fasa_ctx *ctx = make_ctx(level, 1);
    fasa_status st[5];
    st[0] = run_predict(ctx, &g_iq, &g_ik, FASA_GQA_PER_HEAD, -1, 100, b);
    st[1] = run_predict(ctx, &g_iq, &g_ik, FASA_GQA_GROUP_SHARED, -1, 0.3, b);
    st[2] = run_predict(ctx, &g_iq, &g_ikb, FASA_GQA_PER_HEAD, -1, 100, b);
    st[3] = run_predict(ctx, &g_iq, &g_ik, FASA_GQA_PER_HEAD, FASA_DTYPE_BF16, 100, b);
    st[4] = run_predict(ctx, &g_iq, &g_ik, FASA_GQA_GROUP_SHARED, FASA_DTYPE_F16, 7, b);
    for (int i = 0; i < 5; i++)
        CHECKF(st[i] == FASA_OK, "exact data, level %d: call %d: %s (%s)", level, i,
               fasa_status_name(st[i]), fasa_ctx_last_error(ctx));
    fasa_ctx_destroy(ctx);
}

static void compare(const blob *ref, const blob *got, const char *what)
{
    size_t first = 0;
    int same = ref->n == got->n && memcmp(ref->p, got->p, ref->n) == 0;
    if (!same && ref->n == got->n)
        while (first < ref->n && ref->p[first] == got->p[first])
            first++;
    CHECKF(same, "%s: not bit-identical (%zu vs %zu bytes, first difference at byte %zu)", what,
           ref->n, got->n, first);
}

static void fill_int(test_tensor *t)
{
    for (size_t tok = 0; tok < t->view.n_tokens; tok++)
        for (size_t h = 0; h < t->view.n_heads; h++)
            for (size_t i = 0; i < t->view.head_dim; i++)
                test_tensor_set(t, tok, h, i, (double)((int)test_rand_range(0, 6) - 3));
}

int main(void)
{
    test_init("test_determinism");
    uint32_t *fcs = test_random_fcs(LAYERS, HQ, NFC, D);
    fasa_model_shape shape = {sizeof shape, LAYERS, HQ, HKV, D, FASA_PAIRS_HALF, 0};
    fasa_status st = fasa_profile_create(&shape, fcs, NFC, NULL, &g_prof);
    free(fcs);
    if (!CHECK(st == FASA_OK))
        return test_summary();

    test_tensor_make(&g_q1, FASA_DTYPE_F32, 1, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_qp, FASA_DTYPE_BF16, NQ_PREFILL, HQ, D, TEST_LAYOUT_HEAD_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_k, FASA_DTYPE_F32, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_v, FASA_DTYPE_F16, T, HKV, D, TEST_LAYOUT_HF_PADDED, TEST_PLAIN);
    test_tensor_randn(&g_q1, 1.0);
    test_tensor_randn(&g_qp, 1.0);
    test_tensor_randn(&g_k, 1.0);
    test_tensor_randn(&g_v, 1.0);
    test_tensor_make(&g_iq, FASA_DTYPE_F32, 3, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_ik, FASA_DTYPE_F32, 500, HKV, D, TEST_LAYOUT_TOKEN_PADDED, TEST_PLAIN);
    test_tensor_make(&g_ikb, FASA_DTYPE_BF16, 500, HKV, D, TEST_LAYOUT_HEAD_MAJOR, TEST_PLAIN);
    fill_int(&g_iq);
    fill_int(&g_ik);
    for (size_t tok = 0; tok < 500; tok++)
        for (size_t h = 0; h < HKV; h++)
            for (size_t i = 0; i < D; i++)
                test_tensor_set(&g_ikb, tok, h, i, test_tensor_get(&g_ik, tok, h, i));

    /* Every level this host runs (src/levels.def, after the FASA_CPU cap). */
    int levels[16], n_levels = 0;
    for (int l = 0; l < test_level_count() && n_levels < 16; l++)
        if (test_level_usable(l))
            levels[n_levels++] = l;

    fasa_ctx *probe = make_ctx(FASA_CPU_AUTO, 3);
    const int threads_kept = fasa_ctx_threads(probe);
    fasa_ctx_destroy(probe);
    if (threads_kept < 3)
        test_note("n_threads 3 runs with %d thread(s) in this build (no OpenMP): thread counts "
                  "are not exercised, only repeatability", threads_kept);

    blob exact_ref = {0};
    for (int li = 0; li < n_levels; li++) {
        const int level = levels[li];
        char what[160];
        blob ref = {0};
        run_all(level, 1, &ref);
        for (int threads = 1; threads <= 3; threads++) {
            for (int rep = threads == 1 ? 1 : 0; rep < 2; rep++) {
                blob got = {0};
                run_all(level, threads, &got);
                snprintf(what, sizeof what, "level %d (attn kernel %s), %d thread(s), run %d vs "
                         "1 thread run 0", level, fasa_kernel_name("attn", level), threads, rep);
                compare(&ref, &got, what);
                free(got.p);
            }
        }
        test_note("level %d (%s, %s): %zu output bytes identical across 2 runs x threads 1,2,3",
                  level, fasa_kernel_name("score_dims", level), fasa_kernel_name("attn", level),
                  ref.n);
        free(ref.p);

        blob ex = {0};
        run_exact(level, &ex);
        if (li == 0) {
            exact_ref = ex;
        } else {
            snprintf(what, sizeof what, "integer data: TIP scores/indices at level %d vs scalar",
                     level);
            compare(&exact_ref, &ex, what);
            free(ex.p);
        }
    }
    test_note("integer data: TIP scores and index sets identical at %d level(s)", n_levels);
    free(exact_ref.p);

    test_tensor_free(&g_q1);
    test_tensor_free(&g_qp);
    test_tensor_free(&g_k);
    test_tensor_free(&g_v);
    test_tensor_free(&g_iq);
    test_tensor_free(&g_ik);
    test_tensor_free(&g_ikb);
    fasa_profile_destroy(g_prof);
    return test_summary();
}
