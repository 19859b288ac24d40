/*
 * calibrate.c - the contextual-agreement accumulator (fasa-method.md §2).
 *
 * For one decode step, query head h and FC f, CA_K = |TopK'(s) & TopK'(s^f)|
 * / K' with K' = min(K, t). All K values come from one ranking per logit
 * vector: a token at position p of the FC ranking and position r of the full
 * ranking is in both top sets exactly when K' > max(p, r), so a histogram of
 * max(p, r) and its prefix sums give every K at once. Only the first
 * M = min(max K, t) positions of each ranking matter, found with a bounded
 * heap in O(t log M).
 *
 * Rankings use a total order (larger logit first, lower token index first
 * on ties), so results are deterministic and independent of the platform.
 * Logits are exact-order double sums of the view's values converted to
 * double; the full logit is the sum of the FC logits in FC order.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct {
    double s;
    uint32_t j;
} ranked;

struct fasa_calibrator {
    fasa_model_shape shape;
    size_t n_fc;                          /* head_dim / 2 */
    size_t n_k;
    uint32_t k_values[FASA_MAX_K_VALUES]; /* strictly ascending */
    double *sums;                         /* [n_layers][n_k][n_q_heads][n_fc] */
    uint64_t *steps;                      /* [n_layers] */
    /* scratch, grown to the largest t seen and reused */
    size_t cap_t;
    double *kd;           /* [t][head_dim] keys of one KV head in double */
    double *fc_logits;    /* [n_fc][t] */
    double *full;         /* [t] */
    uint32_t *rank_full;  /* [t] position in the full ranking, UINT32_MAX if >= M */
    uint32_t *full_top;   /* [M] tokens of the full ranking's first M positions */
    ranked *heap;         /* [M] */
    uint64_t *hist;       /* [M] */
    double *ca;           /* [n_q_heads][n_k][n_fc] this step's values */
    double *qd;           /* [head_dim] */
};

static const uint32_t default_k[] = {64, 128, 256, 512, 1024};

void fasa_calibrator_destroy(fasa_calibrator *cal)
{
    if (!cal)
        return;
    free(cal->sums);
    free(cal->steps);
    free(cal->kd);
    free(cal->fc_logits);
    free(cal->full);
    free(cal->rank_full);
    free(cal->full_top);
    free(cal->heap);
    free(cal->hist);
    free(cal->ca);
    free(cal->qd);
    free(cal);
}

fasa_status fasa_calibrator_create(const fasa_calib_config *config, fasa_calibrator **out)
{
    if (!config || !out)
        return FASA_ERR_NULL_POINTER;
    if (config->struct_size != sizeof(fasa_calib_config))
        return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT, "calib config: struct_size %zu != %zu",
                          config->struct_size, sizeof(fasa_calib_config));
    fasa_status st = fasa__shape_check(NULL, &config->shape);
    if (st != FASA_OK)
        return st;
    size_t n_k = config->n_k;
    const uint32_t *k = config->k_values;
    if (n_k == 0) {
        n_k = sizeof default_k / sizeof default_k[0];
        k = default_k;
    }
    if (n_k > FASA_MAX_K_VALUES)
        return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT, "calib config: n_k %zu > %d", n_k,
                          FASA_MAX_K_VALUES);
    for (size_t i = 0; i < n_k; i++)
        if (k[i] < 1 || (i > 0 && k[i] <= k[i - 1]))
            return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT,
                              "calib config: K values must be >= 1 and strictly ascending");
    fasa_calibrator *cal = calloc(1, sizeof *cal);
    if (!cal)
        return FASA_ERR_OUT_OF_MEMORY;
    const fasa_model_shape *s = &config->shape;
    cal->shape = *s;
    cal->n_fc = s->head_dim / 2;
    cal->n_k = n_k;
    memcpy(cal->k_values, k, n_k * sizeof(uint32_t));
    /* fasa__shape_check bounded these products for FASA_MAX_K_VALUES doubles */
    cal->sums = calloc(s->n_layers * n_k * s->n_q_heads * cal->n_fc, sizeof(double));
    cal->steps = calloc(s->n_layers, sizeof(uint64_t));
    cal->ca = calloc(s->n_q_heads * n_k * cal->n_fc, sizeof(double));
    cal->qd = calloc(s->head_dim, sizeof(double));
    if (!cal->sums || !cal->steps || !cal->ca || !cal->qd) {
        fasa_calibrator_destroy(cal);
        return FASA_ERR_OUT_OF_MEMORY;
    }
    *out = cal;
    return FASA_OK;
}

