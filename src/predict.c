/*
 * predict.c - fasa_predict (TIP from a key view) and the helpers of
 * predict.h that fasa_predict_cached shares.
 */
#include "internal.h"
#include "predict.h"
#include "threading.h"

/* ------------------------------------------------------------ workspace */

size_t fasa__predict_workers(const fasa_ctx *ctx)
{
    return (size_t)fasa__threads(ctx);
}

/* Floats between score rows: t rounded up to a 64-byte multiple. */
static size_t score_stride(size_t t) { return fasa__align_up(t, 16); }

size_t fasa__predict_worker_bytes(size_t group, size_t head_dim, size_t t)
{
    size_t wd, w_bytes, total;
    size_t topk = fasa__topk_scratch_size(t, t);
    if (!fasa__mul_ok(group, head_dim, &wd) || !fasa__mul_ok(wd, sizeof(float), &w_bytes) ||
        w_bytes > SIZE_MAX - 64 || topk == SIZE_MAX)
        return 0;
    w_bytes = fasa__align_up(w_bytes, 64); /* weights; dims take the same */
    if (!fasa__add_ok(w_bytes, w_bytes, &total) || !fasa__add_ok(total, topk, &total) ||
        total > SIZE_MAX - 64)
        return 0;
    return fasa__align_up(total, 64);
}

/* Bytes of the shared score rows [n_rows][score_stride(t)]; 0 on overflow. */
static size_t shared_score_bytes(size_t n_rows, size_t t)
{
    size_t n, b;
    if (t > SIZE_MAX - 16 || !fasa__mul_ok(n_rows, score_stride(t), &n) ||
        !fasa__mul_ok(n, sizeof(float), &b) || b > SIZE_MAX - 64)
        return 0;
    return fasa__align_up(b, 64);
}

fasa_status fasa__predict_workspace_bytes(fasa_ctx *ctx, size_t group, size_t head_dim,
                                          size_t n_rows, size_t t, size_t workers, size_t *bytes)
{
    size_t per = fasa__predict_worker_bytes(group, head_dim, t), all;
    size_t shared = shared_score_bytes(n_rows, t);
    if (per == 0 || shared == 0 || !fasa__mul_ok(per, workers, &all) ||
        !fasa__add_ok(all, shared, &all) || !fasa__add_ok(all, 64, &all))
        return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                          "predict workspace for t %zu, G %zu, head_dim %zu, %zu rows, %zu "
                          "threads overflows size_t",
                          t, group, head_dim, n_rows, workers);
    *bytes = all;
    return FASA_OK;
}

void fasa__predict_carve(const fasa__predict_plan *plan, void *workspace, size_t worker,
                         fasa__predict_scratch *sc)
{
    char *base = (char *)fasa__align_up((uintptr_t)workspace, 64);
    size_t per = fasa__predict_worker_bytes(plan->group, plan->head_dim, plan->t);
    size_t w_bytes = fasa__align_up(plan->group * plan->head_dim * sizeof(float), 64);
    sc->score_stride = score_stride(plan->t);
    sc->scores = (float *)(void *)(base + plan->workers * per); /* shared by all slots */
    base += worker * per;
    sc->weights = (float *)(void *)base;
    sc->dims = (uint32_t *)(void *)(base + w_bytes);
    sc->topk = base + 2 * w_bytes;
}

/* ----------------------------------------------------------- validation */

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

static int mode_ok(int mode)
{
    return mode == FASA_GQA_PER_HEAD || mode == FASA_GQA_GROUP_SHARED;
}

/* Non-finite q would make every score NaN/Inf and the selection arbitrary. */
static fasa_status check_q_finite(fasa_ctx *ctx, const fasa_view *q)
{
    for (size_t i = 0; i < q->n_tokens; i++)
        for (size_t h = 0; h < q->n_heads; h++) {
            const void *row = fasa__row(q, i, h);
            for (size_t c = 0; c < q->head_dim; c++)
                if (!isfinite(fasa__load(row, q->dtype, c)))
                    return fasa__fail(ctx, FASA_ERR_NONFINITE,
                                      "q: element (token %zu, head %zu, dim %zu) is not finite",
                                      i, h, c);
        }
    return FASA_OK;
}

static size_t plan_n_entries(const fasa__predict_plan *p)
{
    return p->n_q * p->n_sets; /* overflow excluded by prepare */
}

