/*
 * plan.c - validate a fasa_attention_desc into a fasa_plan: shapes,
 * options, profile and label cache, the stages of the work and the
 * workspace layout. Nothing here reads the contents of data arrays (that is
 * fasa__bind_check's job at execution), so a plan can be made before the
 * data exists, as a runtime's graph needs.
 */
#include "internal.h"
#include "label_cache.h"
#include "plan.h"
#include "threading.h"

#define FASA__MAX_THREADS 1024
/* Per-query shared workspace of one round is kept under this many bytes
 * (TIP score rows dominate: n_sets x t floats per query). */
#define FASA__ROUND_BYTES ((size_t)64 << 20)
/* Queries up to which attention splits a set's chunks over items
 * (flash-decoding partials); larger batches fold each set in one item. */
#define FASA__PART_MAX_Q 16

static size_t b64(size_t n) { return fasa__align_up(n, 64); }

static int op_ok(int op) { return op >= FASA_OP_DENSE && op <= FASA_OP_FASA; }
static int mode_ok(int m) { return m == FASA_GQA_PER_HEAD || m == FASA_GQA_GROUP_SHARED; }

static fasa_status check_shapes(fasa_ctx *ctx, const fasa_attention_desc *d, fasa_plan *p)
{
    fasa_status st;
    const int need_kv = p->op != FASA_OP_PREDICT;
    if ((st = fasa__check_view_ex(ctx, d->q, "q", 0)) != FASA_OK)
        return st;
    /* PREDICT from a label cache may go without k: its cells are the
     * cache's tokens. */
    if (d->k == NULL && p->op == FASA_OP_PREDICT && d->label_cache != NULL) {
        p->t = (size_t)d->label_cache->n_tokens;
        p->n_kv_heads = (size_t)d->label_cache->n_kv_heads;
        if (p->t == 0)
            return fasa__fail(ctx, FASA_ERR_BAD_STATE, "label_cache: holds no tokens");
    } else {
        if ((st = fasa__check_view_ex(ctx, d->k, "k", 0)) != FASA_OK)
            return st;
        p->k = *d->k;
        p->t = d->k->n_tokens;
        p->n_kv_heads = d->k->n_heads;
        if (d->k->head_dim != d->q->head_dim)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "k: head_dim %zu != q head_dim %zu",
                              d->k->head_dim, d->q->head_dim);
    }
    p->q = *d->q;
    p->n_q = d->q->n_tokens;
    p->n_q_heads = d->q->n_heads;
    p->head_dim = d->q->head_dim;
    if (p->n_q_heads % p->n_kv_heads != 0)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "k: n_heads (Hkv) %zu does not divide q n_heads (Hq) %zu", p->n_kv_heads,
                          p->n_q_heads);
    p->group = p->n_q_heads / p->n_kv_heads;
    if (p->t > UINT32_MAX - FASA_TILE)
        return fasa__fail(ctx, FASA_ERR_OVERFLOW, "k: n_tokens %zu exceeds the uint32 cell range",
                          p->t);
    if (need_kv) {
        if ((st = fasa__check_view_ex(ctx, d->v, "v", 0)) != FASA_OK ||
            (st = fasa__check_view_ex(ctx, d->out, "out", 0)) != FASA_OK)
            return st;
        if (d->v->n_tokens != p->t)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "v: n_tokens %zu != k n_tokens %zu",
                              d->v->n_tokens, p->t);
        if (d->v->n_heads != p->n_kv_heads)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "v: n_heads %zu != k n_heads %zu",
                              d->v->n_heads, p->n_kv_heads);
        if (d->out->n_tokens != p->n_q || d->out->n_heads != p->n_q_heads ||
            d->out->head_dim != d->v->head_dim)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                              "out: shape [%zu][%zu][%zu] != [n_q %zu][Hq %zu][head_dim_v %zu]",
                              d->out->n_tokens, d->out->n_heads, d->out->head_dim, p->n_q,
                              p->n_q_heads, d->v->head_dim);
        p->v = *d->v;
        p->out = *d->out;
        p->has_v = p->has_out = 1;
        p->head_dim_v = d->v->head_dim;
    }
    return FASA_OK;
}

