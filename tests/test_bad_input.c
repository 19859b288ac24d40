/*
 * test_bad_input.c - every hot-path entry point rejects malformed arguments
 * with the documented status, leaves every caller buffer untouched (outputs
 * are pre-filled with a sentinel and all memory is compared byte for byte)
 * and leaves a message in the context.
 *
 * Where fasa.h does not pin the status of a case, the case names the two
 * acceptable ones (marked "either" in the output).
 */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_PREDICT, OP_ATTEND, OP_DENSE, OP_DECODE };

enum { D = 64, HQ = 4, HKV = 2, T = 100, NQ = 2, NFC = 8, LAYERS = 2 };

typedef struct args {
    int op;
    fasa_ctx *ctx;
    const fasa_profile *prof;
    size_t layer;
    int mode;
    fasa_view qv, kv, vv, ov;
    const fasa_view *q, *k, *v, *out;
    double budget;
    uint32_t *idx;
    size_t stride;
    uint32_t *cnt;
    float *scores;
    float scale;
    float *lse;
    void *ws;
    size_t wsz;
} args;

/* the fixture: valid arguments every case starts from */
static test_tensor g_q, g_k, g_v, g_out, g_qbad;
static test_tensor g_kq, g_vq, g_qq, g_oq; /* Q8_0 k / Q4_0 v, quantized q / out */
static fasa_profile *g_prof, *g_prof_d128, *g_prof_hq8;
static uint32_t *g_pidx, *g_pcnt, *g_aidx, *g_acnt, *g_aidx2, *g_acnt2;
static float *g_scores, *g_lse;
static void *g_ws;
static size_t g_wsz, g_stride;
static fasa_ctx *g_ctx;
static size_t g_cases, g_either;

typedef struct region {
    void *p;
    size_t n;
} region;

static region g_regions[24];
static size_t g_n_regions;
static unsigned char *g_snap[24];

static void add_region(void *p, size_t n) { g_regions[g_n_regions++] = (region){p, n}; }

static fasa_status call(const args *a)
{
    switch (a->op) {
    case OP_PREDICT:
        return fasa_predict(a->ctx, a->prof, a->layer, (fasa_gqa_mode)a->mode, a->q, a->k,
                            a->budget, a->idx, a->stride, a->cnt, a->scores, a->ws, a->wsz);
    case OP_ATTEND:
        return fasa_attend(a->ctx, (fasa_gqa_mode)a->mode, a->q, a->k, a->v, a->idx, a->stride,
                           a->cnt, a->scale, a->out, a->lse, a->ws, a->wsz);
    case OP_DENSE:
        return fasa_attend_dense(a->ctx, a->q, a->k, a->v, a->scale, a->out, a->lse, a->ws,
                                 a->wsz);
    default:
        return fasa_decode_step(a->ctx, a->prof, a->layer, (fasa_gqa_mode)a->mode, a->q, a->k,
                                a->v, NULL, a->budget, a->scale, a->out, a->lse, a->ws, a->wsz);
    }
}

static void base(args *a, int op)
{
    memset(a, 0, sizeof *a);
    a->op = op;
    a->ctx = g_ctx;
    a->prof = g_prof;
    a->layer = 1;
    a->mode = FASA_GQA_PER_HEAD;
    a->qv = g_q.view;
    a->kv = g_k.view;
    a->vv = g_v.view;
    a->ov = g_out.view;
    a->budget = 16;
    a->idx = op == OP_PREDICT ? g_pidx : g_aidx;
    a->cnt = op == OP_PREDICT ? g_pcnt : g_acnt;
    a->stride = g_stride;
    a->scores = op == OP_PREDICT ? g_scores : NULL;
    a->lse = op == OP_PREDICT ? NULL : g_lse;
    a->ws = g_ws;
    a->wsz = g_wsz;
}

/* Point the view pointers at the view copies (after a case edits them). */
static args *fix(args *a)
{
    a->q = &a->qv;
    a->k = &a->kv;
    a->v = &a->vv;
    a->out = &a->ov;
    return a;
}

