/*
 * test_decode_step.c - fasa_decode_step chains predict and attend:
 *  - budget >= t and dense layers give exactly (bit-identical) the output
 *    and lse of fasa_attend_dense;
 *  - t > budget on a sparse layer equals fasa_predict + fasa_attend done by
 *    hand (within the attend tolerance; bit identity is reported);
 *  - with a label cache it equals fasa_predict_cached + fasa_attend;
 *  - the same call twice is bit-identical.
 */
#include "ref_double.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dcase {
    size_t d, hq, hkv, t, n_q, n_fc;
    int qdt, kdt, odt, lay, pairs, mode;
    float scale;
} dcase;

static size_t g_sparse_cases, g_sparse_bitwise;

static void random_case(dcase *c)
{
    static const size_t dims[] = {64, 128};
    static const size_t ratios[] = {1, 2, 4};
    c->d = dims[test_rand_range(0, 1)];
    c->hkv = test_rand_range(1, 2);
    c->hq = c->hkv * ratios[test_rand_range(0, 2)];
    c->t = test_rand_range(1, 400);
    c->n_q = test_rand_range(0, 2) ? 1 : test_rand_range(1, c->t < 3 ? c->t : 3);
    c->n_fc = test_rand_range(0, 1) ? 16 : test_rand_range(1, c->d / 2);
    c->qdt = (int)test_rand_range(0, 2);
    c->kdt = (int)test_rand_range(0, 2);
    c->odt = (int)test_rand_range(0, 2);
    c->lay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->pairs = (int)test_rand_range(0, 2);
    c->mode = (int)test_rand_range(0, 1);
    c->scale = test_rand_range(0, 1) ? 0.0f : 0.1f;
}

typedef struct outbuf {
    test_tensor out;
    float *lse;
} outbuf;

static void outbuf_make(outbuf *o, const dcase *c)
{
    test_tensor_make(&o->out, c->odt, c->n_q, c->hq, c->d, c->lay, TEST_PLAIN);
    test_tensor_fill_bytes(&o->out, 0x5c);
    o->lse = test_xmalloc(c->n_q * c->hq * sizeof(float));
    memset(o->lse, 0x5c, c->n_q * c->hq * sizeof(float));
}

static void outbuf_free(outbuf *o)
{
    test_tensor_free(&o->out);
    free(o->lse);
}

static int same_bits(const outbuf *a, const outbuf *b, const dcase *c)
{
    return memcmp(a->out.mem, b->out.mem, a->out.bytes) == 0 &&
           memcmp(a->lse, b->lse, c->n_q * c->hq * sizeof(float)) == 0;
}

static double max_diff(const outbuf *a, const outbuf *b, const dcase *c)
{
    double m = 0.0;
    for (size_t i = 0; i < c->n_q; i++)
        for (size_t h = 0; h < c->hq; h++)
            for (size_t x = 0; x < c->d; x++) {
                double u = test_tensor_get(&a->out, i, h, x), v = test_tensor_get(&b->out, i, h, x);
                m = fmax(m, isnan(u) || isnan(v) ? INFINITY : fabs(u - v));
            }
    return m;
}

