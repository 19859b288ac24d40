/*
 * test_label_cache.c - the label cache API and fasa_predict_cached:
 * size query and init errors, append one token at a time == bulk build
 * (identical bytes and scores), capacity overflow, profile mismatch,
 * memcpy relocation, and predict_cached == fasa_predict.
 *
 * Equality with fasa_predict is tested exactly on keys and queries that are
 * multiples of 1/8 in [-1, 1]: every product and partial sum is exact in
 * fp32 and representable in f16/bf16, so scores do not depend on summation
 * order or label dtype and ties (frequent here) exercise the tie rule.
 * On N(0,1) data (f32 cache) the two selections may differ only where the
 * scores are within 1e-5 relative of the selection threshold.
 */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* util.h's CHECK_STATUS evaluates its argument more than once. */
#define EXPECT(call, want)            \
    do {                              \
        fasa_status st_ = (call);     \
        CHECK_STATUS(st_, want);      \
    } while (0)

#define HQ 8
#define HKV 2
#define D 32
#define NFC 4
#define LAYERS 3

static fasa_profile *make_profile(int layout, uint64_t salt)
{
    fasa_model_shape shape = {sizeof shape, LAYERS, HQ, HKV, D, layout, 0};
    uint32_t *fcs = test_random_fcs(LAYERS, HQ, NFC, D);
    (void)salt;
    fasa_profile *p = NULL;
    EXPECT(fasa_profile_create(&shape, fcs, NFC, NULL, &p), FASA_OK);
    free(fcs);
    return p;
}

/* 64-aligned zero-patterned block so two caches can be compared bytewise. */
static void *block(size_t bytes)
{
    void *m = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!m)
        abort();
    memset(m, 0xA5, (bytes + 63) / 64 * 64);
    return m;
}

static void fill_keys(test_tensor *k, int quantized)
{
    fasa_view *v = &k->view;
    for (size_t t = 0; t < v->n_tokens; t++)
        for (size_t h = 0; h < v->n_heads; h++)
            for (size_t i = 0; i < v->head_dim; i++)
                test_tensor_set(k, t, h, i,
                                quantized ? (double)((int)test_rand_range(0, 16) - 8) / 8.0
                                          : test_rand_normal());
}

/* One-token view of token t of k. */
static fasa_view token_view(const test_tensor *k, size_t t)
{
    fasa_view v = k->view;
    v.data = (char *)k->mem + test_tensor_offset(k, t, 0, 0) * test_dtype_size(v.dtype);
    v.n_tokens = 1;
    return v;
}

typedef struct pred_out {
    uint32_t *idx, *cnt;
    float *scores;
    size_t stride, n_sets;
} pred_out;

static void pred_alloc(pred_out *o, size_t n_q, size_t n_sets, size_t t)
{
    o->stride = t;
    o->n_sets = n_sets;
    o->idx = test_xmalloc(n_q * n_sets * t * sizeof(uint32_t));
    o->cnt = test_xmalloc(n_q * n_sets * sizeof(uint32_t));
    o->scores = test_xmalloc(n_q * n_sets * t * sizeof(float));
}
static void pred_free(pred_out *o)
{
    free(o->idx);
    free(o->cnt);
    free(o->scores);
}

static fasa_ctx *g_ctx; /* NULL, or a 2-thread context */

static fasa_status run_predict(const fasa_profile *p, size_t layer, fasa_gqa_mode mode,
                               const fasa_view *q, const fasa_view *k, fasa_label_cache *c,
                               double budget, pred_out *o)
{
    size_t t = k ? k->n_tokens : 0, ws = 0;
    if (c)
        fasa_label_cache_tokens(c, &t);
    fasa_status st = fasa_predict_workspace_size(g_ctx, p, q, t, mode, &ws);
    if (st != FASA_OK)
        return st;
    void *w = test_xmalloc(ws);
    if (c)
        st = fasa_predict_cached(g_ctx, p, layer, mode, q, c, budget, o->idx, o->stride, o->cnt,
                                 o->scores, w, ws);
    else
        st = fasa_predict(NULL, p, layer, mode, q, k, budget, o->idx, o->stride, o->cnt,
                          o->scores, w, ws);
    free(w);
    return st;
}

/* Selections equal; exact: scores bitwise equal too; else differences only
 * at near-ties of the threshold. */
