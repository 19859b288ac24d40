/*
 * test_attend.c - fasa_attend (FAC over given index sets) and
 * fasa_attend_dense against the double reference.
 *
 * Tolerances: |out - ref| <= 2e-5 * max|v| (+ half an ulp of the output
 * dtype for f16/bf16 outputs); the reference reads the same rounded
 * f16/bf16 inputs and the same decoded Q8_0/Q4_0 values (exact in f32).
 * lse: |lse - ref| <= 1e-5 * max(1, |ref|).
 * Also: a label cache built from Q8_0/Q4_0 K equals one built from the
 * dequantized K in f32 (same selections and scores).
 */
#include "ref_double.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct acase {
    size_t d, dv, hq, hkv, t, n_q;
    int qdt, kdt, vdt, odt, qlay, klay, vlay, olay, mode;
    float scale;
    int want_lse;
} acase;

typedef struct adata {
    test_tensor q, k, v, out;
    double *qd, *kd, *vd;
    double vmax;
} adata;

static void describe(const acase *c, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "d=%zu dv=%zu Hq=%zu Hkv=%zu t=%zu n_q=%zu q=%s/%s k=%s/%s v=%s/%s out=%s/%s mode=%d "
             "scale=%g",
             c->d, c->dv, c->hq, c->hkv, c->t, c->n_q, test_dtype_name(c->qdt),
             test_layout_name(c->qlay), test_dtype_name(c->kdt), test_layout_name(c->klay),
             test_dtype_name(c->vdt), test_layout_name(c->vlay), test_dtype_name(c->odt),
             test_layout_name(c->olay), c->mode, (double)c->scale);
}

static void data_make(adata *a, const acase *c)
{
    test_tensor_make(&a->q, c->qdt, c->n_q, c->hq, c->d, c->qlay, TEST_PLAIN);
    test_tensor_make(&a->k, c->kdt, c->t, c->hkv, c->d, c->klay, TEST_PLAIN);
    test_tensor_make(&a->v, c->vdt, c->t, c->hkv, c->dv, c->vlay, TEST_PLAIN);
    test_tensor_make(&a->out, c->odt, c->n_q, c->hq, c->dv, c->olay, TEST_PLAIN);
    /* q * k ~ N(0, d * 0.25): logits of a few units after 1/sqrt(d), so the
     * softmax is neither flat nor one-hot */
    test_tensor_randn(&a->q, 0.5 * sqrt(2.0));
    test_tensor_randn(&a->k, 0.5 * sqrt(2.0));
    test_tensor_randn(&a->v, 3.0);
    a->qd = test_tensor_to_double(&a->q);
    a->kd = test_tensor_to_double(&a->k);
    a->vd = test_tensor_to_double(&a->v);
    a->vmax = 0.0;
    for (size_t i = 0; i < c->t * c->hkv * c->dv; i++)
        a->vmax = fmax(a->vmax, fabs(a->vd[i]));
}

static void data_free(adata *a)
{
    test_tensor_free(&a->q);
    test_tensor_free(&a->k);
    test_tensor_free(&a->v);
    test_tensor_free(&a->out);
    free(a->qd);
    free(a->kd);
    free(a->vd);
}

static double eff_scale(const acase *c)
{
    return c->scale == 0.0f ? 1.0 / sqrt((double)c->d) : (double)c->scale;
}

/* Compare out/lse of query i, head h with the reference over idx[n]. */
static int check_head(const acase *c, const adata *a, const char *desc, size_t i, size_t h,
                      const uint32_t *idx, size_t n, const float *lse)
{
    size_t g = h * c->hkv / c->hq;
    double *ref = test_xmalloc(c->dv * sizeof(double)), ref_lse;
    ref_attend(a->qd + (i * c->hq + h) * c->d, a->kd + g * c->d, c->hkv * c->d, c->d,
               a->vd + g * c->dv, c->hkv * c->dv, c->dv, idx, n, eff_scale(c), ref, &ref_lse);
    double tol = 2e-5 * a->vmax;
    int ok = 1;
    for (size_t x = 0; x < c->dv && ok; x++) {
        double got = test_tensor_get(&a->out, i, h, x);
        double lim = tol + test_half_ulp(c->odt, fabs(ref[x]) + tol);
        if (c->odt == FASA_DTYPE_F32)
            lim = tol;
        ok = CHECKF(fabs(got - ref[x]) <= lim, "%s: out[%zu][%zu][%zu] = %.9g, want %.9g (tol %.3g, n=%zu)",
                    desc, i, h, x, got, ref[x], lim, n);
    }
    if (lse && ok) {
        double l = lse[i * c->hq + h];
        if (n == 0)
            ok = CHECKF(isinf(l) && l < 0, "%s: lse of empty set %g", desc, l);
        else
            ok = CHECKF(fabs(l - ref_lse) <= 1e-5 * fmax(1.0, fabs(ref_lse)),
                        "%s: lse[%zu][%zu] = %.9g, want %.9g", desc, i, h, l, ref_lse);
    }
    free(ref);
    return ok;
}

