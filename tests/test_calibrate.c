/*
 * test_calibrate.c - calibration through the public API: planted dominant
 * FCs are recovered in every pair layout and GQA shape; agreement values
 * match a naive brute force (full sort per FC, set intersection) to 1e-6,
 * ties and t < K included; selection options (K choice, numpy-style
 * threshold rule); argument, NaN and state errors.
 */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_st_(fasa_status got, fasa_status want, int line, const char *expr)
{
    return test_check_(got == want, __FILE__, line, expr, "got %s (%d), want %s",
                       fasa_status_name(got), (int)got, fasa_status_name(want));
}
/* single evaluation of `call` (util.h's CHECK_STATUS evaluates it thrice) */
#define CHECK_ST(call, want) check_st_((call), (want), __LINE__, #call)

static fasa_calib_config make_config(size_t L, size_t Hq, size_t Hkv, size_t d, int layout,
                                     size_t n_k, const uint32_t *ks)
{
    fasa_calib_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.shape.struct_size = sizeof c.shape;
    c.shape.n_layers = L;
    c.shape.n_q_heads = Hq;
    c.shape.n_kv_heads = Hkv;
    c.shape.head_dim = d;
    c.shape.pair_layout = layout;
    c.n_k = n_k;
    for (size_t i = 0; i < n_k; i++)
        c.k_values[i] = ks[i];
    return c;
}