static void compare(const pred_out *a, const pred_out *b, size_t n_q, size_t t, int exact,
                    const char *what)
{
    size_t n_sets = a->n_sets;
    for (size_t set = 0; set < n_q * n_sets; set++) {
        if (!CHECKF(a->cnt[set] == b->cnt[set], "%s set %zu count %u vs %u", what, set,
                    a->cnt[set], b->cnt[set]))
            return;
        const uint32_t *x = a->idx + set * a->stride, *y = b->idx + set * b->stride;
        int same = memcmp(x, y, a->cnt[set] * sizeof *x) == 0;
        if (exact) {
            CHECKF(same, "%s set %zu: selections differ", what, set);
            CHECKF(memcmp(a->scores + set * t, b->scores + set * t, t * sizeof(float)) == 0,
                   "%s set %zu: scores differ", what, set);
        } else if (!same) {
            /* The threshold: the lowest selected score of a. */
            const float *s = a->scores + set * t;
            float thr = INFINITY;
            for (size_t j = 0; j < a->cnt[set]; j++)
                if (s[x[j]] < thr)
                    thr = s[x[j]];
            for (size_t j = 0; j < a->cnt[set]; j++) {
                float d1 = fabsf(s[x[j]] - thr), d2 = fabsf(s[y[j]] - thr);
                CHECKF(d1 <= 1e-5f * fabsf(thr) + 1e-6f || d2 <= 1e-5f * fabsf(thr) + 1e-6f ||
                           x[j] == y[j],
                       "%s set %zu: differing pick %u/%u away from the threshold", what, set,
                       x[j], y[j]);
            }
        }
    }
}

static void test_errors(const fasa_profile *p)
{
    size_t bytes = 0;
    EXPECT(fasa_label_cache_size(NULL, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 10, &bytes),
                 FASA_ERR_NULL_POINTER);
    EXPECT(fasa_label_cache_size(p, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 10, NULL),
                 FASA_ERR_NULL_POINTER);
    EXPECT(fasa_label_cache_size(p, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 0, &bytes),
                 FASA_ERR_ZERO_SIZE);
    EXPECT(fasa_label_cache_size(p, LAYERS, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 10, &bytes),
                 FASA_ERR_PROFILE_MISMATCH);
    EXPECT(fasa_label_cache_size(p, 0, (fasa_gqa_mode)7, FASA_DTYPE_F16, 10, &bytes),
                 FASA_ERR_INVALID_ARGUMENT);
    EXPECT(fasa_label_cache_size(p, 0, FASA_GQA_PER_HEAD, (fasa_dtype)9, 10, &bytes),
                 FASA_ERR_BAD_DTYPE);
    EXPECT(fasa_label_cache_size(p, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, SIZE_MAX, &bytes),
                 FASA_ERR_OVERFLOW);
    EXPECT(fasa_label_cache_size(p, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 100, &bytes),
                 FASA_OK);
    /* Every misalignment of mem works with exactly the reported size. */
    char *raw = test_xmalloc(bytes + 64);
    for (size_t off = 0; off < 64; off += 7) {
        fasa_label_cache *c = NULL;
        EXPECT(fasa_label_cache_init(raw + off, bytes, p, 0, FASA_GQA_PER_HEAD,
                                           FASA_DTYPE_F16, 100, &c),
                     FASA_OK);
        CHECK(c != NULL && (uintptr_t)c % 64 == 0);
    }
    fasa_label_cache *c = NULL;
    EXPECT(fasa_label_cache_init(raw, 64, p, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 100, &c),
                 FASA_ERR_BUFFER_TOO_SMALL);
    CHECK(c == NULL);
    EXPECT(fasa_label_cache_init(NULL, bytes, p, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, 100,
                                       &c),
                 FASA_ERR_NULL_POINTER);
    size_t n = 1;
    EXPECT(fasa_label_cache_tokens(NULL, &n), FASA_ERR_NULL_POINTER);
    memset(raw, 0, 256);
    EXPECT(fasa_label_cache_tokens((fasa_label_cache *)(raw + (64 - (uintptr_t)raw % 64)),
                                         &n),
                 FASA_ERR_BAD_STATE);
    free(raw);
}

