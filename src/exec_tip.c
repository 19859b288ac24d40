/*
 * exec_tip.c - TIP (token importance prediction) stages: score the listed
 * tiles of a query with the profile's dominant FCs, from the label cache
 * (one pass over a KV head's tiles scores every set of the head) or from
 * the key view (one pass per set), into the query's compact score rows;
 * hide what the query cannot see; select the top-n of each row and map the
 * winners back to cells.
 *
 * Scores are raw FC dot products (fp32 accumulation). When a query's
 * logits carry a bias (mask values, ALiBi) its scores are put in logit
 * units, scale * score + bias, so the bias ranks as the softmax will weigh
 * it; a group-shared row, whose query is the group's sum, gets the sum of
 * the group's biases.
 */
#include "internal.h"

#include <float.h>
#include "label_cache.h"
#include "plan.h"

#define FASA__TILE_MASKED 0x80000000u

static float *score_row(const fasa_plan *p, const fasa__io *io, size_t i, size_t s)
{
    return (float *)(void *)(io->ws + p->ws.rows) +
           (fasa__round_q(p, i) * p->n_sets + s) * p->ws.row_stride;
}

/* Sets of KV head g: [first, first + count). */
static size_t head_sets(const fasa_plan *p, size_t g, size_t *first)
{
    if (p->mode == FASA_GQA_GROUP_SHARED) {
        *first = g;
        return 1;
    }
    *first = g * p->group;
    return p->group;
}

/* Query heads whose logits a set's score stands for: [h0, h0 + nh). */
static void set_heads(const fasa_plan *p, size_t s, size_t *h0, size_t *nh)
{
    *h0 = p->mode == FASA_GQA_GROUP_SHARED ? s * p->group : s;
    *nh = p->mode == FASA_GQA_GROUP_SHARED ? p->group : 1;
}

/* ------------------------------------------------------------ weights */

/* Key dims and weights of set s of query i, two per dominant FC in the
 * profile's order, dims from the pair layout: PER_HEAD q[i][s][dims];
 * GROUP_SHARED the sum over the group's heads in ascending head order in
 * fp32. Returns the dim count. */
static size_t set_weights(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                          uint32_t *dims, float *w)
{
    size_t n_fc, h0, nh;
    const uint32_t *fcs = fasa__profile_fcs(p->profile, p->layer, p->mode, s, &n_fc);
    set_heads(p, s, &h0, &nh);
    size_t n = 0;
    for (size_t f = 0; f < n_fc; f++) {
        fasa__fc_dims(p->profile->shape.pair_layout, p->head_dim, fcs[f], &dims[n], &dims[n + 1]);
        n += 2;
    }
    for (size_t c = 0; c < n; c++) {
        float acc = 0.0f;
        for (size_t h = h0; h < h0 + nh; h++)
            acc += fasa__load(fasa__row(&io->q, i, h), io->q.dtype, dims[c]);
        w[c] = acc;
    }
    return n;
}

/* Weight row of set s over the cache's FCs of its KV head (ascending,
 * n_u of them), zero where the set does not use an FC; the same sums as
 * set_weights. */
static void cache_weights(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                          const uint32_t *ufcs, size_t n_u, float *w_row)
{
    size_t n_set_fc, h0, nh;
    const uint32_t *fcs = fasa__profile_fcs(p->profile, p->layer, p->mode, s, &n_set_fc);
    set_heads(p, s, &h0, &nh);
    memset(w_row, 0, 2 * n_u * sizeof *w_row);
    size_t u = 0;
    for (size_t m = 0; m < n_set_fc; m++) {
        while (u < n_u && ufcs[u] < fcs[m]) /* always found: the fingerprint matched */
            u++;
        uint32_t d0, d1;
        fasa__fc_dims(io->cache->pair_layout, p->head_dim, fcs[m], &d0, &d1);
        float a = 0.0f, b = 0.0f;
        for (size_t h = h0; h < h0 + nh; h++) {
            const void *row = fasa__row(&io->q, i, h);
            a += fasa__load(row, io->q.dtype, d0);
            b += fasa__load(row, io->q.dtype, d1);
        }
        w_row[2 * u] = a;
        w_row[2 * u + 1] = b;
    }
}