int fasa__predict_outputs_overlap(const fasa__predict_plan *plan, const uint32_t *indices,
                                  const uint32_t *counts, const float *scores,
                                  const void *workspace, size_t workspace_size, const void *p,
                                  size_t bytes)
{
    size_t sets = plan_n_entries(plan);
    return fasa__span_overlap(indices, sets * plan->index_stride * sizeof(uint32_t), p, bytes) ||
           fasa__span_overlap(counts, sets * sizeof(uint32_t), p, bytes) ||
           fasa__span_overlap(scores, sets * plan->t * sizeof(float), p, bytes) ||
           fasa__span_overlap(workspace, workspace_size, p, bytes);
}

fasa_status fasa__predict_prepare(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                  int mode, const fasa_view *q, size_t t, size_t n_kv_heads,
                                  double budget, const uint32_t *indices, size_t index_stride,
                                  const uint32_t *counts, const float *scores,
                                  const void *workspace, size_t workspace_size,
                                  fasa__predict_plan *plan)
{
    fasa_status st;
    if (profile == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "profile is NULL");
    if ((st = fasa__check_view(ctx, q, "q")) != FASA_OK)
        return st;
    if (indices == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "indices is NULL");
    if (counts == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "counts is NULL");
    if (!mode_ok(mode))
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "mode %d is not a fasa_gqa_mode", mode);
    if (t == 0)
        return fasa__fail(ctx, FASA_ERR_ZERO_SIZE, "no cached tokens (t = 0)");
    if (t > UINT32_MAX)
        return fasa__fail(ctx, FASA_ERR_OVERFLOW, "t %zu exceeds the uint32 index range", t);
    if (q->n_tokens > t)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "q: n_tokens %zu > t %zu (queries are the last cached tokens)",
                          q->n_tokens, t);
    if (n_kv_heads == 0 || q->n_heads % n_kv_heads != 0)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "KV heads %zu do not divide q n_heads %zu", n_kv_heads, q->n_heads);
    if ((st = fasa__profile_check(ctx, profile, layer, mode, q->n_heads, n_kv_heads,
                                  q->head_dim)) != FASA_OK)
        return st;
    if (!(budget > 0.0) || !isfinite(budget))
        return fasa__fail(ctx, FASA_ERR_BAD_BUDGET, "budget %g must be finite and > 0", budget);

    fasa__predict_plan p;
    memset(&p, 0, sizeof p);
    p.profile = profile;
    p.layer = layer;
    p.mode = mode;
    p.n_q = q->n_tokens;
    p.n_q_heads = q->n_heads;
    p.n_kv_heads = n_kv_heads;
    p.group = q->n_heads / n_kv_heads;
    p.head_dim = q->head_dim;
    p.t = t;
    p.n_sets = mode == FASA_GQA_PER_HEAD ? q->n_heads : n_kv_heads;
    p.budget = budget;
    p.max_selected = fasa__budget_count(budget, t);
    p.index_stride = index_stride;
    p.workers = fasa__predict_workers(ctx);
    if (index_stride < p.max_selected)
        return fasa__fail(ctx, FASA_ERR_BUFFER_TOO_SMALL,
                          "index_stride %zu < %zu tokens selected for budget %g at t %zu",
                          index_stride, p.max_selected, budget, t);

    size_t sets, n_idx, b_idx, b_scores;
    if (!fasa__mul_ok(p.n_q, p.n_sets, &sets) || !fasa__mul_ok(sets, index_stride, &n_idx) ||
        !fasa__mul_ok(n_idx, sizeof(uint32_t), &b_idx) ||
        !fasa__mul_ok(sets, t, &b_scores) || !fasa__mul_ok(b_scores, sizeof(float), &b_scores))
        return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                          "outputs of %zu queries x %zu sets x index_stride %zu / t %zu overflow",
                          p.n_q, p.n_sets, index_stride, t);
    size_t b_counts = sets * sizeof(uint32_t);

    size_t need;
    if ((st = fasa__predict_workspace_bytes(ctx, p.group, p.head_dim, p.n_q_heads, t, p.workers,
                                            &need)) != FASA_OK)
        return st;
    if (workspace_size < need)
        return fasa__fail(ctx, FASA_ERR_WORKSPACE_TOO_SMALL,
                          "workspace_size %zu < %zu (fasa_predict_workspace_size)",
                          workspace_size, need);
    if (workspace == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "workspace is NULL (%zu bytes needed)",
                          need);

    const char *q0, *q1;
    fasa__view_span(q, &q0, &q1);
    if (fasa__predict_outputs_overlap(&p, indices, counts, scores, workspace, workspace_size, q0,
                                      (size_t)(q1 - q0)))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "an output or the workspace overlaps q");
    if (fasa__span_overlap(indices, b_idx, counts, b_counts) ||
        fasa__span_overlap(indices, b_idx, scores, b_scores) ||
        fasa__span_overlap(counts, b_counts, scores, b_scores))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "indices, counts and scores overlap");
    if (fasa__span_overlap(workspace, workspace_size, indices, b_idx) ||
        fasa__span_overlap(workspace, workspace_size, counts, b_counts) ||
        fasa__span_overlap(workspace, workspace_size, scores, b_scores))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "workspace overlaps an output");

    if ((st = check_q_finite(ctx, q)) != FASA_OK)
        return st;
    *plan = p;
    return FASA_OK;
}

