/*
 * test_predict.c - fasa_predict (TIP) against the double reference over
 * random shapes, dtypes, stride layouts, pair layouts, GQA modes, budgets
 * and causal multi-query steps; invariants, scores, determinism.
 *
 * Index sets must equal the reference exactly, except at near-ties: when the
 * double scores of the n-th and (n+1)-th ranked tokens are closer than
 * 1e-4 relative (or than the documented scoring error 1e-5 * sum|w*k|), any
 * set that is a valid top-n within that margin is accepted (and counted).
 * Integer-valued data makes float arithmetic exact, so those cases must match
 * exactly including the tie rule (lower index first) and NaN-last.
 */
#include "ref_double.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t g_near_ties, g_near_cuts, g_sets_checked, g_scalar_near_diff;

typedef struct pcase {
    size_t d, hq, hkv, t, n_q, n_layers, layer, n_fc;
    int qdt, kdt, qlay, klay, pairs, mode;
    int integer; /* small integers: exact arithmetic, exact ties */
    int nan_rows;
    int explicit_group;
    int want_scores;
    double budget;
} pcase;

static void describe(const pcase *c, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "d=%zu Hq=%zu Hkv=%zu t=%zu n_q=%zu layer=%zu/%zu n_fc=%zu q=%s/%s k=%s/%s pairs=%d "
             "mode=%d int=%d nan=%d group=%s budget=%g",
             c->d, c->hq, c->hkv, c->t, c->n_q, c->layer, c->n_layers, c->n_fc,
             test_dtype_name(c->qdt), test_layout_name(c->qlay), test_dtype_name(c->kdt),
             test_layout_name(c->klay), c->pairs, c->mode, c->integer, c->nan_rows,
             c->explicit_group ? "given" : "vote", c->budget);
}

static void fill(test_tensor *t, int integer)
{
    if (!integer) {
        test_tensor_randn(t, 1.0);
        return;
    }
    for (size_t a = 0; a < t->view.n_tokens; a++)
        for (size_t h = 0; h < t->view.n_heads; h++)
            for (size_t i = 0; i < t->view.head_dim; i++)
                test_tensor_set(t, a, h, i, (double)((int)test_rand_range(0, 4) - 2));
}

/* Whether the cut between the n-th and (n+1)-th ranked tokens is a
 * near-tie, i.e. float rounding may legitimately move it; *margin gets the
 * width of that zone. Exact (integer) data has no near-ties. */
static int near_tie(const pcase *c, const double *score, const double *abs_sum, size_t t_i,
                    size_t n, uint32_t *order, double *margin)
{
    *margin = 0.0;
    if (c->integer || n == 0 || n >= t_i)
        return 0;
    ref_rank(score, t_i, order);
    double sk = score[order[n - 1]], sk1 = score[order[n]];
    double amax = 0.0;
    for (size_t j = 0; j < t_i; j++)
        if (abs_sum[j] > amax)
            amax = abs_sum[j];
    *margin = 1e-4 * fmax(fabs(sk), fabs(sk1)) + 2e-5 * amax;
    return fabs(sk - sk1) < *margin;
}

/* Check one index set against the double reference; returns 1 when the
 * set's cut is a near-tie. */