/* Random strictly ascending subset of 0..t_i-1 of size n. */
static void random_subset(uint32_t *out, size_t t_i, size_t n)
{
    size_t chosen = 0;
    for (size_t j = 0; j < t_i && chosen < n; j++) /* selection sampling */
        if (test_rand_uniform() * (double)(t_i - j) < (double)(n - chosen))
            out[chosen++] = (uint32_t)j;
}

static void random_case(acase *c)
{
    static const size_t dims[] = {64, 128, 256};
    static const size_t ratios[] = {1, 2, 4, 8};
    memset(c, 0, sizeof *c);
    c->d = dims[test_rand_range(0, 2)];
    static const size_t dvs[] = {0, 0, 64, 40, 8};
    c->dv = dvs[test_rand_range(0, 4)];
    if (c->dv == 0)
        c->dv = c->d;
    c->hkv = test_rand_range(1, 2);
    c->hq = c->hkv * ratios[test_rand_range(0, 3)];
    c->t = test_rand_range(0, 4) ? test_rand_range(1, 200) : test_rand_range(201, 2000);
    c->n_q = test_rand_range(0, 2) == 0 ? test_rand_range(1, c->t < 4 ? c->t : 4) : 1;
    c->qdt = (int)test_rand_range(0, 2);
    c->kdt = (int)test_rand_range(0, 4); /* K and V may be Q8_0 / Q4_0 */
    c->vdt = (int)test_rand_range(0, 4);
    if (test_dtype_quant(c->vdt) && c->dv % 32 != 0)
        c->dv = 64;
    c->odt = (int)test_rand_range(0, 2);
    c->qlay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->klay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->vlay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->olay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->mode = (int)test_rand_range(0, 1);
    c->scale = test_rand_range(0, 2) ? 0.0f : (float)(0.02 + 0.3 * test_rand_uniform());
    c->want_lse = test_rand_range(0, 3) != 0;
}

/* fasa_attend with random index sets (empty ones included). */
static void case_sparse(fasa_ctx *ctx, const acase *c)
{
    char desc[400];
    describe(c, desc, sizeof desc);
    adata a;
    data_make(&a, c);
    size_t n_sets = c->mode == FASA_GQA_PER_HEAD ? c->hq : c->hkv;
    size_t stride = c->t + test_rand_range(0, 2);
    uint32_t *idx = test_xmalloc(c->n_q * n_sets * stride * sizeof(uint32_t));
    uint32_t *cnt = test_xmalloc(c->n_q * n_sets * sizeof(uint32_t));
    for (size_t i = 0; i < c->n_q; i++)
        for (size_t s = 0; s < n_sets; s++) {
            size_t t_i = ref_visible(c->t, c->n_q, i);
            size_t r = test_rand_range(0, 9);
            size_t n = r == 0 ? 0 : r == 1 ? t_i : r == 2 ? 1 : test_rand_range(1, t_i);
            cnt[i * n_sets + s] = (uint32_t)n;
            random_subset(idx + (i * n_sets + s) * stride, t_i, n);
        }
    float *lse = c->want_lse ? test_xmalloc(c->n_q * c->hq * sizeof(float)) : NULL;
    size_t ws = 0;
    fasa_status st = fasa_attend_workspace_size(ctx, &a.q.view, &a.k.view, &a.v.view,
                                                (fasa_gqa_mode)c->mode, stride, &ws);
    CHECKF(st == FASA_OK, "%s: workspace_size %s", desc, fasa_status_name(st));
    void *work = test_xmalloc(ws);
    st = fasa_attend(ctx, (fasa_gqa_mode)c->mode, &a.q.view, &a.k.view, &a.v.view, idx, stride,
                     cnt, c->scale, &a.out.view, lse, work, ws);
    if (CHECKF(st == FASA_OK, "%s: attend %s (%s)", desc, fasa_status_name(st),
               fasa_ctx_last_error(ctx))) {
        for (size_t i = 0; i < c->n_q; i++)
            for (size_t h = 0; h < c->hq; h++) {
                size_t s = c->mode == FASA_GQA_PER_HEAD ? h : h * c->hkv / c->hq;
                if (!check_head(c, &a, desc, i, h, idx + (i * n_sets + s) * stride,
                                cnt[i * n_sets + s], lse))
                    goto out;
            }
        CHECKF(test_tensor_padding_intact(&a.out), "%s: padding of out written", desc);
        /* determinism */
        void *copy = test_xmalloc(a.out.bytes);
        memcpy(copy, a.out.mem, a.out.bytes);
        st = fasa_attend(ctx, (fasa_gqa_mode)c->mode, &a.q.view, &a.k.view, &a.v.view, idx,
                         stride, cnt, c->scale, &a.out.view, NULL, work, ws);
        CHECKF(st == FASA_OK && memcmp(copy, a.out.mem, a.out.bytes) == 0,
               "%s: second call not bit-identical", desc);
        free(copy);
    }
out:
    free(work);
    free(idx);
    free(cnt);
    free(lse);
    data_free(&a);
}

