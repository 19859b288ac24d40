/*
 * attend.c - FAC: exact softmax attention over selected tokens
 * (fasa_attend) and over all visible tokens (fasa_attend_dense).
 *
 * Both validate into an attend_plan, then attend_run() walks the
 * (query, KV head) work items; each item runs kernels->attn jobs on
 * pre-scaled f32 copies of the group's query rows and finalizes
 * out = acc / l, lse = m + log(l).
 */
#include "internal.h"

typedef struct attend_plan {
    int dense;          /* 1: ranges [0, t_i); 0: index lists            */
    int mode;           /* fasa_gqa_mode (sparse only)                   */
    size_t n_q, n_q_heads, n_kv_heads, group, head_dim, head_dim_v, t;
    size_t n_sets;      /* sets per query (sparse only)                  */
    const uint32_t *indices;
    size_t index_stride;
    const uint32_t *counts;
    float scale;
    size_t workers;
} attend_plan;

/* Per-worker scratch, every array 64-byte aligned. */
typedef struct attend_scratch {
    float *q;   /* [G][head_dim]  pre-scaled query rows */
    float *m;   /* [G]                                  */
    float *l;   /* [G]                                  */
    float *acc; /* [G][head_dim_v]                      */
} attend_scratch;

/* ------------------------------------------------------------ workspace */

/* Scratch slots of a call with ctx: the one place threading enlarges the
 * attention workspace (shared by fasa_attend and fasa_attend_dense). */
static size_t attend_workers(const fasa_ctx *ctx) { return (size_t)fasa__threads(ctx); }

static size_t bytes64(size_t n_floats) { return fasa__align_up(n_floats * sizeof(float), 64); }

/* One worker's scratch bytes, or 0 on overflow. */
static size_t attend_worker_bytes(size_t group, size_t d, size_t dv)
{
    size_t gd, gdv;
    if (!fasa__mul_ok(group, d, &gd) || !fasa__mul_ok(group, dv, &gdv) ||
        gd > SIZE_MAX / 8 || gdv > SIZE_MAX / 8 || group > SIZE_MAX / 8)
        return 0;
    return bytes64(gd) + 2 * bytes64(group) + bytes64(gdv);
}

/* Total workspace bytes including the slack that aligns the pointer. */
static fasa_status attend_workspace_bytes(fasa_ctx *ctx, size_t group, size_t d, size_t dv,
                                          size_t workers, size_t *bytes)
{
    size_t per = attend_worker_bytes(group, d, dv), all;
    if (per == 0 || !fasa__mul_ok(per, workers, &all) || !fasa__add_ok(all, 64, &all))
        return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                          "attention workspace for G %zu, head_dim %zu/%zu, %zu threads "
                          "overflows size_t",
                          group, d, dv, workers);
    *bytes = all;
    return FASA_OK;
}

static void attend_carve(const attend_plan *p, void *workspace, size_t worker, attend_scratch *sc)
{
    char *base = (char *)fasa__align_up((uintptr_t)workspace, 64);
    base += worker * attend_worker_bytes(p->group, p->head_dim, p->head_dim_v);
    sc->q = (float *)(void *)base;
    base += bytes64(p->group * p->head_dim);
    sc->m = (float *)(void *)base;
    base += bytes64(p->group);
    sc->l = (float *)(void *)base;
    base += bytes64(p->group);
    sc->acc = (float *)(void *)base;
}

/* Shape-only checks of the *_workspace_size calls (data may be NULL). */
static fasa_status shapes_for_size(const fasa_view *q, const fasa_view *k, const fasa_view *v,
                                   size_t *bytes)
{
    if (q == NULL || k == NULL || v == NULL || bytes == NULL)
        return FASA_ERR_NULL_POINTER;
    if (q->n_heads == 0 || q->head_dim == 0 || k->n_heads == 0 || v->head_dim == 0)
        return FASA_ERR_ZERO_SIZE;
    if (q->n_heads % k->n_heads != 0 || k->head_dim != q->head_dim ||
        v->n_heads != k->n_heads)
        return FASA_ERR_BAD_SHAPE;
    return FASA_OK;
}

