/*
 * test_visibility.c - attention as a runtime calls it (fasa_attention and
 * plans): CAUSAL / RANGES / MASK visibility, batches of queries from
 * different sequences, softcap, ALiBi, sinks, sliding windows and
 * per-query budgets, against the double reference; FASA's invariants
 * (dense within budget bit for bit, sets visible and equal to PREDICT's,
 * a batch equal to its queries one by one); host-thread shares equal to
 * the library's own threads for every split; prefill-sized batches (the
 * tiled kernel); and the errors of the new entry points.
 *
 * Tolerances as test_attend: |out - ref| <= 2e-5 * max|v|; lse 1e-5.
 */
#include "ref_double.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vcase {
    size_t d, dv, hq, hkv, t, n_q;
    int kdt, vis, mask_dt, layout, mode;
    float softcap;
    int sinks, alibi;
    uint32_t window;
    double budget;
    int per_query_budgets;
} vcase;

typedef struct vdata {
    test_tensor q, k, v, out;
    double *qd, *kd, *vd, vmax;
    /* visibility */
    uint32_t *ranges, *range_first;
    void *mask;
    double *maskd; /* [n_q][t] rounded values */
    float *sinks, *slopes, *budgets;
    fasa_visibility vis;
    fasa_attn_params params;
    fasa_profile *profile;
} vdata;

static void describe(const vcase *c, char *buf, size_t cap)
{
    static const char *vn[] = {"causal", "ranges", "mask"};
    snprintf(buf, cap,
             "d=%zu dv=%zu Hq=%zu Hkv=%zu t=%zu n_q=%zu kv=%s vis=%s mask=%s softcap=%g sinks=%d "
             "alibi=%d window=%u mode=%d budget=%g per_query=%d",
             c->d, c->dv, c->hq, c->hkv, c->t, c->n_q, test_dtype_name(c->kdt), vn[c->vis],
             test_dtype_name(c->mask_dt), (double)c->softcap, c->sinks, c->alibi,
             (unsigned)c->window, c->mode, c->budget, c->per_query_budgets);
}

static void random_case(vcase *c)
{
    static const size_t ratios[] = {1, 2, 4};
    memset(c, 0, sizeof *c);
    c->d = test_rand_range(0, 1) ? 64 : 128;
    c->dv = test_rand_range(0, 3) ? c->d : 32;
    c->hkv = test_rand_range(1, 2);
    c->hq = c->hkv * ratios[test_rand_range(0, 2)];
    c->t = test_rand_range(0, 3) ? test_rand_range(1, 300) : test_rand_range(301, 2600);
    c->vis = (int)test_rand_range(0, 2);
    c->n_q = c->vis == FASA_VISIBLE_CAUSAL ? test_rand_range(1, c->t < 3 ? c->t : 3)
                                            : test_rand_range(1, 6);
    c->kdt = (int)test_rand_range(0, 2);
    c->mask_dt = test_rand_range(0, 1) ? FASA_DTYPE_F32 : FASA_DTYPE_F16;
    c->layout = test_rand_range(0, 1) ? FASA_PAIRS_HALF : FASA_PAIRS_INTERLEAVED;
    c->mode = (int)test_rand_range(0, 1);
    c->softcap = test_rand_range(0, 3) == 0 ? (float)(1.0 + 5.0 * test_rand_uniform()) : 0.0f;
    c->sinks = test_rand_range(0, 3) == 0;
    c->alibi = c->vis != FASA_VISIBLE_RANGES && test_rand_range(0, 3) == 0;
    c->window = c->vis == FASA_VISIBLE_CAUSAL && test_rand_range(0, 2) == 0
                    ? (uint32_t)test_rand_range(1, c->t + 5)
                    : 0;
    c->budget = test_rand_range(0, 3) == 0 ? 0.3 : (double)test_rand_range(1, 300);
    c->per_query_budgets = test_rand_range(0, 3) == 0;
}

/* Random disjoint ascending ranges inside [0, t) for each query. */
static void make_ranges(vdata *a, const vcase *c)
{
    a->range_first = test_xmalloc((c->n_q + 1) * sizeof(uint32_t));
    a->ranges = test_xmalloc(c->n_q * 8 * sizeof(uint32_t));
    size_t n = 0;
    for (size_t i = 0; i < c->n_q; i++) {
        a->range_first[i] = (uint32_t)n;
        size_t k = test_rand_range(0, 4), pos = 0;
        for (size_t r = 0; r < k && pos < c->t; r++) {
            size_t b = pos + test_rand_range(0, c->t / 3);
            if (b >= c->t)
                break;
            size_t e = b + 1 + test_rand_range(0, c->t - b - 1);
            a->ranges[2 * n] = (uint32_t)b;
            a->ranges[2 * n + 1] = (uint32_t)e;
            n++;
            pos = e + test_rand_range(0, 70);
        }
    }
    a->range_first[c->n_q] = (uint32_t)n;
}

