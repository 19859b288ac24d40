/*
 * attention_calls.c - the positional convenience calls (fasa_attend_dense,
 * fasa_attend, fasa_predict, fasa_predict_cached, fasa_decode_step and their
 * *_workspace_size twins). Each fills a fasa_attention_desc and runs it
 * through the one path of exec.c: validate -> plan -> bind -> check -> run.
 */
#include "internal.h"
#include "plan.h"

static fasa_attention_desc desc_init(int op, int mode, const fasa_view *q, const fasa_view *k,
                                     const fasa_view *v, const fasa_view *out, float *lse)
{
    fasa_attention_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.op = op;
    d.mode = mode;
    d.q = q;
    d.k = k;
    d.v = v;
    d.out = out;
    d.lse = lse;
    return d;
}

static fasa_attn_params params_scale(float scale)
{
    fasa_attn_params a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.scale = scale;
    return a;
}

/* Plan desc and report its workspace size. */
static fasa_status size_of(fasa_ctx *ctx, const char *fn, const fasa_attention_desc *d,
                           size_t *bytes)
{
    if (bytes == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "bytes is NULL");
    fasa_plan p;
    fasa_status st = fasa__plan_make(ctx, fn, d, &p);
    if (st == FASA_OK)
        *bytes = p.ws.total;
    return st;
}

/* Plan and run desc. */
static fasa_status run(fasa_ctx *ctx, const char *fn, const fasa_attention_desc *d,
                       void *workspace, size_t workspace_size)
{
    fasa_plan p;
    fasa_status st = fasa__plan_make(ctx, fn, d, &p);
    return st != FASA_OK ? st : fasa__execute(ctx, &p, NULL, workspace, workspace_size, 1);
}

/* A shape-only view (data NULL) for size queries that only know t. */
static fasa_view shape_view(size_t t, size_t heads, size_t dim)
{
    fasa_view v;
    memset(&v, 0, sizeof v);
    v.struct_size = sizeof v;
    v.dtype = FASA_DTYPE_F32;
    v.n_tokens = t;
    v.n_heads = heads;
    v.head_dim = dim;
    v.token_stride = heads * dim;
    v.head_stride = dim;
    return v;
}

/* ---------------------------------------------------------------- FAC */

FASA_API fasa_status fasa_attend_dense_workspace_size(fasa_ctx *ctx, const fasa_view *q,
                                                      const fasa_view *k, const fasa_view *v,
                                                      size_t *bytes)
{
    static const char fn[] = "fasa_attend_dense_workspace_size";
    fasa__enter(ctx, fn);
    /* out: the shape the call will have (data not needed) */
    fasa_view out = q != NULL && v != NULL ? shape_view(q->n_tokens, q->n_heads, v->head_dim)
                                           : shape_view(1, 1, 1);
    fasa_attention_desc d = desc_init(FASA_OP_DENSE, 0, q, k, v, &out, NULL);
    return size_of(ctx, fn, &d, bytes);
}

FASA_API fasa_status fasa_attend_dense(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                       const fasa_view *v, float scale, const fasa_view *out,
                                       float *lse, void *workspace, size_t workspace_size)
{
    static const char fn[] = "fasa_attend_dense";
    fasa__enter(ctx, fn);
    fasa_attn_params a = params_scale(scale);
    fasa_attention_desc d = desc_init(FASA_OP_DENSE, 0, q, k, v, out, lse);
    d.params = &a;
    return run(ctx, fn, &d, workspace, workspace_size);
}

FASA_API fasa_status fasa_attend_workspace_size(fasa_ctx *ctx, const fasa_view *q,
                                                const fasa_view *k, const fasa_view *v,
                                                fasa_gqa_mode mode, size_t index_stride,
                                                size_t *bytes)
{
    static const char fn[] = "fasa_attend_workspace_size";
    fasa__enter(ctx, fn);
    fasa_view out = q != NULL && v != NULL ? shape_view(q->n_tokens, q->n_heads, v->head_dim)
                                           : shape_view(1, 1, 1);
    fasa_attention_desc d = desc_init(FASA_OP_SPARSE, mode, q, k, v, &out, NULL);
    d.index_stride = index_stride;
    return size_of(ctx, fn, &d, bytes);
}

FASA_API fasa_status fasa_attend(fasa_ctx *ctx, fasa_gqa_mode mode, const fasa_view *q,
                                 const fasa_view *k, const fasa_view *v, const uint32_t *indices,
                                 size_t index_stride, const uint32_t *counts, float scale,
                                 const fasa_view *out, float *lse, void *workspace,
                                 size_t workspace_size)
{
    static const char fn[] = "fasa_attend";
    fasa__enter(ctx, fn);
    if (indices == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "indices is NULL");
    if (counts == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "counts is NULL");
    fasa_attn_params a = params_scale(scale);
    fasa_attention_desc d = desc_init(FASA_OP_SPARSE, mode, q, k, v, out, lse);
    d.params = &a;
    d.indices = (uint32_t *)(uintptr_t)indices; /* read only by SPARSE */
    d.counts = (uint32_t *)(uintptr_t)counts;
    d.index_stride = index_stride;
    return run(ctx, fn, &d, workspace, workspace_size);
}

/* ---------------------------------------------------------------- TIP */

FASA_API fasa_status fasa_predict_max_selected(double budget, size_t t, size_t *max_selected)
{
    if (max_selected == NULL)
        return FASA_ERR_NULL_POINTER;
    if (!(budget > 0.0) || !isfinite(budget))
        return FASA_ERR_BAD_BUDGET;
    /* The count only grows with t_i, so the longest query bounds it. */
    *max_selected = t == 0 ? 0 : fasa__budget_count(budget, t);
    return FASA_OK;
}