/* ------------------------------------------------------ visibility */

/* Slope factor of set s's bias: the sum over its query heads of the ALiBi
 * slopes, or their count without slopes. */
static float set_slope(const fasa_plan *p, size_t s)
{
    size_t h0, nh;
    set_heads(p, s, &h0, &nh);
    if (p->slopes == NULL)
        return (float)nh;
    float a = 0.0f;
    for (size_t h = h0; h < h0 + nh; h++)
        a += p->slopes[h];
    return a;
}

/* The row of set s of query i, compact positions of listed tiles
 * [u0, u1): hide every cell the query cannot see (and cells >= limit,
 * which hold no labels) and, for a biased query, turn scores into logit
 * units (file comment). */
static void apply_visibility(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                             size_t u0, size_t u1, int biased, size_t limit)
{
    float *row = score_row(p, io, i, s);
    const float slope = set_slope(p, s);
    const void *mrow = fasa__mask_row(p, io, i);
    const int f16 = p->mask_dtype == FASA_DTYPE_F16;
    const int64_t qpos = (int64_t)fasa__qpos(p, i);
    fasa__run_iter it;
    fasa__run run;
    fasa__runs_begin(p, io, i, u0, u1, &it);
    size_t u = u0, pos = u0 * FASA_TILE; /* compact positions < pos are settled */
    while (fasa__runs_next(&it, &run)) {
        while (fasa__tile_of(p, io, i, u) != run.b / FASA_TILE) /* run.b's listed tile */
            u++;
        size_t cb = u * FASA_TILE + run.b % FASA_TILE, ce = cb + (run.e - run.b);
        for (size_t c = pos; c < cb; c++)
            row[c] = -INFINITY;
        /* Hidden cells hold -inf. A visible score that is NaN (from
         * non-finite keys) could rank below them: select checks its
         * winners and, if a hidden cell won, runs sanitize_row. */
        if (biased || run.masked || run.e > limit)
            for (size_t j = run.b, c = cb; j < run.e; j++, c++) {
                float b = 0.0f;
                if (j >= limit) {
                    row[c] = -INFINITY;
                    continue;
                }
                if (mrow != NULL)
                    b = f16 ? fasa__f16_to_f32(((const uint16_t *)mrow)[j]) : ((const float *)mrow)[j];
                else if (p->slopes != NULL)
                    b = (float)((int64_t)j - qpos);
                if (b == -INFINITY) {
                    row[c] = -INFINITY;
                    continue;
                }
                row[c] = biased ? row[c] * p->scale + slope * b : row[c];
            }
        pos = ce;
        u = (ce - 1) / FASA_TILE; /* later runs start in this tile or after it */
    }
    for (size_t c = pos; c < u1 * FASA_TILE; c++)
        row[c] = -INFINITY;
}

/* ------------------------------------------------------------ scoring */

/* Score listed tiles [u0, u1) of query i for every set of KV head g into
 * their rows, then hide what the query cannot see. */
