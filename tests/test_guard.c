/*
 * test_guard.c - every input and output of predict, predict_cached, attend,
 * attend_dense and decode_step sits flush against a PROT_NONE page (after
 * the buffer, then before it), at sizes that leave SIMD tails (t = 1, 63,
 * 65, 127; head_dim 64; head_dim_v 64 and 40) and for every dtype. Reading
 * or writing one element past an extent kills the program, which check-unit
 * reports as a failure.
 */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 64, HQ = 4, HKV = 2, NFC = 16 };

static void *galloc(size_t bytes, int guard) { return test_alloc(bytes, guard); }

static void run(fasa_ctx *ctx, const fasa_profile *prof, size_t t, size_t n_q, int dt_qk,
                int dt_v, int dt_out, int guard, int mode)
{
    /* head_dim_v 40 in GROUP_SHARED runs: rows that end mid-vector */
    size_t dv = mode == FASA_GQA_GROUP_SHARED ? 40 : D;
    char desc[160];
    snprintf(desc, sizeof desc, "t=%zu n_q=%zu dv=%zu qk=%s v=%s out=%s guard=%s mode=%d", t, n_q, dv,
             test_dtype_name(dt_qk), test_dtype_name(dt_v), test_dtype_name(dt_out),
             guard == TEST_GUARD_AFTER ? "after" : "before", mode);
    test_tensor q, k, v, out;
    test_tensor_make(&q, dt_qk, n_q, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, guard);
    test_tensor_make(&k, dt_qk, t, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, guard);
    test_tensor_make(&v, dt_v, t, HKV, dv, TEST_LAYOUT_HEAD_MAJOR, guard);
    test_tensor_make(&out, dt_out, n_q, HQ, dv, TEST_LAYOUT_TOKEN_MAJOR, guard);
    test_tensor_randn(&q, 1.0);
    test_tensor_randn(&k, 1.0);
    test_tensor_randn(&v, 1.0);
    size_t n_sets = mode == FASA_GQA_PER_HEAD ? HQ : HKV;
    double budget = t > 2 ? (double)(t / 2) : 1.0;
    size_t stride = 0;
    fasa_predict_max_selected(budget, t, &stride);
    size_t n_idx = n_q * n_sets * stride, n_cnt = n_q * n_sets, n_sc = n_q * n_sets * t;
    uint32_t *idx = galloc(n_idx * 4, guard), *cnt = galloc(n_cnt * 4, guard);
    float *sc = galloc(n_sc * 4, guard), *lse = galloc(n_q * HQ * 4, guard);

    size_t wp = 0, wa = 0, wd = 0, ws = 0;
    fasa_predict_workspace_size(ctx, prof, &q.view, t, (fasa_gqa_mode)mode, &wp);
    fasa_attend_workspace_size(ctx, &q.view, &k.view, &v.view, (fasa_gqa_mode)mode, stride, &wa);
    fasa_attend_dense_workspace_size(ctx, &q.view, &k.view, &v.view, &wd);
    fasa_decode_step_workspace_size(ctx, prof, &q.view, &k.view, &v.view, (fasa_gqa_mode)mode,
                                    budget, &ws);
    /* each call gets a workspace of exactly the size it asked for */
    void *bp = galloc(wp, guard), *ba = galloc(wa, guard), *bd = galloc(wd, guard),
         *bs = galloc(ws, guard);

    fasa_status st = fasa_predict(ctx, prof, 1, (fasa_gqa_mode)mode, &q.view, &k.view, budget, idx,
                                  stride, cnt, sc, bp, wp);
    CHECKF(st == FASA_OK, "%s: predict %s (%s)", desc, fasa_status_name(st), fasa_ctx_last_error(ctx));
    st = fasa_attend(ctx, (fasa_gqa_mode)mode, &q.view, &k.view, &v.view, idx, stride, cnt, 0.0f,
                     &out.view, lse, ba, wa);
    CHECKF(st == FASA_OK, "%s: attend %s (%s)", desc, fasa_status_name(st), fasa_ctx_last_error(ctx));
    st = fasa_attend_dense(ctx, &q.view, &k.view, &v.view, 0.0f, &out.view, lse, bd, wd);
    CHECKF(st == FASA_OK, "%s: attend_dense %s", desc, fasa_status_name(st));
    void *dense = test_xmalloc(out.bytes);
    memcpy(dense, out.mem, out.bytes);
    st = fasa_decode_step(ctx, prof, 1, (fasa_gqa_mode)mode, &q.view, &k.view, &v.view, NULL, budget,
                          0.0f, &out.view, lse, bs, ws);
    CHECKF(st == FASA_OK, "%s: decode_step %s", desc, fasa_status_name(st));
    size_t wt = 0;
    fasa_decode_step_workspace_size(ctx, prof, &q.view, &k.view, &v.view, (fasa_gqa_mode)mode,
                                    (double)t, &wt);
    void *bt = galloc(wt, guard);
    st = fasa_decode_step(ctx, prof, 1, (fasa_gqa_mode)mode, &q.view, &k.view, &v.view, NULL,
                          (double)t, 0.0f, &out.view, NULL, bt, wt);
    test_free(bt, wt, guard);
    CHECKF(st == FASA_OK && memcmp(dense, out.mem, out.bytes) == 0,
           "%s: decode_step (budget t) %s or not the dense result", desc, fasa_status_name(st));
    free(dense);

    /* the label cache in guarded memory of exactly its reported size */
    size_t cbytes = 0;
    st = fasa_label_cache_size(prof, 1, (fasa_gqa_mode)mode, (fasa_dtype)dt_qk, t, &cbytes);
    if (CHECKF(st == FASA_OK, "%s: label_cache_size %s", desc, fasa_status_name(st))) {
        void *cmem = galloc(cbytes, guard);
        fasa_label_cache *cache = NULL;
        st = fasa_label_cache_init(cmem, cbytes, prof, 1, (fasa_gqa_mode)mode, (fasa_dtype)dt_qk, t,
                                   &cache);
        if (st == FASA_OK)
            st = fasa_label_cache_build(cache, &k.view);
        if (st == FASA_OK)
            st = fasa_predict_cached(ctx, prof, 1, (fasa_gqa_mode)mode, &q.view, cache, budget, idx,
                                     stride, cnt, sc, bp, wp);
        if (st == FASA_OK)
            st = fasa_decode_step(ctx, prof, 1, (fasa_gqa_mode)mode, &q.view, &k.view, &v.view, cache,
                                  budget, 0.0f, &out.view, lse, bs, ws);
        CHECKF(st == FASA_OK, "%s: label cache path %s (%s)", desc, fasa_status_name(st),
               fasa_ctx_last_error(ctx));
        test_free(cmem, cbytes, guard);
    }

    test_free(bp, wp, guard);
    test_free(ba, wa, guard);
    test_free(bd, wd, guard);
    test_free(bs, ws, guard);
    test_free(idx, n_idx * 4, guard);
    test_free(cnt, n_cnt * 4, guard);
    test_free(sc, n_sc * 4, guard);
    test_free(lse, n_q * HQ * 4, guard);
    test_tensor_free(&q);
    test_tensor_free(&k);
    test_tensor_free(&v);
    test_tensor_free(&out);
}

