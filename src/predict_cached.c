/*
 * predict_cached.c - fasa_predict_cached: TIP from a label cache.
 *
 * Per (query i, KV head g) one pass over g's label tiles scores every set
 * that uses g at once: PER_HEAD the G query heads (weights [G][2*n_fc] over
 * the cache's FC union, zero where a head does not use an FC), GROUP_SHARED
 * the group's summed query. Validation, weights and output rules are those
 * of fasa_predict (predict.h); selection uses the topk_hint kernel with the
 * cache's per-set threshold memo.
 */
#include "internal.h"
#include "label_cache.h"
#include "predict.h"
#include "threading.h"

/* Weight row over the cache's FCs `ufcs` (ascending, n_u of them) for set s
 * of query i, zero where the set does not use an FC. PER_HEAD: q[i][s] on
 * the FC dims; GROUP_SHARED: the sum over the group's heads in ascending
 * head order in fp32, as fasa__predict_weights does. */
static void cached_weights(const fasa__predict_plan *plan, const fasa_label_cache *c,
                           const fasa_view *q, size_t i, size_t s, const uint32_t *ufcs,
                           size_t n_u, float *w_row)
{
    size_t n_set_fc;
    const uint32_t *fcs = fasa__profile_fcs(plan->profile, plan->layer, plan->mode, s, &n_set_fc);
    int shared = plan->mode == FASA_GQA_GROUP_SHARED;
    size_t h0 = shared ? s * plan->group : s, h1 = shared ? h0 + plan->group : s + 1;
    memset(w_row, 0, 2 * n_u * sizeof *w_row);
    size_t u = 0;
    for (size_t m = 0; m < n_set_fc; m++) {
        /* Always found: the cache's FCs contain this set (the fingerprint
         * was checked). */
        while (u < n_u && ufcs[u] < fcs[m])
            u++;
        uint32_t d0, d1;
        fasa__fc_dims(c->pair_layout, plan->head_dim, fcs[m], &d0, &d1);
        float a = 0.0f, b = 0.0f;
        for (size_t h = h0; h < h1; h++) {
            const void *row = fasa__row(q, i, h);
            a += fasa__load(row, q->dtype, d0);
            b += fasa__load(row, q->dtype, d1);
        }
        w_row[2 * u] = a;
        w_row[2 * u + 1] = b;
    }
}

/* Score tokens [j0, j0 + n) (j0 a multiple of FASA_TILE) of every set of
 * KV head g for query i into rows out[r * sc->score_stride ...], r = the
 * set's place among g's sets. */
static void score_chunk(const fasa__predict_plan *plan, const fasa__kernels *kern,
                        fasa_label_cache *c, const fasa_view *q, size_t i, size_t g, size_t j0,
                        size_t n, const fasa__predict_scratch *sc, float *out)
{
    size_t n_u = fasa__lc_n_fc(c)[g];
    const uint32_t *ufcs = fasa__lc_fcs(c, g);
    int shared = plan->mode == FASA_GQA_GROUP_SHARED;
    size_t rows = shared ? 1 : plan->group, first = shared ? g : g * plan->group;
    float *w_rows = sc->weights; /* [G][head_dim] >= [rows][2 * n_u] */
    /* Recomputed per chunk: rows x 2*n_u x G loads, noise against n tokens. */
    for (size_t r = 0; r < rows; r++)
        cached_weights(plan, c, q, i, first + r, ufcs, n_u, w_rows + r * 2 * n_u);
    size_t es = c->dtype == FASA_DTYPE_F32 ? 4 : 2;
    const char *tiles =
        (const char *)fasa__lc_tiles(c, g) + (j0 / FASA_TILE) * 2 * n_u * FASA_TILE * es;
    kern->score_labels[c->dtype](tiles, n_u, n, w_rows, rows, out + j0, sc->score_stride);
}

/* Select set s of query i from its score row; the set's memo entry is only
 * ever touched here, by one item per query, queries in order. */
static void select_set(const fasa__predict_plan *plan, const fasa__kernels *kern,
                       fasa_label_cache *c, size_t i, size_t s, const float *row,
                       uint32_t *indices, uint32_t *counts, float *scores,
                       const fasa__predict_scratch *sc)
{
    size_t t_i = fasa__predict_t_i(plan, i);
    size_t set = i * plan->n_sets + s;
    size_t n = fasa__budget_count(plan->budget, t_i);
    kern->topk_hint(row, t_i, n, indices + set * plan->index_stride, sc->topk,
                    &fasa__lc_memo(c)[s]);
    counts[set] = (uint32_t)n;
    if (scores != NULL) {
        float *dst = scores + set * plan->t;
        memcpy(dst, row, t_i * sizeof *dst);
        for (size_t j = t_i; j < plan->t; j++)
            dst[j] = -INFINITY;
    }
}