static void run(const char *name, args *a, fasa_status want, fasa_status alt)
{
    g_cases++;
    /* outputs get a sentinel; then every buffer is snapshotted */
    memset(g_out.mem, 0xa5, g_out.bytes);
    memset(g_pidx, 0xa5, NQ * HQ * g_stride * sizeof(uint32_t));
    memset(g_pcnt, 0xa5, NQ * HQ * sizeof(uint32_t));
    memset(g_scores, 0xa5, NQ * HQ * T * sizeof(float));
    memset(g_lse, 0xa5, NQ * HQ * sizeof(float));
    for (size_t r = 0; r < g_n_regions; r++)
        memcpy(g_snap[r], g_regions[r].p, g_regions[r].n);
    fasa_status st = call(a);
    CHECKF(st == want || st == alt, "%s: got %s, want %s%s%s", name, fasa_status_name(st),
           fasa_status_name(want), alt != want ? " or " : "", alt != want ? fasa_status_name(alt) : "");
    if (alt != want)
        g_either++;
    if (st != FASA_OK && a->ctx)
        CHECKF(fasa_ctx_last_error(a->ctx)[0] != '\0', "%s: no message in ctx", name);
    for (size_t r = 0; r < g_n_regions; r++)
        CHECKF(memcmp(g_snap[r], g_regions[r].p, g_regions[r].n) == 0,
               "%s: caller memory region %zu modified on error", name, r);
}