int main(void)
{
    test_init("test_guard");
    fasa_ctx *ctx = NULL;
    CHECK_STATUS(fasa_ctx_create(NULL, &ctx), FASA_OK);
    fasa_model_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.struct_size = sizeof shape;
    shape.n_layers = 2;
    shape.n_q_heads = HQ;
    shape.n_kv_heads = HKV;
    shape.head_dim = D;
    shape.pair_layout = FASA_PAIRS_HALF;
    uint32_t *fcs = test_random_fcs(2, HQ, NFC, D);
    fasa_profile *prof = NULL;
    CHECK_STATUS(fasa_profile_create(&shape, fcs, NFC, NULL, &prof), FASA_OK);
    free(fcs);
    static const size_t ts[] = {1, 63, 65, 127};
    size_t runs = 0;
    for (int guard = TEST_GUARD_AFTER; guard <= TEST_GUARD_BEFORE; guard++)
        for (size_t i = 0; i < 4; i++)
            for (int dt = 0; dt < 3; dt++)
                for (int mode = 0; mode < 2; mode++) {
                    size_t n_q = (i + (size_t)dt) % 2 ? 2 : 1;
                    if (n_q > ts[i])
                        n_q = 1;
                    /* v and out dtypes rotate so every pairing occurs */
                    run(ctx, prof, ts[i], n_q, dt, (dt + 1 + mode) % 3, (dt + (int)i) % 3, guard, mode);
                    runs++;
                }
    test_note("%zu guarded runs, no fault", runs);
    fasa_profile_destroy(prof);
    fasa_ctx_destroy(ctx);
    return test_summary();
}