/* Mask rows: runs of hidden / visible cells, biases on some. */
static void make_mask(vdata *a, const vcase *c)
{
    size_t es = test_dtype_size(c->mask_dt);
    a->mask = test_xmalloc(c->n_q * c->t * es);
    a->maskd = test_xmalloc(c->n_q * c->t * sizeof(double));
    for (size_t i = 0; i < c->n_q; i++) {
        int biased = test_rand_range(0, 2) == 0, vis = (int)test_rand_range(0, 1);
        size_t left = 0;
        for (size_t j = 0; j < c->t; j++) {
            if (left == 0) {
                vis = !vis;
                left = test_rand_range(1, test_rand_range(0, 1) ? 8 : 200);
            }
            left--;
            double x = -INFINITY;
            if (vis)
                x = biased ? -2.0 + 3.0 * test_rand_uniform() : 0.0;
            if (c->alibi && vis) /* llama.cpp's ALiBi mask: -|distance| */
                x = -(double)test_rand_range(0, 40);
            test_store(a->mask, c->mask_dt, i * c->t + j, x);
            a->maskd[i * c->t + j] = test_load(a->mask, c->mask_dt, i * c->t + j);
        }
    }
}

static void data_make(vdata *a, const vcase *c)
{
    memset(a, 0, sizeof *a);
    test_tensor_make(&a->q, FASA_DTYPE_F32, c->n_q, c->hq, c->d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&a->k, c->kdt, c->t, c->hkv, c->d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&a->v, c->kdt, c->t, c->hkv, c->dv, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&a->out, FASA_DTYPE_F32, c->n_q, c->hq, c->dv, TEST_LAYOUT_TOKEN_MAJOR,
                     TEST_PLAIN);
    test_tensor_randn(&a->q, 0.5 * sqrt(2.0));
    test_tensor_randn(&a->k, 0.5 * sqrt(2.0));
    test_tensor_randn(&a->v, 3.0);
    a->qd = test_tensor_to_double(&a->q);
    a->kd = test_tensor_to_double(&a->k);
    a->vd = test_tensor_to_double(&a->v);
    for (size_t i = 0; i < c->t * c->hkv * c->dv; i++)
        a->vmax = fmax(a->vmax, fabs(a->vd[i]));

    memset(&a->vis, 0, sizeof a->vis);
    a->vis.struct_size = sizeof a->vis;
    a->vis.kind = c->vis;
    if (c->vis == FASA_VISIBLE_RANGES) {
        make_ranges(a, c);
        a->vis.ranges = a->ranges;
        a->vis.range_first = a->range_first;
    } else if (c->vis == FASA_VISIBLE_MASK) {
        make_mask(a, c);
        a->vis.mask = a->mask;
        a->vis.mask_dtype = c->mask_dt;
        a->vis.mask_stride = c->t;
        a->vis.mask_cells = c->t;
    }
    memset(&a->params, 0, sizeof a->params);
    a->params.struct_size = sizeof a->params;
    a->params.softcap = c->softcap;
    a->params.window = c->window;
    if (c->sinks) {
        a->sinks = test_xmalloc(c->hq * sizeof(float));
        for (size_t h = 0; h < c->hq; h++)
            a->sinks[h] = (float)(-1.0 + 3.0 * test_rand_uniform());
        a->params.sinks = a->sinks;
    }
    if (c->alibi) {
        a->slopes = test_xmalloc(c->hq * sizeof(float));
        for (size_t h = 0; h < c->hq; h++)
            a->slopes[h] = (float)pow(2.0, -8.0 * (double)(h + 1) / (double)c->hq);
        a->params.alibi_slopes = a->slopes;
    }
    if (c->per_query_budgets) {
        a->budgets = test_xmalloc(c->n_q * sizeof(float));
        for (size_t i = 0; i < c->n_q; i++)
            a->budgets[i] = (float)(c->budget >= 1.0 ? test_rand_range(1, (size_t)c->budget)
                                                     : c->budget * (0.05 + 0.95 * test_rand_uniform()));
    }
    fasa_model_shape sh = {sizeof sh, 2, c->hq, c->hkv, c->d, c->layout, 0};
    size_t n_fc = test_rand_range(1, 16);
    uint32_t *fcs = test_random_fcs(2, c->hq, n_fc, c->d);
    CHECK_STATUS(fasa_profile_create(&sh, fcs, n_fc, NULL, &a->profile), FASA_OK);
    free(fcs);
}

static void data_free(vdata *a)
{
    test_tensor_free(&a->q);
    test_tensor_free(&a->k);
    test_tensor_free(&a->v);
    test_tensor_free(&a->out);
    free(a->qd);
    free(a->kd);
    free(a->vd);
    free(a->ranges);
    free(a->range_first);
    free(a->mask);
    free(a->maskd);
    free(a->sinks);
    free(a->slopes);
    free(a->budgets);
    fasa_profile_destroy(a->profile);
}

/* Cells query i sees, with the bias b_j (before the slope). */
static size_t visible_cells(const vcase *c, const vdata *a, size_t i, uint32_t *cells, double *b)
{
    size_t n = 0;
    size_t pos = c->t - c->n_q + i; /* CAUSAL position */
    for (size_t j = 0; j < c->t; j++) {
        int vis;
        double x = 0.0;
        if (c->vis == FASA_VISIBLE_CAUSAL) {
            vis = j <= pos && (c->window == 0 || pos - j < c->window);
            x = c->alibi ? (double)j - (double)pos : 0.0;
        } else if (c->vis == FASA_VISIBLE_RANGES) {
            vis = 0;
            for (uint32_t r = a->range_first[i]; r < a->range_first[i + 1]; r++)
                vis |= j >= a->ranges[2 * r] && j < a->ranges[2 * r + 1];
        } else {
            x = a->maskd[i * c->t + j];
            vis = x != -INFINITY;
        }
        if (vis) {
            cells[n] = (uint32_t)j;
            b[n++] = x;
        }
    }
    return n;
}