static fasa_status check_visibility(fasa_ctx *ctx, const fasa_attention_desc *d, fasa_plan *p)
{
    fasa_status st;
    const fasa_visibility *v = d->visibility;
    p->vis_kind = FASA_VISIBLE_CAUSAL;
    if (v != NULL) {
        if ((st = fasa__struct_ok(ctx, v, v->struct_size, sizeof *v, "visibility")) != FASA_OK)
            return st;
        p->vis_kind = v->kind;
        switch (v->kind) {
        case FASA_VISIBLE_CAUSAL: break;
        case FASA_VISIBLE_RANGES:
            p->ranges = v->ranges;
            p->range_first = v->range_first;
            break;
        case FASA_VISIBLE_MASK:
            if (v->mask_dtype != FASA_DTYPE_F32 && v->mask_dtype != FASA_DTYPE_F16)
                return fasa__fail(ctx, FASA_ERR_BAD_DTYPE,
                                  "visibility: mask_dtype %d is not F32 or F16", (int)v->mask_dtype);
            if (v->mask_cells < p->t)
                return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                                  "visibility: mask rows of %zu cells are shorter than the %zu "
                                  "cells of k",
                                  v->mask_cells, p->t);
            if (p->n_q > 1 && v->mask_stride < v->mask_cells)
                return fasa__fail(ctx, FASA_ERR_BAD_STRIDE,
                                  "visibility: mask_stride %zu < mask_cells %zu", v->mask_stride,
                                  v->mask_cells);
            {
                size_t ext;
                if (!fasa__mul_ok(p->n_q - 1, v->mask_stride, &ext) ||
                    !fasa__add_ok(ext, v->mask_cells, &ext) || ext > SIZE_MAX / 4)
                    return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                                      "visibility: %zu mask rows of stride %zu overflow", p->n_q,
                                      v->mask_stride);
            }
            p->mask = v->mask;
            p->mask_dtype = v->mask_dtype;
            p->mask_stride = v->mask_stride;
            p->mask_cells = v->mask_cells;
            break;
        default:
            return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT,
                              "visibility: kind %d is not a fasa_visibility_kind", (int)v->kind);
        }
    }
    if (p->vis_kind == FASA_VISIBLE_CAUSAL && p->n_q > p->t)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "q: n_tokens %zu > k n_tokens %zu (causal queries are the last cells)",
                          p->n_q, p->t);
    return FASA_OK;
}

static fasa_status check_params(fasa_ctx *ctx, const fasa_attention_desc *d, fasa_plan *p)
{
    fasa_status st;
    const fasa_attn_params *a = d->params;
    p->scale = 1.0f / sqrtf((float)p->head_dim);
    if (a == NULL)
        return FASA_OK;
    if ((st = fasa__struct_ok(ctx, a, a->struct_size, sizeof *a, "params")) != FASA_OK)
        return st;
    if (!isfinite(a->scale))
        return fasa__fail(ctx, FASA_ERR_NONFINITE, "params: scale %g is not finite",
                          (double)a->scale);
    if (!isfinite(a->softcap) || a->softcap < 0.0f)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT,
                          "params: softcap %g must be 0 (off) or finite and > 0",
                          (double)a->softcap);
    if (a->reserved != 0)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "params: reserved is %u, must be 0",
                          (unsigned)a->reserved);
    if (a->window != 0 && p->vis_kind != FASA_VISIBLE_CAUSAL)
        return fasa__fail(ctx, FASA_ERR_UNSUPPORTED,
                          "params: window %u needs CAUSAL visibility (express it in the ranges "
                          "or the mask)",
                          (unsigned)a->window);
    if (a->alibi_slopes != NULL && p->vis_kind == FASA_VISIBLE_RANGES)
        return fasa__fail(ctx, FASA_ERR_UNSUPPORTED,
                          "params: ALiBi slopes need CAUSAL or MASK visibility (positions)");
    if (a->scale != 0.0f)
        p->scale = a->scale;
    p->softcap = a->softcap;
    p->window = a->window;
    p->sinks = a->sinks;
    p->slopes = a->alibi_slopes;
    if (p->op == FASA_OP_PREDICT && (p->sinks != NULL))
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT,
                          "params: sinks have no meaning for PREDICT (no softmax)");
    return FASA_OK;
}