/* Grow the per-token scratch to t tokens (all-or-nothing). */
static fasa_status reserve(fasa_calibrator *cal, size_t t)
{
    if (t <= cal->cap_t)
        return FASA_OK;
    size_t d = cal->shape.head_dim, m = t, kd_n, fl_n;
    if (m > cal->k_values[cal->n_k - 1])
        m = cal->k_values[cal->n_k - 1];
    if (!fasa__mul_ok(t, d, &kd_n) || !fasa__mul_ok(kd_n, sizeof(double), &kd_n) ||
        !fasa__mul_ok(t, cal->n_fc, &fl_n) || !fasa__mul_ok(fl_n, sizeof(double), &fl_n))
        return FASA_ERR_OVERFLOW;
    double *kd = malloc(kd_n), *fl = malloc(fl_n), *full = malloc(t * sizeof(double));
    uint32_t *rank = malloc(t * sizeof(uint32_t)), *top = malloc(m * sizeof(uint32_t));
    ranked *heap = malloc(m * sizeof(ranked));
    uint64_t *hist = malloc(m * sizeof(uint64_t));
    if (!kd || !fl || !full || !rank || !top || !heap || !hist) {
        free(kd);
        free(fl);
        free(full);
        free(rank);
        free(top);
        free(heap);
        free(hist);
        return FASA_ERR_OUT_OF_MEMORY;
    }
    for (size_t j = 0; j < t; j++)
        rank[j] = UINT32_MAX;
    free(cal->kd);
    free(cal->fc_logits);
    free(cal->full);
    free(cal->rank_full);
    free(cal->full_top);
    free(cal->heap);
    free(cal->hist);
    cal->kd = kd;
    cal->fc_logits = fl;
    cal->full = full;
    cal->rank_full = rank;
    cal->full_top = top;
    cal->heap = heap;
    cal->hist = hist;
    cal->cap_t = t;
    return FASA_OK;
}

/* ---------------------------------------------------- bounded top-M */

/* a ranks before b: larger logit, then lower token index. */
static inline int before(const ranked *a, const ranked *b)
{
    return a->s > b->s || (a->s == b->s && a->j < b->j);
}

/* Heap whose root is the LAST-ranked kept item. */
static void sift_down(ranked *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(&h[w], &h[l]))
            w = l;
        if (r < n && before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        ranked tmp = h[i];
        h[i] = h[w];
        h[w] = tmp;
        i = w;
    }
}

/* The first m (<= t) tokens of the ranking of s[0..t), best first, into
 * heap[0..m) (used as the heap during selection). */
static void top_m(const double *s, size_t t, size_t m, ranked *heap)
{
    size_t n = 0;
    for (size_t j = 0; j < t; j++) {
        ranked x = {s[j], (uint32_t)j};
        if (n < m) {
            /* sift up */
            size_t i = n++;
            heap[i] = x;
            while (i > 0 && before(&heap[(i - 1) / 2], &heap[i])) {
                ranked tmp = heap[i];
                heap[i] = heap[(i - 1) / 2];
                heap[(i - 1) / 2] = tmp;
                i = (i - 1) / 2;
            }
        } else if (before(&x, &heap[0])) {
            heap[0] = x;
            sift_down(heap, m, 0);
        }
    }
    /* heap sort: repeatedly move the last-ranked item to the end */
    for (size_t end = m; end > 1; end--) {
        ranked tmp = heap[0];
        heap[0] = heap[end - 1];
        heap[end - 1] = tmp;
        sift_down(heap, end - 1, 0);
    }
}

/* ------------------------------------------------------------ steps */

static int row_finite(const void *row, int32_t dtype, size_t d)
{
    for (size_t i = 0; i < d; i++)
        if (!isfinite(fasa__load(row, dtype, i)))
            return 0;
    return 1;
}