static void case_dense(fasa_ctx *ctx, const acase *c)
{
    char desc[400];
    describe(c, desc, sizeof desc);
    adata a;
    data_make(&a, c);
    float *lse = c->want_lse ? test_xmalloc(c->n_q * c->hq * sizeof(float)) : NULL;
    size_t ws = 0;
    fasa_status st = fasa_attend_dense_workspace_size(ctx, &a.q.view, &a.k.view, &a.v.view, &ws);
    CHECKF(st == FASA_OK, "%s: dense workspace_size %s", desc, fasa_status_name(st));
    void *work = test_xmalloc(ws);
    uint32_t *all = test_xmalloc(c->t * sizeof(uint32_t));
    for (size_t j = 0; j < c->t; j++)
        all[j] = (uint32_t)j;
    st = fasa_attend_dense(ctx, &a.q.view, &a.k.view, &a.v.view, c->scale, &a.out.view, lse,
                           work, ws);
    if (CHECKF(st == FASA_OK, "dense %s: %s (%s)", desc, fasa_status_name(st),
               fasa_ctx_last_error(ctx))) {
        int ok = 1;
        for (size_t i = 0; i < c->n_q && ok; i++)
            for (size_t h = 0; h < c->hq && ok; h++)
                ok = check_head(c, &a, desc, i, h, all, ref_visible(c->t, c->n_q, i), lse);
        CHECKF(test_tensor_padding_intact(&a.out), "dense %s: padding of out written", desc);
        void *copy = test_xmalloc(a.out.bytes);
        memcpy(copy, a.out.mem, a.out.bytes);
        st = fasa_attend_dense(ctx, &a.q.view, &a.k.view, &a.v.view, c->scale, &a.out.view,
                               NULL, work, ws);
        CHECKF(st == FASA_OK && memcmp(copy, a.out.mem, a.out.bytes) == 0,
               "dense %s: second call not bit-identical", desc);
        free(copy);
    }
    free(all);
    free(work);
    free(lse);
    data_free(&a);
}

/* Partial attentions over disjoint sets A and B, merged with their lse,
 * equal the attention over A u B (flash-decoding split). */