/* Profile, layer, mode, budget, label cache (PREDICT, FASA). */
static fasa_status check_fasa(fasa_ctx *ctx, const fasa_attention_desc *d, fasa_plan *p)
{
    fasa_status st;
    if (d->profile == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "profile is NULL");
    if ((st = fasa__profile_check(ctx, d->profile, d->layer, p->mode, p->n_q_heads, p->n_kv_heads,
                                  p->head_dim)) != FASA_OK)
        return st;
    if (!(d->budget > 0.0) || !isfinite(d->budget))
        return fasa__fail(ctx, FASA_ERR_BAD_BUDGET, "budget %g must be finite and > 0", d->budget);
    p->profile = d->profile;
    p->layer = d->layer;
    p->budget = d->budget;
    p->budgets = d->budgets;
    p->hints = d->select_hints;
    p->cache = d->label_cache;
    if (p->cache != NULL &&
        (st = fasa__plan_check_cache(ctx, p, p->cache, "label_cache")) != FASA_OK)
        return st;
    return FASA_OK;
}

fasa_status fasa__plan_check_cache(fasa_ctx *ctx, const fasa_plan *p, const fasa_label_cache *c,
                                   const char *name)
{
    if (!fasa__lc_valid(c))
        return fasa__fail(ctx, FASA_ERR_BAD_STATE, "%s: not an initialized label cache", name);
    if (c->layer != p->layer || c->mode != (int32_t)p->mode ||
        c->n_q_heads != p->profile->shape.n_q_heads || c->head_dim != p->profile->shape.head_dim ||
        c->fingerprint != fasa__lc_fingerprint(p->profile, p->layer, p->mode))
        return fasa__fail(ctx, FASA_ERR_PROFILE_MISMATCH,
                          "%s: made for another profile, layer (%llu) or mode (%d)", name,
                          (unsigned long long)c->layer, (int)c->mode);
    if (c->capacity < p->t)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "%s: capacity %llu < the %zu cells of k",
                          name, (unsigned long long)c->capacity, p->t);
    /* CAUSAL sees every cell below t: all must hold labels. */
    if (p->vis_kind == FASA_VISIBLE_CAUSAL && c->n_tokens < p->t)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "%s holds %llu tokens but k has %zu", name,
                          (unsigned long long)c->n_tokens, p->t);
    return FASA_OK;
}

/* ---------------------------------------------------------- the stages */

/* Whether some query may end up attending densely (its visible count
 * within its budget); CAUSAL counts are known now. */
static int may_dense(const fasa_plan *p)
{
    if (p->op == FASA_OP_DENSE)
        return 1;
    if (p->op != FASA_OP_FASA)
        return 0;
    if (p->vis_kind != FASA_VISIBLE_CAUSAL || p->budgets != NULL)
        return 1;
    size_t lo = p->window != 0 && p->t - p->n_q + 1 > p->window ? p->t - p->n_q + 1 - p->window : 0;
    size_t vis = p->t - p->n_q + 1 - lo; /* the first query sees the fewest cells */
    if (p->window != 0 && vis > p->window)
        vis = p->window;
    return fasa__budget_count(p->budget, vis) >= vis;
}

static void add_stage(fasa_plan *p, uint32_t kind, size_t items)
{
    p->stages[p->n_stages].kind = kind;
    p->stages[p->n_stages].n_items = items;
    p->n_stages++;
}