/* -------------------------------------------------------- shared steps */

size_t fasa__predict_weights(const fasa__predict_plan *plan, const fasa_view *q, size_t i,
                             size_t s, uint32_t *dims, float *w)
{
    const fasa_profile *prof = plan->profile;
    size_t n_fc;
    const uint32_t *fcs = fasa__profile_fcs(prof, plan->layer, plan->mode, s, &n_fc);
    size_t h0 = plan->mode == FASA_GQA_PER_HEAD ? s : s * plan->group;
    size_t nh = plan->mode == FASA_GQA_PER_HEAD ? 1 : plan->group;
    size_t n = 0;
    for (size_t f = 0; f < n_fc; f++) {
        uint32_t d0, d1;
        fasa__fc_dims(prof->shape.pair_layout, plan->head_dim, fcs[f], &d0, &d1);
        dims[n] = d0;
        dims[n + 1] = d1;
        n += 2;
    }
    for (size_t c = 0; c < n; c++) {
        float acc = 0.0f;
        for (size_t h = h0; h < h0 + nh; h++)
            acc += fasa__load(fasa__row(q, i, h), q->dtype, dims[c]);
        w[c] = acc;
    }
    return n;
}

void fasa__predict_select(const fasa__predict_plan *plan, const fasa__kernels *kern, size_t i,
                          size_t s, const float *row, uint32_t *indices, uint32_t *counts,
                          float *scores_out, void *topk_scratch)
{
    size_t t_i = fasa__predict_t_i(plan, i);
    size_t set = i * plan->n_sets + s;
    size_t n = fasa__budget_count(plan->budget, t_i);
    kern->topk(row, t_i, n, indices + set * plan->index_stride, topk_scratch);
    counts[set] = (uint32_t)n;
    if (scores_out != NULL) {
        float *dst = scores_out + set * plan->t;
        memcpy(dst, row, t_i * sizeof *dst);
        for (size_t j = t_i; j < plan->t; j++)
            dst[j] = -INFINITY;
    }
}

/* ------------------------------------------------------------ execution */

/* Score tokens [j0, j0 + FASA_TIP_CHUNK) and [0, t_i) of set s of query i
 * into row[j0 ...]. */
static void score_chunk(const fasa__predict_plan *plan, fasa__score_dims_fn score,
                        const fasa_view *q, const fasa_view *k, size_t i, size_t s, size_t j0,
                        const fasa__predict_scratch *sc, float *row)
{
    size_t t_i = fasa__predict_t_i(plan, i);
    size_t n = t_i - j0 < FASA_TIP_CHUNK ? t_i - j0 : FASA_TIP_CHUNK;
    size_t kv = plan->mode == FASA_GQA_PER_HEAD ? s / plan->group : s;
    size_t n_dims = fasa__predict_weights(plan, q, i, s, sc->dims, sc->weights);
    score(fasa__row(k, j0, kv), k->token_stride, n, sc->dims, n_dims, sc->weights, row + j0);
}

/* The execution on up to plan->workers OpenMP threads, one scratch slot
 * each, per query: items (set, FASA_TIP_CHUNK token chunk) score into the
 * shared rows, then items (set) select from their row. Chunks are cut by a
 * fixed size and every score depends only on its own token, so the result
 * does not depend on the thread count (nor on the one-thread order). */