static void case_merge(fasa_ctx *ctx)
{
    acase c;
    random_case(&c);
    c.n_q = 1;
    c.odt = FASA_DTYPE_F32;
    c.want_lse = 1;
    if (c.t < 2)
        c.t = 2;
    char desc[400];
    describe(&c, desc, sizeof desc);
    adata a;
    data_make(&a, &c);
    size_t n_sets = c.mode == FASA_GQA_PER_HEAD ? c.hq : c.hkv, stride = c.t;
    uint32_t *iu = test_xmalloc(n_sets * stride * 4), *ia = test_xmalloc(n_sets * stride * 4),
             *ib = test_xmalloc(n_sets * stride * 4);
    uint32_t *cu = test_xmalloc(n_sets * 4), *ca = test_xmalloc(n_sets * 4), *cb = test_xmalloc(n_sets * 4);
    for (size_t s = 0; s < n_sets; s++) {
        size_t n = test_rand_range(2, c.t);
        uint32_t *u = iu + s * stride;
        random_subset(u, c.t, n);
        cu[s] = (uint32_t)n;
        ca[s] = cb[s] = 0;
        for (size_t r = 0; r < n; r++) { /* random split, both sides may be empty */
            if (test_rand_range(0, 1))
                ia[s * stride + ca[s]++] = u[r];
            else
                ib[s * stride + cb[s]++] = u[r];
        }
    }
    size_t ws = 0;
    fasa_attend_workspace_size(ctx, &a.q.view, &a.k.view, &a.v.view, (fasa_gqa_mode)c.mode, stride, &ws);
    void *work = test_xmalloc(ws);
    size_t no = c.hq * c.dv;
    float *ou = test_xmalloc(3 * no * sizeof(float)), *lse = test_xmalloc(3 * c.hq * sizeof(float));
    const uint32_t *sets[3] = {iu, ia, ib}, *cnts[3] = {cu, ca, cb};
    int ok = 1;
    for (int r = 0; r < 3; r++) {
        fasa_status st = fasa_attend(ctx, (fasa_gqa_mode)c.mode, &a.q.view, &a.k.view, &a.v.view,
                                     sets[r], stride, cnts[r], c.scale, &a.out.view,
                                     lse + r * c.hq, work, ws);
        ok &= CHECKF(st == FASA_OK, "merge %s: attend %s", desc, fasa_status_name(st));
        for (size_t h = 0; h < c.hq; h++)
            for (size_t x = 0; x < c.dv; x++)
                ou[r * no + h * c.dv + x] = (float)test_tensor_get(&a.out, 0, h, x);
    }
    for (size_t h = 0; h < c.hq && ok; h++) {
        double la = lse[c.hq + h], lb = lse[2 * c.hq + h];
        double m = fmax(la, lb), wa = exp(la - m), wb = exp(lb - m);
        double lm = m + log(wa + wb);
        ok = CHECKF(fabs(lm - lse[h]) <= 2e-5 * fmax(1.0, fabs(lse[h])), "merge %s: lse %.9g vs %.9g",
                    desc, lm, (double)lse[h]);
        for (size_t x = 0; x < c.dv && ok; x++) {
            double merged = (wa * ou[no + h * c.dv + x] + wb * ou[2 * no + h * c.dv + x]) / (wa + wb);
            ok = CHECKF(fabs(merged - ou[h * c.dv + x]) <= 4e-5 * a.vmax,
                        "merge %s: head %zu dim %zu merged %.9g vs union %.9g", desc, h, x, merged,
                        (double)ou[h * c.dv + x]);
        }
    }
    free(iu);
    free(ia);
    free(ib);
    free(cu);
    free(ca);
    free(cb);
    free(work);
    free(ou);
    free(lse);
    data_free(&a);
}

/* scale 0 means exactly 1/sqrt(head_dim) */
static void case_scale_default(fasa_ctx *ctx)
{
    acase c;
    random_case(&c);
    c.odt = FASA_DTYPE_F32;
    adata a;
    data_make(&a, &c);
    size_t ws = 0;
    fasa_attend_dense_workspace_size(ctx, &a.q.view, &a.k.view, &a.v.view, &ws);
    void *work = test_xmalloc(ws);
    void *first = test_xmalloc(a.out.bytes);
    fasa_status s1 = fasa_attend_dense(ctx, &a.q.view, &a.k.view, &a.v.view, 0.0f, &a.out.view,
                                       NULL, work, ws);
    memcpy(first, a.out.mem, a.out.bytes);
    fasa_status s2 = fasa_attend_dense(ctx, &a.q.view, &a.k.view, &a.v.view,
                                       (float)(1.0 / sqrt((double)c.d)), &a.out.view, NULL, work, ws);
    double diff = 0.0;
    for (size_t i = 0; i < c.n_q; i++)
        for (size_t h = 0; h < c.hq; h++)
            for (size_t x = 0; x < c.dv; x++) {
                size_t off = test_tensor_offset(&a.out, i, h, x);
                diff = fmax(diff, fabs(test_load(first, FASA_DTYPE_F32, off) - test_load(a.out.mem, FASA_DTYPE_F32, off)));
            }
    CHECKF(s1 == FASA_OK && s2 == FASA_OK && diff <= 2e-5 * a.vmax,
           "scale 0 vs 1/sqrt(d): diff %g", diff);
    free(first);
    free(work);
    data_free(&a);
}

/* fasa_predict_cached over a label cache built from quantized K gives the
 * same indices and scores as over one built from the dequantized K in f32
 * (the labels are the same f32 values rounded to f16 either way). */