static int check_set(const pcase *c, const char *what, const uint32_t *idx, size_t count,
                     const double *score, const double *abs_sum, size_t t_i, size_t n)
{
    g_sets_checked++;
    if (!CHECKF(count == n, "%s: count %zu, want %zu", what, count, n))
        return 0;
    int ok = 1;
    for (size_t r = 0; r < count && ok; r++) {
        ok &= CHECKF(idx[r] < t_i, "%s: index %u >= t_i %zu", what, idx[r], t_i);
        if (r > 0)
            ok &= CHECKF(idx[r] > idx[r - 1], "%s: not strictly ascending at %zu", what, r);
    }
    if (!ok)
        return 0;
    uint32_t *want = test_xmalloc(t_i * sizeof(uint32_t));
    uint32_t *order = test_xmalloc(t_i * sizeof(uint32_t));
    ref_topk(score, t_i, n, want);
    int same = memcmp(want, idx, n * sizeof(uint32_t)) == 0;
    double margin;
    int near = near_tie(c, score, abs_sum, t_i, n, order, &margin);
    if (!same) {
        double sk = near ? score[order[n - 1]] : 0.0;
        if (near) {
            /* a valid top-n within the margin: nothing selected clearly
             * below the threshold, nothing left out clearly above it */
            char *sel = calloc(t_i, 1);
            for (size_t r = 0; r < n; r++)
                sel[idx[r]] = 1;
            int valid = 1;
            for (size_t j = 0; j < t_i; j++) {
                if (isnan(score[j]))
                    valid &= !sel[j] || isnan(sk);
                else if (sel[j])
                    valid &= score[j] >= sk - margin;
                else
                    valid &= score[j] <= sk + margin;
            }
            free(sel);
            CHECKF(valid, "%s: near-tie but not a valid top-%zu", what, n);
            same = 1; /* reported above if invalid */
            g_near_ties++;
        }
    }
    if (!same) {
        size_t r = 0;
        while (r < n && want[r] == idx[r])
            r++;
        CHECKF(0, "%s: selection differs from reference at rank %zu: got %u (score %.9g) want %u (score %.9g)",
               what, r, idx[r], score[idx[r]], want[r], score[want[r]]);
    }
    free(want);
    free(order);
    g_near_cuts += (size_t)near;
    return near;
}

