/*
 * calibrate.c - the contextual-agreement accumulator (fasa-method.md §2).
 *
 * For one decode step, query head h and FC f, CA_K = |TopK'(s) & TopK'(s^f)|
 * / K' with K' = min(K, t). Rankings use a total order (larger logit first,
 * lower token index first on ties), so results are deterministic and
 * independent of the platform and the thread count.
 *
 * Cost: the full ranking is needed once per head (its first M = min(max K,
 * t) positions, sorted, so TopK'(s) is "rank < K'" for every K). For each FC
 * only top-sets are needed, never an order: a quickselect of the M best,
 * then nested quickselects inside that prefix for each smaller K. That is
 * O(t + sum of K) per FC instead of a sort, and the FCs of a head run in
 * parallel (OpenMP, ctx threads), each worker with its own scratch.
 *
 * Logits are double sums of the view's values (f32, f16 and bf16 convert
 * exactly to float, kept as float to halve the key scratch); the full logit
 * is the sum of the FC logits in FC order.
 */
#include "internal.h"

#include <stdlib.h>
#if defined(FASA_OPENMP)
#include <omp.h>
#endif

typedef struct {
    double s;
    uint32_t j;
} ranked;

/* Per-thread scratch for the FC tasks of one head. */
typedef struct {
    ranked *items; /* [t] */
} worker;

struct fasa_calibrator {
    fasa_model_shape shape;
    size_t n_fc;                          /* head_dim / 2 */
    size_t n_k;
    uint32_t k_values[FASA_MAX_K_VALUES]; /* strictly ascending */
    double *sums;                         /* [n_layers][n_k][n_q_heads][n_fc] */
    uint64_t *steps;                      /* [n_layers] */
    double *ca;                           /* [n_q_heads][n_k][n_fc] this step's values */
    double *qd;                           /* [head_dim] */
    /* scratch, grown to the largest t and thread count seen and reused */
    size_t cap_t;
    size_t n_workers;
    float *kd;           /* [head_dim][t] keys of one KV head, dim-major so an
                            FC reads two contiguous rows */
    double *full;        /* [t] full logits of one head */
    uint32_t *rank_full; /* [t] position in the full ranking, UINT32_MAX if >= M */
    ranked *full_top;    /* [t] full ranking, first M positions sorted */
    worker *workers;     /* [n_workers] */
};

static const uint32_t default_k[] = {64, 128, 256, 512, 1024};

static void free_scratch(fasa_calibrator *cal)
{
    free(cal->kd);
    free(cal->full);
    free(cal->rank_full);
    free(cal->full_top);
    for (size_t i = 0; i < cal->n_workers && cal->workers; i++)
        free(cal->workers[i].items);
    free(cal->workers);
    cal->kd = NULL;
    cal->full = NULL;
    cal->rank_full = NULL;
    cal->full_top = NULL;
    cal->workers = NULL;
    cal->cap_t = 0;
    cal->n_workers = 0;
}

void fasa_calibrator_destroy(fasa_calibrator *cal)
{
    if (!cal)
        return;
    free_scratch(cal);
    free(cal->sums);
    free(cal->steps);
    free(cal->ca);
    free(cal->qd);
    free(cal);
}