static void run_case(fasa_ctx *ctx, const dcase *c)
{
    char desc[300];
    snprintf(desc, sizeof desc, "d=%zu Hq=%zu Hkv=%zu t=%zu n_q=%zu n_fc=%zu q=%s k/v=%s out=%s %s pairs=%d mode=%d",
             c->d, c->hq, c->hkv, c->t, c->n_q, c->n_fc, test_dtype_name(c->qdt),
             test_dtype_name(c->kdt), test_dtype_name(c->odt), test_layout_name(c->lay), c->pairs,
             c->mode);
    const size_t L = 3;
    fasa_model_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.struct_size = sizeof shape;
    shape.n_layers = L;
    shape.n_q_heads = c->hq;
    shape.n_kv_heads = c->hkv;
    shape.head_dim = c->d;
    shape.pair_layout = c->pairs;
    uint32_t *fcs = test_random_fcs(L, c->hq, c->n_fc, c->d);
    fasa_profile *prof = NULL;
    fasa_status st = fasa_profile_create(&shape, fcs, c->n_fc, NULL, &prof);
    free(fcs);
    if (!CHECKF(st == FASA_OK, "%s: profile %s", desc, fasa_status_name(st)))
        return;
    int dense0 = -1;
    fasa_profile_get_dense_layer(prof, 0, &dense0);
    CHECKF(dense0 == 1, "%s: layer 0 not dense by default", desc);

    test_tensor q, k, v;
    test_tensor_make(&q, c->qdt, c->n_q, c->hq, c->d, c->lay, TEST_PLAIN);
    test_tensor_make(&k, c->kdt, c->t, c->hkv, c->d, c->lay, TEST_PLAIN);
    test_tensor_make(&v, c->kdt, c->t, c->hkv, c->d, c->lay, TEST_PLAIN);
    test_tensor_randn(&q, 0.7);
    test_tensor_randn(&k, 0.7);
    test_tensor_randn(&v, 2.0);
    double vmax = 0.0;
    for (size_t j = 0; j < c->t; j++)
        for (size_t h = 0; h < c->hkv; h++)
            for (size_t x = 0; x < c->d; x++)
                vmax = fmax(vmax, fabs(test_tensor_get(&v, j, h, x)));

    double budgets[3] = {(double)c->t + (double)test_rand_range(0, 5), 0.0, 0.0};
    budgets[1] = (double)test_rand_range(1, c->t > 1 ? c->t - 1 : 1);
    budgets[2] = 0.05 + 0.5 * test_rand_uniform();
    size_t n_sets = c->mode == FASA_GQA_PER_HEAD ? c->hq : c->hkv;

    outbuf dense, got, hand;
    outbuf_make(&dense, c);
    outbuf_make(&got, c);
    outbuf_make(&hand, c);
    size_t ws = 0, w2 = 0;
    fasa_attend_dense_workspace_size(ctx, &q.view, &k.view, &v.view, &w2);
    ws = w2;
    for (int b = 0; b < 3; b++) {
        w2 = 0;
        fasa_decode_step_workspace_size(ctx, prof, &q.view, &k.view, &v.view, (fasa_gqa_mode)c->mode,
                                        budgets[b], &w2);
        ws = w2 > ws ? w2 : ws;
        w2 = 0;
        fasa_predict_workspace_size(ctx, prof, &q.view, c->t, (fasa_gqa_mode)c->mode, &w2);
        ws = w2 > ws ? w2 : ws;
        w2 = 0;
        fasa_attend_workspace_size(ctx, &q.view, &k.view, &v.view, (fasa_gqa_mode)c->mode, c->t, &w2);
        ws = w2 > ws ? w2 : ws;
    }
    void *work = test_xmalloc(ws);
    st = fasa_attend_dense(ctx, &q.view, &k.view, &v.view, c->scale, &dense.out.view, dense.lse,
                           work, ws);
    CHECKF(st == FASA_OK, "%s: attend_dense %s", desc, fasa_status_name(st));

    uint32_t *idx = test_xmalloc(c->n_q * n_sets * c->t * sizeof(uint32_t));
    uint32_t *cnt = test_xmalloc(c->n_q * n_sets * sizeof(uint32_t));

    for (size_t layer = 0; layer < 2; layer++)
        for (int b = 0; b < 3; b++) {
            double budget = budgets[b];
            st = fasa_decode_step(ctx, prof, layer, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view,
                                  NULL, budget, c->scale, &got.out.view, got.lse, work, ws);
            if (!CHECKF(st == FASA_OK, "%s layer %zu budget %g: decode_step %s (%s)", desc, layer,
                        budget, fasa_status_name(st), fasa_ctx_last_error(ctx)))
                continue;
            int all_selected = budget >= (double)c->t;
            if (layer == 0 || all_selected) {
                CHECKF(same_bits(&got, &dense, c), "%s layer %zu budget %g: not bit-identical to attend_dense (max diff %g)",
                       desc, layer, budget, max_diff(&got, &dense, c));
                continue;
            }
            st = fasa_predict(ctx, prof, layer, (fasa_gqa_mode)c->mode, &q.view, &k.view, budget, idx,
                              c->t, cnt, NULL, work, ws);
            CHECKF(st == FASA_OK, "%s: predict %s", desc, fasa_status_name(st));
            st = fasa_attend(ctx, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view, idx, c->t, cnt,
                             c->scale, &hand.out.view, hand.lse, work, ws);
            CHECKF(st == FASA_OK, "%s: attend %s", desc, fasa_status_name(st));
            double tol = 2e-5 * vmax + 2.0 * test_half_ulp(c->odt, vmax);
            if (c->odt == FASA_DTYPE_F32)
                tol = 2e-5 * vmax;
            double diff = max_diff(&got, &hand, c);
            CHECKF(diff <= tol, "%s layer %zu budget %g: decode_step vs predict+attend differ by %g (tol %g)",
                   desc, layer, budget, diff, tol);
            g_sparse_cases++;
            g_sparse_bitwise += same_bits(&got, &hand, c);
            /* determinism */
            void *copy = test_xmalloc(got.out.bytes);
            memcpy(copy, got.out.mem, got.out.bytes);
            fasa_decode_step(ctx, prof, layer, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view, NULL,
                             budget, c->scale, &got.out.view, got.lse, work, ws);
            CHECKF(memcmp(copy, got.out.mem, got.out.bytes) == 0, "%s: second decode_step differs", desc);
            free(copy);
        }

    /* marking a layer dense makes it dense; un-marking layer 0 makes it sparse */
    CHECK_STATUS(fasa_profile_set_dense_layer(prof, 2, 1), FASA_OK);
    CHECK_STATUS(fasa_profile_set_dense_layer(prof, 0, 0), FASA_OK);
    st = fasa_decode_step(ctx, prof, 2, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view, NULL,
                          1.0, c->scale, &got.out.view, got.lse, work, ws);
    CHECKF(st == FASA_OK && same_bits(&got, &dense, c), "%s: layer marked dense is not dense (%s)", desc,
           fasa_status_name(st));
    if (c->t - c->n_q + 1 > 1) {
        st = fasa_predict(ctx, prof, 0, (fasa_gqa_mode)c->mode, &q.view, &k.view, 1.0, idx, c->t, cnt,
                          NULL, work, ws);
        st |= fasa_attend(ctx, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view, idx, c->t, cnt,
                          c->scale, &hand.out.view, hand.lse, work, ws);
        st |= fasa_decode_step(ctx, prof, 0, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view, NULL,
                               1.0, c->scale, &got.out.view, got.lse, work, ws);
        CHECKF(st == FASA_OK && max_diff(&got, &hand, c) <= 2e-5 * vmax + 2.0 * test_half_ulp(c->odt, vmax),
               "%s: layer 0 marked sparse, budget 1: not the sparse result", desc);
    }

    /* with a label cache */
    {
        int cdt = (int)test_rand_range(0, 2);
        size_t layer = 1, bytes = 0;
        double budget = budgets[test_rand_range(1, 2)];
        st = fasa_label_cache_size(prof, layer, (fasa_gqa_mode)c->mode, (fasa_dtype)cdt, c->t + 10, &bytes);
        if (CHECKF(st == FASA_OK, "%s: label_cache_size %s", desc, fasa_status_name(st))) {
            void *mem = test_xmalloc(bytes);
            fasa_label_cache *cache = NULL;
            st = fasa_label_cache_init(mem, bytes, prof, layer, (fasa_gqa_mode)c->mode, (fasa_dtype)cdt,
                                       c->t + 10, &cache);
            if (st == FASA_OK)
                st = fasa_label_cache_build(cache, &k.view);
            if (CHECKF(st == FASA_OK, "%s: label cache init/build %s", desc, fasa_status_name(st))) {
                size_t need = 0;
                fasa_decode_step_workspace_size(ctx, prof, &q.view, &k.view, &v.view,
                                                (fasa_gqa_mode)c->mode, budget, &need);
                CHECK(need <= ws);
                st = fasa_predict_cached(ctx, prof, layer, (fasa_gqa_mode)c->mode, &q.view, cache, budget,
                                         idx, c->t, cnt, NULL, work, ws);
                st |= fasa_attend(ctx, (fasa_gqa_mode)c->mode, &q.view, &k.view, &v.view, idx, c->t, cnt,
                                  c->scale, &hand.out.view, hand.lse, work, ws);
                fasa_status st2 = fasa_decode_step(ctx, prof, layer, (fasa_gqa_mode)c->mode, &q.view,
                                                   &k.view, &v.view, cache, budget, c->scale,
                                                   &got.out.view, got.lse, work, ws);
                int all = budget >= (double)c->t;
                outbuf *want = all ? &dense : &hand;
                double tol = 2e-5 * vmax + 2.0 * test_half_ulp(c->odt, vmax);
                CHECKF(st == FASA_OK && st2 == FASA_OK && max_diff(&got, want, c) <= tol,
                       "%s: decode_step with %s label cache differs from predict_cached+attend by %g (%s/%s)",
                       desc, test_dtype_name(cdt), max_diff(&got, want, c), fasa_status_name(st),
                       fasa_status_name(st2));
            }
            free(mem);
        }
    }

    free(idx);
    free(cnt);
    free(work);
    outbuf_free(&dense);
    outbuf_free(&got);
    outbuf_free(&hand);
    test_tensor_free(&q);
    test_tensor_free(&k);
    test_tensor_free(&v);
    fasa_profile_destroy(prof);
}

int main(void)
{
    test_init("test_decode_step");
    fasa_ctx *ctx = NULL;
    CHECK_STATUS(fasa_ctx_create(NULL, &ctx), FASA_OK);
    dcase c;
    for (int r = 0; r < 40; r++) {
        random_case(&c);
        run_case(ctx, &c);
    }
    test_note("%zu sparse steps compared with predict+attend, %zu of them bit-identical",
              g_sparse_cases, g_sparse_bitwise);
    fasa_ctx_destroy(ctx);
    return test_summary();
}