static fasa_status check_step(fasa_calibrator *cal, fasa_ctx *ctx, size_t layer,
                              const fasa_view *q, const fasa_view *k)
{
    const fasa_model_shape *s = &cal->shape;
    if (layer >= s->n_layers)
        return fasa__fail(ctx, FASA_ERR_BAD_INDEX, "layer %zu >= n_layers %zu", layer,
                          s->n_layers);
    fasa_status st = fasa__check_view(ctx, q, "q");
    if (st == FASA_OK)
        st = fasa__check_view(ctx, k, "k");
    if (st != FASA_OK)
        return st;
    if (q->n_tokens != 1 || q->n_heads != s->n_q_heads || q->head_dim != s->head_dim)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "q is %zu x %zu x %zu, calibration needs 1 x %zu x %zu", q->n_tokens,
                          q->n_heads, q->head_dim, s->n_q_heads, s->head_dim);
    if (k->n_heads != s->n_kv_heads || k->head_dim != s->head_dim)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "k is %zu x %zu x %zu, calibration needs t x %zu x %zu",
                          k->n_tokens, k->n_heads, k->head_dim, s->n_kv_heads, s->head_dim);
    if (k->n_tokens > UINT32_MAX)
        return fasa__fail(ctx, FASA_ERR_OVERFLOW, "k: %zu tokens exceed the uint32 index range",
                          k->n_tokens);
    /* Scan everything first: a rejected step must leave the sums untouched. */
    for (size_t h = 0; h < s->n_q_heads; h++)
        if (!row_finite(fasa__row(q, 0, h), q->dtype, s->head_dim))
            return fasa__fail(ctx, FASA_ERR_NONFINITE, "q: head %zu is not finite", h);
    for (size_t j = 0; j < k->n_tokens; j++)
        for (size_t g = 0; g < s->n_kv_heads; g++)
            if (!row_finite(fasa__row(k, j, g), k->dtype, s->head_dim))
                return fasa__fail(ctx, FASA_ERR_NONFINITE, "k: token %zu head %zu is not finite",
                                  j, g);
    return FASA_OK;
}

/* CA of every FC of one query head at every K into ca[n_k][n_fc]. */
static void head_agreement(fasa_calibrator *cal, size_t t, double *ca)
{
    size_t nfc = cal->n_fc, kmax = cal->k_values[cal->n_k - 1];
    size_t m = t < kmax ? t : kmax;
    top_m(cal->full, t, m, cal->heap);
    for (size_t p = 0; p < m; p++) {
        cal->full_top[p] = cal->heap[p].j;
        cal->rank_full[cal->heap[p].j] = (uint32_t)p;
    }
    for (size_t f = 0; f < nfc; f++) {
        const double *sf = cal->fc_logits + f * t;
        memset(cal->hist, 0, m * sizeof(uint64_t));
        top_m(sf, t, m, cal->heap);
        for (size_t p = 0; p < m; p++) {
            uint32_t r = cal->rank_full[cal->heap[p].j];
            if (r != UINT32_MAX)
                cal->hist[p > r ? p : r]++;
        }
        uint64_t inter = 0;
        size_t upto = 0;
        for (size_t i = 0; i < cal->n_k; i++) {
            size_t kp = cal->k_values[i] < t ? cal->k_values[i] : t;
            for (; upto < kp; upto++)
                inter += cal->hist[upto];
            ca[i * nfc + f] = (double)inter / (double)kp;
        }
    }
    /* rank_full must be all UINT32_MAX between heads; reset only what was set */
    for (size_t p = 0; p < m; p++)
        cal->rank_full[cal->full_top[p]] = UINT32_MAX;
}