FASA_API fasa_status fasa_attend_workspace_size(const fasa_ctx *ctx, const fasa_view *q,
                                                const fasa_view *k, const fasa_view *v,
                                                fasa_gqa_mode mode, size_t index_stride,
                                                size_t *bytes)
{
    (void)index_stride; /* the sets are read in place */
    fasa_status st = shapes_for_size(q, k, v, bytes);
    if (st != FASA_OK)
        return st;
    if (mode != FASA_GQA_PER_HEAD && mode != FASA_GQA_GROUP_SHARED)
        return FASA_ERR_INVALID_ARGUMENT;
    return attend_workspace_bytes(NULL, q->n_heads / k->n_heads, q->head_dim, v->head_dim,
                                  attend_workers(ctx), bytes);
}

FASA_API fasa_status fasa_attend_dense_workspace_size(const fasa_ctx *ctx, const fasa_view *q,
                                                      const fasa_view *k, const fasa_view *v,
                                                      size_t *bytes)
{
    fasa_status st = shapes_for_size(q, k, v, bytes);
    if (st != FASA_OK)
        return st;
    return attend_workspace_bytes(NULL, q->n_heads / k->n_heads, q->head_dim, v->head_dim,
                                  attend_workers(ctx), bytes);
}

/* ----------------------------------------------------------- validation */

/* Checks shared by both calls: views, shapes, scale, the overlaps of out and
 * lse with the inputs and each other, and the workspace size. */
static fasa_status check_common(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                const fasa_view *v, float scale, const fasa_view *out,
                                const float *lse, const void *workspace, size_t workspace_size,
                                attend_plan *p)
{
    fasa_status st;
    if ((st = fasa__check_view(ctx, q, "q")) != FASA_OK ||
        (st = fasa__check_view(ctx, k, "k")) != FASA_OK ||
        (st = fasa__check_view(ctx, v, "v")) != FASA_OK ||
        (st = fasa__check_view(ctx, out, "out")) != FASA_OK ||
        (st = fasa__check_qkv(ctx, q, k, v)) != FASA_OK)
        return st;
    if (out->n_tokens != q->n_tokens || out->n_heads != q->n_heads ||
        out->head_dim != v->head_dim)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "out: shape [%zu][%zu][%zu] != [n_q %zu][Hq %zu][head_dim_v %zu]",
                          out->n_tokens, out->n_heads, out->head_dim, q->n_tokens, q->n_heads,
                          v->head_dim);
    if (!isfinite(scale))
        return fasa__fail(ctx, FASA_ERR_NONFINITE, "scale %g is not finite", (double)scale);

    memset(p, 0, sizeof *p);
    p->n_q = q->n_tokens;
    p->n_q_heads = q->n_heads;
    p->n_kv_heads = k->n_heads;
    p->group = q->n_heads / k->n_heads;
    p->head_dim = q->head_dim;
    p->head_dim_v = v->head_dim;
    p->t = k->n_tokens;
    p->scale = scale != 0.0f ? scale : 1.0f / sqrtf((float)q->head_dim);
    p->workers = attend_workers(ctx);

    size_t lse_bytes = p->n_q * p->n_q_heads * sizeof(float); /* <= out's extent */
    const fasa_view *inputs[3] = {q, k, v};
    static const char *const names[3] = {"q", "k", "v"};
    for (int a = 0; a < 3; a++) {
        const char *b0, *b1;
        fasa__view_span(inputs[a], &b0, &b1);
        if (fasa__views_overlap(out, inputs[a]))
            return fasa__fail(ctx, FASA_ERR_ALIASING, "out overlaps %s", names[a]);
        if (fasa__span_overlap(lse, lse_bytes, b0, (size_t)(b1 - b0)))
            return fasa__fail(ctx, FASA_ERR_ALIASING, "lse overlaps %s", names[a]);
        if (fasa__span_overlap(workspace, workspace_size, b0, (size_t)(b1 - b0)))
            return fasa__fail(ctx, FASA_ERR_ALIASING, "workspace overlaps %s", names[a]);
    }
    const char *o0, *o1;
    fasa__view_span(out, &o0, &o1);
    if (fasa__span_overlap(lse, lse_bytes, o0, (size_t)(o1 - o0)))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "out overlaps lse");
    if (fasa__span_overlap(workspace, workspace_size, o0, (size_t)(o1 - o0)))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "out overlaps workspace");
    if (fasa__span_overlap(workspace, workspace_size, lse, lse_bytes))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "lse overlaps workspace");

    size_t need;
    if ((st = attend_workspace_bytes(ctx, p->group, p->head_dim, p->head_dim_v, p->workers,
                                     &need)) != FASA_OK)
        return st;
    if (workspace_size < need)
        return fasa__fail(ctx, FASA_ERR_WORKSPACE_TOO_SMALL,
                          "workspace_size %zu < %zu (the *_workspace_size query)",
                          workspace_size, need);
    if (workspace == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "workspace is NULL (%zu bytes needed)",
                          need);
    return FASA_OK;
}

