/*
 * ref_double.c - slow, obvious double-precision FASA (see ref_double.h).
 * Clarity over speed: sorting is a plain comparison sort.
 */
#include "ref_double.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* fasa_pair_layout values, repeated so this file needs no library header. */
enum { REF_INTERLEAVED = 0, REF_HALF = 1, REF_ADJACENT = 2 };

void ref_fc_dims(int pair_layout, size_t d, size_t f, size_t *d0, size_t *d1)
{
    if (pair_layout == REF_HALF) {
        *d0 = f;
        *d1 = f + d / 2;
    } else { /* INTERLEAVED and ADJACENT use the same dims, different meaning */
        *d0 = 2 * f;
        *d1 = 2 * f + 1;
    }
}

size_t ref_budget_count(double budget, size_t t_i)
{
    if (!(budget > 0.0) || isinf(budget))
        return 0;
    double n;
    if (budget >= 1.0) {
        n = floor(budget);
    } else {
        n = floor((double)t_i * budget);
        if (n < 1.0)
            n = 1.0;
    }
    return n >= (double)t_i ? t_i : (size_t)n;
}

size_t ref_visible(size_t t, size_t n_q, size_t i) { return t - n_q + i + 1; }

void ref_tip_scores(const double *w, const double *k, size_t k_stride, size_t t_vis,
                    const uint32_t *fcs, size_t n_fc, int pair_layout, size_t d,
                    double *scores, double *abs_sum)
{
    for (size_t j = 0; j < t_vis; j++) {
        const double *kj = k + j * k_stride;
        double s = 0.0, a = 0.0;
        for (size_t c = 0; c < n_fc; c++) {
            size_t d0, d1;
            ref_fc_dims(pair_layout, d, fcs[c], &d0, &d1);
            s += w[d0] * kj[d0] + w[d1] * kj[d1];
            a += fabs(w[d0] * kj[d0]) + fabs(w[d1] * kj[d1]);
        }
        scores[j] = s;
        if (abs_sum)
            abs_sum[j] = a;
    }
}

static const double *g_rank_scores; /* qsort has no context argument */

static int rank_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    double sa = g_rank_scores[a], sb = g_rank_scores[b];
    int na = isnan(sa), nb = isnan(sb);
    if (na != nb)
        return na - nb;
    if (!na && sa != sb)
        return sa > sb ? -1 : 1;
    return a < b ? -1 : a > b;
}

void ref_rank(const double *scores, size_t n, uint32_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    g_rank_scores = scores;
    qsort(order, n, sizeof(uint32_t), rank_cmp);
}

static int u32_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

void ref_topk(const double *scores, size_t n, size_t k, uint32_t *out)
{
    uint32_t *order = malloc((n ? n : 1) * sizeof(uint32_t));
    if (!order)
        abort();
    ref_rank(scores, n, order);
    if (k > n)
        k = n;
    memcpy(out, order, k * sizeof(uint32_t));
    qsort(out, k, sizeof(uint32_t), u32_cmp);
    free(order);
}

void ref_group_vote(const uint32_t *head_fcs, size_t G, size_t n_fc, size_t head_dim,
                    uint32_t *out)
{
    size_t n_all = head_dim / 2;
    double *votes = calloc(n_all, sizeof(double));
    if (!votes)
        abort();
    for (size_t h = 0; h < G; h++)
        for (size_t c = 0; c < n_fc; c++)
            votes[head_fcs[h * n_fc + c]] += 1.0;
    ref_topk(votes, n_all, n_fc, out);
    free(votes);
}