static void run_case(const pcase *c, fasa_ctx *ctx, fasa_ctx *ctx_scalar)
{
    char desc[400];
    describe(c, desc, sizeof desc);
    size_t G = c->hq / c->hkv;
    fasa_model_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.struct_size = sizeof shape;
    shape.n_layers = c->n_layers;
    shape.n_q_heads = c->hq;
    shape.n_kv_heads = c->hkv;
    shape.head_dim = c->d;
    shape.pair_layout = c->pairs;
    uint32_t *fcs = test_random_fcs(c->n_layers, c->hq, c->n_fc, c->d);
    uint32_t *gfcs = c->explicit_group ? test_random_fcs(c->n_layers, c->hkv, c->n_fc, c->d) : NULL;
    fasa_profile *prof = NULL;
    fasa_status st = fasa_profile_create(&shape, fcs, c->n_fc, gfcs, &prof);
    if (!CHECKF(st == FASA_OK, "%s: profile_create %s", desc, fasa_status_name(st))) {
        free(fcs);
        free(gfcs);
        return;
    }
    /* the FC set of each output set, as the reference understands it */
    size_t n_sets = c->mode == FASA_GQA_PER_HEAD ? c->hq : c->hkv;
    uint32_t *set_fcs = test_xmalloc(n_sets * c->n_fc * sizeof(uint32_t));
    for (size_t s = 0; s < n_sets; s++) {
        uint32_t *dst = set_fcs + s * c->n_fc;
        if (c->mode == FASA_GQA_PER_HEAD)
            memcpy(dst, fcs + (c->layer * c->hq + s) * c->n_fc, c->n_fc * sizeof(uint32_t));
        else if (gfcs)
            memcpy(dst, gfcs + (c->layer * c->hkv + s) * c->n_fc, c->n_fc * sizeof(uint32_t));
        else
            ref_group_vote(fcs + (c->layer * c->hq + s * G) * c->n_fc, G, c->n_fc, c->d, dst);
        if (c->mode == FASA_GQA_GROUP_SHARED) {
            uint32_t got[256];
            size_t n_got = 0;
            uint32_t sorted[256];
            memcpy(sorted, dst, c->n_fc * sizeof(uint32_t));
            for (size_t a = 0; a < c->n_fc; a++) /* insertion sort: tiny */
                for (size_t b = a; b > 0 && sorted[b] < sorted[b - 1]; b--) {
                    uint32_t tmp = sorted[b];
                    sorted[b] = sorted[b - 1];
                    sorted[b - 1] = tmp;
                }
            st = fasa_profile_get_fcs(prof, c->layer, FASA_GQA_GROUP_SHARED, s, got, 256, &n_got);
            CHECKF(st == FASA_OK && n_got == c->n_fc &&
                       memcmp(got, sorted, c->n_fc * sizeof(uint32_t)) == 0,
                   "%s: group %zu FC set differs from %s", desc, s,
                   gfcs ? "the given one" : "the reference vote");
        }
    }

    test_tensor q, k;
    test_tensor_make(&q, c->qdt, c->n_q, c->hq, c->d, c->qlay, TEST_PLAIN);
    test_tensor_make(&k, c->kdt, c->t, c->hkv, c->d, c->klay, TEST_PLAIN);
    fill(&q, c->integer);
    fill(&k, c->integer);
    if (c->nan_rows)
        for (size_t r = 0; r < c->t / 7 + 1; r++)
            for (size_t h = 0; h < c->hkv; h++)
                for (size_t i = 0; i < c->d; i++)
                    test_tensor_set(&k, test_rand_range(0, c->t - 1), h, i, NAN);
    double *qd = test_tensor_to_double(&q), *kd = test_tensor_to_double(&k);

    size_t max_sel = 0;
    st = fasa_predict_max_selected(c->budget, c->t, &max_sel);
    CHECKF(st == FASA_OK && max_sel == ref_budget_count(c->budget, c->t),
           "%s: max_selected %zu (%s)", desc, max_sel, fasa_status_name(st));
    size_t stride = ref_budget_count(c->budget, c->t) + test_rand_range(0, 3);
    size_t ws = 0;
    st = fasa_predict_workspace_size(ctx, prof, &q.view, c->t, (fasa_gqa_mode)c->mode, &ws);
    CHECKF(st == FASA_OK, "%s: workspace_size %s", desc, fasa_status_name(st));
    void *work = test_xmalloc(ws);
    size_t n_idx = c->n_q * n_sets * stride, n_cnt = c->n_q * n_sets, n_sc = c->n_q * n_sets * c->t;
    /* +4 sentinel elements after each output: nothing past the extent */
    uint32_t *idx = test_xmalloc((n_idx + 4) * sizeof(uint32_t));
    uint32_t *cnt = test_xmalloc((n_cnt + 4) * sizeof(uint32_t));
    unsigned char *near = calloc(n_cnt, 1);
    float *sc = c->want_scores ? test_xmalloc((n_sc + 4) * sizeof(float)) : NULL;
    memset(idx, 0xee, (n_idx + 4) * sizeof(uint32_t));
    memset(cnt, 0xee, (n_cnt + 4) * sizeof(uint32_t));
    if (sc)
        memset(sc, 0xee, (n_sc + 4) * sizeof(float));

    st = fasa_predict(ctx, prof, c->layer, (fasa_gqa_mode)c->mode, &q.view, &k.view, c->budget,
                      idx, stride, cnt, sc, work, ws);
    if (!CHECKF(st == FASA_OK, "%s: predict %s (%s)", desc, fasa_status_name(st),
                fasa_ctx_last_error(ctx)))
        goto done;
    CHECKF(idx[n_idx] == 0xeeeeeeeeu && idx[n_idx + 3] == 0xeeeeeeeeu, "%s: indices overrun", desc);
    CHECKF(cnt[n_cnt] == 0xeeeeeeeeu && cnt[n_cnt + 3] == 0xeeeeeeeeu, "%s: counts overrun", desc);
    if (sc) {
        uint32_t tail[4];
        memcpy(tail, sc + n_sc, sizeof tail);
        CHECKF(tail[0] == 0xeeeeeeeeu && tail[3] == 0xeeeeeeeeu, "%s: scores overrun", desc);
    }

    double *w = test_xmalloc(c->d * sizeof(double));
    double *score = test_xmalloc(c->t * sizeof(double)), *abs_sum = test_xmalloc(c->t * sizeof(double));
    size_t k_stride = c->hkv * c->d;
    int score_fail = 0;
    for (size_t i = 0; i < c->n_q; i++) {
        size_t t_i = ref_visible(c->t, c->n_q, i);
        size_t n = ref_budget_count(c->budget, t_i);
        for (size_t s = 0; s < n_sets; s++) {
            size_t g = c->mode == FASA_GQA_PER_HEAD ? s / G : s;
            if (c->mode == FASA_GQA_PER_HEAD) {
                memcpy(w, qd + (i * c->hq + s) * c->d, c->d * sizeof(double));
            } else {
                memset(w, 0, c->d * sizeof(double));
                for (size_t h = g * G; h < (g + 1) * G; h++)
                    for (size_t x = 0; x < c->d; x++)
                        w[x] += qd[(i * c->hq + h) * c->d + x];
            }
            ref_tip_scores(w, kd + g * c->d, k_stride, t_i, set_fcs + s * c->n_fc, c->n_fc,
                           c->pairs, c->d, score, abs_sum);
            if (c->mode == FASA_GQA_GROUP_SHARED) { /* error scale of the per-head terms */
                for (size_t j = 0; j < t_i; j++) {
                    double a = 0.0;
                    for (size_t h = g * G; h < (g + 1) * G; h++) {
                        double tmp;
                        ref_tip_scores(qd + (i * c->hq + h) * c->d, kd + g * c->d + j * k_stride, 0,
                                       1, set_fcs + s * c->n_fc, c->n_fc, c->pairs, c->d, &tmp, &tmp);
                        a += tmp;
                    }
                    abs_sum[j] = a;
                }
            }
            char what[512];
            snprintf(what, sizeof what, "%s query %zu set %zu", desc, i, s);
            near[i * n_sets + s] = (unsigned char)check_set(
                c, what, idx + (i * n_sets + s) * stride, cnt[i * n_sets + s], score, abs_sum, t_i, n);
            if (sc && !score_fail) {
                const float *row = sc + (i * n_sets + s) * c->t;
                for (size_t j = 0; j < c->t && !score_fail; j++) {
                    if (j >= t_i)
                        score_fail = !CHECKF(isinf(row[j]) && row[j] < 0, "%s: score[%zu] = %g, want -inf",
                                             what, j, row[j]);
                    else if (isnan(score[j]))
                        score_fail = !CHECKF(isnan(row[j]), "%s: score[%zu] = %g, want NaN", what, j,
                                             row[j]);
                    else
                        score_fail = !CHECKF(fabs(row[j] - score[j]) <= 1e-5 * abs_sum[j] + 1e-30,
                                             "%s: score[%zu] = %.9g, want %.9g (tol %.3g)", what, j,
                                             row[j], score[j], 1e-5 * abs_sum[j]);
                }
            }
        }
    }
    free(w);
    free(score);
    free(abs_sum);

    /* determinism: the same call again gives bit-identical results */
    {
        uint32_t *idx2 = test_xmalloc((n_idx + 4) * sizeof(uint32_t));
        uint32_t *cnt2 = test_xmalloc((n_cnt + 4) * sizeof(uint32_t));
        float *sc2 = sc ? test_xmalloc((n_sc + 4) * sizeof(float)) : NULL;
        memcpy(idx2, idx, (n_idx + 4) * sizeof(uint32_t)); /* unused slots equal too */
        st = fasa_predict(ctx, prof, c->layer, (fasa_gqa_mode)c->mode, &q.view, &k.view,
                          c->budget, idx2, stride, cnt2, sc2, work, ws);
        CHECKF(st == FASA_OK && memcmp(cnt, cnt2, n_cnt * sizeof(uint32_t)) == 0 &&
                   memcmp(idx, idx2, n_idx * sizeof(uint32_t)) == 0 &&
                   (!sc || memcmp(sc, sc2, n_sc * sizeof(float)) == 0),
               "%s: second identical call differs", desc);
        /* scalar kernels: the same index sets wherever the cut is no near-tie */
        if (ctx_scalar) {
            size_t ws2 = 0;
            fasa_predict_workspace_size(ctx_scalar, prof, &q.view, c->t, (fasa_gqa_mode)c->mode, &ws2);
            void *work2 = test_xmalloc(ws2);
            st = fasa_predict(ctx_scalar, prof, c->layer, (fasa_gqa_mode)c->mode, &q.view, &k.view,
                              c->budget, idx2, stride, cnt2, NULL, work2, ws2);
            CHECKF(st == FASA_OK && memcmp(cnt, cnt2, n_cnt * sizeof(uint32_t)) == 0,
                   "%s: scalar kernels: %s or other counts", desc, fasa_status_name(st));
            for (size_t r = 0; r < n_cnt; r++) {
                int same = memcmp(idx + r * stride, idx2 + r * stride, cnt[r] * sizeof(uint32_t)) == 0;
                if (near[r])
                    g_scalar_near_diff += !same;
                else
                    CHECKF(same, "%s: set %zu: scalar kernels select differently (no near-tie)", desc, r);
            }
            free(work2);
        }
        free(idx2);
        free(cnt2);
        free(sc2);
    }
done:
    free(near);
    free(work);
    free(idx);
    free(cnt);
    free(sc);
    free(qd);
    free(kd);
    free(set_fcs);
    test_tensor_free(&q);
    test_tensor_free(&k);
    fasa_profile_destroy(prof);
    free(fcs);
    free(gfcs);
}