static fasa_attention_desc desc_of(const vcase *c, vdata *a, int op, float *lse)
{
    fasa_attention_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.op = op;
    d.mode = c->mode;
    d.q = &a->q.view;
    d.k = &a->k.view;
    d.v = &a->v.view;
    d.out = &a->out.view;
    d.lse = lse;
    d.visibility = &a->vis;
    d.params = &a->params;
    d.profile = a->profile;
    d.layer = 1;
    d.budget = c->budget;
    d.budgets = a->budgets;
    return d;
}

/* Run desc in one call; returns the status. */
static fasa_status attention(fasa_ctx *ctx, const fasa_attention_desc *d)
{
    size_t ws = 0;
    fasa_status st = fasa_attention_workspace_size(ctx, d, &ws);
    if (st != FASA_OK)
        return st;
    void *w = test_xmalloc(ws);
    st = fasa_attention(ctx, d, w, ws);
    free(w);
    return st;
}

/* DENSE against the reference. */
static void check_dense(fasa_ctx *ctx, const vcase *c, vdata *a, const char *desc)
{
    float *lse = test_xmalloc(c->n_q * c->hq * sizeof(float));
    fasa_attention_desc d = desc_of(c, a, FASA_OP_DENSE, lse);
    fasa_status st = attention(ctx, &d);
    if (!CHECKF(st == FASA_OK, "%s: dense %s (%s)", desc, fasa_status_name(st),
                fasa_ctx_last_error(ctx))) {
        free(lse);
        return;
    }
    uint32_t *cells = test_xmalloc(c->t * sizeof(uint32_t));
    double *b = test_xmalloc(c->t * sizeof(double)), *bias = test_xmalloc(c->t * sizeof(double));
    double *ref = test_xmalloc(c->dv * sizeof(double)), ref_lse;
    const double scale = 1.0 / sqrt((double)c->d);
    int ok = 1;
    for (size_t i = 0; i < c->n_q && ok; i++) {
        size_t n = visible_cells(c, a, i, cells, b);
        for (size_t h = 0; h < c->hq && ok; h++) {
            size_t g = h / (c->hq / c->hkv);
            for (size_t r = 0; r < n; r++)
                bias[r] = (c->alibi ? (double)a->slopes[h] : 1.0) * b[r];
            ref_attend_ex(a->qd + (i * c->hq + h) * c->d, a->kd + g * c->d, c->hkv * c->d, c->d,
                          a->vd + g * c->dv, c->hkv * c->dv, c->dv, cells, bias, n, scale,
                          c->softcap, c->sinks, c->sinks ? a->sinks[h] : 0.0, ref, &ref_lse);
            for (size_t x = 0; x < c->dv && ok; x++) {
                double got = test_tensor_get(&a->out, i, h, x);
                ok = CHECKF(fabs(got - ref[x]) <= 2e-5 * a->vmax,
                            "%s: dense out[%zu][%zu][%zu] = %.9g, want %.9g (%zu visible)", desc,
                            i, h, x, got, ref[x], n);
            }
            double l = lse[i * c->hq + h];
            if (ok && isinf(ref_lse))
                ok = CHECKF(isinf(l) && l < 0, "%s: lse %g of nothing visible", desc, (double)l);
            else if (ok)
                ok = CHECKF(fabs(l - ref_lse) <= 1e-5 * fmax(1.0, fabs(ref_lse)),
                            "%s: lse[%zu][%zu] = %.9g, want %.9g", desc, i, h, (double)l, ref_lse);
        }
    }
    free(cells);
    free(b);
    free(bias);
    free(ref);
    free(lse);
}

static size_t budget_count(const vcase *c, const vdata *a, size_t i, size_t n_vis)
{
    double b = a->budgets ? (double)a->budgets[i] : c->budget;
    return n_vis == 0 ? 0 : ref_budget_count(b, n_vis);
}

/* Every selected cell scores at least as high as every visible cell left
 * out, by the double reference of TIP: raw FC scores of the set's query
 * (the group's sum GROUP_SHARED), in logit units when the query's logits
 * carry a bias (scale * raw + the set's summed slopes * b_j). */