static void fc_dims(int layout, size_t d, size_t f, size_t *d0, size_t *d1)
{
    if (layout == FASA_PAIRS_HALF) {
        *d0 = f;
        *d1 = f + d / 2;
    } else {
        *d0 = 2 * f;
        *d1 = 2 * f + 1;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------ brute force */

static const double *g_rank_scores;
static int cmp_rank(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    double x = g_rank_scores[i], y = g_rank_scores[j];
    if (x != y)
        return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

/* in_top[j] = 1 when token j is among the first kp of a full sort. */
static void naive_top(const double *s, size_t t, size_t kp, uint32_t *idx, unsigned char *in_top)
{
    for (size_t j = 0; j < t; j++)
        idx[j] = (uint32_t)j;
    g_rank_scores = s;
    qsort(idx, t, sizeof(uint32_t), cmp_rank);
    memset(in_top, 0, t);
    for (size_t i = 0; i < kp; i++)
        in_top[idx[i]] = 1;
}

/* Adds CA of one step to acc[n_k][Hq][nfc] (q: [Hq][d], k: [t][Hkv][d]). */
static void naive_step(const double *q, const double *k, size_t t, size_t Hq, size_t Hkv,
                       size_t d, int layout, size_t n_k, const uint32_t *ks, double *acc)
{
    size_t nfc = d / 2;
    double *s = test_xmalloc(t * sizeof(double)), *sf = test_xmalloc(t * sizeof(double));
    uint32_t *idx = test_xmalloc(t * sizeof(uint32_t));
    unsigned char *a = test_xmalloc(t), *b = test_xmalloc(t);
    for (size_t h = 0; h < Hq; h++) {
        size_t g = h * Hkv / Hq;
        for (size_t j = 0; j < t; j++) {
            double sum = 0;
            for (size_t i = 0; i < d; i++)
                sum += q[h * d + i] * k[(j * Hkv + g) * d + i];
            s[j] = sum;
        }
        for (size_t f = 0; f < nfc; f++) {
            size_t d0, d1;
            fc_dims(layout, d, f, &d0, &d1);
            for (size_t j = 0; j < t; j++)
                sf[j] = q[h * d + d0] * k[(j * Hkv + g) * d + d0] +
                        q[h * d + d1] * k[(j * Hkv + g) * d + d1];
            for (size_t ki = 0; ki < n_k; ki++) {
                size_t kp = ks[ki] < t ? ks[ki] : t;
                naive_top(s, t, kp, idx, a);
                naive_top(sf, t, kp, idx, b);
                size_t inter = 0;
                for (size_t j = 0; j < t; j++)
                    inter += a[j] && b[j];
                acc[(ki * Hq + h) * nfc + f] += (double)inter / (double)kp;
            }
        }
    }
    free(s);
    free(sf);
    free(idx);
    free(a);
    free(b);
}

/* Random data: small integers (many exact ties) or normals. */
static double draw(int ints)
{
    return ints ? (double)((int)test_rand_range(0, 4) - 2) : test_rand_normal();
}

static void test_brute_force(int layout, int dtype, int ints)
{
    const size_t L = 2, Hq = 4, Hkv = 2, d = 8, nfc = d / 2;
    const uint32_t ks[] = {1, 3, 8, 20};
    const size_t n_k = 4;
    const size_t ts[] = {5, 1, 13, 40, 27}; /* t < K, t = 1, t > K */
    fasa_calib_config cfg = make_config(L, Hq, Hkv, d, layout, n_k, ks);
    fasa_calibrator *cal = NULL;
    if (!CHECK_ST(fasa_calibrator_create(&cfg, &cal), FASA_OK))
        return;
    double *acc = calloc(L * n_k * Hq * nfc, sizeof(double));
    size_t steps[2] = {0, 0};
    for (size_t si = 0; si < sizeof ts / sizeof ts[0]; si++)
        for (size_t l = 0; l < L; l++) {
            size_t t = ts[(si + l) % 5];
            if (l == 1 && si == 4)
                continue; /* layers get different step counts */
            test_tensor qt, kt;
            test_tensor_make(&qt, dtype, 1, Hq, d, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
            test_tensor_make(&kt, dtype, t, Hkv, d, (int)((si + l) % TEST_LAYOUT_COUNT),
                             TEST_GUARD_AFTER);
            for (size_t h = 0; h < Hq; h++)
                for (size_t i = 0; i < d; i++)
                    test_tensor_set(&qt, 0, h, i, draw(ints));
            for (size_t j = 0; j < t; j++)
                for (size_t g = 0; g < Hkv; g++)
                    for (size_t i = 0; i < d; i++)
                        test_tensor_set(&kt, j, g, i, draw(ints));
            double *qd = test_tensor_to_double(&qt), *kd = test_tensor_to_double(&kt);
            naive_step(qd, kd, t, Hq, Hkv, d, layout, n_k, ks, acc + l * n_k * Hq * nfc);
            steps[l]++;
            CHECK_ST(fasa_calibrator_add_step(cal, NULL, l, &qt.view, &kt.view), FASA_OK);
            free(qd);
            free(kd);
            test_tensor_free(&qt);
            test_tensor_free(&kt);
        }
    fasa_select_options o;
    fasa_select_options_default(&o);
    o.n_fc = 2;
    fasa_profile *p = NULL;
    if (CHECK_ST(fasa_calibrator_finish(cal, &o, &p), FASA_OK)) {
        fasa_profile_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        CHECK_ST(fasa_profile_get_info(p, &info), FASA_OK);
        CHECK(info.n_k == n_k && info.has_agreement == 1 && info.n_steps == 5);
        uint32_t got_k[FASA_MAX_K_VALUES];
        CHECK_ST(fasa_profile_get_k_values(p, got_k, n_k), FASA_OK);
        CHECK(memcmp(got_k, ks, sizeof ks) == 0);
        CHECK_ST(fasa_profile_get_k_values(p, got_k, n_k - 1), FASA_ERR_BUFFER_TOO_SMALL);
        float a[64];
        double worst = 0;
        for (size_t l = 0; l < L; l++)
            for (size_t ki = 0; ki < n_k; ki++) {
                CHECK_ST(fasa_profile_get_agreement(p, l, ki, a, 64), FASA_OK);
                for (size_t i = 0; i < Hq * nfc; i++) {
                    double want = acc[(l * n_k + ki) * Hq * nfc + i] / (double)steps[l];
                    double e = fabs((double)a[i] - want);
                    worst = e > worst ? e : worst;
                }
            }
        CHECKF(worst <= 1e-6, "layout %d dtype %d ints %d: max |CA - brute force| = %g", layout,
               dtype, ints, worst);
        CHECK_ST(fasa_profile_get_agreement(p, L, 0, a, 64), FASA_ERR_BAD_INDEX);
        CHECK_ST(fasa_profile_get_agreement(p, 0, n_k, a, 64), FASA_ERR_BAD_INDEX);
        CHECK_ST(fasa_profile_get_agreement(p, 0, 0, a, Hq * nfc - 1), FASA_ERR_BUFFER_TOO_SMALL);
        fasa_profile_destroy(p);
    }
    free(acc);
    fasa_calibrator_destroy(cal);
}

/* ---------------------------------------------------- planted signal */

/* Each query head h has its own n_plant "dominant" FCs where q is large;
 * elsewhere q is 1e-3 noise; keys are N(0,1) everywhere. The full logit is
 * then essentially the planted FCs' sum, and calibration must find them. */
static void test_planted(int layout, size_t Hq, size_t Hkv, int dtype)
{
    const size_t L = 2, d = 32, nfc = d / 2, n_plant = 3, t = 160, n_steps = 6;
    const uint32_t ks[] = {16, 48};
    fasa_calib_config cfg = make_config(L, Hq, Hkv, d, layout, 2, ks);
    fasa_calibrator *cal = NULL;
    if (!CHECK_ST(fasa_calibrator_create(&cfg, &cal), FASA_OK))
        return;
    uint32_t *plant = test_random_fcs(L, Hq, n_plant, d);
    for (size_t step = 0; step < n_steps; step++)
        for (size_t l = 0; l < L; l++) {
            test_tensor qt, kt;
            test_tensor_make(&qt, dtype, 1, Hq, d, TEST_LAYOUT_TOKEN_PADDED, TEST_PLAIN);
            test_tensor_make(&kt, dtype, t, Hkv, d, (int)(step % TEST_LAYOUT_COUNT),
                             TEST_GUARD_AFTER);
            test_tensor_randn(&kt, 1.0);
            for (size_t h = 0; h < Hq; h++) {
                for (size_t i = 0; i < d; i++)
                    test_tensor_set(&qt, 0, h, i, 1e-3 * test_rand_normal());
                for (size_t i = 0; i < n_plant; i++) {
                    size_t d0, d1;
                    fc_dims(layout, d, plant[(l * Hq + h) * n_plant + i], &d0, &d1);
                    double sign = test_rand_uniform() < 0.5 ? -1.0 : 1.0;
                    test_tensor_set(&qt, 0, h, d0, sign * (2.0 + test_rand_uniform()));
                    test_tensor_set(&qt, 0, h, d1, -sign * (2.0 + test_rand_uniform()));
                }
            }
            CHECK_ST(fasa_calibrator_add_step(cal, NULL, l, &qt.view, &kt.view), FASA_OK);
            test_tensor_free(&qt);
            test_tensor_free(&kt);
        }
    fasa_select_options o;
    fasa_select_options_default(&o);
    o.n_fc = (uint32_t)n_plant;
    o.budget_hint = 40; /* -> K = 48 */
    fasa_profile *p = NULL;
    if (CHECK_ST(fasa_calibrator_finish(cal, &o, &p), FASA_OK)) {
        fasa_profile_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        fasa_profile_get_info(p, &info);
        CHECK(info.selection_k == 48 && info.max_fc == n_plant && info.n_steps == n_steps);
        size_t G = Hq / Hkv, miss = 0;
        for (size_t l = 0; l < L; l++) {
            for (size_t h = 0; h < Hq; h++) {
                uint32_t row[32], want[8];
                size_t n = 0;
                CHECK_ST(fasa_profile_get_fcs(p, l, FASA_GQA_PER_HEAD, h, row, 32, &n),
                         FASA_OK);
                memcpy(want, plant + (l * Hq + h) * n_plant, n_plant * sizeof(uint32_t));
                qsort(want, n_plant, sizeof(uint32_t), cmp_u32);
                miss += !(n == n_plant && memcmp(row, want, n * sizeof(uint32_t)) == 0);
            }
            /* a group set holds only FCs planted in some head of the group */
            for (size_t g = 0; g < Hkv; g++) {
                uint32_t row[32];
                size_t n = 0;
                CHECK_ST(fasa_profile_get_fcs(p, l, FASA_GQA_GROUP_SHARED, g, row, 32, &n),
                         FASA_OK);
                CHECK(n == n_plant);
                for (size_t i = 0; i < n; i++) {
                    int found = 0;
                    for (size_t h = g * G; h < (g + 1) * G; h++)
                        for (size_t j = 0; j < n_plant; j++)
                            found |= plant[(l * Hq + h) * n_plant + j] == row[i];
                    CHECKF(found, "layer %zu group %zu: FC %u was not planted", l, g, row[i]);
                }
            }
        }
        CHECKF(miss == 0, "layout %d Hq %zu Hkv %zu dtype %d: %zu heads missed their planted FCs",
               layout, Hq, Hkv, dtype, miss);
        /* the agreement separates planted from unplanted FCs at the larger K */
        float *a = test_xmalloc(Hq * nfc * sizeof(float));
        CHECK_ST(fasa_profile_get_agreement(p, 1, 1, a, Hq * nfc), FASA_OK);
        double lo_planted = 1, hi_other = 0;
        for (size_t h = 0; h < Hq; h++)
            for (size_t f = 0; f < nfc; f++) {
                int planted = 0;
                for (size_t j = 0; j < n_plant; j++)
                    planted |= plant[(1 * Hq + h) * n_plant + j] == f;
                if (planted && a[h * nfc + f] < lo_planted)
                    lo_planted = a[h * nfc + f];
                if (!planted && a[h * nfc + f] > hi_other)
                    hi_other = a[h * nfc + f];
            }
        CHECKF(lo_planted > hi_other, "planted min CA %g <= other max CA %g", lo_planted,
               hi_other);
        free(a);
        fasa_profile_destroy(p);
    }
    free(plant);
    fasa_calibrator_destroy(cal);
}

/* ------------------------------------------------------- options */

/* numpy.quantile(..., method='linear') written out independently. */
static double np_quantile(const double *c, size_t n, double ratio)
{
    double *s = test_xmalloc(n * sizeof(double));
    memcpy(s, c, n * sizeof(double));
    for (size_t i = 1; i < n; i++) /* insertion sort */
        for (size_t j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    double pos = ratio * (double)(n - 1);
    size_t lo = (size_t)pos;
    double r = lo + 1 < n ? s[lo] + (s[lo + 1] - s[lo]) * (pos - (double)lo) : s[n - 1];
    free(s);
    return r;
}

/* Top-m of column c (desc, lower index on ties), ascending, into out. */
static void top_fcs(const double *c, size_t n, size_t m, uint32_t *out)
{
    int *taken = calloc(n, sizeof(int));
    for (size_t i = 0; i < m; i++) {
        size_t best = n;
        for (size_t f = 0; f < n; f++)
            if (!taken[f] && (best == n || c[f] > c[best]))
                best = f;
        taken[best] = 1;
    }
    size_t k = 0;
    for (size_t f = 0; f < n; f++)
        if (taken[f])
            out[k++] = (uint32_t)f;
    free(taken);
}

static uint8_t *save(const fasa_profile *p, size_t *n)
{
    size_t size = 0;
    fasa_profile_save_buffer(p, NULL, 0, &size);
    uint8_t *b = test_xmalloc(size);
    fasa_profile_save_buffer(p, b, size, n);
    return b;
}

/* Every set of p against the expected rule at K index ki. */
static size_t count_wrong_sets(const fasa_profile *p, size_t L, size_t Hq, size_t Hkv, size_t nfc,
                               size_t ki, const fasa_select_options *o)
{
    size_t wrong = 0, G = Hq / Hkv;
    float *a = test_xmalloc(Hq * nfc * sizeof(float));
    double *col = test_xmalloc(nfc * sizeof(double));
    uint32_t want[64], got[64];
    for (size_t l = 0; l < L; l++) {
        fasa_profile_get_agreement(p, l, ki, a, Hq * nfc);
        for (size_t r = 0; r < Hq + Hkv; r++) {
            int grp = r >= Hq;
            size_t head = grp ? r - Hq : r;
            for (size_t f = 0; f < nfc; f++) {
                col[f] = 0;
                for (size_t h = grp ? head * G : head; h < (grp ? (head + 1) * G : head + 1); h++)
                    col[f] += a[h * nfc + f];
            }
            size_t m = o->n_fc;
            if (o->use_threshold) {
                double thr = np_quantile(col, nfc, (double)o->threshold_ratio);
                m = 0;
                for (size_t f = 0; f < nfc; f++)
                    m += col[f] >= thr;
                m = m < o->min_fc ? o->min_fc : m > o->max_fc ? o->max_fc : m;
            }
            top_fcs(col, nfc, m, want);
            size_t n = 0;
            fasa_profile_get_fcs(p, l, grp ? FASA_GQA_GROUP_SHARED : FASA_GQA_PER_HEAD, head, got,
                                 64, &n);
            wrong += !(n == m && memcmp(got, want, m * sizeof(uint32_t)) == 0);
        }
    }
    free(a);
    free(col);
    return wrong;
}

static void test_options(void)
{
    /* 9 FCs: ratios k/8 put the quantile exactly on a data point (pos ratio*(n-1)
     * integral), the case where the interpolation rule decides the count */
    const size_t L = 2, Hq = 6, Hkv = 3, d = 18, nfc = d / 2, t = 90;
    const uint32_t ks[] = {8, 16, 64};
    fasa_calib_config cfg = make_config(L, Hq, Hkv, d, FASA_PAIRS_HALF, 3, ks);
    fasa_calibrator *cal = NULL;
    if (!CHECK_ST(fasa_calibrator_create(&cfg, &cal), FASA_OK))
        return;
    float *q = test_xmalloc(Hq * d * sizeof(float)), *k = test_xmalloc(t * Hkv * d * sizeof(float));
    fasa_view qv, kv;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, Hq, d, Hq * d, d);
    fasa_view_make(&kv, k, FASA_DTYPE_F32, t, Hkv, d, Hkv * d, d);
    for (size_t l = 0; l < L; l++)
        for (int s = 0; s < 3; s++) {
            for (size_t i = 0; i < Hq * d; i++) /* uneven scales: varied agreement */
                q[i] = (float)(test_rand_normal() * (1.0 + (double)(i % d)));
            for (size_t i = 0; i < t * Hkv * d; i++)
                k[i] = (float)test_rand_normal();
            CHECK_ST(fasa_calibrator_add_step(cal, NULL, l, &qv, &kv), FASA_OK);
        }
    fasa_profile *p = NULL;
    fasa_select_options o;
    fasa_select_options_default(&o);
    CHECK(o.struct_size == sizeof o && o.n_fc == 16 && o.k == 0 && o.budget_hint == 256 &&
          o.use_threshold == 0 && o.threshold_ratio == 0.8f && o.min_fc == 16 && o.max_fc == 16);
    /* NULL options: defaults fitted to 9 FCs -> every FC */
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (CHECK_ST(fasa_calibrator_finish(cal, NULL, &p), FASA_OK)) {
        fasa_profile_get_info(p, &info);
        CHECK(info.max_fc == nfc && info.selection_k == 64);
        fasa_profile_destroy(p);
        p = NULL;
    }
    o.n_fc = 3;
    if (!CHECK_ST(fasa_calibrator_finish(cal, &o, &p), FASA_OK)) {
        fasa_calibrator_destroy(cal);
        free(q);
        free(k);
        return;
    }
    /* K choice: explicit, or closest to budget_hint with ties to the smaller */
    struct {
        uint32_t k, hint, want;
    } kc[] = {{16, 0, 16}, {0, 12, 8}, {0, 40, 16}, {0, 41, 64}, {0, 1, 8}, {0, 5000, 64}};
    for (size_t i = 0; i < sizeof kc / sizeof kc[0]; i++) {
        o.k = kc[i].k;
        o.budget_hint = kc[i].hint;
        CHECK_ST(fasa_profile_select(p, &o), FASA_OK);
        fasa_profile_get_info(p, &info);
        CHECKF(info.selection_k == kc[i].want, "k %u hint %u: got K %u want %u", kc[i].k,
               kc[i].hint, info.selection_k, kc[i].want);
        size_t ki = kc[i].want == 8 ? 0 : kc[i].want == 16 ? 1 : 2;
        CHECKF(count_wrong_sets(p, L, Hq, Hkv, nfc, ki, &o) == 0, "top-n sets at K %u",
               kc[i].want);
    }
    /* threshold rule against the hand-written quantile */
    o.k = 16;
    o.use_threshold = 1;
    struct {
        float ratio;
        uint32_t min_fc, max_fc;
    } tc[] = {{0.8f, 16, 16}, {0.75f, 2, 5}, {0.3f, 1, 8}, {0.0f, 1, 6}, {1.0f, 2, 8},
              {0.5f, 3, 3}, {0.9f, 1, 8}, {0.5f, 1, 9}, {0.25f, 1, 9}, {0.625f, 1, 9}};
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; i++) {
        o.threshold_ratio = tc[i].ratio;
        o.min_fc = tc[i].min_fc > nfc ? (uint32_t)nfc : tc[i].min_fc;
        o.max_fc = tc[i].max_fc > nfc ? (uint32_t)nfc : tc[i].max_fc;
        CHECK_ST(fasa_profile_select(p, &o), FASA_OK);
        CHECKF(count_wrong_sets(p, L, Hq, Hkv, nfc, 1, &o) == 0,
               "threshold %g min %u max %u: sets differ from the rule", (double)o.threshold_ratio,
               o.min_fc, o.max_fc);
    }
    /* ratio 0 passes every FC -> max_fc; ratio 1 passes only the maximum -> min_fc */
    o.threshold_ratio = 0.0f;
    o.min_fc = 2;
    o.max_fc = 6;
    CHECK_ST(fasa_profile_select(p, &o), FASA_OK);
    fasa_profile_get_info(p, &info);
    CHECK(info.max_fc == 6);
    o.threshold_ratio = 1.0f;
    CHECK_ST(fasa_profile_select(p, &o), FASA_OK);
    fasa_profile_get_info(p, &info);
    CHECK(info.max_fc >= 2 && info.max_fc <= 6); /* 2 unless agreement ties at the top */
    CHECK(count_wrong_sets(p, L, Hq, Hkv, nfc, 1, &o) == 0);

    /* invalid options fail and leave the profile as it was */
    size_t n0, n1;
    uint8_t *before = save(p, &n0);
    fasa_select_options bad;
    fasa_select_options_default(&bad);
    bad.n_fc = 3;
    bad.struct_size = 4;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.struct_size = sizeof bad;
    bad.k = 10;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.k = 0;
    bad.n_fc = 0;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.n_fc = (uint32_t)nfc + 1;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.n_fc = 3;
    bad.use_threshold = 2;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.use_threshold = 1;
    bad.min_fc = 2;
    bad.max_fc = 4;
    float ratios[] = {-0.1f, 1.5f, NAN};
    for (int i = 0; i < 3; i++) {
        bad.threshold_ratio = ratios[i];
        CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    }
    bad.threshold_ratio = 0.5f;
    bad.min_fc = 0;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.min_fc = 5;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    bad.min_fc = 2;
    bad.max_fc = (uint32_t)nfc + 1;
    CHECK_ST(fasa_profile_select(p, &bad), FASA_ERR_INVALID_ARGUMENT);
    CHECK_ST(fasa_calibrator_finish(cal, &bad, &p), FASA_ERR_INVALID_ARGUMENT);
    uint8_t *after = save(p, &n1);
    CHECK(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    CHECK_ST(fasa_profile_select(NULL, &o), FASA_ERR_NULL_POINTER);
    fasa_profile_destroy(p);

    /* a profile made from lists has no agreement to select from */
    uint32_t fcs[2 * 6 * 2];
    for (size_t i = 0; i < sizeof fcs / sizeof fcs[0]; i++)
        fcs[i] = (uint32_t)(i % 2);
    CHECK_ST(fasa_profile_create(&cfg.shape, fcs, 2, NULL, &p), FASA_OK);
    o.use_threshold = 0;
    CHECK_ST(fasa_profile_select(p, &o), FASA_ERR_BAD_STATE);
    fasa_profile_destroy(p);
    fasa_calibrator_destroy(cal);
    free(q);
    free(k);
}

/* --------------------------------------------------------- errors */

static void test_errors(void)
{
    const size_t L = 3, Hq = 4, Hkv = 2, d = 8, t = 20;
    const uint32_t ks[] = {4, 8};
    fasa_calib_config cfg = make_config(L, Hq, Hkv, d, FASA_PAIRS_INTERLEAVED, 2, ks), c2;
    fasa_calibrator *cal = NULL, *sentinel = (fasa_calibrator *)(uintptr_t)0x10, *c = sentinel;
    /* config validation */
    CHECK_ST(fasa_calibrator_create(NULL, &c), FASA_ERR_NULL_POINTER);
    CHECK_ST(fasa_calibrator_create(&cfg, NULL), FASA_ERR_NULL_POINTER);
    c2 = cfg;
    c2.struct_size = 1;
    CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_ERR_INVALID_ARGUMENT);
    c2 = cfg;
    c2.n_k = FASA_MAX_K_VALUES + 1;
    CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_ERR_INVALID_ARGUMENT);
    c2 = cfg;
    c2.k_values[1] = 4;
    CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_ERR_INVALID_ARGUMENT);
    c2 = cfg;
    c2.k_values[0] = 0;
    CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_ERR_INVALID_ARGUMENT);
    c2 = cfg;
    c2.shape.head_dim = 9;
    CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_ERR_BAD_SHAPE);
    c2 = cfg;
    c2.shape.n_q_heads = 0;
    CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_ERR_ZERO_SIZE);
    CHECK(c == sentinel);
    /* n_k = 0: the documented default K values */
    c2 = cfg;
    c2.n_k = 0;
    if (CHECK_ST(fasa_calibrator_create(&c2, &c), FASA_OK)) {
        float q1[4 * 8] = {0}, k1[2 * 8] = {0};
        fasa_view qv, kv;
        fasa_view_make(&qv, q1, FASA_DTYPE_F32, 1, Hq, d, Hq * d, d);
        fasa_view_make(&kv, k1, FASA_DTYPE_F32, 1, Hkv, d, Hkv * d, d);
        for (size_t l = 0; l < L; l++)
            CHECK_ST(fasa_calibrator_add_step(c, NULL, l, &qv, &kv), FASA_OK);
        fasa_profile *p = NULL;
        fasa_select_options o;
        fasa_select_options_default(&o);
        o.n_fc = 1;
        if (CHECK_ST(fasa_calibrator_finish(c, &o, &p), FASA_OK)) {
            uint32_t kk[FASA_MAX_K_VALUES];
            CHECK_ST(fasa_profile_get_k_values(p, kk, FASA_MAX_K_VALUES), FASA_OK);
            CHECK(kk[0] == 64 && kk[1] == 128 && kk[2] == 256 && kk[3] == 512 && kk[4] == 1024);
            /* t = 1: every FC agrees fully at every K */
            float a[16];
            CHECK_ST(fasa_profile_get_agreement(p, 2, 4, a, 16), FASA_OK);
            CHECK(a[0] == 1.0f && a[15] == 1.0f);
            fasa_profile_destroy(p);
        }
        fasa_calibrator_destroy(c);
    }

    if (!CHECK_ST(fasa_calibrator_create(&cfg, &cal), FASA_OK))
        return;
    fasa_ctx *ctx = NULL;
    CHECK_ST(fasa_ctx_create(NULL, &ctx), FASA_OK);
    float *q = test_xmalloc(Hq * d * sizeof(float)), *k = test_xmalloc(t * Hkv * d * sizeof(float));
    for (size_t i = 0; i < Hq * d; i++)
        q[i] = (float)test_rand_normal();
    for (size_t i = 0; i < t * Hkv * d; i++)
        k[i] = (float)test_rand_normal();
    fasa_view qv, kv, v;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, Hq, d, Hq * d, d);
    fasa_view_make(&kv, k, FASA_DTYPE_F32, t, Hkv, d, Hkv * d, d);
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &qv, &kv), FASA_OK);
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 1, &qv, &kv), FASA_OK);
    /* a missing layer */
    fasa_profile *p = NULL, *psent = (fasa_profile *)(uintptr_t)0x10;
    p = psent;
    CHECK_ST(fasa_calibrator_finish(cal, NULL, &p), FASA_ERR_BAD_STATE);
    CHECK(p == psent);
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 2, &qv, &kv), FASA_OK);
    CHECK_ST(fasa_calibrator_finish(cal, NULL, &p), FASA_OK);
    size_t n_ref = 0;
    uint8_t *ref = save(p, &n_ref);
    fasa_profile_destroy(p);

    /* rejected steps leave the accumulator unchanged */
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, L, &qv, &kv), FASA_ERR_BAD_INDEX);
    CHECK(fasa_ctx_last_error(ctx)[0] != '\0');
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, NULL, &kv), FASA_ERR_NULL_POINTER);
    CHECK_ST(fasa_calibrator_add_step(NULL, ctx, 0, &qv, &kv), FASA_ERR_NULL_POINTER);
    v = qv;
    v.data = NULL;
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &v, &kv), FASA_ERR_NULL_POINTER);
    v = qv;
    v.dtype = 9;
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &v, &kv), FASA_ERR_BAD_DTYPE);
    v = qv;
    v.n_tokens = 2;
    v.token_stride = Hq * d;
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &v, &kv), FASA_ERR_BAD_SHAPE);
    fasa_view_make(&v, q, FASA_DTYPE_F32, 1, Hq / 2, d, Hq * d, d);
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &v, &kv), FASA_ERR_BAD_SHAPE);
    fasa_view_make(&v, q, FASA_DTYPE_F32, 1, Hq, d - 2, Hq * d, d);
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &v, &kv), FASA_ERR_BAD_SHAPE);
    fasa_view_make(&v, k, FASA_DTYPE_F32, t, 1, d, Hkv * d, d);
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &qv, &v), FASA_ERR_BAD_SHAPE);
    fasa_view_make(&v, k, FASA_DTYPE_F32, t, Hkv, d, Hkv * d, 1); /* overlapping heads */
    CHECK(fasa_calibrator_add_step(cal, ctx, 0, &qv, &v) != FASA_OK);
    float keep = q[3 * d + 5];
    q[3 * d + 5] = NAN;
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 1, &qv, &kv), FASA_ERR_NONFINITE);
    q[3 * d + 5] = keep;
    keep = k[(t - 1) * Hkv * d + d + 7];
    k[(t - 1) * Hkv * d + d + 7] = INFINITY;
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 2, &qv, &kv), FASA_ERR_NONFINITE);
    k[(t - 1) * Hkv * d + d + 7] = -NAN;
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 2, &qv, &kv), FASA_ERR_NONFINITE);
    k[(t - 1) * Hkv * d + d + 7] = keep;
    CHECK_ST(fasa_calibrator_finish(cal, NULL, &p), FASA_OK);
    size_t n_now = 0;
    uint8_t *now = save(p, &n_now);
    CHECK(n_now == n_ref && memcmp(now, ref, n_ref) == 0);
    free(now);
    fasa_profile_destroy(p);

    /* more steps after finish change the result; the one-shot call agrees
     * with the streaming calibrator */
    CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &qv, &kv), FASA_OK);
    CHECK_ST(fasa_calibrator_finish(cal, NULL, &p), FASA_OK);
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    fasa_profile_get_info(p, &info);
    CHECK(info.n_steps == 2);
    fasa_profile_destroy(p);
    fasa_calib_step steps[3] = {{0, &qv, &kv}, {1, &qv, &kv}, {2, &qv, &kv}};
    CHECK_ST(fasa_calibrate(&cfg, steps, 3, NULL, &p), FASA_OK);
    now = save(p, &n_now);
    CHECK(n_now == n_ref && memcmp(now, ref, n_ref) == 0);
    free(now);
    fasa_profile_destroy(p);
    p = psent;
    CHECK_ST(fasa_calibrate(&cfg, steps, 2, NULL, &p), FASA_ERR_BAD_STATE);
    CHECK_ST(fasa_calibrate(&cfg, NULL, 2, NULL, &p), FASA_ERR_NULL_POINTER);
    steps[1].layer = 7;
    CHECK_ST(fasa_calibrate(&cfg, steps, 3, NULL, &p), FASA_ERR_BAD_INDEX);
    CHECK(p == psent);
    free(ref);
    free(q);
    free(k);
    fasa_ctx_destroy(ctx);
    fasa_calibrator_destroy(cal);
    fasa_calibrator_destroy(NULL);
}