static void setup(void)
{
    CHECK_STATUS(fasa_ctx_create(NULL, &g_ctx), FASA_OK);
    test_tensor_make(&g_q, FASA_DTYPE_F32, NQ, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_qbad, FASA_DTYPE_F32, NQ, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_k, FASA_DTYPE_F32, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_v, FASA_DTYPE_F32, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_out, FASA_DTYPE_F32, NQ, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_randn(&g_q, 1.0);
    test_tensor_randn(&g_qbad, 1.0);
    test_tensor_randn(&g_k, 1.0);
    test_tensor_randn(&g_v, 1.0);

    fasa_model_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.struct_size = sizeof shape;
    shape.n_layers = LAYERS;
    shape.n_q_heads = HQ;
    shape.n_kv_heads = HKV;
    shape.head_dim = D;
    shape.pair_layout = FASA_PAIRS_HALF;
    uint32_t *fcs = test_xmalloc(LAYERS * 8 * NFC * sizeof(uint32_t));
    for (size_t r = 0; r < LAYERS * 8; r++)
        for (size_t c = 0; c < NFC; c++)
            fcs[r * NFC + c] = (uint32_t)((r * 3 + c * 2) % (D / 2));
    CHECK_STATUS(fasa_profile_create(&shape, fcs, NFC, NULL, &g_prof), FASA_OK);
    shape.head_dim = 128;
    CHECK_STATUS(fasa_profile_create(&shape, fcs, NFC, NULL, &g_prof_d128), FASA_OK);
    shape.head_dim = D;
    shape.n_q_heads = 8;
    CHECK_STATUS(fasa_profile_create(&shape, fcs, NFC, NULL, &g_prof_hq8), FASA_OK);
    free(fcs);

    g_stride = 20;
    g_pidx = test_xmalloc(NQ * HQ * g_stride * sizeof(uint32_t));
    g_pcnt = test_xmalloc(NQ * HQ * sizeof(uint32_t));
    g_aidx = test_xmalloc(NQ * HQ * g_stride * sizeof(uint32_t));
    /* entries past each count are never read by the library, but the
     * untouched-output snapshots compare whole buffers (valgrind) */
    memset(g_aidx, 0, NQ * HQ * g_stride * sizeof(uint32_t));
    g_acnt = test_xmalloc(NQ * HQ * sizeof(uint32_t));
    g_aidx2 = test_xmalloc(NQ * HQ * g_stride * sizeof(uint32_t));
    g_acnt2 = test_xmalloc(NQ * HQ * sizeof(uint32_t));
    memset(g_aidx2, 0, NQ * HQ * g_stride * sizeof(uint32_t));
    memset(g_acnt2, 0, NQ * HQ * sizeof(uint32_t));
    for (size_t s = 0; s < NQ * HQ; s++) { /* valid sets: 0, 3, 6, ... */
        g_acnt[s] = 10;
        for (size_t r = 0; r < 10; r++)
            g_aidx[s * g_stride + r] = (uint32_t)(3 * r);
    }
    g_scores = test_xmalloc(NQ * HQ * T * sizeof(float));
    g_lse = test_xmalloc(NQ * HQ * sizeof(float));

    size_t w[4] = {0, 0, 0, 0};
    fasa_predict_workspace_size(g_ctx, g_prof, &g_q.view, T, FASA_GQA_PER_HEAD, &w[0]);
    fasa_attend_workspace_size(g_ctx, &g_q.view, &g_k.view, &g_v.view, FASA_GQA_PER_HEAD, g_stride, &w[1]);
    fasa_attend_dense_workspace_size(g_ctx, &g_q.view, &g_k.view, &g_v.view, &w[2]);
    fasa_decode_step_workspace_size(g_ctx, g_prof, &g_q.view, &g_k.view, &g_v.view,
                                    FASA_GQA_PER_HEAD, 16, &w[3]);
    g_wsz = 0;
    for (int i = 0; i < 4; i++)
        g_wsz = w[i] > g_wsz ? w[i] : g_wsz;
    g_ws = test_xmalloc(g_wsz);
    test_note("workspace bytes: predict %zu, attend %zu, dense %zu, decode_step %zu", w[0], w[1],
              w[2], w[3]);

    test_tensor_make(&g_kq, FASA_DTYPE_Q8_0, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_vq, FASA_DTYPE_Q4_0, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_qq, FASA_DTYPE_Q8_0, NQ, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_oq, FASA_DTYPE_Q4_0, NQ, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_randn(&g_kq, 1.0);
    test_tensor_randn(&g_vq, 1.0);
    test_tensor_randn(&g_qq, 1.0);

    add_region(g_q.mem, g_q.bytes);
    add_region(g_qbad.mem, g_qbad.bytes);
    add_region(g_kq.mem, g_kq.bytes);
    add_region(g_vq.mem, g_vq.bytes);
    add_region(g_qq.mem, g_qq.bytes);
    add_region(g_oq.mem, g_oq.bytes);
    add_region(g_k.mem, g_k.bytes);
    add_region(g_v.mem, g_v.bytes);
    add_region(g_out.mem, g_out.bytes);
    add_region(g_pidx, NQ * HQ * g_stride * sizeof(uint32_t));
    add_region(g_pcnt, NQ * HQ * sizeof(uint32_t));
    add_region(g_aidx, NQ * HQ * g_stride * sizeof(uint32_t));
    add_region(g_acnt, NQ * HQ * sizeof(uint32_t));
    add_region(g_aidx2, NQ * HQ * g_stride * sizeof(uint32_t));
    add_region(g_acnt2, NQ * HQ * sizeof(uint32_t));
    add_region(g_scores, NQ * HQ * T * sizeof(float));
    add_region(g_lse, NQ * HQ * sizeof(float));
    for (size_t r = 0; r < g_n_regions; r++)
        g_snap[r] = test_xmalloc(g_regions[r].n);
}

/* The valid fixture itself succeeds for every op (else every case below
 * would pass for the wrong reason). */
static void valid_calls(void)
{
    args a;
    for (int op = OP_PREDICT; op <= OP_DECODE; op++) {
        base(&a, op);
        fasa_status st = call(fix(&a));
        CHECKF(st == FASA_OK, "valid fixture, op %d: %s (%s)", op, fasa_status_name(st),
               fasa_ctx_last_error(g_ctx));
    }
}

static void predict_cases(void)
{
    args a;
#define P(name, edit, want, alt)                                                                  \
    do {                                                                                        \
        base(&a, OP_PREDICT);                                                                   \
        fix(&a);                                                                                \
        edit;                                                                                   \
        run("predict: " name, &a, want, alt);                                                   \
    } while (0)
    P("profile NULL", a.prof = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("q NULL", a.q = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("k NULL", a.k = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("indices NULL", a.idx = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("counts NULL", a.cnt = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("q->data NULL", a.qv.data = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("k->data NULL", a.kv.data = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    P("k n_tokens 0", a.kv.n_tokens = 0, FASA_ERR_ZERO_SIZE, FASA_ERR_ZERO_SIZE);
    P("q n_heads 0", a.qv.n_heads = 0, FASA_ERR_ZERO_SIZE, FASA_ERR_ZERO_SIZE);
    P("q head_dim 0", a.qv.head_dim = 0, FASA_ERR_ZERO_SIZE, FASA_ERR_ZERO_SIZE);
    P("n_q > t", (a.kv.n_tokens = 1), FASA_ERR_BAD_SHAPE, FASA_ERR_BAD_SHAPE);
    P("q head_dim != k head_dim", (a.kv.head_dim = 32), FASA_ERR_BAD_SHAPE,
      FASA_ERR_PROFILE_MISMATCH);
    P("Hq not divisible by Hkv", (a.qv.n_heads = 3), FASA_ERR_BAD_SHAPE, FASA_ERR_PROFILE_MISMATCH);
    P("odd head_dim", (a.qv.head_dim = 63, a.kv.head_dim = 63), FASA_ERR_PROFILE_MISMATCH,
      FASA_ERR_BAD_SHAPE);
    P("k token_stride < head_dim (overlap)", (a.kv.token_stride = D / 2, a.kv.head_stride = T * D),
      FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    P("k head_stride 0 with 2 heads", a.kv.head_stride = 0, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    P("q token_stride overlaps heads", a.qv.token_stride = D, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    P("q struct_size wrong", a.qv.struct_size = sizeof(fasa_view) / 2, FASA_ERR_INVALID_ARGUMENT,
      FASA_ERR_INVALID_ARGUMENT);
    P("k dtype unknown", a.kv.dtype = 7, FASA_ERR_BAD_DTYPE, FASA_ERR_BAD_DTYPE);
    P("k kind 1", a.kv.kind = 1, FASA_ERR_INVALID_ARGUMENT, FASA_ERR_UNSUPPORTED);
    P("k n_tokens * token_stride overflows", (a.kv.n_tokens = SIZE_MAX / 64), FASA_ERR_OVERFLOW,
      FASA_ERR_OVERFLOW);
    P("t >= 2^32 (index type)", (a.kv.n_tokens = ((size_t)1 << 32) + 1), FASA_ERR_OVERFLOW,
      FASA_ERR_WORKSPACE_TOO_SMALL);
    P("budget 0", a.budget = 0, FASA_ERR_BAD_BUDGET, FASA_ERR_BAD_BUDGET);
    P("budget negative", a.budget = -3, FASA_ERR_BAD_BUDGET, FASA_ERR_BAD_BUDGET);
    P("budget NaN", a.budget = NAN, FASA_ERR_BAD_BUDGET, FASA_ERR_BAD_BUDGET);
    P("budget +Inf", a.budget = INFINITY, FASA_ERR_BAD_BUDGET, FASA_ERR_BAD_BUDGET);
    P("index_stride too small", a.stride = 15, FASA_ERR_BUFFER_TOO_SMALL, FASA_ERR_BUFFER_TOO_SMALL);
    if (g_wsz > 0) {
        size_t need = 0;
        fasa_predict_workspace_size(g_ctx, g_prof, &g_q.view, T, FASA_GQA_PER_HEAD, &need);
        if (need > 0) {
            P("workspace one byte short", a.wsz = need - 1, FASA_ERR_WORKSPACE_TOO_SMALL,
              FASA_ERR_WORKSPACE_TOO_SMALL);
            P("workspace NULL, size 0", (a.ws = NULL, a.wsz = 0), FASA_ERR_WORKSPACE_TOO_SMALL,
              FASA_ERR_NULL_POINTER);
            P("workspace NULL, size given", a.ws = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
        }
    }
    P("profile head_dim 128 vs tensors 64", a.prof = g_prof_d128, FASA_ERR_PROFILE_MISMATCH,
      FASA_ERR_PROFILE_MISMATCH);
    P("profile Hq 8 vs tensors 4", a.prof = g_prof_hq8, FASA_ERR_PROFILE_MISMATCH,
      FASA_ERR_PROFILE_MISMATCH);
    P("layer out of range", a.layer = LAYERS, FASA_ERR_PROFILE_MISMATCH, FASA_ERR_PROFILE_MISMATCH);
    P("mode unknown", a.mode = 7, FASA_ERR_INVALID_ARGUMENT, FASA_ERR_INVALID_ARGUMENT);
    test_tensor_set(&g_qbad, 1, 2, 5, NAN);
    P("NaN in q", a.qv.data = g_qbad.mem, FASA_ERR_NONFINITE, FASA_ERR_NONFINITE);
    test_tensor_set(&g_qbad, 1, 2, 5, 0.5);
    test_tensor_set(&g_qbad, 0, 3, 63, -INFINITY);
    P("-Inf in q", a.qv.data = g_qbad.mem, FASA_ERR_NONFINITE, FASA_ERR_NONFINITE);
    test_tensor_set(&g_qbad, 0, 3, 63, 0.5);
    P("counts alias indices", a.cnt = a.idx, FASA_ERR_ALIASING, FASA_ERR_ALIASING);
    /* overlapping outputs point into the larger buffer so that a missed
     * check cannot write outside the allocation */
    P("indices overlap scores", a.idx = (uint32_t *)(a.scores + 4), FASA_ERR_ALIASING, FASA_ERR_ALIASING);
    P("indices inside k", a.idx = (uint32_t *)g_k.mem + 8, FASA_ERR_ALIASING, FASA_ERR_ALIASING);
    if (g_wsz >= (NQ * HQ + 1) * sizeof(uint32_t))
        P("counts inside workspace", a.cnt = (uint32_t *)g_ws + 1, FASA_ERR_ALIASING,
          FASA_ERR_ALIASING);
#undef P
}

static void attend_cases(void)
{
    args a;
#define A(op, name, edit, want, alt)                                                             \
    do {                                                                                        \
        base(&a, op);                                                                           \
        fix(&a);                                                                                \
        edit;                                                                                   \
        run(name, &a, want, alt);                                                               \
    } while (0)
    A(OP_ATTEND, "attend: indices NULL", a.idx = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    A(OP_ATTEND, "attend: counts NULL", a.cnt = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    A(OP_ATTEND, "attend: out NULL", a.out = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    A(OP_ATTEND, "attend: v NULL", a.v = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    A(OP_ATTEND, "attend: v has fewer tokens than k", a.vv.n_tokens = T - 1, FASA_ERR_BAD_SHAPE,
      FASA_ERR_BAD_SHAPE);
    A(OP_ATTEND, "attend: v heads != k heads", (a.vv.n_heads = 1), FASA_ERR_BAD_SHAPE,
      FASA_ERR_BAD_SHAPE);
    A(OP_ATTEND, "attend: out head_dim != v head_dim", (a.ov.head_dim = D / 2, a.ov.token_stride = HQ * D / 2,
                                                        a.ov.head_stride = D / 2),
      FASA_ERR_BAD_SHAPE, FASA_ERR_BAD_SHAPE);
    A(OP_ATTEND, "attend: out heads != Hq", (a.ov.n_heads = HQ / 2), FASA_ERR_BAD_SHAPE,
      FASA_ERR_BAD_SHAPE);
    A(OP_ATTEND, "attend: out dtype unknown", a.ov.dtype = 5, FASA_ERR_BAD_DTYPE, FASA_ERR_BAD_DTYPE);
    A(OP_ATTEND, "attend: indices unsorted",
      (a.idx = g_aidx2, memcpy(g_aidx2, g_aidx, NQ * HQ * g_stride * 4), g_aidx2[g_stride * 5 + 3] = 1),
      FASA_ERR_BAD_INDEX, FASA_ERR_BAD_INDEX);
    A(OP_ATTEND, "attend: index repeated",
      (a.idx = g_aidx2, memcpy(g_aidx2, g_aidx, NQ * HQ * g_stride * 4), g_aidx2[g_stride * 2 + 4] = 9),
      FASA_ERR_BAD_INDEX, FASA_ERR_BAD_INDEX);
    A(OP_ATTEND, "attend: index == t",
      (a.idx = g_aidx2, memcpy(g_aidx2, g_aidx, NQ * HQ * g_stride * 4), g_aidx2[g_stride * 7 + 9] = T),
      FASA_ERR_BAD_INDEX, FASA_ERR_BAD_INDEX);
    /* query 0 of 2 sees t - 1 keys: index t - 1 is in the future */
    A(OP_ATTEND, "attend: causal index beyond t_i",
      (a.idx = g_aidx2, memcpy(g_aidx2, g_aidx, NQ * HQ * g_stride * 4), g_aidx2[9] = T - 1),
      FASA_ERR_BAD_INDEX, FASA_ERR_BAD_INDEX);
    A(OP_ATTEND, "attend: count > index_stride",
      (a.cnt = g_acnt2, memcpy(g_acnt2, g_acnt, NQ * HQ * 4), g_acnt2[3] = (uint32_t)g_stride + 1),
      FASA_ERR_BAD_INDEX, FASA_ERR_BUFFER_TOO_SMALL);
    A(OP_ATTEND, "attend: scale NaN", a.scale = NAN, FASA_ERR_INVALID_ARGUMENT, FASA_ERR_NONFINITE);
    A(OP_ATTEND, "attend: out aliases q", a.ov.data = g_q.mem, FASA_ERR_ALIASING, FASA_ERR_ALIASING);
    A(OP_ATTEND, "attend: out overlaps v", a.ov.data = (float *)g_v.mem + 64, FASA_ERR_ALIASING,
      FASA_ERR_ALIASING);
    A(OP_ATTEND, "attend: lse inside out", a.lse = (float *)g_out.mem + 3, FASA_ERR_ALIASING,
      FASA_ERR_ALIASING);
    A(OP_ATTEND, "attend: mode unknown", a.mode = -1, FASA_ERR_INVALID_ARGUMENT,
      FASA_ERR_INVALID_ARGUMENT);
    {
        size_t need = 0;
        fasa_attend_workspace_size(g_ctx, &g_q.view, &g_k.view, &g_v.view, FASA_GQA_PER_HEAD, g_stride, &need);
        if (need > 0)
            A(OP_ATTEND, "attend: workspace one byte short", a.wsz = need - 1,
              FASA_ERR_WORKSPACE_TOO_SMALL, FASA_ERR_WORKSPACE_TOO_SMALL);
        need = 0;
        fasa_attend_dense_workspace_size(g_ctx, &g_q.view, &g_k.view, &g_v.view, &need);
        if (need > 0)
            A(OP_DENSE, "dense: workspace one byte short", a.wsz = need - 1,
              FASA_ERR_WORKSPACE_TOO_SMALL, FASA_ERR_WORKSPACE_TOO_SMALL);
    }
    A(OP_DENSE, "dense: q NULL", a.q = NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    A(OP_DENSE, "dense: n_q > t", (a.kv.n_tokens = 1, a.vv.n_tokens = 1), FASA_ERR_BAD_SHAPE,
      FASA_ERR_BAD_SHAPE);
    A(OP_DENSE, "dense: out inside k", a.ov.data = g_k.mem, FASA_ERR_ALIASING, FASA_ERR_ALIASING);
    A(OP_DENSE, "dense: scale +Inf", a.scale = INFINITY, FASA_ERR_INVALID_ARGUMENT,
      FASA_ERR_NONFINITE);
    A(OP_DENSE, "dense: v head_stride 0", a.vv.head_stride = 0, FASA_ERR_BAD_STRIDE,
      FASA_ERR_BAD_STRIDE);
    A(OP_DECODE, "decode_step: profile NULL", a.prof = NULL, FASA_ERR_NULL_POINTER,
      FASA_ERR_NULL_POINTER);
    A(OP_DECODE, "decode_step: budget NaN", a.budget = NAN, FASA_ERR_BAD_BUDGET, FASA_ERR_BAD_BUDGET);
    A(OP_DECODE, "decode_step: layer out of range", a.layer = 5, FASA_ERR_PROFILE_MISMATCH,
      FASA_ERR_PROFILE_MISMATCH);
    A(OP_DECODE, "decode_step: out aliases q", a.ov.data = g_q.mem, FASA_ERR_ALIASING,
      FASA_ERR_ALIASING);
    A(OP_DECODE, "decode_step: workspace NULL, size 0", (a.ws = NULL, a.wsz = 0),
      FASA_ERR_WORKSPACE_TOO_SMALL, FASA_ERR_NULL_POINTER);
#undef A
}

/* Size queries and small calls: status only (nothing to compare). */
static void misc_cases(void)
{
    size_t n = 7;
    CHECK_STATUS(fasa_predict_max_selected(16, 100, NULL), FASA_ERR_NULL_POINTER);
    CHECK_STATUS(fasa_predict_max_selected(-1, 100, &n), FASA_ERR_BAD_BUDGET);
    CHECK(n == 7);
    CHECK_STATUS(fasa_predict_workspace_size(g_ctx, g_prof, &g_q.view, T, FASA_GQA_PER_HEAD, NULL),
                 FASA_ERR_NULL_POINTER);
    CHECK_STATUS(fasa_predict_workspace_size(g_ctx, NULL, &g_q.view, T, FASA_GQA_PER_HEAD, &n),
                 FASA_ERR_NULL_POINTER);
    CHECK_STATUS(fasa_attend_workspace_size(g_ctx, &g_q.view, &g_k.view, NULL, FASA_GQA_PER_HEAD,
                                            g_stride, &n),
                 FASA_ERR_NULL_POINTER);
    CHECK_STATUS(fasa_attend_dense_workspace_size(g_ctx, &g_q.view, &g_k.view, &g_v.view, NULL),
                 FASA_ERR_NULL_POINTER);
    CHECK(n == 7);
    fasa_model_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.struct_size = sizeof shape;
    shape.n_layers = 1;
    shape.n_q_heads = 3;
    shape.n_kv_heads = 2;
    shape.head_dim = 8;
    uint32_t fcs[3] = {0, 1, 2};
    fasa_profile *p = (fasa_profile *)&shape;
    CHECK_STATUS(fasa_profile_create(&shape, fcs, 1, NULL, &p), FASA_ERR_BAD_SHAPE);
    CHECK(p == (fasa_profile *)&shape);
    shape.n_q_heads = 2;
    shape.head_dim = 7;
    fasa_status st = fasa_profile_create(&shape, fcs, 1, NULL, &p);
    CHECKF(st == FASA_ERR_BAD_SHAPE || st == FASA_ERR_INVALID_ARGUMENT, "odd head_dim profile: %s",
           fasa_status_name(st));
    CHECK(p == (fasa_profile *)&shape);
}

/* NaN in v is not checked (hot path): it propagates to the rows that use
 * that token and to no other row. */
static void nan_in_v(void)
{
    test_tensor v;
    test_tensor_make(&v, FASA_DTYPE_F32, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_randn(&v, 1.0);
    test_tensor_set(&v, 3, 1, 7, NAN); /* token 3, KV head 1: used by q heads 2 and 3 */
    args a;
    base(&a, OP_ATTEND);
    fix(&a);
    a.vv = v.view;
    for (size_t s = 0; s < NQ * HQ; s++)
        a.cnt[s] = 10; /* every set holds 0, 3, 6, ... */
    a.cnt[1 * HQ + 2] = 1; /* query 1 head 2: token 0 only, no NaN */
    fasa_status st = call(&a);
    CHECKF(st == FASA_OK, "NaN in v: %s", fasa_status_name(st));
    for (size_t i = 0; i < NQ; i++)
        for (size_t h = 0; h < HQ; h++) {
            int uses = h >= 2 && !(i == 1 && h == 2);
            int any_nan = 0;
            for (size_t x = 0; x < D; x++)
                any_nan |= isnan(test_tensor_get(&g_out, i, h, x));
            double at7 = test_tensor_get(&g_out, i, h, 7);
            if (uses)
                CHECKF(isnan(at7), "NaN in v: query %zu head %zu dim 7 should be NaN", i, h);
            else
                CHECKF(!any_nan, "NaN in v leaked into query %zu head %zu", i, h);
        }
    test_tensor_free(&v);
}

/* Quantized views: K and V only, whole blocks. Quantized q or out is
 * BAD_DTYPE, a K/V stride off the 32-element block MISALIGNED, for every
 * entry point and the label-cache build; quantized K and V themselves run. */
static void quant_cases(void)
{
    args a;
    char name[160];
    static const char *const ops[] = {"predict", "attend", "dense", "decode_step"};
    for (int op = OP_PREDICT; op <= OP_DECODE; op++) {
        base(&a, op);
        fix(&a);
        a.kv = g_kq.view;
        a.vv = g_vq.view;
        fasa_status st = call(&a); /* writes its outputs: not through run() */
        CHECKF(st == FASA_OK, "%s: k Q8_0, v Q4_0 (valid): %s (%s)", ops[op], fasa_status_name(st),
               fasa_ctx_last_error(g_ctx));

        base(&a, op);
        fix(&a);
        a.qv = g_qq.view;
        snprintf(name, sizeof name, "%s: q Q8_0", ops[op]);
        run(name, &a, FASA_ERR_BAD_DTYPE, FASA_ERR_BAD_DTYPE);
        CHECKF(strstr(fasa_ctx_last_error(g_ctx), "q: dtype Q8_0") != NULL, "%s: message '%s'",
               name, fasa_ctx_last_error(g_ctx));

        base(&a, op);
        fix(&a);
        a.kv = g_kq.view;
        a.kv.token_stride = HKV * D + 16;
        snprintf(name, sizeof name, "%s: k Q8_0 token_stride off the block", ops[op]);
        run(name, &a, FASA_ERR_MISALIGNED, FASA_ERR_MISALIGNED);
        CHECKF(strstr(fasa_ctx_last_error(g_ctx), "k: misaligned quant blocks: token_stride 144") !=
                   NULL,
               "%s: message '%s'", name, fasa_ctx_last_error(g_ctx));
        if (op == OP_PREDICT)
            continue;
        base(&a, op);
        fix(&a);
        a.ov = g_oq.view;
        snprintf(name, sizeof name, "%s: out Q4_0", ops[op]);
        run(name, &a, FASA_ERR_BAD_DTYPE, FASA_ERR_BAD_DTYPE);
        CHECKF(strstr(fasa_ctx_last_error(g_ctx), "out: dtype Q4_0") != NULL, "%s: message '%s'",
               name, fasa_ctx_last_error(g_ctx));

        base(&a, op);
        fix(&a);
        a.vv = g_vq.view;
        a.vv.head_stride = D + 8;
        a.vv.token_stride = HKV * (D + 8);
        snprintf(name, sizeof name, "%s: v Q4_0 head_stride off the block", ops[op]);
        run(name, &a, FASA_ERR_MISALIGNED, FASA_ERR_MISALIGNED);
    }
    /* label cache: built from quantized K, refused off the block */
    size_t bytes = 0;
    CHECK_STATUS(fasa_label_cache_size(g_prof, 1, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, T, &bytes),
                 FASA_OK);
    void *mem = test_xmalloc(bytes);
    fasa_label_cache *c = NULL;
    if (CHECK_STATUS(fasa_label_cache_init(mem, bytes, g_prof, 1, FASA_GQA_PER_HEAD, FASA_DTYPE_F16,
                                           T, &c),
                     FASA_OK)) {
        CHECK_STATUS(fasa_label_cache_build(c, &g_kq.view), FASA_OK);
        fasa_view k = g_kq.view;
        k.head_stride = D + 16;
        k.token_stride = HKV * (D + 16);
        CHECK_STATUS(fasa_label_cache_build(c, &k), FASA_ERR_MISALIGNED);
    }
    free(mem);
}

int main(void)
{
    test_init("test_bad_input");
    setup();
    valid_calls();
    predict_cases();
    attend_cases();
    misc_cases();
    quant_cases();
    nan_in_v();
    test_note("%zu named error cases (%zu accept either of two statuses)", g_cases, g_either);
    CHECK(g_cases >= 40);
    fasa_profile_destroy(g_prof);
    fasa_profile_destroy(g_prof_d128);
    fasa_profile_destroy(g_prof_hq8);
    fasa_ctx_destroy(g_ctx);
    return test_summary();
}