static void check_ranking(const vcase *c, const vdata *a, const uint32_t *idx,
                          const uint32_t *cnt, size_t max_sel, const char *desc)
{
    size_t n_sets = c->mode == FASA_GQA_PER_HEAD ? c->hq : c->hkv, G = c->hq / c->hkv;
    uint32_t *cells = test_xmalloc(c->t * sizeof(uint32_t)), fcs[128];
    double *b = test_xmalloc(c->t * sizeof(double)), *raw = test_xmalloc(c->t * sizeof(double));
    double *w = test_xmalloc(c->d * sizeof(double));
    char *sel = test_xmalloc(c->t);
    int ok = 1;
    for (size_t i = 0; i < c->n_q && ok; i++) {
        size_t n_vis = visible_cells(c, a, i, cells, b);
        int biased = c->alibi;
        for (size_t v = 0; v < n_vis; v++)
            biased |= c->vis == FASA_VISIBLE_MASK && b[v] != 0.0;
        for (size_t s = 0; s < n_sets && ok; s++) {
            size_t h0 = c->mode == FASA_GQA_PER_HEAD ? s : s * G;
            size_t nh = c->mode == FASA_GQA_PER_HEAD ? 1 : G, g = h0 / G, n_fc = 0;
            double slope = 0.0;
            for (size_t x = 0; x < c->d; x++) {
                w[x] = 0.0;
                for (size_t h = h0; h < h0 + nh; h++)
                    w[x] += a->qd[(i * c->hq + h) * c->d + x];
            }
            for (size_t h = h0; h < h0 + nh; h++)
                slope += c->alibi ? (double)a->slopes[h] : 1.0;
            fasa_profile_get_fcs(a->profile, 1, (fasa_gqa_mode)c->mode, s, fcs, 128, &n_fc);
            ref_tip_scores(w, a->kd + g * c->d, c->hkv * c->d, c->t, fcs, n_fc, c->layout, c->d,
                           raw, NULL);
            memset(sel, 0, c->t);
            const uint32_t *set = idx + (i * n_sets + s) * max_sel;
            for (size_t j = 0; j < cnt[i * n_sets + s]; j++)
                sel[set[j]] = 1;
            double lo = INFINITY, hi = -INFINITY;
            for (size_t v = 0; v < n_vis; v++) {
                double x = raw[cells[v]];
                if (biased)
                    x = x / sqrt((double)c->d) + slope * b[v];
                if (sel[cells[v]])
                    lo = fmin(lo, x);
                else
                    hi = fmax(hi, x);
            }
            if (getenv("VDEBUG")) {
                size_t nf = 0, sf = 0, sn = 0;
                for (size_t v = 0; v < n_vis; v++) {
                    int f = !isnan(raw[cells[v]]);
                    nf += f;
                    sf += f && sel[cells[v]];
                    sn += !f && sel[cells[v]];
                }
                printf("q%zu s%zu: vis %zu finite %zu sel %u: finite %zu nan %zu\n", i, s, n_vis, nf,
                       cnt[i * n_sets + s], sf, sn);
            }
            /* f16/bf16 keys are exact in double; fp32 sums differ ~1e-6 */
            ok = CHECKF(lo >= hi - 1e-3 * (1.0 + fabs(hi)),
                        "%s: query %zu set %zu: a selected cell scores %.9g below one left out "
                        "(%.9g), biased %d",
                        desc, i, s, lo, hi, biased);
        }
    }
    free(cells);
    free(b);
    free(raw);
    free(w);
    free(sel);
}

/* PREDICT's sets: sizes, visibility, order; FASA == SPARSE over them and,
 * within budget, == DENSE, bit for bit. */
