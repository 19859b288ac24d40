/*
 * profile_select.c - choosing the dominant FC sets of a profile from its
 * contextual agreement (fasa_profile_select): per query head the best N_tip
 * FCs at one calibrated K (or the official threshold rule), per KV head the
 * set of the group's summed agreement.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* -------------------------------------------------------- selection */

void fasa_select_options_default(fasa_select_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->n_fc = 16;
    o->k = 0;
    o->budget_hint = 256;
    o->use_threshold = 0;
    o->threshold_ratio = 0.8f;
    o->min_fc = 16;
    o->max_fc = 16;
}

/* Descending agreement, lower FC first on ties: a total order, so the
 * selection is deterministic. */
typedef struct {
    double c;
    uint32_t f;
} fc_score;

static int cmp_fc_score(const void *a, const void *b)
{
    const fc_score *x = a, *y = b;
    if (x->c != y->c)
        return x->c > y->c ? -1 : 1;
    return (x->f > y->f) - (x->f < y->f);
}

/* numpy.quantile(c, ratio) with the default 'linear' method, including
 * numpy's two-sided lerp (exact at both ends). sorted: ascending. */
static double quantile_linear(const double *sorted, size_t n, double ratio)
{
    double pos = ratio * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    if (lo >= n - 1)
        return sorted[n - 1];
    double t = pos - (double)lo, a = sorted[lo], b = sorted[lo + 1], diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* How many FCs a column keeps under the options (see fasa_select_options). */
static size_t select_count(const fasa_select_options *o, const double *c, size_t n,
                           double *scratch)
{
    if (!o->use_threshold)
        return o->n_fc;
    memcpy(scratch, c, n * sizeof(double));
    qsort(scratch, n, sizeof(double), cmp_double);
    double thr = quantile_linear(scratch, n, (double)o->threshold_ratio);
    size_t m = 0;
    for (size_t f = 0; f < n; f++)
        m += c[f] >= thr;
    /* S = {c >= thr} is a prefix of the descending ranking (equal values are
     * in or out together), so "top max_fc of S" equals the overall top. */
    if (m < o->min_fc)
        m = o->min_fc;
    if (m > o->max_fc)
        m = o->max_fc;
    return m;
}

/* Top-`count` FCs of column c into dst (ascending). */
static void select_top(const double *c, size_t n, size_t count, fc_score *rank, uint32_t *dst)
{
    for (size_t f = 0; f < n; f++) {
        rank[f].c = c[f];
        rank[f].f = (uint32_t)f;
    }
    qsort(rank, n, sizeof *rank, cmp_fc_score);
    for (size_t i = 0; i < count; i++)
        dst[i] = rank[i].f;
    qsort(dst, count, sizeof(uint32_t), fasa__cmp_u32);
}

static fasa_status check_select_options(const fasa_profile *p, const fasa_select_options *o,
                                        size_t *k_index)
{
    size_t nfc = p->n_fc_total;
    fasa_status st0 = fasa__struct_ok(NULL, o, o->struct_size, sizeof *o, "select options");
    if (st0 != FASA_OK)
        return st0;
    if (o->use_threshold > 1)
        return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT, "select options: use_threshold %u",
                          (unsigned)o->use_threshold);
    if (!o->use_threshold && (o->n_fc < 1 || o->n_fc > nfc))
        return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT, "select options: n_fc %u not in 1..%zu",
                          (unsigned)o->n_fc, nfc);
    if (o->use_threshold) {
        if (!(o->threshold_ratio >= 0.0f && o->threshold_ratio <= 1.0f))
            return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT,
                              "select options: threshold_ratio not in [0, 1]");
        if (o->min_fc < 1 || o->min_fc > o->max_fc || o->max_fc > nfc)
            return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT,
                              "select options: need 1 <= min_fc %u <= max_fc %u <= %zu",
                              (unsigned)o->min_fc, (unsigned)o->max_fc, nfc);
    }
    if (o->k != 0) {
        for (size_t i = 0; i < p->n_k; i++)
            if (p->k_values[i] == o->k) {
                *k_index = i;
                return FASA_OK;
            }
        return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT, "select options: K %u not calibrated",
                          (unsigned)o->k);
    }
    size_t best = 0;
    for (size_t i = 1; i < p->n_k; i++) { /* ascending K: strict < keeps the smaller on ties */
        uint64_t d_i = p->k_values[i] > o->budget_hint ? p->k_values[i] - o->budget_hint
                                                       : o->budget_hint - p->k_values[i];
        uint64_t d_b = p->k_values[best] > o->budget_hint ? p->k_values[best] - o->budget_hint
                                                           : o->budget_hint - p->k_values[best];
        if (d_i < d_b)
            best = i;
    }
    *k_index = best;
    return FASA_OK;
}

