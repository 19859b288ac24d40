/*
 * decode_step.c - one layer of one decode step: predict + attend, or dense
 * attention when the layer is dense or the budget covers every token.
 *
 * Workspace: [indices][counts][scratch], each 64-byte aligned; the scratch
 * region is shared by predict and attend (they run one after the other) and
 * is large enough for fasa_attend_dense too.
 */
#include "internal.h"

/* Sizes of the three regions; fails like the *_workspace_size calls. */
typedef struct step_layout {
    size_t n_sets, max_selected;
    size_t idx_bytes, cnt_bytes, scratch_bytes, total;
} step_layout;

static fasa_status step_layout_get(const fasa_ctx *ctx, const fasa_profile *profile,
                                   const fasa_view *q, const fasa_view *k, const fasa_view *v,
                                   fasa_gqa_mode mode, double budget, step_layout *L)
{
    fasa_status st;
    size_t pw, aw, dw, sets;
    if (q == NULL || k == NULL)
        return FASA_ERR_NULL_POINTER;
    if ((st = fasa_predict_max_selected(budget, k->n_tokens, &L->max_selected)) != FASA_OK)
        return st;
    if ((st = fasa_predict_workspace_size(ctx, profile, q, k->n_tokens, mode, &pw)) != FASA_OK ||
        (st = fasa_attend_workspace_size(ctx, q, k, v, mode, L->max_selected, &aw)) != FASA_OK ||
        (st = fasa_attend_dense_workspace_size(ctx, q, k, v, &dw)) != FASA_OK)
        return st;
    L->n_sets = mode == FASA_GQA_PER_HEAD ? q->n_heads : k->n_heads;
    if (!fasa__mul_ok(q->n_tokens, L->n_sets, &sets) ||
        !fasa__mul_ok(sets, L->max_selected, &L->idx_bytes) ||
        !fasa__mul_ok(L->idx_bytes, sizeof(uint32_t), &L->idx_bytes) ||
        L->idx_bytes > SIZE_MAX - 64 || sets > SIZE_MAX / 8)
        return FASA_ERR_OVERFLOW;
    L->idx_bytes = fasa__align_up(L->idx_bytes, 64);
    L->cnt_bytes = fasa__align_up(sets * sizeof(uint32_t), 64);
    L->scratch_bytes = pw > aw ? pw : aw;
    if (dw > L->scratch_bytes)
        L->scratch_bytes = dw;
    if (!fasa__add_ok(64, L->idx_bytes, &L->total) ||
        !fasa__add_ok(L->total, L->cnt_bytes, &L->total) ||
        !fasa__add_ok(L->total, L->scratch_bytes, &L->total))
        return FASA_ERR_OVERFLOW;
    return FASA_OK;
}

FASA_API fasa_status fasa_decode_step_workspace_size(const fasa_ctx *ctx,
                                                     const fasa_profile *profile,
                                                     const fasa_view *q, const fasa_view *k,
                                                     const fasa_view *v, fasa_gqa_mode mode,
                                                     double budget, size_t *bytes)
{
    if (bytes == NULL)
        return FASA_ERR_NULL_POINTER;
    step_layout L;
    fasa_status st = step_layout_get(ctx, profile, q, k, v, mode, budget, &L);
    if (st == FASA_OK)
        *bytes = L.total;
    return st;
}

/* 1 when every query would select all its visible tokens. */
static int budget_covers_all(double budget, size_t n_q, size_t t)
{
    for (size_t i = 0; i < n_q; i++) {
        size_t t_i = t - n_q + i + 1;
        if (fasa__budget_count(budget, t_i) < t_i)
            return 0;
    }
    return 1;
}