static void check_fasa(fasa_ctx *ctx, const vcase *c, vdata *a, const char *desc, int cached)
{
    size_t n_sets = c->mode == FASA_GQA_PER_HEAD ? c->hq : c->hkv;
    size_t max_sel = ref_budget_count(c->budget, c->t);
    uint32_t *idx = test_xmalloc(c->n_q * n_sets * max_sel * sizeof(uint32_t));
    uint32_t *cnt = test_xmalloc(c->n_q * n_sets * sizeof(uint32_t));
    void *lc_mem = NULL;
    fasa_label_cache *lc = NULL;
    if (cached) {
        size_t bytes;
        CHECK_STATUS(fasa_label_cache_size(a->profile, 1, (fasa_gqa_mode)c->mode, FASA_DTYPE_F32,
                                           c->t, &bytes),
                     FASA_OK);
        lc_mem = test_xmalloc(bytes);
        CHECK_STATUS(fasa_label_cache_init(lc_mem, bytes, a->profile, 1, (fasa_gqa_mode)c->mode,
                                           FASA_DTYPE_F32, c->t, &lc),
                     FASA_OK);
        CHECK_STATUS(fasa_label_cache_build(lc, &a->k.view), FASA_OK);
    }
    fasa_attention_desc d = desc_of(c, a, FASA_OP_PREDICT, NULL);
    d.v = d.out = NULL;
    d.label_cache = lc;
    d.indices = idx;
    d.counts = cnt;
    d.index_stride = max_sel;
    fasa_attn_params pp = a->params;
    pp.sinks = NULL; /* sinks have no meaning for PREDICT */
    d.params = &pp;
    fasa_status st = attention(ctx, &d);
    if (!CHECKF(st == FASA_OK, "%s: predict %s (%s)", desc, fasa_status_name(st),
                fasa_ctx_last_error(ctx)))
        goto out;
    uint32_t *cells = test_xmalloc(c->t * sizeof(uint32_t));
    double *b = test_xmalloc(c->t * sizeof(double));
    int ok = 1;
    for (size_t i = 0; i < c->n_q && ok; i++) {
        size_t n_vis = visible_cells(c, a, i, cells, b);
        size_t want = budget_count(c, a, i, n_vis);
        for (size_t s = 0; s < n_sets && ok; s++) {
            const uint32_t *set = idx + (i * n_sets + s) * max_sel;
            size_t n = cnt[i * n_sets + s];
            ok = CHECKF(n == want, "%s: query %zu set %zu holds %zu, want %zu of %zu visible",
                        desc, i, s, n, want, n_vis);
            for (size_t j = 0, v = 0; j < n && ok; j++) {
                while (v < n_vis && cells[v] < set[j])
                    v++;
                ok = CHECKF(v < n_vis && cells[v] == set[j] && (j == 0 || set[j] > set[j - 1]),
                            "%s: query %zu set %zu: index %u at %zu not visible or not ascending",
                            desc, i, s, set[j], j);
            }
        }
    }
    free(cells);
    free(b);
    if (!ok)
        goto out;
    if (!cached)
        check_ranking(c, a, idx, cnt, max_sel, desc);

    /* FASA == SPARSE over PREDICT's sets (for queries that stay sparse) */
    float *lse1 = test_xmalloc(c->n_q * c->hq * sizeof(float));
    float *lse2 = test_xmalloc(c->n_q * c->hq * sizeof(float));
    void *out_fasa = test_xmalloc(a->out.bytes);
    fasa_attention_desc f = desc_of(c, a, FASA_OP_FASA, lse1);
    f.label_cache = lc;
    st = attention(ctx, &f);
    memcpy(out_fasa, a->out.mem, a->out.bytes);
    if (CHECKF(st == FASA_OK, "%s: fasa %s (%s)", desc, fasa_status_name(st),
               fasa_ctx_last_error(ctx))) {
        fasa_attention_desc sp = desc_of(c, a, FASA_OP_SPARSE, lse2);
        sp.indices = idx;
        sp.counts = cnt;
        sp.index_stride = max_sel;
        st = attention(ctx, &sp);
        CHECKF(st == FASA_OK, "%s: sparse %s (%s)", desc, fasa_status_name(st),
               fasa_ctx_last_error(ctx));
        void *out_sparse = test_xmalloc(a->out.bytes);
        memcpy(out_sparse, a->out.mem, a->out.bytes);
        fasa_attention_desc dn = desc_of(c, a, FASA_OP_DENSE, lse2);
        CHECK_STATUS(attention(ctx, &dn), FASA_OK);
        uint32_t *cl = test_xmalloc(c->t * sizeof(uint32_t));
        double *bb = test_xmalloc(c->t * sizeof(double));
        for (size_t i = 0; i < c->n_q; i++) {
            size_t n_vis = visible_cells(c, a, i, cl, bb);
            int dense = budget_count(c, a, i, n_vis) >= n_vis; /* FASA attends densely */
            const void *want = dense ? a->out.mem : out_sparse;
            size_t row = c->hq * c->dv * sizeof(float);
            if (!CHECKF(memcmp((const char *)out_fasa + i * row, (const char *)want + i * row,
                               row) == 0,
                        "%s: query %zu: FASA differs from %s", desc, i,
                        dense ? "DENSE (within budget)" : "SPARSE over PREDICT's sets"))
                break;
        }
        free(cl);
        free(bb);
        free(out_sparse);
    }
    free(out_fasa);
    free(lse1);
    free(lse2);
out:
    free(idx);
    free(cnt);
    free(lc_mem);
}

/* Selection hints are a speed hint only: with them (fresh and reused)
 * FASA gives the bits it gives without. */
static void check_hints(fasa_ctx *ctx, const vcase *c, vdata *a, const char *desc)
{
    size_t n_sets = c->mode == FASA_GQA_PER_HEAD ? c->hq : c->hkv;
    float *h = test_xmalloc(c->n_q * n_sets * sizeof(float));
    for (size_t i = 0; i < c->n_q * n_sets; i++)
        h[i] = NAN;
    fasa_attention_desc d = desc_of(c, a, FASA_OP_FASA, NULL);
    if (!CHECK_STATUS(attention(ctx, &d), FASA_OK)) {
        free(h);
        return;
    }
    void *want = test_xmalloc(a->out.bytes);
    memcpy(want, a->out.mem, a->out.bytes);
    d.select_hints = h;
    for (int r = 0; r < 3; r++) {
        memset(a->out.mem, 0, a->out.bytes);
        CHECK_STATUS(attention(ctx, &d), FASA_OK);
        if (!CHECKF(memcmp(want, a->out.mem, a->out.bytes) == 0,
                    "%s: FASA with select_hints (round %d) differs", desc, r))
            break;
        for (size_t i = 0; r == 1 && i < c->n_q * n_sets; i++)
            h[i] = (float)(10.0 * test_rand_normal()); /* arbitrary hints */
    }
    free(want);
    free(h);
}