static void random_case(pcase *c, size_t t)
{
    static const size_t dims[] = {64, 128, 256};
    static const size_t ratios[] = {1, 2, 4, 8};
    memset(c, 0, sizeof *c);
    c->d = dims[test_rand_range(0, 2)];
    if (t >= 5000 && c->d == 256)
        c->d = 128;
    c->hkv = test_rand_range(1, t >= 5000 ? 1 : 2);
    c->hq = c->hkv * ratios[test_rand_range(0, 3)];
    c->t = t;
    c->n_q = test_rand_range(0, 2) == 0 ? test_rand_range(1, t < 5 ? t : 5) : 1;
    c->n_layers = test_rand_range(1, 3);
    c->layer = test_rand_range(0, c->n_layers - 1);
    static const size_t nfc_choice[] = {1, 4, 16, 16, 16, 0};
    c->n_fc = nfc_choice[test_rand_range(0, 5)];
    if (c->n_fc == 0 || c->n_fc > c->d / 2)
        c->n_fc = c->d / 2;
    c->qdt = (int)test_rand_range(0, 2);
    c->kdt = (int)test_rand_range(0, 2);
    c->qlay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->klay = (int)test_rand_range(0, TEST_LAYOUT_COUNT - 1);
    c->pairs = (int)test_rand_range(0, 2);
    c->mode = (int)test_rand_range(0, 1);
    c->integer = test_rand_range(0, 4) == 0;
    c->nan_rows = c->integer && test_rand_range(0, 1);
    c->explicit_group = (int)test_rand_range(0, 1);
    c->want_scores = test_rand_range(0, 3) != 0;
    if (test_rand_range(0, 1))
        c->budget = (double)test_rand_range(1, t + 10) + (test_rand_range(0, 3) ? 0.0 : 0.5);
    else
        c->budget = 0.001 + 0.998 * test_rand_uniform();
}