/* Work split and workspace layout. Fails only on size overflow. */
static fasa_status plan_layout(fasa_ctx *ctx, fasa_plan *p)
{
    const size_t H = p->n_q_heads, G = p->group, d = p->head_dim, dv = p->head_dim_v;
    const int tip = p->op == FASA_OP_PREDICT || p->op == FASA_OP_FASA;
    const int attn = p->op != FASA_OP_PREDICT;
    const int vis_stage = p->vis_kind != FASA_VISIBLE_CAUSAL && p->op != FASA_OP_SPARSE;
    const int dense = attn && may_dense(p);
    const int sparse = p->op == FASA_OP_SPARSE || (p->op == FASA_OP_FASA && !p->dense_only);

    p->max_tiles = fasa__n_tiles(p->t);
    p->n_sets = p->mode == FASA_GQA_PER_HEAD ? H : p->n_kv_heads;
    if (p->op == FASA_OP_DENSE || p->dense_only)
        p->n_sets = p->n_kv_heads;
    if (p->op == FASA_OP_SPARSE)
        p->max_sel = p->index_stride < p->t ? p->index_stride : p->t;

    /* attention chunks and items */
    size_t ch_dense = dense ? fasa__n_chunks(p->max_tiles, FASA__KV_TILES) : 0;
    size_t ch_sparse = sparse ? fasa__n_chunks(p->max_sel, FASA_KV_CHUNK) : 0;
    size_t n_chunks = ch_dense > ch_sparse ? ch_dense : ch_sparse;
    /* Partials (items of one chunk) only pay with several threads: for
     * dense queries, whose chunk items keep every head in the packed order
     * below, and for sets too few to share out whole. A split never
     * changes the arithmetic. */
    size_t whole_items = p->n_q * (sparse && p->n_sets > p->n_kv_heads ? p->n_sets : p->n_kv_heads);
    const int partials = attn && n_chunks > 1 && p->n_q <= FASA__PART_MAX_Q && p->n_threads > 1 &&
                         (dense || whole_items < 4 * p->n_threads);
    p->n_chunks = partials ? n_chunks : 0;
    /* Query blocks share K/V in a prefill; a decode batch (up to
     * FASA__PART_MAX_Q queries, often of different sequences) goes query
     * by query, each item over all its heads. Prefill (more queries than
     * a partial split takes): dense queries go through attn_tile, a block
     * of queries per item sharing each converted K/V tile. Larger blocks
     * convert and read each K/V tile once for more rows (t = 16k, 512
     * queries, G = 4, one thread: 64 -> 128 -> 256 -> 512 rows measured
     * 1.09x, 1.09x, 1.06x faster each), as long as enough items are left
     * for many threads; the block follows the shape only, never the
     * thread count. */
    p->tiled = attn && dense && !partials && p->n_q > FASA__PART_MAX_Q &&
               !fasa__dtype_quant(p->k.dtype) && !fasa__dtype_quant(p->v.dtype); /* f32/f16/bf16 tiles */
    p->fold_qb = p->op == FASA_OP_DENSE && !partials && p->n_q > FASA__PART_MAX_Q ? FASA_Q_BLOCK : 1;
    if (p->tiled && p->fold_qb > 1)
        while (2 * p->fold_qb * G <= FASA__TILE_ROWS &&
               fasa__n_chunks(p->n_q, 2 * p->fold_qb) * p->n_kv_heads >= FASA__TILE_ITEMS)
            p->fold_qb *= 2;
    /* A dense item covers dense_per KV heads of one query and chunk (the
     * packed order prefetches all heads of a token together): as many as
     * leave about two items per thread. */
    p->dense_per = 1;
    if (dense && p->fold_qb == 1 && !p->tiled) { /* a tiled item is one KV head */
        size_t per_head = p->n_q * (partials ? n_chunks : 1);
        size_t want = p->n_threads == 1 ? 1 : (2 * p->n_threads + per_head - 1) / per_head;
        want = want < 1 ? 1 : want > p->n_kv_heads ? p->n_kv_heads : want;
        p->dense_per = (p->n_kv_heads + want - 1) / want;
    }
    size_t dense_groups = dense ? (p->n_kv_heads + p->dense_per - 1) / p->dense_per : 0;
    p->attn_sets = sparse && p->n_sets > dense_groups ? p->n_sets : dense_groups;

    /* per-query shared bytes -> queries per round */
    /* +16: rows a power of two apart would share cache sets */
    size_t row_stride = fasa__align_up(p->max_tiles * FASA_TILE, 16) + 16;
    size_t per_q = 0, rows_q = 0, part_q = 0, tiles_q = 0, sets_q = 0;
    if (vis_stage)
        tiles_q = b64(p->max_tiles * sizeof(uint32_t));
    if (tip)
        rows_q = b64(p->n_sets * row_stride * sizeof(float));
    if (p->own_sets)
        sets_q = b64(p->n_sets * p->max_sel * sizeof(uint32_t));
    if (partials)
        part_q = 2 * b64(n_chunks * H * sizeof(float)) + b64(n_chunks * H * dv * sizeof(float));
    if (!fasa__add_ok(tiles_q, rows_q, &per_q) || !fasa__add_ok(per_q, sets_q, &per_q) ||
        !fasa__add_ok(per_q, part_q, &per_q))
        goto overflow;
    p->qb = p->n_q;
    if (per_q > 0 && per_q * p->n_q > FASA__ROUND_BYTES) {
        p->qb = FASA__ROUND_BYTES / per_q;
        if (p->qb < 1)
            p->qb = 1;
        const size_t align = p->fold_qb > FASA_Q_BLOCK ? p->fold_qb : FASA_Q_BLOCK;
        if (p->qb >= align)
            p->qb -= p->qb % align;
    }
    p->n_rounds = fasa__n_chunks(p->n_q, p->qb);

    /* stages of one round (items are counted for a whole round) */
    const size_t qb = p->qb;
    p->n_stages = 0;
    if (vis_stage)
        add_stage(p, FASA__ST_VIS, qb);
    if (tip) {
        size_t tip_chunks = fasa__n_chunks(p->max_tiles, FASA__TIP_TILES);
        if (qb * p->n_kv_heads >= 2 * p->n_threads || tip_chunks == 1) {
            add_stage(p, FASA__ST_TIP_HEAD, qb * p->n_kv_heads);
        } else {
            add_stage(p, FASA__ST_TIP_SCORE, qb * p->n_kv_heads * tip_chunks);
            add_stage(p, FASA__ST_TIP_SELECT, qb * p->n_sets);
        }
    }
    if (attn) {
        if (partials) {
            add_stage(p, FASA__ST_ATTN_PART, qb * p->attn_sets * n_chunks);
            add_stage(p, FASA__ST_ATTN_MERGE, qb * p->attn_sets);
        } else {
            add_stage(p, FASA__ST_ATTN_FOLD, fasa__n_chunks(qb, p->fold_qb) * p->attn_sets);
        }
    }
    if (!fasa__mul_ok(p->n_stages, p->n_rounds, &p->n_phases) || p->n_phases > UINT32_MAX)
        goto overflow;

    /* shared regions of one round */
    fasa__ws_layout *L = &p->ws;
    size_t off = 0, b;
    memset(L, 0, sizeof *L);
    L->vis = off;
    off += vis_stage ? b64(qb * sizeof(fasa__qvis)) : 0;
    L->tiles = off;
    if (!fasa__mul_ok(qb, tiles_q, &b) || !fasa__add_ok(off, b, &off))
        goto overflow;
    L->sets = off;
    if (!fasa__mul_ok(qb, sets_q, &b) || !fasa__add_ok(off, b, &off))
        goto overflow;
    L->counts = off;
    off += p->own_sets ? b64(qb * p->n_sets * sizeof(uint32_t)) : 0;
    L->rows = off;
    L->row_stride = row_stride;
    if (!fasa__mul_ok(qb, rows_q, &b) || !fasa__add_ok(off, b, &off))
        goto overflow;
    L->part_m = off;
    off += partials ? qb * b64(n_chunks * H * sizeof(float)) : 0;
    L->part_l = off;
    off += partials ? qb * b64(n_chunks * H * sizeof(float)) : 0;
    L->part_acc = off;
    if (partials && (!fasa__mul_ok(qb, b64(n_chunks * H * dv * sizeof(float)), &b) ||
                     !fasa__add_ok(off, b, &off)))
        goto overflow;
    L->slot0 = off;

    /* one thread's slot */
    /* a fold item keeps fold_qb units of up to dense_per * G rows */
    size_t rows = p->fold_qb * p->dense_per * G;
    size_t s = 0;
    L->s_q = s;
    s += b64(rows * d * sizeof(float));
    L->s_m = s;
    s += b64(rows * sizeof(float));
    L->s_l = s;
    s += b64(rows * sizeof(float));
    L->s_acc = s;
    s += attn ? b64(rows * dv * sizeof(float)) : 0;
    L->s_cm = s;
    s += b64(p->dense_per * G * sizeof(float));
    L->s_cl = s;
    s += b64(p->dense_per * G * sizeof(float));
    L->s_cacc = s;
    s += attn ? b64(p->dense_per * G * dv * sizeof(float)) : 0;
    L->s_w = s;
    s += tip ? b64(G * d * sizeof(float)) : 0;
    L->s_dims = s;
    s += tip ? b64(G * d * sizeof(uint32_t)) : 0;
    L->s_topk = s;
    if (tip) {
        size_t tk = fasa__topk_scratch_size(p->max_tiles * FASA_TILE, p->max_sel);
        if (tk == SIZE_MAX || !fasa__add_ok(s, b64(tk), &s))
            goto overflow;
    }
    L->s_tile = s;
    if (p->tiled) {
        s += b64(fasa__attn_tile_scratch_size(p->fold_qb * G, d, dv));
        L->s_bound = s;
        s += b64(3 * p->fold_qb * sizeof(uint32_t));
        L->s_rmask = s;
        if (p->vis_kind == FASA_VISIBLE_RANGES)
            s += b64(p->fold_qb * FASA__RANGE_PIECE * sizeof(float));
    }
    L->slot_bytes = b64(s);
    if (!fasa__mul_ok(L->slot_bytes, p->n_threads, &b) || !fasa__add_ok(off, b, &off) ||
        !fasa__add_ok(off, 64, &L->total))
        goto overflow;
    return FASA_OK;
overflow:
    return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                      "workspace for %zu queries, %zu cells, Hq %zu, head_dim %zu/%zu and %zu "
                      "threads overflows size_t",
                      p->n_q, p->t, H, d, dv, p->n_threads);
}