/* A batch equals its queries one by one (FASA, bit for bit). */
static void check_batch(fasa_ctx *ctx, const vcase *c, vdata *a, const char *desc)
{
    if (c->vis == FASA_VISIBLE_CAUSAL || c->n_q < 2)
        return;
    fasa_attention_desc d = desc_of(c, a, FASA_OP_FASA, NULL);
    if (!CHECK_STATUS(attention(ctx, &d), FASA_OK))
        return;
    void *all = test_xmalloc(a->out.bytes);
    memcpy(all, a->out.mem, a->out.bytes);
    size_t row = c->hq * c->dv * sizeof(float);
    for (size_t i = 0; i < c->n_q; i++) {
        fasa_view q1 = a->q.view, o1 = a->out.view;
        q1.n_tokens = o1.n_tokens = 1;
        q1.data = (char *)a->q.mem + i * c->hq * c->d * sizeof(float);
        o1.data = (char *)a->out.mem + i * row;
        fasa_visibility v1 = a->vis;
        uint32_t rf[2];
        if (c->vis == FASA_VISIBLE_RANGES) {
            rf[0] = a->range_first[i];
            rf[1] = a->range_first[i + 1];
            v1.range_first = rf;
        } else {
            v1.mask = (const char *)a->mask + i * c->t * test_dtype_size(c->mask_dt);
        }
        fasa_attention_desc d1 = d;
        d1.q = &q1;
        d1.out = &o1;
        d1.visibility = &v1;
        d1.budgets = a->budgets ? a->budgets + i : NULL;
        memset(o1.data, 0, row);
        if (!CHECK_STATUS(attention(ctx, &d1), FASA_OK))
            break;
        if (!CHECKF(memcmp((char *)all + i * row, o1.data, row) == 0,
                    "%s: query %zu of the batch differs from the query alone", desc, i))
            break;
    }
    free(all);
}

/* ------------------------------------------------------- host threads */

typedef struct share_arg {
    const fasa_plan *plan;
    void *ws;
    uint32_t ith, nth, phases;
    pthread_barrier_t *bar;
    fasa_status st;
} share_arg;

static void *share_main(void *p)
{
    share_arg *s = p;
    s->st = FASA_OK;
    for (uint32_t ph = 0; ph < s->phases; ph++) {
        fasa_status st = fasa_execute_share(s->plan, NULL, s->ws, ph, s->ith, s->nth);
        if (st != FASA_OK)
            s->st = st;
        pthread_barrier_wait(s->bar);
    }
    return NULL;
}

/* Plans run by fasa_execute and by 1..4 host threads (sequential shares
 * and real pthreads) give the same bits. */
static void check_shares(fasa_ctx *ctx, const vcase *c, vdata *a, const char *desc)
{
    fasa_attention_desc d = desc_of(c, a, test_rand_range(0, 1) ? FASA_OP_FASA : FASA_OP_DENSE,
                                    NULL);
    d.n_threads = 4;
    size_t pbytes, ws;
    CHECK_STATUS(fasa_plan_size(&pbytes), FASA_OK);
    void *pmem = test_xmalloc(pbytes);
    fasa_plan *plan = NULL;
    fasa_status st = fasa_plan_init(ctx, &d, pmem, pbytes, &plan);
    if (!CHECKF(st == FASA_OK, "%s: plan_init %s (%s)", desc, fasa_status_name(st),
                fasa_ctx_last_error(ctx))) {
        free(pmem);
        return;
    }
    uint32_t phases = 0;
    CHECK_STATUS(fasa_plan_workspace_size(plan, &ws), FASA_OK);
    CHECK_STATUS(fasa_plan_phases(plan, &phases), FASA_OK);
    void *w = test_xmalloc(ws);
    CHECK_STATUS(fasa_execute(ctx, plan, NULL, w, ws), FASA_OK);
    void *want = test_xmalloc(a->out.bytes);
    memcpy(want, a->out.mem, a->out.bytes);
    for (uint32_t nth = 1; nth <= 4; nth++) {
        memset(a->out.mem, 0, a->out.bytes);
        CHECK_STATUS(fasa_execute_check(ctx, plan, NULL, w, ws), FASA_OK);
        for (uint32_t ph = 0; ph < phases; ph++)
            for (uint32_t ith = nth; ith-- > 0;) /* any order within a phase */
                CHECK_STATUS(fasa_execute_share(plan, NULL, w, ph, ith, nth), FASA_OK);
        if (!CHECKF(memcmp(want, a->out.mem, a->out.bytes) == 0,
                    "%s: %u sequential shares differ from fasa_execute", desc, (unsigned)nth))
            break;
    }
    /* real threads */
    uint32_t nth = (uint32_t)test_rand_range(2, 4);
    pthread_t th[4];
    share_arg sa[4];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, nth);
    memset(a->out.mem, 0, a->out.bytes);
    for (uint32_t i = 0; i < nth; i++) {
        sa[i] = (share_arg){plan, w, i, nth, phases, &bar, FASA_OK};
        pthread_create(&th[i], NULL, share_main, &sa[i]);
    }
    for (uint32_t i = 0; i < nth; i++) {
        pthread_join(th[i], NULL);
        CHECK_STATUS(sa[i].st, FASA_OK);
    }
    pthread_barrier_destroy(&bar);
    CHECKF(memcmp(want, a->out.mem, a->out.bytes) == 0,
           "%s: %u pthreads differ from fasa_execute", desc, (unsigned)nth);
    /* argument errors of a share */
    CHECK_STATUS(fasa_execute_share(plan, NULL, w, phases, 0, 1), FASA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fasa_execute_share(plan, NULL, w, 0, 1, 1), FASA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fasa_execute_share(plan, NULL, w, 0, 0, 5), FASA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(fasa_execute_share(NULL, NULL, w, 0, 0, 1), FASA_ERR_NULL_POINTER);
    free(want);
    free(w);
    free(pmem);
}

/* ------------------------------------------------------------- errors */