fasa_status fasa_profile_select(fasa_profile *p, const fasa_select_options *options)
{
    if (!p)
        return FASA_ERR_NULL_POINTER;
    if (!p->agreement || p->n_k == 0)
        return fasa__fail(NULL, FASA_ERR_BAD_STATE, "profile has no agreement data");
    const fasa_model_shape *s = &p->shape;
    size_t nfc = p->n_fc_total;
    fasa_select_options o;
    if (options) {
        fasa_status st0 = fasa__struct_ok(NULL, options, options->struct_size, sizeof o,
                                          "select options");
        if (st0 != FASA_OK)
            return st0;
        o = *options;
        o.struct_size = sizeof o;
    } else {
        /* Defaults fitted to small heads, so that options == NULL always works. */
        fasa_select_options_default(&o);
        if (o.n_fc > nfc)
            o.n_fc = (uint32_t)nfc;
        if (o.max_fc > nfc)
            o.max_fc = (uint32_t)nfc;
        if (o.min_fc > o.max_fc)
            o.min_fc = o.max_fc;
    }
    size_t ki = 0;
    fasa_status st = check_select_options(p, &o, &ki);
    if (st != FASA_OK)
        return st;

    size_t L = s->n_layers, Hq = s->n_q_heads, Hkv = s->n_kv_heads, G = Hq / Hkv;
    size_t rows = L * Hq, grows = L * Hkv;
    /* Row lengths are only known after the rule ran, so count first. */
    double *col = malloc(nfc * sizeof(double));
    double *scratch = malloc(nfc * sizeof(double));
    fc_score *rank = malloc(nfc * sizeof(fc_score));
    uint32_t *counts = malloc((rows + grows) * sizeof(uint32_t));
    uint32_t *fc_count = NULL, *fcs = NULL, *gcount = NULL, *gfcs = NULL;
    if (!col || !scratch || !rank || !counts) {
        st = FASA_ERR_OUT_OF_MEMORY;
        goto done;
    }
    size_t max_fc = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t l = 0; l < L; l++) {
            const float *a = p->agreement + (l * p->n_k + ki) * Hq * nfc;
            for (size_t h = 0; h < Hq; h++) {
                for (size_t f = 0; f < nfc; f++)
                    col[f] = a[h * nfc + f];
                size_t row = l * Hq + h;
                if (pass == 0) {
                    counts[row] = (uint32_t)select_count(&o, col, nfc, scratch);
                    max_fc = counts[row] > max_fc ? counts[row] : max_fc;
                } else {
                    fc_count[row] = counts[row];
                    select_top(col, nfc, counts[row], rank, fcs + row * max_fc);
                }
            }
            for (size_t g = 0; g < Hkv; g++) {
                for (size_t f = 0; f < nfc; f++) {
                    double sum = 0.0;
                    for (size_t h = g * G; h < (g + 1) * G; h++)
                        sum += a[h * nfc + f];
                    col[f] = sum;
                }
                size_t row = l * Hkv + g;
                if (pass == 0) {
                    counts[rows + row] = (uint32_t)select_count(&o, col, nfc, scratch);
                    max_fc = counts[rows + row] > max_fc ? counts[rows + row] : max_fc;
                } else {
                    gcount[row] = counts[rows + row];
                    select_top(col, nfc, counts[rows + row], rank, gfcs + row * max_fc);
                }
            }
        }
        if (pass == 0 && !fasa__profile_alloc_sets(s, max_fc, &fc_count, &fcs, &gcount, &gfcs)) {
            fc_count = fcs = gcount = gfcs = NULL;
            st = FASA_ERR_OUT_OF_MEMORY;
            goto done;
        }
    }
    fasa__profile_free_sets(p);
    p->fc_count = fc_count;
    p->fcs = fcs;
    p->group_fc_count = gcount;
    p->group_fcs = gfcs;
    p->max_fc = max_fc;
    p->selection_k = p->k_values[ki];
done:
    free(col);
    free(scratch);
    free(rank);
    free(counts);
    return st;
}