/* Append token by token vs build; capacity; relocation; mismatch. */
static void test_append_build(const fasa_profile *p, const fasa_profile *other, int key_dtype,
                              int cache_dtype, fasa_gqa_mode mode)
{
    const size_t T = 150, CAP = 160, LAYER = 1;
    char what[96];
    snprintf(what, sizeof what, "keys %s cache %s mode %d", test_dtype_name(key_dtype),
             test_dtype_name(cache_dtype), (int)mode);
    test_tensor k, q;
    test_tensor_make(&k, key_dtype, CAP + 1, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&q, FASA_DTYPE_F32, 1, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    fill_keys(&k, 0);
    test_tensor_randn(&q, 1.0);
    size_t bytes;
    EXPECT(fasa_label_cache_size(p, LAYER, mode, cache_dtype, CAP, &bytes), FASA_OK);
    char *ma = block(bytes), *mb = block(bytes);
    fasa_label_cache *a, *b;
    EXPECT(fasa_label_cache_init(ma, bytes, p, LAYER, mode, cache_dtype, CAP, &a), FASA_OK);
    EXPECT(fasa_label_cache_init(mb, bytes, p, LAYER, mode, cache_dtype, CAP, &b), FASA_OK);
    for (size_t t = 0; t < T; t++) {
        fasa_view v = token_view(&k, t);
        EXPECT(fasa_label_cache_append(a, &v), FASA_OK);
    }
    fasa_view kv = k.view;
    kv.n_tokens = T;
    EXPECT(fasa_label_cache_build(b, &kv), FASA_OK);
    size_t n = 0;
    EXPECT(fasa_label_cache_tokens(a, &n), FASA_OK);
    CHECK(n == T);
    CHECKF(memcmp(ma, mb, bytes) == 0, "%s: append one by one != build", what);

    size_t n_sets = mode == FASA_GQA_PER_HEAD ? HQ : HKV;
    pred_out oa, ob;
    pred_alloc(&oa, 1, n_sets, CAP + 1);
    pred_alloc(&ob, 1, n_sets, CAP + 1);
    oa.stride = ob.stride = T;
    EXPECT(run_predict(p, LAYER, mode, &q.view, NULL, a, 17, &oa), FASA_OK);
    EXPECT(run_predict(p, LAYER, mode, &q.view, NULL, b, 17, &ob), FASA_OK);
    CHECKF(memcmp(oa.scores, ob.scores, n_sets * T * sizeof(float)) == 0, "%s: scores", what);

    /* Capacity: 10 more fit, the 11th fails and changes nothing. */
    kv = token_view(&k, T);
    kv.n_tokens = CAP - T;
    EXPECT(fasa_label_cache_append(a, &kv), FASA_OK);
    char *snap = block(bytes);
    memcpy(snap, ma, bytes);
    kv = token_view(&k, CAP);
    EXPECT(fasa_label_cache_append(a, &kv), FASA_ERR_BUFFER_TOO_SMALL);
    kv = k.view;
    EXPECT(fasa_label_cache_build(a, &kv), FASA_ERR_BUFFER_TOO_SMALL);
    CHECK(memcmp(snap, ma, bytes) == 0);
    fasa_view bad = token_view(&k, 0);
    bad.n_heads = 1;
    EXPECT(fasa_label_cache_append(b, &bad), FASA_ERR_BAD_SHAPE);
    EXPECT(fasa_label_cache_tokens(b, &n), FASA_OK);
    CHECK(n == T);

    /* Mismatch: other layer, other mode, other FC sets. */
    pred_out oc;
    pred_alloc(&oc, 1, HQ, CAP + 1);
    oc.stride = T;
    EXPECT(run_predict(p, LAYER + 1, mode, &q.view, NULL, b, 17, &oc),
                 FASA_ERR_PROFILE_MISMATCH);
    EXPECT(run_predict(p, LAYER, mode == FASA_GQA_PER_HEAD ? FASA_GQA_GROUP_SHARED
                                                                 : FASA_GQA_PER_HEAD,
                             &q.view, NULL, b, 17, &oc),
                 FASA_ERR_PROFILE_MISMATCH);
    EXPECT(run_predict(other, LAYER, mode, &q.view, NULL, b, 17, &oc),
                 FASA_ERR_PROFILE_MISMATCH);
    pred_free(&oc);

    /* Relocation: copy the block 8 bytes further into a fresh buffer. */
    char *mc = block(bytes + 64);
    memcpy(mc + 8, mb, bytes);
    memset(mb, 0xEE, bytes); /* the old block is gone */
    fasa_label_cache *c = (fasa_label_cache *)(mc + 8 + ((char *)b - mb));
    memset(ob.scores, 0, n_sets * T * sizeof(float));
    EXPECT(run_predict(p, LAYER, mode, &q.view, NULL, c, 17, &ob), FASA_OK);
    CHECKF(memcmp(oa.scores, ob.scores, n_sets * T * sizeof(float)) == 0,
           "%s: relocated cache scores", what);
    kv = token_view(&k, T);
    EXPECT(fasa_label_cache_append(c, &kv), FASA_OK);
    EXPECT(fasa_label_cache_tokens(c, &n), FASA_OK);
    CHECK(n == T + 1);
    EXPECT(fasa_label_cache_reset(c), FASA_OK);
    EXPECT(fasa_label_cache_tokens(c, &n), FASA_OK);
    CHECK(n == 0);

    pred_free(&oa);
    pred_free(&ob);
    free(ma);
    free(mb);
    free(mc);
    free(snap);
    test_tensor_free(&k);
    test_tensor_free(&q);
}

/* predict_cached against fasa_predict over decode steps (memo in use). */
static void test_vs_predict(const fasa_profile *p, int key_dtype, int cache_dtype,
                            fasa_gqa_mode mode, int quantized, size_t T, size_t n_q,
                            double budget)
{
    const size_t LAYER = 2, STEPS = 4;
    char what[128];
    snprintf(what, sizeof what, "vs predict: keys %s cache %s mode %d quant %d T %zu nq %zu b %g",
             test_dtype_name(key_dtype), test_dtype_name(cache_dtype), (int)mode, quantized, T,
             n_q, budget);
    size_t total = T + STEPS;
    test_tensor k, q;
    test_tensor_make(&k, key_dtype, total, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&q, FASA_DTYPE_F32, n_q, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    fill_keys(&k, quantized);
    size_t bytes;
    EXPECT(fasa_label_cache_size(p, LAYER, mode, cache_dtype, total, &bytes), FASA_OK);
    void *mem = test_xmalloc(bytes);
    fasa_label_cache *c;
    EXPECT(fasa_label_cache_init(mem, bytes, p, LAYER, mode, cache_dtype, total, &c),
                 FASA_OK);
    fasa_view kv = k.view;
    kv.n_tokens = T;
    EXPECT(fasa_label_cache_build(c, &kv), FASA_OK);
    size_t n_sets = mode == FASA_GQA_PER_HEAD ? HQ : HKV;
    pred_out oa, ob;
    pred_alloc(&oa, n_q, n_sets, total);
    pred_alloc(&ob, n_q, n_sets, total);
    for (size_t step = 0; step <= STEPS && test_failures() == 0; step++) {
        size_t t = T + step;
        if (step > 0) {
            fasa_view v = token_view(&k, t - 1);
            EXPECT(fasa_label_cache_append(c, &v), FASA_OK);
        }
        for (size_t i = 0; i < n_q; i++)
            for (size_t h = 0; h < HQ; h++)
                for (size_t d = 0; d < D; d++)
                    test_tensor_set(&q, i, h, d,
                                    quantized ? (double)((int)test_rand_range(0, 16) - 8) / 8.0
                                              : test_rand_normal());
        kv.n_tokens = t;
        size_t ms = 0;
        fasa_predict_max_selected(budget, t, &ms);
        oa.stride = ob.stride = ms;
        EXPECT(run_predict(p, LAYER, mode, &q.view, &kv, NULL, budget, &oa), FASA_OK);
        EXPECT(run_predict(p, LAYER, mode, &q.view, NULL, c, budget, &ob), FASA_OK);
        compare(&oa, &ob, n_q, t, quantized, what);
    }
    pred_free(&oa);
    pred_free(&ob);
    free(mem);
    test_tensor_free(&k);
    test_tensor_free(&q);
}

int main(void)
{
    test_init("test_label_cache");
    fasa_profile *p = make_profile(FASA_PAIRS_HALF, 1);
    fasa_profile *pi = make_profile(FASA_PAIRS_INTERLEAVED, 2);
    fasa_profile *other = make_profile(FASA_PAIRS_HALF, 3);
    if (!p || !pi || !other)
        return test_summary();
    test_errors(p);
    static const int dts[3] = {FASA_DTYPE_F32, FASA_DTYPE_F16, FASA_DTYPE_BF16};
    for (int m = 0; m < 2; m++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                test_append_build(m ? pi : p, other, dts[a], dts[b], (fasa_gqa_mode)m);
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < 3; b++) {
            test_vs_predict(m ? pi : p, FASA_DTYPE_F32, dts[b], (fasa_gqa_mode)m, 1, 3000, 1, 256);
            test_vs_predict(p, dts[b], dts[b], (fasa_gqa_mode)m, 1, 700, 3, 0.1);
        }
    for (int m = 0; m < 2; m++) {
        test_vs_predict(p, FASA_DTYPE_F32, FASA_DTYPE_F32, (fasa_gqa_mode)m, 0, 5000, 1, 100);
        test_vs_predict(p, FASA_DTYPE_F32, FASA_DTYPE_F32, (fasa_gqa_mode)m, 0, 65, 2, 64);
    }
    /* predict_cached with 2 threads (KV heads in parallel; 1 without OpenMP). */
    fasa_ctx_options opt;
    fasa_ctx_options_default(&opt);
    opt.n_threads = 2;
    EXPECT(fasa_ctx_create(&opt, &g_ctx), FASA_OK);
    for (int m = 0; m < 2; m++)
        test_vs_predict(p, FASA_DTYPE_F32, FASA_DTYPE_F16, (fasa_gqa_mode)m, 1, 3000, 2, 256);
    fasa_ctx_destroy(g_ctx);
    g_ctx = NULL;
    fasa_profile_destroy(p);
    fasa_profile_destroy(pi);
    fasa_profile_destroy(other);
    return test_summary();
}