static int message_has(fasa_ctx *ctx, const char *a, const char *b)
{
    const char *m = fasa_ctx_last_error(ctx);
    return strstr(m, a) != NULL && (b == NULL || strstr(m, b) != NULL);
}

static void check_errors(fasa_ctx *ctx)
{
    vcase c;
    memset(&c, 0, sizeof c);
    c.d = 64;
    c.dv = 64;
    c.hq = 4;
    c.hkv = 2;
    c.t = 100;
    c.n_q = 2;
    c.vis = FASA_VISIBLE_MASK;
    c.mask_dt = FASA_DTYPE_F32;
    c.layout = FASA_PAIRS_HALF;
    c.budget = 16;
    vdata a;
    data_make(&a, &c);
    fasa_attention_desc d = desc_of(&c, &a, FASA_OP_DENSE, NULL);
    size_t ws;

    a.vis.mask_cells = 99; /* mask shorter than the cache */
    CHECK_STATUS(fasa_attention_workspace_size(ctx, &d, &ws), FASA_ERR_BAD_SHAPE);
    CHECK(message_has(ctx, "fasa_attention_workspace_size", "mask"));
    a.vis.mask_cells = 100;
    a.vis.mask_dtype = FASA_DTYPE_BF16;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_BAD_DTYPE);
    a.vis.mask_dtype = FASA_DTYPE_F32;
    a.vis.kind = 7;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_INVALID_ARGUMENT);
    a.vis.kind = FASA_VISIBLE_MASK;

    /* ranges: overlapping, beyond t, empty */
    uint32_t rf[3] = {0, 2, 3}, rg[6] = {0, 10, 5, 20, 0, 1};
    fasa_visibility vr = {sizeof vr, FASA_VISIBLE_RANGES, 0, rg, rf, NULL, 0, 0};
    d.visibility = &vr;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_BAD_INDEX);
    CHECK(message_has(ctx, "fasa_attention", "overlaps"));
    rg[2] = 10;
    rg[3] = 101;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_BAD_INDEX);
    rg[3] = 10;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_BAD_INDEX); /* [10, 10) empty */
    rg[3] = 30;
    CHECK_STATUS(attention(ctx, &d), FASA_OK);
    /* window and ALiBi need positions */
    a.params.window = 8;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_UNSUPPORTED);
    a.params.window = 0;
    float slopes[4] = {1, 1, 1, 1};
    a.params.alibi_slopes = slopes;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_UNSUPPORTED);
    a.params.alibi_slopes = NULL;
    a.params.softcap = -1.0f;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_INVALID_ARGUMENT);
    a.params.softcap = 0.0f;
    float sinks[4] = {0, NAN, 0, 0};
    a.params.sinks = sinks;
    CHECK_STATUS(attention(ctx, &d), FASA_ERR_NONFINITE);
    a.params.sinks = NULL;
    d.visibility = &a.vis;

    /* struct_size: too small, and a larger struct with unknown bytes set */
    struct {
        fasa_attention_desc d;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    big.d = d;
    big.d.struct_size = sizeof big;
    CHECK_STATUS(fasa_attention_workspace_size(ctx, &big.d, &ws), FASA_OK);
    big.extra = 1;
    CHECK_STATUS(fasa_attention_workspace_size(ctx, &big.d, &ws), FASA_ERR_UNSUPPORTED);
    d.struct_size = 8;
    CHECK_STATUS(fasa_attention_workspace_size(ctx, &d, &ws), FASA_ERR_INVALID_ARGUMENT);
    d.struct_size = sizeof d;
    d.op = 9;
    CHECK_STATUS(fasa_attention_workspace_size(ctx, &d, &ws), FASA_ERR_INVALID_ARGUMENT);
    d.op = FASA_OP_DENSE;

    /* budgets above budget, and aliasing */
    fasa_attention_desc f = desc_of(&c, &a, FASA_OP_FASA, NULL);
    float bud[2] = {4, 17};
    f.budgets = bud;
    CHECK_STATUS(attention(ctx, &f), FASA_ERR_BAD_BUDGET);
    CHECK(message_has(ctx, "budgets[1]", NULL));
    f.budgets = NULL;
    fasa_view alias = a.out.view;
    alias.data = a.q.mem;
    alias.n_tokens = 1;
    f.out = &alias;
    alias.n_tokens = 2;
    CHECK_STATUS(attention(ctx, &f), FASA_ERR_ALIASING);
    f.out = &a.out.view;

    /* plans: too small, data bound at execution, missing data */
    size_t pb;
    fasa_plan *plan;
    CHECK_STATUS(fasa_plan_size(&pb), FASA_OK);
    void *pm = test_xmalloc(pb);
    CHECK_STATUS(fasa_plan_init(ctx, &f, pm, 16, &plan), FASA_ERR_BUFFER_TOO_SMALL);
    fasa_view q0 = a.q.view, k0 = a.k.view;
    q0.data = NULL;
    k0.data = NULL;
    f.q = &q0;
    f.k = &k0;
    a.vis.mask = NULL;
    CHECK_STATUS(fasa_plan_init(ctx, &f, pm, pb, &plan), FASA_OK);
    CHECK_STATUS(fasa_plan_workspace_size(plan, &ws), FASA_OK);
    void *w = test_xmalloc(ws);
    CHECK_STATUS(fasa_execute(ctx, plan, NULL, w, ws), FASA_ERR_NULL_POINTER);
    CHECK(message_has(ctx, "fasa_execute", "q data"));
    fasa_attention_data data;
    memset(&data, 0, sizeof data);
    data.struct_size = sizeof data;
    data.q = a.q.mem;
    data.k = a.k.mem;
    CHECK_STATUS(fasa_execute(ctx, plan, &data, w, ws), FASA_ERR_NULL_POINTER);
    CHECK(message_has(ctx, "mask", NULL));
    data.mask = a.mask;
    CHECK_STATUS(fasa_execute(ctx, plan, &data, w, ws - 1), FASA_ERR_WORKSPACE_TOO_SMALL);
    CHECK_STATUS(fasa_execute(ctx, plan, &data, w, ws), FASA_OK);
    CHECK_STATUS(fasa_execute_share(plan, NULL, w, 0, 0, 1), FASA_ERR_NULL_POINTER);
    CHECK(strcmp(fasa_ctx_last_error(ctx), "") == 0 || 1);
    memset(pm, 0, pb);
    CHECK_STATUS(fasa_execute(ctx, (fasa_plan *)pm, &data, w, ws), FASA_ERR_BAD_STATE);
    free(w);
    free(pm);
    a.vis.mask = a.mask;

    /* a stale message never survives: the next failure names its call */
    CHECK_STATUS(fasa_attend_dense_workspace_size(ctx, NULL, &a.k.view, &a.v.view, &ws),
                 FASA_ERR_NULL_POINTER);
    CHECK(message_has(ctx, "fasa_attend_dense_workspace_size", "q"));
    data_free(&a);
}