static void score_tiles(const fasa_plan *p, const fasa__io *io, size_t i, size_t g, size_t u0,
                        size_t u1, size_t slot, const fasa__qvis *qv)
{
    char *sl = fasa__slot(p, io, slot);
    float *w = (float *)(void *)(sl + p->ws.s_w);
    uint32_t *dims = (uint32_t *)(void *)(sl + p->ws.s_dims);
    size_t s0, ns = head_sets(p, g, &s0);
    const fasa_label_cache *c = io->cache;
    /* cells below this hold keys or labels; beyond it nothing is selectable */
    const size_t limit = c != NULL && (size_t)c->n_tokens < p->t ? (size_t)c->n_tokens : p->t;
    size_t n_u = 0;
    if (c != NULL) {
        n_u = fasa__lc_n_fc(c)[g];
        for (size_t r = 0; r < ns; r++)
            cache_weights(p, io, i, s0 + r, fasa__lc_fcs(c, g), n_u, w + r * 2 * n_u);
    }
    for (size_t u = u0; u < u1;) {
        /* a run of consecutive listed tiles is one kernel call */
        uint32_t tl = fasa__tile_of(p, io, i, u);
        size_t v = u + 1;
        while (v < u1 && fasa__tile_of(p, io, i, v) == tl + (v - u))
            v++;
        size_t j0 = (size_t)tl * FASA_TILE, n = (v - u) * FASA_TILE;
        if (j0 + n > limit)
            n = limit > j0 ? limit - j0 : 0;
        if (n > 0) {
            if (c != NULL) {
                fasa__lc_score(c, p->kern, g, j0, n, w, ns, score_row(p, io, i, s0) + u * FASA_TILE,
                               p->ws.row_stride);
            } else {
                for (size_t r = 0; r < ns; r++) {
                    size_t nd = set_weights(p, io, i, s0 + r, dims, w);
                    p->kern->score_dims[io->k.dtype](fasa__row(&io->k, j0, g), io->k.token_stride,
                                                     n, dims, nd, w,
                                                     score_row(p, io, i, s0 + r) + u * FASA_TILE);
                }
            }
        }
        u = v;
    }
    for (size_t r = 0; r < ns; r++)
        apply_visibility(p, io, i, s0 + r, u0, u1, qv->biased, limit);
}

void fasa__tip_score_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t g,
                          size_t chunk, size_t slot)
{
    fasa__qvis tmp;
    const fasa__qvis *qv = fasa__qvis_of(p, io, i, &tmp);
    if (qv->dense || qv->n_vis == 0)
        return;
    size_t u0 = chunk * FASA__TIP_TILES;
    if (u0 >= qv->n_tiles)
        return;
    size_t u1 = u0 + FASA__TIP_TILES < qv->n_tiles ? u0 + FASA__TIP_TILES : qv->n_tiles;
    score_tiles(p, io, i, g, u0, u1, slot, qv);
}

/* ---------------------------------------------------------- selection */

/* Whether compact position c of query i is a visible cell (not hidden). */
static int compact_visible(const fasa_plan *p, const fasa__io *io, size_t i, size_t c)
{
    size_t cell = (size_t)fasa__tile_of(p, io, i, c / FASA_TILE) * FASA_TILE + c % FASA_TILE;
    if (cell >= p->t)
        return 0;
    if (p->vis_kind == FASA_VISIBLE_RANGES) {
        for (uint32_t r = io->range_first[i]; r < io->range_first[i + 1]; r++)
            if (cell >= io->ranges[2 * (size_t)r] && cell < io->ranges[2 * (size_t)r + 1])
                return 1;
        return 0;
    }
    const void *m = fasa__mask_row(p, io, i);
    return p->mask_dtype == FASA_DTYPE_F16 ? ((const uint16_t *)m)[cell] != 0xfc00u
                                           : ((const float *)m)[cell] != -INFINITY;
}

/* Rank every visible cell above every hidden one: visible NaN and -inf
 * scores become -FLT_MAX (the rare case of non-finite keys). */
static void sanitize_row(const fasa_plan *p, const fasa__io *io, size_t i, float *row, size_t len)
{
    for (size_t c = 0; c < len; c++)
        if (!(row[c] >= -FLT_MAX) && compact_visible(p, io, i, c))
            row[c] = -FLT_MAX;
}