void ref_attend(const double *q, const double *k, size_t k_stride, size_t d, const double *v,
                size_t v_stride, size_t dv, const uint32_t *idx, size_t n, double scale,
                double *out, double *lse)
{
    for (size_t c = 0; c < dv; c++)
        out[c] = 0.0;
    if (n == 0) {
        *lse = -INFINITY;
        return;
    }
    double *logit = malloc(n * sizeof(double));
    if (!logit)
        abort();
    double m = -INFINITY;
    for (size_t r = 0; r < n; r++) {
        const double *kr = k + (size_t)idx[r] * k_stride;
        double s = 0.0;
        for (size_t c = 0; c < d; c++)
            s += q[c] * kr[c];
        logit[r] = scale * s;
        if (logit[r] > m)
            m = logit[r];
    }
    double z = 0.0;
    for (size_t r = 0; r < n; r++) {
        double p = exp(logit[r] - m);
        const double *vr = v + (size_t)idx[r] * v_stride;
        z += p;
        for (size_t c = 0; c < dv; c++)
            out[c] += p * vr[c];
    }
    for (size_t c = 0; c < dv; c++)
        out[c] /= z;
    *lse = m + log(z);
    free(logit);
}

void ref_attend_dense(const double *q, const double *k, size_t k_stride, size_t d,
                      const double *v, size_t v_stride, size_t dv, size_t t_vis, double scale,
                      double *out, double *lse)
{
    uint32_t *idx = malloc((t_vis ? t_vis : 1) * sizeof(uint32_t));
    if (!idx)
        abort();
    for (size_t j = 0; j < t_vis; j++)
        idx[j] = (uint32_t)j;
    ref_attend(q, k, k_stride, d, v, v_stride, dv, idx, t_vis, scale, out, lse);
    free(idx);
}

double ref_contextual_agreement(const double *q, const double *k, size_t k_stride, size_t t,
                                size_t d, int pair_layout, size_t f, size_t K)
{
    size_t n = t ? t : 1;
    double *full = calloc(n, sizeof(double)), *part = calloc(n, sizeof(double));
    uint32_t *a = calloc(n, sizeof(uint32_t)), *b = calloc(n, sizeof(uint32_t));
    if (!full || !part || !a || !b)
        abort();
    size_t d0, d1;
    ref_fc_dims(pair_layout, d, f, &d0, &d1);
    for (size_t j = 0; j < t; j++) {
        const double *kj = k + j * k_stride;
        double s = 0.0;
        for (size_t c = 0; c < d; c++)
            s += q[c] * kj[c];
        full[j] = s;
        part[j] = q[d0] * kj[d0] + q[d1] * kj[d1];
    }
    size_t kk = K < t ? K : t;
    ref_topk(full, t, kk, a);
    ref_topk(part, t, kk, b);
    size_t common = 0, i = 0, j = 0; /* both ascending: merge count */
    while (i < kk && j < kk) {
        if (a[i] == b[j]) {
            common++;
            i++;
            j++;
        } else if (a[i] < b[j]) {
            i++;
        } else {
            j++;
        }
    }
    free(full);
    free(part);
    free(a);
    free(b);
    return kk ? (double)common / (double)kk : 1.0;
}

void ref_attend_ex(const double *q, const double *k, size_t k_stride, size_t d, const double *v,
                   size_t v_stride, size_t dv, const uint32_t *idx, const double *bias, size_t n,
                   double scale, double softcap, int has_sink, double sink, double *out,
                   double *lse)
{
    for (size_t c = 0; c < dv; c++)
        out[c] = 0.0;
    double *logit = malloc((n ? n : 1) * sizeof(double));
    if (!logit)
        abort();
    double m = has_sink ? sink : -INFINITY;
    for (size_t r = 0; r < n; r++) {
        const double *kr = k + (size_t)idx[r] * k_stride;
        double s = 0.0;
        for (size_t c = 0; c < d; c++)
            s += q[c] * kr[c];
        s *= scale;
        if (softcap > 0.0)
            s = softcap * tanh(s / softcap);
        logit[r] = s + (bias ? bias[r] : 0.0);
        if (logit[r] > m)
            m = logit[r];
    }
    if (m == -INFINITY) {
        *lse = -INFINITY;
        free(logit);
        return;
    }
    double z = has_sink ? exp(sink - m) : 0.0;
    for (size_t r = 0; r < n; r++) {
        double p = exp(logit[r] - m);
        const double *vr = v + (size_t)idx[r] * v_stride;
        z += p;
        for (size_t c = 0; c < dv; c++)
            out[c] += p * vr[c];
    }
    for (size_t c = 0; c < dv; c++)
        out[c] /= z;
    *lse = m + log(z);
    free(logit);
}