fasa_status fasa_calibrator_add_step(fasa_calibrator *cal, fasa_ctx *ctx, size_t layer,
                                     const fasa_view *q, const fasa_view *k)
{
    fasa__clear_error(ctx);
    if (!cal || !q || !k)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "calibrator, q and k must not be NULL");
    fasa_status st = check_step(cal, ctx, layer, q, k);
    if (st != FASA_OK)
        return st;
    size_t t = k->n_tokens;
    st = reserve(cal, t);
    if (st != FASA_OK)
        return fasa__fail(ctx, st, "calibration scratch for %zu tokens", t);
    const fasa_model_shape *s = &cal->shape;
    size_t d = s->head_dim, nfc = cal->n_fc, Hq = s->n_q_heads, Hkv = s->n_kv_heads;
    size_t G = Hq / Hkv, n_k = cal->n_k;
    for (size_t g = 0; g < Hkv; g++) {
        for (size_t j = 0; j < t; j++) {
            const void *row = fasa__row(k, j, g);
            for (size_t i = 0; i < d; i++)
                cal->kd[j * d + i] = fasa__load(row, k->dtype, i);
        }
        for (size_t h = g * G; h < (g + 1) * G; h++) {
            const void *qrow = fasa__row(q, 0, h);
            for (size_t i = 0; i < d; i++)
                cal->qd[i] = fasa__load(qrow, q->dtype, i);
            for (size_t j = 0; j < t; j++)
                cal->full[j] = 0.0;
            for (size_t f = 0; f < nfc; f++) {
                uint32_t d0, d1;
                fasa__fc_dims(s->pair_layout, d, f, &d0, &d1);
                double q0 = cal->qd[d0], q1 = cal->qd[d1];
                double *out = cal->fc_logits + f * t;
                for (size_t j = 0; j < t; j++) {
                    const double *kr = cal->kd + j * d;
                    out[j] = q0 * kr[d0] + q1 * kr[d1];
                    cal->full[j] += out[j];
                }
            }
            head_agreement(cal, t, cal->ca + h * n_k * nfc);
        }
    }
    for (size_t h = 0; h < Hq; h++)
        for (size_t i = 0; i < n_k; i++) {
            double *sum = cal->sums + ((layer * n_k + i) * Hq + h) * nfc;
            const double *ca = cal->ca + (h * n_k + i) * nfc;
            for (size_t f = 0; f < nfc; f++)
                sum[f] += ca[f];
        }
    cal->steps[layer]++;
    return FASA_OK;
}

/* ------------------------------------------------------------ finish */

fasa_status fasa_calibrator_finish(const fasa_calibrator *cal, const fasa_select_options *options,
                                   fasa_profile **out)
{
    if (!cal || !out)
        return FASA_ERR_NULL_POINTER;
    const fasa_model_shape *s = &cal->shape;
    for (size_t l = 0; l < s->n_layers; l++)
        if (cal->steps[l] == 0)
            return fasa__fail(NULL, FASA_ERR_BAD_STATE, "calibration: layer %zu has no steps", l);
    fasa_profile *p;
    fasa_status st = fasa__profile_alloc(NULL, s, cal->n_k, 1, 1, &p);
    if (st != FASA_OK)
        return st;
    memcpy(p->k_values, cal->k_values, cal->n_k * sizeof(uint32_t));
    memcpy(p->layer_steps, cal->steps, s->n_layers * sizeof(uint64_t));
    size_t per_layer = cal->n_k * s->n_q_heads * cal->n_fc;
    for (size_t l = 0; l < s->n_layers; l++)
        for (size_t i = 0; i < per_layer; i++) {
            double mean = cal->sums[l * per_layer + i] / (double)cal->steps[l];
            p->agreement[l * per_layer + i] = (float)(mean > 1.0 ? 1.0 : mean);
        }
    st = fasa_profile_select(p, options);
    if (st != FASA_OK) {
        fasa_profile_destroy(p);
        return st;
    }
    *out = p;
    return FASA_OK;
}

fasa_status fasa_calibrate(const fasa_calib_config *config, const fasa_calib_step *steps,
                           size_t n_steps, const fasa_select_options *options, fasa_profile **out)
{
    if (!config || !out || (!steps && n_steps > 0))
        return FASA_ERR_NULL_POINTER;
    fasa_calibrator *cal;
    fasa_status st = fasa_calibrator_create(config, &cal);
    if (st != FASA_OK)
        return st;
    for (size_t i = 0; i < n_steps && st == FASA_OK; i++)
        st = fasa_calibrator_add_step(cal, NULL, steps[i].layer, steps[i].q, steps[i].k);
    if (st == FASA_OK)
        st = fasa_calibrator_finish(cal, options, out);
    fasa_calibrator_destroy(cal);
    return st;
}