fasa_status fasa__plan_make(fasa_ctx *ctx, const char *fn, const fasa_attention_desc *d,
                            fasa_plan *p)
{
    fasa_status st;
    (void)fn;
    if (d == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "desc is NULL");
    if ((st = fasa__struct_ok(ctx, d, d->struct_size, sizeof *d, "desc")) != FASA_OK)
        return st;
    if (!op_ok(d->op))
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "op %d is not a fasa_op", (int)d->op);
    if (d->op != FASA_OP_DENSE && !mode_ok(d->mode))
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "mode %d is not a fasa_gqa_mode",
                          (int)d->mode);
    if (d->reserved != 0)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "reserved is %d, must be 0",
                          (int)d->reserved);
    memset(p, 0, sizeof *p);
    p->magic = FASA__PLAN_MAGIC;
    p->fn = fn;
    p->op = d->op;
    p->mode = d->op == FASA_OP_DENSE ? FASA_GQA_GROUP_SHARED : d->mode;
    if ((st = check_shapes(ctx, d, p)) != FASA_OK || (st = check_visibility(ctx, d, p)) != FASA_OK ||
        (st = check_params(ctx, d, p)) != FASA_OK)
        return st;
    p->lse = d->lse;

    if (d->n_threads < 0 || d->n_threads > FASA__MAX_THREADS)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "n_threads %d is not in 0..%d",
                          (int)d->n_threads, FASA__MAX_THREADS);
    p->n_threads = d->n_threads > 0 ? (size_t)d->n_threads : (size_t)fasa__threads(ctx);
    p->kern = fasa__kernels_get(fasa__level(ctx));

    if (p->op == FASA_OP_PREDICT || p->op == FASA_OP_FASA) {
        if ((st = check_fasa(ctx, d, p)) != FASA_OK)
            return st;
        p->tip_from_cache = p->cache != NULL;
        /* cells a set can hold: the budget's count at the most cells a
         * query can see (budgets[i] may not exceed budget: checked with
         * the data) */
        p->max_sel = fasa__budget_count(d->budget, p->t);
    }
    if (p->op == FASA_OP_FASA) {
        p->dense_only = fasa__profile_is_dense(p->profile, p->layer);
        if (!p->dense_only && p->vis_kind == FASA_VISIBLE_CAUSAL && p->budgets == NULL) {
            /* every query within budget: exactly DENSE */
            int all = 1;
            for (size_t i = 0; i < p->n_q && all; i++) {
                size_t end = fasa__qpos(p, i) + 1;
                size_t w0 = p->window != 0 && end > p->window ? end - p->window : 0;
                all = fasa__budget_count(p->budget, end - w0) >= end - w0;
            }
            p->dense_only = all;
        }
        if (p->dense_only)
            p->op = FASA_OP_DENSE; /* same arithmetic, no TIP */
        else
            p->own_sets = 1;
    }
    if (p->op == FASA_OP_PREDICT) {
        if (d->index_stride < p->max_sel)
            return fasa__fail(ctx, FASA_ERR_BUFFER_TOO_SMALL,
                              "index_stride %zu < %zu tokens selected for budget %g at %zu cells",
                              d->index_stride, p->max_sel, d->budget, p->t);
        p->index_stride = d->index_stride;
        p->indices = d->indices;
        p->counts = d->counts;
        p->scores = d->scores;
    }
    if (p->op == FASA_OP_SPARSE) {
        p->index_stride = d->index_stride;
        p->indices = d->indices;
        p->counts = d->counts;
    }
    if (p->op == FASA_OP_PREDICT || p->op == FASA_OP_SPARSE) {
        size_t sets, b;
        size_t n_sets = p->mode == FASA_GQA_PER_HEAD ? p->n_q_heads : p->n_kv_heads;
        if (!fasa__mul_ok(p->n_q, n_sets, &sets) || !fasa__mul_ok(sets, p->index_stride, &b) ||
            !fasa__mul_ok(b, sizeof(uint32_t), &b) || !fasa__mul_ok(sets, p->t, &b) ||
            !fasa__mul_ok(b, sizeof(float), &b))
            return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                              "outputs of %zu queries x %zu sets x index_stride %zu / %zu cells "
                              "overflow",
                              p->n_q, n_sets, p->index_stride, p->t);
    }
    return plan_layout(ctx, p);
}