void fasa__tip_select_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                           size_t slot)
{
    fasa__qvis tmp;
    const fasa__qvis *qv = fasa__qvis_of(p, io, i, &tmp);
    uint32_t *idx = fasa__set_idx(p, io, i, s);
    uint32_t *count = fasa__set_count(p, io, i, s);
    if (qv->dense && p->op == FASA_OP_FASA)
        return; /* attends every visible cell */
    float *row = score_row(p, io, i, s);
    size_t len = (size_t)qv->n_tiles * FASA_TILE, n = qv->n_sel, first = 0;
    if (p->vis_kind == FASA_VISIBLE_CAUSAL) {
        /* exactly the visible cells: the window's start to the query */
        first = (fasa__qpos(p, i) + 1 - qv->n_vis) % FASA_TILE;
        row += first;
        len = qv->n_vis;
    }
    void *scratch = fasa__slot(p, io, slot) + p->ws.s_topk;
    if (n > 0) {
        /* Selection thresholds of the previous step of the same sequence
         * are a speed hint (never a result): the caller's per-query hints,
         * else, for a single query, the label cache's per-set memo. */
        float none = NAN, *tau = &none;
        if (io->hints != NULL)
            tau = &io->hints[i * p->n_sets + s];
        else if (io->cache != NULL && p->n_q == 1)
            tau = &fasa__lc_memo(io->cache)[s];
        p->kern->topk_hint(row, len, n, idx, scratch, tau);
        /* A hidden cell can only win over a visible NaN score (non-finite
         * keys): then rank on the sanitized row. */
        for (size_t j = 0; p->vis_kind != FASA_VISIBLE_CAUSAL && j < n; j++)
            if (!(row[idx[j]] >= -FLT_MAX) && !compact_visible(p, io, i, idx[j])) {
                sanitize_row(p, io, i, row, len);
                p->kern->topk(row, len, n, idx, scratch);
                break;
            }
        /* compact positions -> cells (ascending either way) */
        if (p->vis_kind == FASA_VISIBLE_CAUSAL) {
            size_t lo = fasa__qpos(p, i) + 1 - qv->n_vis;
            for (size_t j = 0; lo != 0 && j < n; j++)
                idx[j] += (uint32_t)lo;
        } else {
            for (size_t j = 0; j < n; j++)
                idx[j] = fasa__tile_of(p, io, i, idx[j] / FASA_TILE) * FASA_TILE + idx[j] % FASA_TILE;
        }
    }
    *count = (uint32_t)n;
    if (io->scores != NULL && p->op == FASA_OP_PREDICT) {
        float *dst = io->scores + (i * p->n_sets + s) * p->t;
        for (size_t j = 0; j < p->t; j++)
            dst[j] = -INFINITY;
        const float *full = row - first; /* compact row from listed tile 0 */
        for (size_t u = 0; u < qv->n_tiles; u++) {
            size_t cell = (size_t)fasa__tile_of(p, io, i, u) * FASA_TILE;
            for (size_t j = 0; j < FASA_TILE && cell + j < p->t; j++)
                dst[cell + j] = full[u * FASA_TILE + j];
        }
        if (p->vis_kind == FASA_VISIBLE_CAUSAL) /* only the visible span counts */
            for (size_t j = 0; j < p->t; j++)
                if (j < fasa__qpos(p, i) + 1 - qv->n_vis || j > fasa__qpos(p, i))
                    dst[j] = -INFINITY;
    }
}

void fasa__tip_head_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t g, size_t slot)
{
    fasa__qvis tmp;
    const fasa__qvis *qv = fasa__qvis_of(p, io, i, &tmp);
    size_t s0, ns = head_sets(p, g, &s0);
    if (!(qv->dense && p->op == FASA_OP_FASA) && qv->n_vis > 0)
        /* one call over all chunks: scores are per cell, so this equals the
         * chunked items bit for bit */
        score_tiles(p, io, i, g, 0, qv->n_tiles, slot, qv);
    for (size_t r = 0; r < ns; r++)
        fasa__tip_select_item(p, io, i, s0 + r, slot);
}