static void case_label_cache_quant(int kdt)
{
    const size_t hq = 8, hkv = 2, d = 128, t = 700, n_fc = 8;
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
    test_tensor q, kq, kf;
    test_tensor_make(&q, FASA_DTYPE_F32, 1, hq, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&kq, kdt, t, hkv, d, TEST_LAYOUT_TOKEN_PADDED, TEST_PLAIN);
    test_tensor_make(&kf, FASA_DTYPE_F32, t, hkv, d, TEST_LAYOUT_HEAD_MAJOR, TEST_PLAIN);
    test_tensor_randn(&q, 1.0);
    test_tensor_randn(&kq, 1.0);
    for (size_t j = 0; j < t; j++)
        for (size_t g = 0; g < hkv; g++)
            for (size_t i = 0; i < d; i++)
                test_tensor_set(&kf, j, g, i, test_tensor_get(&kq, j, g, i));
    size_t stride = 0, ws = 0, bytes = 0;
    fasa_predict_max_selected(100.0, t, &stride);
    fasa_predict_workspace_size(NULL, prof, &q.view, t, FASA_GQA_PER_HEAD, &ws);
    fasa_label_cache_size(prof, 0, FASA_GQA_PER_HEAD, FASA_DTYPE_F16, t, &bytes);
    void *w = test_xmalloc(ws), *m[2];
    uint32_t *idx[2], *cnt[2];
    float *sc[2];
    int ok = 1;
    for (int x = 0; x < 2; x++) {
        fasa_label_cache *c = NULL;
        m[x] = test_xmalloc(bytes);
        idx[x] = test_xmalloc(hq * stride * sizeof(uint32_t));
        cnt[x] = test_xmalloc(hq * sizeof(uint32_t));
        sc[x] = test_xmalloc(hq * t * sizeof(float));
        ok &= CHECK_STATUS(fasa_label_cache_init(m[x], bytes, prof, 0, FASA_GQA_PER_HEAD,
                                                 FASA_DTYPE_F16, t, &c),
                           FASA_OK) &&
              CHECK_STATUS(fasa_label_cache_build(c, x ? &kf.view : &kq.view), FASA_OK) &&
              CHECK_STATUS(fasa_predict_cached(NULL, prof, 0, FASA_GQA_PER_HEAD, &q.view, c, 100.0,
                                               idx[x], stride, cnt[x], sc[x], w, ws),
                           FASA_OK);
    }
    if (ok)
        CHECKF(memcmp(cnt[0], cnt[1], hq * sizeof(uint32_t)) == 0 &&
                   memcmp(idx[0], idx[1], hq * stride * sizeof(uint32_t)) == 0 &&
                   memcmp(sc[0], sc[1], hq * t * sizeof(float)) == 0,
               "label cache from %s K differs from the dequantized f32 K", test_dtype_name(kdt));
    for (int x = 0; x < 2; x++) {
        free(m[x]);
        free(idx[x]);
        free(cnt[x]);
        free(sc[x]);
    }
    free(w);
    free(fcs);
    test_tensor_free(&q);
    test_tensor_free(&kq);
    test_tensor_free(&kf);
    fasa_profile_destroy(prof);
}

int main(void)
{
    test_init("test_attend");
    fasa_ctx *ctx = NULL;
    CHECK_STATUS(fasa_ctx_create(NULL, &ctx), FASA_OK);
    acase c;
    for (int r = 0; r < 60; r++) {
        random_case(&c);
        case_sparse(ctx, &c);
    }
    for (int r = 0; r < 40; r++) {
        random_case(&c);
        case_dense(ctx, &c);
    }
    /* the tail sizes of 64-token blocks */
    static const size_t tails[] = {1, 63, 64, 65, 127, 129};
    for (size_t r = 0; r < sizeof tails / sizeof tails[0]; r++) {
        random_case(&c);
        c.t = tails[r];
        c.n_q = test_rand_range(1, c.t < 3 ? c.t : 3);
        case_dense(ctx, &c);
        case_sparse(ctx, &c);
    }
    for (int r = 0; r < 20; r++)
        case_merge(ctx);
    case_scale_default(ctx);
    case_label_cache_quant(FASA_DTYPE_Q8_0);
    case_label_cache_quant(FASA_DTYPE_Q4_0);
    fasa_ctx_destroy(ctx);
    return test_summary();
}