FASA_API fasa_status fasa_predict_cached(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                         fasa_gqa_mode mode, const fasa_view *q,
                                         fasa_label_cache *cache, double budget,
                                         uint32_t *indices, size_t index_stride, uint32_t *counts,
                                         float *scores, void *workspace, size_t workspace_size)
{
    fasa__clear_error(ctx);
    if (!cache)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "cache is NULL");
    if (!fasa__lc_valid(cache))
        return fasa__fail(ctx, FASA_ERR_BAD_STATE, "cache is not an initialized label cache");
    fasa_status st = fasa__check_view(ctx, q, "q");
    if (st != FASA_OK)
        return st;
    if (cache->n_tokens == 0)
        return fasa__fail(ctx, FASA_ERR_BAD_STATE, "label cache holds no tokens");
    fasa__predict_plan plan;
    if ((st = fasa__predict_prepare(ctx, profile, layer, (int)mode, q, (size_t)cache->n_tokens,
                                    (size_t)cache->n_kv_heads, budget, indices, index_stride,
                                    counts, scores, workspace, workspace_size, &plan)) != FASA_OK)
        return st;
    if (cache->layer != layer || cache->mode != (int32_t)mode ||
        cache->n_q_heads != profile->shape.n_q_heads || cache->head_dim != profile->shape.head_dim ||
        cache->fingerprint != fasa__lc_fingerprint(profile, layer, (int)mode))
        return fasa__fail(ctx, FASA_ERR_PROFILE_MISMATCH,
                          "label cache was made for another profile, layer (%llu) or mode (%d)",
                          (unsigned long long)cache->layer, (int)cache->mode);
    if (fasa__predict_outputs_overlap(&plan, indices, counts, scores, workspace, workspace_size,
                                      cache, (size_t)cache->total_bytes))
        return fasa__fail(ctx, FASA_ERR_ALIASING, "an output or the workspace overlaps the cache");

    const fasa__kernels *kern = fasa__kernels_get(fasa__level(ctx));
    fasa__lc_flush(cache, kern);
    const size_t hkv = plan.n_kv_heads, n_sets = plan.n_sets;
    const size_t rows = mode == FASA_GQA_GROUP_SHARED ? 1 : plan.group; /* sets per head */
    /* Items: (KV head, FASA_TIP_CHUNK tokens) score, then (set) selects.
     * Chunks are whole label tiles cut by a fixed size and each score
     * depends only on its own token, so the thread count never shows. */
    const size_t max_items = hkv * fasa__n_chunks(plan.t, FASA_TIP_CHUNK);
    const int nt = fasa__team(plan.workers, max_items, plan.n_q * plan.n_q_heads * plan.t);
    if (2 * (size_t)nt <= hkv) {
        /* Enough heads for every thread: item = a whole head (its chunks in
         * order), selected at once from the thread's own rows while they
         * are in cache; the chunked two-phase order below moves all Hq
         * rows through memory (~10% slower on 1 thread, ~30% on 2, at 64k
         * per head). Same scores either way. */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
        for (size_t g = 0; g < hkv; g++) {
            fasa__predict_scratch sc;
            const size_t tid = (size_t)fasa__thread_id();
            fasa__predict_carve(&plan, workspace, tid, &sc);
            float *own = sc.scores + tid * rows * sc.score_stride; /* tid < nt <= hkv */
            for (size_t i = 0; i < plan.n_q; i++) {
                const size_t t_i = fasa__predict_t_i(&plan, i);
                /* One call for all chunks: the kernels score every tile on
                 * its own, so this equals the chunked calls bit for bit
                 * (test_determinism compares both orders). */
                score_chunk(&plan, kern, cache, q, i, g, 0, t_i, &sc, own);
                for (size_t r = 0; r < rows; r++)
                    select_set(&plan, kern, cache, i, g * rows + r, own + r * sc.score_stride,
                               indices, counts, scores, &sc);
            }
        }
        return FASA_OK;
    }
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        fasa__predict_scratch sc;
        fasa__predict_carve(&plan, workspace, (size_t)fasa__thread_id(), &sc);
        for (size_t i = 0; i < plan.n_q; i++) {
            const size_t t_i = fasa__predict_t_i(&plan, i);
            const size_t nch = fasa__n_chunks(t_i, FASA_TIP_CHUNK);
            /* chunk-major: threads at work together read nearby tiles */
#pragma omp for schedule(dynamic, 1)
            for (size_t it = 0; it < hkv * nch; it++) {
                size_t g = it % hkv, j0 = it / hkv * FASA_TIP_CHUNK;
                size_t n = t_i - j0 < FASA_TIP_CHUNK ? t_i - j0 : FASA_TIP_CHUNK;
                score_chunk(&plan, kern, cache, q, i, g, j0, n, &sc,
                            sc.scores + g * rows * sc.score_stride);
            }
#pragma omp for schedule(dynamic, 1)
            for (size_t s = 0; s < n_sets; s++)
                select_set(&plan, kern, cache, i, s, sc.scores + s * sc.score_stride, indices,
                           counts, scores, &sc);
        }
    }
    return FASA_OK;
}