/* The reference itself on hand-made inputs, so a wrong reference cannot
 * silently agree with a wrong library. */
static void test_reference(void)
{
    const double s[] = {1.0, 3.0, NAN, 3.0, -1.0, 2.0};
    uint32_t order[6], top[6];
    ref_rank(s, 6, order);
    const uint32_t want[] = {1, 3, 5, 0, 4, 2};
    CHECK(memcmp(order, want, sizeof want) == 0);
    ref_topk(s, 6, 2, top);
    CHECK(top[0] == 1 && top[1] == 3);
    ref_topk(s, 6, 3, top);
    CHECK(top[0] == 1 && top[1] == 3 && top[2] == 5);
    CHECK(ref_budget_count(0.5, 9) == 4 && ref_budget_count(0.01, 9) == 1);
    CHECK(ref_budget_count(3.9, 9) == 3 && ref_budget_count(100, 9) == 9);
    CHECK(ref_budget_count(0, 9) == 0 && ref_budget_count(-1, 9) == 0 &&
          ref_budget_count(NAN, 9) == 0 && ref_budget_count(INFINITY, 9) == 0);
    size_t d0, d1;
    ref_fc_dims(FASA_PAIRS_HALF, 128, 5, &d0, &d1);
    CHECK(d0 == 5 && d1 == 69);
    ref_fc_dims(FASA_PAIRS_INTERLEAVED, 128, 5, &d0, &d1);
    CHECK(d0 == 10 && d1 == 11);
    ref_fc_dims(FASA_PAIRS_ADJACENT, 128, 63, &d0, &d1);
    CHECK(d0 == 126 && d1 == 127);
    const uint32_t heads[] = {1, 2, 2, 3, 3, 0}; /* 3 heads x 2 FCs */
    uint32_t g[2];
    ref_group_vote(heads, 3, 2, 8, g);
    CHECK(g[0] == 2 && g[1] == 3);
    CHECK(test_f32_to_f16(1.0f) == 0x3c00 && test_f32_to_f16(65504.0f) == 0x7bff &&
          test_f32_to_f16(65520.0f) == 0x7c00 && test_f32_to_f16(0x1.0p-24f) == 0x0001 &&
          test_f32_to_f16(1.0f + 0x1.0p-11f) == 0x3c00 && test_f32_to_f16(-2.0f) == 0xc000);
    CHECK(test_f32_to_bf16(1.0f) == 0x3f80 && test_f32_to_bf16(1.0f + 0x1.0p-8f) == 0x3f80 &&
          test_f32_to_bf16(1.0f + 0x1.8p-8f) == 0x3f81 &&
          test_f32_to_bf16(1.0f + 0x1.8p-7f) == 0x3f82);
}