/* The FC tasks of a head may run on several threads: same bytes as one. */
static void test_threads(void)
{
    const size_t L = 1, Hq = 4, Hkv = 2, d = 32, t = 300;
    const uint32_t ks[] = {10, 64, 128};
    fasa_calib_config cfg = make_config(L, Hq, Hkv, d, FASA_PAIRS_HALF, 3, ks);
    float *q = test_xmalloc(Hq * d * sizeof(float)), *k = test_xmalloc(t * Hkv * d * sizeof(float));
    for (size_t i = 0; i < Hq * d; i++)
        q[i] = (float)test_rand_normal();
    for (size_t i = 0; i < t * Hkv * d; i++)
        k[i] = (float)(int)(test_rand_normal() * 2.0); /* ties too */
    fasa_view qv, kv;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, Hq, d, Hq * d, d);
    fasa_view_make(&kv, k, FASA_DTYPE_F32, t, Hkv, d, Hkv * d, d);
    uint8_t *bytes[2] = {NULL, NULL};
    size_t sizes[2] = {0, 0};
    for (int run = 0; run < 2; run++) {
        fasa_ctx_options co;
        fasa_ctx_options_default(&co);
        co.n_threads = run ? 3 : 1;
        fasa_ctx *ctx = NULL;
        fasa_calibrator *cal = NULL;
        fasa_profile *p = NULL;
        if (!CHECK_ST(fasa_ctx_create(&co, &ctx), FASA_OK) ||
            !CHECK_ST(fasa_calibrator_create(&cfg, &cal), FASA_OK))
            break;
        for (int step = 0; step < 2; step++)
            CHECK_ST(fasa_calibrator_add_step(cal, ctx, 0, &qv, &kv), FASA_OK);
        if (CHECK_ST(fasa_calibrator_finish(cal, NULL, &p), FASA_OK)) {
            bytes[run] = save(p, &sizes[run]);
            fasa_profile_destroy(p);
        }
        if (run)
            test_note("threads: compared 1 and %d worker threads", fasa_ctx_threads(ctx));
        fasa_calibrator_destroy(cal);
        fasa_ctx_destroy(ctx);
    }
    CHECK(bytes[0] && bytes[1] && sizes[0] == sizes[1] &&
          memcmp(bytes[0], bytes[1], sizes[0]) == 0);
    free(bytes[0]);
    free(bytes[1]);
    free(q);
    free(k);
}

int main(void)
{
    test_init("test_calibrate");
    for (int layout = 0; layout < 3; layout++) {
        test_brute_force(layout, FASA_DTYPE_F32, 1);
        test_brute_force(layout, layout == 1 ? FASA_DTYPE_BF16 : FASA_DTYPE_F32, 0);
    }
    test_brute_force(FASA_PAIRS_INTERLEAVED, FASA_DTYPE_F16, 1);
    const size_t gqa[][2] = {{4, 4}, {4, 1}, {6, 2}};
    for (int layout = 0; layout < 3; layout++)
        for (int g = 0; g < 3; g++)
            test_planted(layout, gqa[g][0], gqa[g][1],
                         g == 2 ? FASA_DTYPE_F16 : g == 1 ? FASA_DTYPE_BF16 : FASA_DTYPE_F32);
    test_options();
    test_errors();
    test_threads();
    return test_summary();
}