FASA_API fasa_status fasa_decode_step(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                      fasa_gqa_mode mode, const fasa_view *q, const fasa_view *k,
                                      const fasa_view *v, fasa_label_cache *cache, double budget,
                                      float scale, const fasa_view *out, float *lse,
                                      void *workspace, size_t workspace_size)
{
    fasa__clear_error(ctx);
    fasa_status st;
    if (profile == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "profile is NULL");
    if ((st = fasa__check_attn_views(ctx, q, k, v, out)) != FASA_OK)
        return st;
    if (mode != FASA_GQA_PER_HEAD && mode != FASA_GQA_GROUP_SHARED)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "mode %d is not a fasa_gqa_mode",
                          (int)mode);
    if ((st = fasa__profile_check(ctx, profile, layer, (int)mode, q->n_heads, k->n_heads,
                                  q->head_dim)) != FASA_OK)
        return st;
    if (!(budget > 0.0) || !isfinite(budget))
        return fasa__fail(ctx, FASA_ERR_BAD_BUDGET, "budget %g must be finite and > 0", budget);
    if (cache != NULL) {
        size_t n = 0;
        if ((st = fasa_label_cache_tokens(cache, &n)) != FASA_OK)
            return fasa__fail(ctx, st, "cache: not a valid label cache");
        if (n != k->n_tokens)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                              "cache holds %zu tokens but k has %zu", n, k->n_tokens);
    }
    step_layout L;
    if ((st = step_layout_get(ctx, profile, q, k, v, mode, budget, &L)) != FASA_OK)
        return fasa__fail(ctx, st, "workspace size for these shapes cannot be computed");
    if (workspace_size < L.total)
        return fasa__fail(ctx, FASA_ERR_WORKSPACE_TOO_SMALL,
                          "workspace_size %zu < %zu (fasa_decode_step_workspace_size)",
                          workspace_size, L.total);
    if (workspace == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "workspace is NULL (%zu bytes needed)",
                          L.total);

    /* Checked here, not only by the calls below: predict writes into the
     * workspace before attend would see these problems. */
    if (!isfinite(scale))
        return fasa__fail(ctx, FASA_ERR_NONFINITE, "scale %g is not finite", (double)scale);
    const fasa_view *views[4] = {q, k, v, out};
    static const char *const names[4] = {"q", "k", "v", "out"};
    for (int a = 0; a < 4; a++) {
        const char *b0, *b1;
        fasa__view_span(views[a], &b0, &b1);
        if (fasa__span_overlap(workspace, workspace_size, b0, (size_t)(b1 - b0)))
            return fasa__fail(ctx, FASA_ERR_ALIASING, "workspace overlaps %s", names[a]);
    }
    if (fasa__span_overlap(workspace, workspace_size, lse, q->n_tokens * q->n_heads * sizeof(float)))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "workspace overlaps lse");

    char *base = (char *)fasa__align_up((uintptr_t)workspace, 64);
    char *scratch = base + L.idx_bytes + L.cnt_bytes;
    size_t scratch_size = workspace_size - (size_t)(scratch - (char *)workspace);

    /* Exactly fasa_attend_dense's result when nothing would be dropped. */
    if (fasa__profile_is_dense(profile, layer) || budget_covers_all(budget, q->n_tokens, k->n_tokens))
        return fasa_attend_dense(ctx, q, k, v, scale, out, lse, workspace, workspace_size);

    uint32_t *indices = (uint32_t *)(void *)base;
    uint32_t *counts = (uint32_t *)(void *)(base + L.idx_bytes);
    if (cache != NULL)
        st = fasa_predict_cached(ctx, profile, layer, mode, q, cache, budget, indices,
                                 L.max_selected, counts, NULL, scratch, scratch_size);
    else
        st = fasa_predict(ctx, profile, layer, mode, q, k, budget, indices, L.max_selected,
                          counts, NULL, scratch, scratch_size);
    if (st != FASA_OK)
        return st;
    return fasa_attend(ctx, mode, q, k, v, indices, L.max_selected, counts, scale, out, lse,
                       scratch, scratch_size);
}