fasa_status fasa_calibrator_create(const fasa_calib_config *config, fasa_calibrator **out)
{
    if (!config || !out)
        return FASA_ERR_NULL_POINTER;
    fasa_status st0 = fasa__struct_ok(NULL, config, config->struct_size, sizeof *config,
                                      "calib config");
    if (st0 != FASA_OK)
        return st0;
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


/* Grow the scratch to t tokens and nw workers (all-or-nothing: on failure
 * the old scratch is gone but the accumulator is intact). */
static fasa_status reserve(fasa_calibrator *cal, size_t t, size_t nw)
{
    if (t <= cal->cap_t && nw <= cal->n_workers)
        return FASA_OK;
    if (t < cal->cap_t)
        t = cal->cap_t;
    if (nw < cal->n_workers)
        nw = cal->n_workers;
    free_scratch(cal);
    size_t kd_n, items_n;
    if (!fasa__mul_ok(t, cal->shape.head_dim, &kd_n) ||
        !fasa__mul_ok(kd_n, sizeof(float), &kd_n) ||
        !fasa__mul_ok(t, sizeof(ranked), &items_n))
        return FASA_ERR_OVERFLOW;
    cal->kd = malloc(kd_n);
    cal->full = malloc(t * sizeof(double));
    cal->rank_full = malloc(t * sizeof(uint32_t));
    cal->full_top = malloc(items_n);
    cal->workers = calloc(nw, sizeof(worker));
    int ok = cal->kd && cal->full && cal->rank_full && cal->full_top && cal->workers;
    if (cal->workers) {
        cal->n_workers = nw;
        for (size_t i = 0; i < nw; i++)
            ok &= (cal->workers[i].items = malloc(items_n)) != NULL;
    }
    if (!ok) {
        free_scratch(cal);
        return FASA_ERR_OUT_OF_MEMORY;
    }
    for (size_t j = 0; j < t; j++)
        cal->rank_full[j] = UINT32_MAX;
    cal->cap_t = t;
    return FASA_OK;
}

/* ------------------------------------------------------ top-m sets */

/* a ranks before b: larger logit, then lower token index. */
static inline int before(const ranked *a, const ranked *b)
{
    return a->s > b->s || (a->s == b->s && a->j < b->j);
}

static inline void swap_ranked(ranked *a, ranked *b)
{
    ranked t = *a;
    *a = *b;
    *b = t;
}

/* Heap on a[0..n) whose root is the last-ranked item. */
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
        swap_ranked(&h[i], &h[w]);
        i = w;
    }
}

/* Guaranteed O(n log m) fallback of select_best. */
static void heap_select(ranked *a, size_t n, size_t m)
{
    for (size_t i = m / 2; i-- > 0;)
        sift_down(a, m, i);
    for (size_t i = m; i < n; i++)
        if (before(&a[i], &a[0])) {
            swap_ranked(&a[i], &a[0]);
            sift_down(a, m, 0);
        }
}

/* Reorder a[0..n) so that a[0..m) are its m best items (in any order),
 * 0 < m <= n. Quickselect with median-of-three pivots; the order is total
 * (no equal keys), and a depth limit falls back to heap_select so that
 * adversarial input cannot make it quadratic. */
static void select_best(ranked *a, size_t n, size_t m)
{
    size_t lo = 0, hi = n; /* a[0..lo) beat everything after; a[hi..n) lose to all before */
    int depth = 8;
    for (size_t x = n; x > 1; x >>= 1)
        depth += 2;
    while (lo < m && m < hi) {
        if (depth-- == 0) {
            heap_select(a + lo, hi - lo, m - lo);
            return;
        }
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (before(&a[mid], &a[lo]))
            swap_ranked(&a[mid], &a[lo]);
        if (before(&a[last], &a[lo]))
            swap_ranked(&a[last], &a[lo]);
        if (before(&a[last], &a[mid]))
            swap_ranked(&a[last], &a[mid]);
        swap_ranked(&a[mid], &a[last]); /* median as pivot at the end */
        ranked pivot = a[last];
        size_t store = lo;
        for (size_t i = lo; i < last; i++)
            if (before(&a[i], &pivot))
                swap_ranked(&a[i], &a[store++]);
        swap_ranked(&a[store], &a[last]);
        if (store == m || store + 1 == m)
            return;
        if (m < store)
            hi = store;
        else
            lo = store + 1;
    }
}

static int cmp_ranked(const void *x, const void *y)
{
    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
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
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "k is %zu x %zu x %zu, calibration needs t x %zu x %zu", k->n_tokens,
                          k->n_heads, k->head_dim, s->n_kv_heads, s->head_dim);
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