static size_t plan_t_i(const attend_plan *p, size_t i) { return p->t - p->n_q + i + 1; }

/* Every set: count <= index_stride, indices strictly ascending and < t_i. */
static fasa_status check_sets(fasa_ctx *ctx, const attend_plan *p)
{
    for (size_t i = 0; i < p->n_q; i++) {
        size_t t_i = plan_t_i(p, i);
        for (size_t s = 0; s < p->n_sets; s++) {
            size_t set = i * p->n_sets + s;
            size_t n = p->counts[set];
            if (n > p->index_stride)
                return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                  "counts[%zu] = %zu > index_stride %zu (query %zu, set %zu)",
                                  set, n, p->index_stride, i, s);
            const uint32_t *idx = p->indices + set * p->index_stride;
            for (size_t j = 0; j < n; j++) {
                if (idx[j] >= t_i)
                    return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                      "query %zu set %zu: index %u at position %zu >= t_i %zu",
                                      i, s, (unsigned)idx[j], j, t_i);
                if (j > 0 && idx[j] <= idx[j - 1])
                    return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                      "query %zu set %zu: indices not strictly ascending at "
                                      "position %zu (%u after %u)",
                                      i, s, j, (unsigned)idx[j], (unsigned)idx[j - 1]);
            }
        }
    }
    return FASA_OK;
}

/* ------------------------------------------------------------ execution */

static void finalize_row(const attend_scratch *sc, size_t r, size_t count, size_t dv,
                         const fasa_view *out, size_t i, size_t h, float *lse, size_t n_q_heads)
{
    void *dst = (void *)(uintptr_t)fasa__row(out, i, h);
    const float *acc = sc->acc + r * dv;
    if (count == 0) {
        for (size_t c = 0; c < dv; c++)
            fasa__store(dst, out->dtype, c, 0.0f);
        if (lse != NULL)
            lse[i * n_q_heads + h] = -INFINITY;
        return;
    }
    float l = sc->l[r];
    for (size_t c = 0; c < dv; c++)
        fasa__store(dst, out->dtype, c, acc[c] / l);
    if (lse != NULL)
        lse[i * n_q_heads + h] = sc->m[r] + logf(l);
}

/* Work item (query i, KV head g): all G query heads of the group. */
static void attend_item(const attend_plan *p, const fasa__kernels *kern, const fasa_view *q,
                        const fasa_view *k, const fasa_view *v, const fasa_view *out,
                        float *lse, const attend_scratch *sc, size_t i, size_t g)
{
    const size_t G = p->group, d = p->head_dim, dv = p->head_dim_v;
    for (size_t r = 0; r < G; r++) {
        const void *row = fasa__row(q, i, g * G + r);
        for (size_t c = 0; c < d; c++)
            sc->q[r * d + c] = fasa__load(row, q->dtype, c) * p->scale;
        sc->m[r] = -INFINITY;
        sc->l[r] = 0.0f;
    }
    memset(sc->acc, 0, G * dv * sizeof(float));

    fasa__attn_job job;
    memset(&job, 0, sizeof job);
    job.q = sc->q;
    job.n_rows = G;
    job.q_stride = d;
    job.k = fasa__row(k, 0, g);
    job.k_stride = k->token_stride;
    job.k_dtype = k->dtype;
    job.v = fasa__row(v, 0, g);
    job.v_stride = v->token_stride;
    job.v_dtype = v->dtype;
    job.head_dim = d;
    job.head_dim_v = dv;
    job.m = sc->m;
    job.l = sc->l;
    job.acc = sc->acc;
    job.acc_stride = dv;

    if (p->dense) {
        size_t t_i = plan_t_i(p, i);
        job.first = 0;
        job.n = t_i;
        kern->attn(&job);
        for (size_t r = 0; r < G; r++)
            finalize_row(sc, r, t_i, dv, out, i, g * G + r, lse, p->n_q_heads);
    } else if (p->mode == FASA_GQA_GROUP_SHARED) {
        size_t set = i * p->n_sets + g;
        job.idx = p->indices + set * p->index_stride;
        job.n = p->counts[set];
        kern->attn(&job);
        for (size_t r = 0; r < G; r++)
            finalize_row(sc, r, job.n, dv, out, i, g * G + r, lse, p->n_q_heads);
    } else {
        job.n_rows = 1;
        for (size_t r = 0; r < G; r++) {
            size_t set = i * p->n_sets + g * G + r;
            job.q = sc->q + r * d;
            job.m = sc->m + r;
            job.l = sc->l + r;
            job.acc = sc->acc + r * dv;
            job.idx = p->indices + set * p->index_stride;
            job.n = p->counts[set];
            kern->attn(&job);
            finalize_row(sc, r, job.n, dv, out, i, g * G + r, lse, p->n_q_heads);
        }
    }
}