static void predict_run(const fasa__predict_plan *plan, const fasa__kernels *kern,
                        const fasa_view *q, const fasa_view *k, uint32_t *indices,
                        uint32_t *counts, float *scores, void *workspace)
{
    fasa__score_dims_fn score = kern->score_dims[k->dtype];
    const size_t n_sets = plan->n_sets;
    const size_t max_items = n_sets * fasa__n_chunks(plan->t, FASA_TIP_CHUNK);
    const int nt = fasa__team(plan->workers, max_items, plan->n_q * n_sets * plan->t);
    if (2 * (size_t)nt <= n_sets) {
        /* Enough sets for every thread: item = a whole set (its chunks in
         * order), selected at once from the thread's own row while it is
         * in cache. Same scores as the chunked order below. */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
        for (size_t s = 0; s < n_sets; s++) {
            fasa__predict_scratch sc;
            const size_t tid = (size_t)fasa__thread_id();
            fasa__predict_carve(plan, workspace, tid, &sc);
            float *own = sc.scores + tid * sc.score_stride; /* tid < nt <= n_sets */
            for (size_t i = 0; i < plan->n_q; i++) {
                const size_t t_i = fasa__predict_t_i(plan, i);
                /* One call for all chunks: every score depends only on its
                 * own token, so this equals the chunked calls bit for bit
                 * (test_determinism compares both orders). */
                size_t n_dims = fasa__predict_weights(plan, q, i, s, sc.dims, sc.weights);
                score(fasa__row(k, 0, plan->mode == FASA_GQA_PER_HEAD ? s / plan->group : s),
                      k->token_stride, t_i, sc.dims, n_dims, sc.weights, own);
                fasa__predict_select(plan, kern, i, s, own, indices, counts, scores, sc.topk);
            }
        }
        return;
    }
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        fasa__predict_scratch sc;
        fasa__predict_carve(plan, workspace, (size_t)fasa__thread_id(), &sc);
        for (size_t i = 0; i < plan->n_q; i++) {
            const size_t t_i = fasa__predict_t_i(plan, i);
            const size_t nch = fasa__n_chunks(t_i, FASA_TIP_CHUNK);
#pragma omp for schedule(dynamic, 1)
            for (size_t it = 0; it < n_sets * nch; it++) {
                size_t s = it / nch;
                score_chunk(plan, score, q, k, i, s, it % nch * FASA_TIP_CHUNK, &sc,
                            sc.scores + s * sc.score_stride);
            }
#pragma omp for schedule(dynamic, 1)
            for (size_t s = 0; s < n_sets; s++)
                fasa__predict_select(plan, kern, i, s, sc.scores + s * sc.score_stride, indices,
                                     counts, scores, sc.topk);
        }
    }
}

/* --------------------------------------------------------- public calls */

FASA_API fasa_status fasa_predict_workspace_size(const fasa_ctx *ctx, const fasa_profile *profile,
                                                 const fasa_view *q, size_t t,
                                                 fasa_gqa_mode mode, size_t *bytes)
{
    /* ctx is const here: no error message can be recorded. */
    if (profile == NULL || q == NULL || bytes == NULL)
        return FASA_ERR_NULL_POINTER;
    if (!mode_ok((int)mode))
        return FASA_ERR_INVALID_ARGUMENT;
    if (t == 0 || q->n_heads == 0 || q->head_dim == 0)
        return FASA_ERR_ZERO_SIZE;
    if (q->n_heads != profile->shape.n_q_heads || q->head_dim != profile->shape.head_dim)
        return FASA_ERR_PROFILE_MISMATCH;
    size_t group = profile->shape.n_q_heads / profile->shape.n_kv_heads;
    return fasa__predict_workspace_bytes(NULL, group, q->head_dim, q->n_heads, t,
                                         fasa__predict_workers(ctx), bytes);
}

FASA_API fasa_status fasa_predict(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                  fasa_gqa_mode mode, const fasa_view *q, const fasa_view *k,
                                  double budget, uint32_t *indices, size_t index_stride,
                                  uint32_t *counts, float *scores, void *workspace,
                                  size_t workspace_size)
{
    fasa__clear_error(ctx);
    fasa_status st;
    if ((st = fasa__check_view(ctx, q, "q")) != FASA_OK ||
        (st = fasa__check_view(ctx, k, "k")) != FASA_OK ||
        (st = fasa__check_qkv(ctx, q, k, NULL)) != FASA_OK)
        return st;
    fasa__predict_plan plan;
    if ((st = fasa__predict_prepare(ctx, profile, layer, (int)mode, q, k->n_tokens, k->n_heads,
                                    budget, indices, index_stride, counts, scores, workspace,
                                    workspace_size, &plan)) != FASA_OK)
        return st;
    const char *k0, *k1;
    fasa__view_span(k, &k0, &k1);
    if (fasa__predict_outputs_overlap(&plan, indices, counts, scores, workspace, workspace_size,
                                      k0, (size_t)(k1 - k0)))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "an output or the workspace overlaps k");

    predict_run(&plan, fasa__kernels_get(fasa__level(ctx)), q, k, indices, counts, scores,
                workspace);
    return FASA_OK;
}