/* CA of FC f of the current head at every K into ca[n_k][n_fc]. */
static void fc_agreement(const fasa_calibrator *cal, size_t t, const double *qd, size_t f,
                         ranked *items, double *ca)
{
    const fasa_model_shape *s = &cal->shape;
    uint32_t d0, d1;
    fasa__fc_dims(s->pair_layout, s->head_dim, f, &d0, &d1);
    const float *k0 = cal->kd + (size_t)d0 * t, *k1 = cal->kd + (size_t)d1 * t;
    double q0 = qd[d0], q1 = qd[d1];
    for (size_t j = 0; j < t; j++) {
        items[j].s = q0 * (double)k0[j] + q1 * (double)k1[j];
        items[j].j = (uint32_t)j;
    }
    /* TopK'(s^f) for K' descending: each one a prefix-select of the last */
    size_t have = t;
    for (size_t i = cal->n_k; i-- > 0;) {
        size_t kp = cal->k_values[i] < t ? cal->k_values[i] : t;
        if (kp < have) {
            select_best(items, have, kp);
            have = kp;
        }
        size_t inter = 0;
        for (size_t p = 0; p < kp; p++)
            inter += cal->rank_full[items[p].j] < kp;
        ca[i * cal->n_fc + f] = (double)inter / (double)kp;
    }
}

/* Every FC of query head h against the keys in cal->kd. */
static void head_agreement(fasa_calibrator *cal, size_t t, size_t nw, const double *qd,
                           double *ca)
{
    const fasa_model_shape *s = &cal->shape;
    size_t nfc = cal->n_fc, kmax = cal->k_values[cal->n_k - 1];
    size_t m = t < kmax ? t : kmax;
    for (size_t j = 0; j < t; j++)
        cal->full[j] = 0.0;
    for (size_t f = 0; f < nfc; f++) {
        uint32_t d0, d1;
        fasa__fc_dims(s->pair_layout, s->head_dim, f, &d0, &d1);
        const float *k0 = cal->kd + (size_t)d0 * t, *k1 = cal->kd + (size_t)d1 * t;
        double q0 = qd[d0], q1 = qd[d1];
        for (size_t j = 0; j < t; j++)
            cal->full[j] += q0 * (double)k0[j] + q1 * (double)k1[j];
    }
    ranked *top = cal->full_top;
    for (size_t j = 0; j < t; j++) {
        top[j].s = cal->full[j];
        top[j].j = (uint32_t)j;
    }
    select_best(top, t, m);
    qsort(top, m, sizeof(ranked), cmp_ranked);
    for (size_t p = 0; p < m; p++)
        cal->rank_full[top[p].j] = (uint32_t)p;
#if defined(FASA_OPENMP)
#pragma omp parallel for num_threads((int)nw) schedule(dynamic, 1) if (nw > 1)
#endif
    for (size_t f = 0; f < nfc; f++) {
        size_t w = 0;
#if defined(FASA_OPENMP)
        w = (size_t)omp_get_thread_num();
#endif
        fc_agreement(cal, t, qd, f, cal->workers[w].items, ca);
    }
    (void)nw;
    /* rank_full must be all UINT32_MAX between heads; reset what was set */
    for (size_t p = 0; p < m; p++)
        cal->rank_full[top[p].j] = UINT32_MAX;
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
    size_t nw = (size_t)fasa__threads(ctx);
    if (nw > cal->n_fc)
        nw = cal->n_fc;
    st = reserve(cal, t, nw);
    if (st != FASA_OK)
        return fasa__fail(ctx, st, "calibration scratch for %zu tokens", t);
    const fasa_model_shape *s = &cal->shape;
    size_t d = s->head_dim, nfc = cal->n_fc, Hq = s->n_q_heads, Hkv = s->n_kv_heads;
    size_t G = Hq / Hkv, n_k = cal->n_k;
    for (size_t g = 0; g < Hkv; g++) {
        for (size_t j = 0; j < t; j++) {
            const void *row = fasa__row(k, j, g);
            for (size_t i = 0; i < d; i++)
                cal->kd[i * t + j] = fasa__load(row, k->dtype, i);
        }
        for (size_t h = g * G; h < (g + 1) * G; h++) {
            const void *qrow = fasa__row(q, 0, h);
            for (size_t i = 0; i < d; i++)
                cal->qd[i] = fasa__load(qrow, q->dtype, i);
            head_agreement(cal, t, nw, cal->qd, cal->ca + h * n_k * nfc);
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