FASA_API fasa_status fasa_predict_workspace_size(fasa_ctx *ctx, const fasa_profile *profile,
                                                 const fasa_view *q, size_t t,
                                                 fasa_gqa_mode mode, size_t *bytes)
{
    static const char fn[] = "fasa_predict_workspace_size";
    fasa__enter(ctx, fn);
    if (profile == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "profile is NULL");
    if (q == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "q is NULL");
    if (t == 0)
        return fasa__fail(ctx, FASA_ERR_ZERO_SIZE, "t is 0");
    /* no budget here: size for the largest (every cell selected) */
    fasa_view k = shape_view(t, profile->shape.n_kv_heads, q->head_dim);
    fasa_attention_desc d = desc_init(FASA_OP_PREDICT, mode, q, &k, NULL, NULL, NULL);
    d.profile = profile;
    d.budget = (double)t;
    d.index_stride = t;
    return size_of(ctx, fn, &d, bytes);
}

static fasa_status predict(fasa_ctx *ctx, const char *fn, const fasa_profile *profile,
                           size_t layer, fasa_gqa_mode mode, const fasa_view *q,
                           const fasa_view *k, fasa_label_cache *cache, double budget,
                           uint32_t *indices, size_t index_stride, uint32_t *counts,
                           float *scores, void *workspace, size_t workspace_size)
{
    if (indices == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "indices is NULL");
    if (counts == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "counts is NULL");
    fasa_attention_desc d = desc_init(FASA_OP_PREDICT, mode, q, k, NULL, NULL, NULL);
    d.profile = profile;
    d.layer = layer;
    d.label_cache = cache;
    d.budget = budget;
    d.indices = indices;
    d.index_stride = index_stride;
    d.counts = counts;
    d.scores = scores;
    return run(ctx, fn, &d, workspace, workspace_size);
}

FASA_API fasa_status fasa_predict(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                  fasa_gqa_mode mode, const fasa_view *q, const fasa_view *k,
                                  double budget, uint32_t *indices, size_t index_stride,
                                  uint32_t *counts, float *scores, void *workspace,
                                  size_t workspace_size)
{
    static const char fn[] = "fasa_predict";
    fasa__enter(ctx, fn);
    if (k == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "k: view pointer is NULL");
    return predict(ctx, fn, profile, layer, mode, q, k, NULL, budget, indices, index_stride,
                   counts, scores, workspace, workspace_size);
}

FASA_API fasa_status fasa_predict_cached(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                         fasa_gqa_mode mode, const fasa_view *q,
                                         fasa_label_cache *cache, double budget,
                                         uint32_t *indices, size_t index_stride, uint32_t *counts,
                                         float *scores, void *workspace, size_t workspace_size)
{
    static const char fn[] = "fasa_predict_cached";
    fasa__enter(ctx, fn);
    if (cache == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "cache is NULL");
    return predict(ctx, fn, profile, layer, mode, q, NULL, cache, budget, indices, index_stride,
                   counts, scores, workspace, workspace_size);
}

/* --------------------------------------------------------- decode step */

FASA_API fasa_status fasa_decode_step_workspace_size(fasa_ctx *ctx, const fasa_profile *profile,
                                                     const fasa_view *q, const fasa_view *k,
                                                     const fasa_view *v, fasa_gqa_mode mode,
                                                     double budget, size_t *bytes)
{
    static const char fn[] = "fasa_decode_step_workspace_size";
    fasa__enter(ctx, fn);
    if (bytes == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "bytes is NULL");
    if (profile == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "profile is NULL");
    fasa_view out = q != NULL && v != NULL ? shape_view(q->n_tokens, q->n_heads, v->head_dim)
                                           : shape_view(1, 1, 1);
    /* No layer here: the larger of a sparse layer's plan and a dense one. */
    fasa_attention_desc d = desc_init(FASA_OP_DENSE, mode, q, k, v, &out, NULL);
    size_t dense = 0, sparse = 0;
    fasa_status st = size_of(ctx, fn, &d, &dense);
    if (st != FASA_OK)
        return st;
    for (size_t l = 0; l < profile->shape.n_layers; l++)
        if (!fasa__profile_is_dense(profile, l)) {
            d.op = FASA_OP_FASA;
            d.profile = profile;
            d.layer = l;
            d.budget = budget;
            if ((st = size_of(ctx, fn, &d, &sparse)) != FASA_OK)
                return st;
            break;
        }
    if (d.op == FASA_OP_DENSE && (!(budget > 0.0) || !isfinite(budget)))
        return fasa__fail(ctx, FASA_ERR_BAD_BUDGET, "budget %g must be finite and > 0", budget);
    *bytes = dense > sparse ? dense : sparse;
    return FASA_OK;
}

FASA_API fasa_status fasa_decode_step(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                      fasa_gqa_mode mode, const fasa_view *q, const fasa_view *k,
                                      const fasa_view *v, fasa_label_cache *cache, double budget,
                                      float scale, const fasa_view *out, float *lse,
                                      void *workspace, size_t workspace_size)
{
    static const char fn[] = "fasa_decode_step";
    fasa__enter(ctx, fn);
    fasa_attn_params a = params_scale(scale);
    fasa_attention_desc d = desc_init(FASA_OP_FASA, mode, q, k, v, out, lse);
    d.params = &a;
    d.profile = profile;
    d.layer = layer;
    d.label_cache = cache;
    d.budget = budget;
    return run(ctx, fn, &d, workspace, workspace_size);
}