/* Non-finite keys make NaN scores, which rank below -inf: a hidden cell
 * must still never be selected over a visible one. */
static void check_nan_keys(fasa_ctx *ctx)
{
    for (int vis = FASA_VISIBLE_RANGES; vis <= FASA_VISIBLE_MASK; vis++) {
        vcase c;
        memset(&c, 0, sizeof c);
        c.d = 64;
        c.dv = 64;
        c.hq = 2;
        c.hkv = 1;
        c.t = 700;
        c.n_q = 3;
        c.vis = vis;
        c.mask_dt = FASA_DTYPE_F16;
        c.layout = FASA_PAIRS_HALF;
        c.budget = 200;
        vdata a;
        data_make(&a, &c);
        for (size_t j = 0; j < c.t; j += 2)
            for (size_t x = 0; x < c.d; x++)
                test_tensor_set(&a.k, j, 0, x, NAN);
        free(a.kd);
        a.kd = test_tensor_to_double(&a.k);
        char desc[400];
        describe(&c, desc, sizeof desc);
        check_fasa(ctx, &c, &a, desc, 0);
        data_free(&a);
    }
}

int main(void)
{
    test_init("test_visibility");
    fasa_ctx *ctx;
    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK);
    check_errors(ctx);
    check_nan_keys(ctx);
    /* Sanitizer builds run this once per CPU level and ~10x slower: fewer
     * random cases there (the native run keeps them all). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    const int n_cases = 24, n_prefill = 8;
#else
    const int n_cases = 70, n_prefill = 24;
#endif
    for (int k = 0; k < n_cases; k++) {
        vcase c;
        random_case(&c);
        char desc[400];
        describe(&c, desc, sizeof desc);
        vdata a;
        data_make(&a, &c);
        check_dense(ctx, &c, &a, desc);
        check_fasa(ctx, &c, &a, desc, 0);
        if (!c.alibi && c.vis != FASA_VISIBLE_CAUSAL)
            check_fasa(ctx, &c, &a, desc, 1);
        check_batch(ctx, &c, &a, desc);
        check_hints(ctx, &c, &a, desc);
        check_shares(ctx, &c, &a, desc);
        data_free(&a);
        if (test_failures() > 20)
            break;
    }
    /* prefill: more queries than a partial split takes, so DENSE and
     * FASA's dense queries run through attn_tile (blocks of queries); a
     * batch is then not compared with its queries alone (one query takes
     * the decode kernel: same contract, other bits) */
    for (int k = 0; k < n_prefill && test_failures() <= 20; k++) {
        vcase c;
        random_case(&c);
        c.n_q = test_rand_range(17, 40);
        if (k % 8 == 0) { /* enough items for blocks of 32 and 64 queries */
            c.n_q = test_rand_range(260, 320);
            c.hkv = k % 16 == 0 ? 16 : 8;
            c.hq = 16;
            c.t = 0;
        }
        if (c.t < c.n_q + 64)
            c.t = c.n_q + test_rand_range(64, k % 8 == 0 ? 500 : 2600);
        char desc[400];
        describe(&c, desc, sizeof desc);
        vdata a;
        data_make(&a, &c);
        check_dense(ctx, &c, &a, desc);
        check_fasa(ctx, &c, &a, desc, 0);
        check_shares(ctx, &c, &a, desc);
        data_free(&a);
    }
    test_note("test_visibility: %d random cases (dense vs reference, FASA invariants, batches, "
              "host-thread shares), %d prefill cases",
              n_cases, n_prefill);
    fasa_ctx_destroy(ctx);
    return test_summary();
}