/* The execution loop over (query, KV head) work items. Single-threaded:
 * every item uses scratch slot 0. */
static void attend_run(const attend_plan *p, const fasa__kernels *kern, const fasa_view *q,
                       const fasa_view *k, const fasa_view *v, const fasa_view *out, float *lse,
                       void *workspace)
{
    attend_scratch sc;
    attend_carve(p, workspace, 0, &sc);
    for (size_t i = 0; i < p->n_q; i++)
        for (size_t g = 0; g < p->n_kv_heads; g++)
            attend_item(p, kern, q, k, v, out, lse, &sc, i, g);
}

/* --------------------------------------------------------- public calls */

FASA_API fasa_status fasa_attend(fasa_ctx *ctx, fasa_gqa_mode mode, const fasa_view *q,
                                 const fasa_view *k, const fasa_view *v, const uint32_t *indices,
                                 size_t index_stride, const uint32_t *counts, float scale,
                                 const fasa_view *out, float *lse, void *workspace,
                                 size_t workspace_size)
{
    fasa__clear_error(ctx);
    if (indices == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "indices is NULL");
    if (counts == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "counts is NULL");
    if (mode != FASA_GQA_PER_HEAD && mode != FASA_GQA_GROUP_SHARED)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "mode %d is not a fasa_gqa_mode",
                          (int)mode);
    attend_plan p;
    fasa_status st = check_common(ctx, q, k, v, scale, out, lse, workspace, workspace_size, &p);
    if (st != FASA_OK)
        return st;
    p.mode = (int)mode;
    p.n_sets = mode == FASA_GQA_PER_HEAD ? p.n_q_heads : p.n_kv_heads;
    p.indices = indices;
    p.index_stride = index_stride;
    p.counts = counts;

    size_t sets = p.n_q * p.n_sets, idx_bytes; /* sets <= out's extent */
    if (!fasa__mul_ok(sets, index_stride, &idx_bytes) ||
        !fasa__mul_ok(idx_bytes, sizeof(uint32_t), &idx_bytes))
        return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                          "%zu sets x index_stride %zu overflows size_t", sets, index_stride);
    size_t cnt_bytes = sets * sizeof(uint32_t);
    size_t lse_bytes = p.n_q * p.n_q_heads * sizeof(float);
    const char *o0, *o1;
    fasa__view_span(out, &o0, &o1);
    if (fasa__span_overlap(indices, idx_bytes, o0, (size_t)(o1 - o0)) ||
        fasa__span_overlap(counts, cnt_bytes, o0, (size_t)(o1 - o0)))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "out overlaps indices or counts");
    if (fasa__span_overlap(indices, idx_bytes, lse, lse_bytes) ||
        fasa__span_overlap(counts, cnt_bytes, lse, lse_bytes))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "lse overlaps indices or counts");
    if (fasa__span_overlap(indices, idx_bytes, workspace, workspace_size) ||
        fasa__span_overlap(counts, cnt_bytes, workspace, workspace_size))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "workspace overlaps indices or counts");
    if ((st = check_sets(ctx, &p)) != FASA_OK)
        return st;

    attend_run(&p, fasa__kernels_get(fasa__level(ctx)), q, k, v, out, lse, workspace);
    return FASA_OK;
}

FASA_API fasa_status fasa_attend_dense(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                       const fasa_view *v, float scale, const fasa_view *out,
                                       float *lse, void *workspace, size_t workspace_size)
{
    fasa__clear_error(ctx);
    attend_plan p;
    fasa_status st = check_common(ctx, q, k, v, scale, out, lse, workspace, workspace_size, &p);
    if (st != FASA_OK)
        return st;
    p.dense = 1;
    attend_run(&p, fasa__kernels_get(fasa__level(ctx)), q, k, v, out, lse, workspace);
    return FASA_OK;
}