/* Contextual agreement from fasa_calibrate (the statistic that chooses the
 * FCs TIP scores with) against the double reference, as a mean over steps. */
static void test_agreement(void)
{
    enum { L = 1, HQ = 4, HKV = 2, D = 16, T = 40, STEPS = 3, NK = 2 };
    const uint32_t kv[NK] = {4, 16};
    fasa_calib_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    cfg.shape.struct_size = sizeof cfg.shape;
    cfg.shape.n_layers = L;
    cfg.shape.n_q_heads = HQ;
    cfg.shape.n_kv_heads = HKV;
    cfg.shape.head_dim = D;
    cfg.shape.pair_layout = FASA_PAIRS_HALF;
    cfg.n_k = NK;
    memcpy(cfg.k_values, kv, sizeof kv);
    test_tensor q[STEPS], k[STEPS];
    fasa_calib_step steps[STEPS];
    double want[NK][HQ][D / 2];
    memset(want, 0, sizeof want);
    for (int s = 0; s < STEPS; s++) {
        size_t t = T - 10 + 5 * (size_t)s;
        test_tensor_make(&q[s], FASA_DTYPE_F32, 1, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
        test_tensor_make(&k[s], s == 1 ? FASA_DTYPE_F16 : FASA_DTYPE_F32, t, HKV, D,
                         TEST_LAYOUT_HEAD_MAJOR, TEST_PLAIN);
        test_tensor_randn(&q[s], 1.0);
        test_tensor_randn(&k[s], 1.0);
        steps[s].layer = 0;
        steps[s].q = &q[s].view;
        steps[s].k = &k[s].view;
        double *qd = test_tensor_to_double(&q[s]), *kd = test_tensor_to_double(&k[s]);
        for (int ki = 0; ki < NK; ki++)
            for (size_t h = 0; h < HQ; h++)
                for (size_t f = 0; f < D / 2; f++)
                    want[ki][h][f] += ref_contextual_agreement(qd + h * D, kd + (h * HKV / HQ) * D,
                                                               HKV * D, t, D, FASA_PAIRS_HALF, f,
                                                               kv[ki]) / STEPS;
        free(qd);
        free(kd);
    }
    fasa_profile *p = NULL;
    fasa_status st = fasa_calibrate(&cfg, steps, STEPS, NULL, &p);
    if (CHECKF(st == FASA_OK, "calibrate: %s", fasa_status_name(st))) {
        float got[HQ * (D / 2)];
        for (int ki = 0; ki < NK; ki++) {
            st = fasa_profile_get_agreement(p, 0, (size_t)ki, got, HQ * (D / 2));
            CHECK_STATUS(st, FASA_OK);
            double worst = 0.0;
            for (size_t h = 0; h < HQ; h++)
                for (size_t f = 0; f < D / 2; f++)
                    worst = fmax(worst, fabs(got[h * (D / 2) + f] - want[ki][h][f]));
            CHECKF(worst <= 1e-6, "agreement at K=%u differs from the reference by %g", kv[ki], worst);
        }
    }
    fasa_profile_destroy(p);
    for (int s = 0; s < STEPS; s++) {
        test_tensor_free(&q[s]);
        test_tensor_free(&k[s]);
    }
}

int main(void)
{
    test_init("test_predict");
    test_reference();
    test_agreement();
    fasa_ctx *ctx = NULL, *ctx_scalar = NULL;
    CHECK_STATUS(fasa_ctx_create(NULL, &ctx), FASA_OK);
    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    o.cpu_level = FASA_CPU_SCALAR;
    CHECK_STATUS(fasa_ctx_create(&o, &ctx_scalar), FASA_OK);

    static const size_t fixed_t[] = {1, 63, 64, 65, 1000, 10000, 1, 64, 2};
    size_t n_cases = 0;
    pcase c;
    for (size_t r = 0; r < sizeof fixed_t / sizeof fixed_t[0]; r++) {
        random_case(&c, fixed_t[r]);
        run_case(&c, ctx, ctx_scalar);
        n_cases++;
    }
    for (size_t r = 0; r < 60; r++) {
        size_t t = test_rand_range(0, 3) ? test_rand_range(1, 300) : test_rand_range(301, 3000);
        random_case(&c, t);
        run_case(&c, ctx, ctx_scalar);
        n_cases++;
    }
    /* budget >= t and tiny fractions on every pair layout and mode */
    for (int pairs = 0; pairs < 3; pairs++)
        for (int mode = 0; mode < 2; mode++) {
            random_case(&c, 65);
            c.pairs = pairs;
            c.mode = mode;
            c.budget = (pairs & 1) ? 65.0 : 1e-6;
            run_case(&c, ctx, ctx_scalar);
            n_cases++;
        }
    test_note("%zu cases, %zu index sets checked, %zu cut at a near-tie, %zu of those differ from "
              "the reference (accepted), %zu scalar/default differences at near-ties",
              n_cases, g_sets_checked, g_near_cuts, g_near_ties, g_scalar_near_diff);
    fasa_ctx_destroy(ctx);
    fasa_ctx_destroy(ctx_scalar);
    return test_summary();
}
