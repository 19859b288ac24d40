/*
 * exec.c - running plans: binding the data of one execution (fasa__bind),
 * checking it once (fasa__bind_check), and the phases of items on the
 * library's OpenMP threads (fasa__run_all) or on the caller's threads
 * (fasa_execute_share). The public plan and attention calls live here too:
 * every attention entry point of the library is validate (plan.c) ->
 * bind -> check -> run.
 */
#include "internal.h"
#include "label_cache.h"
#include "plan.h"
#include "threading.h"

/* ----------------------------------------------------------------- bind */

static const void *pick(const void *given, const void *planned)
{
    return given != NULL ? given : planned;
}

/* The pointers of one execution, without any check but presence. */
static fasa_status bind_pointers(fasa_ctx *ctx, const fasa_plan *p, const fasa_attention_data *d,
                                 void *workspace, fasa__io *io)
{
    static const fasa_attention_data none = {sizeof(fasa_attention_data), 0, 0, 0, 0, 0, 0, 0, 0,
                                             0, 0, 0, 0, 0, 0};
    fasa_status st;
    if (d == NULL)
        d = &none;
    else if ((st = fasa__struct_ok(ctx, d, d->struct_size, sizeof *d, "data")) != FASA_OK)
        return st;
    memset(io, 0, sizeof *io);
    io->q = p->q;
    io->q.data = (void *)(uintptr_t)pick(d->q, p->q.data);
    io->k = p->k;
    io->k.data = (void *)(uintptr_t)pick(d->k, p->k.data);
    io->v = p->v;
    io->v.data = (void *)(uintptr_t)pick(d->v, p->v.data);
    io->out = p->out;
    io->out.data = (void *)(uintptr_t)pick(d->out, p->out.data);
    io->lse = (float *)(uintptr_t)pick(d->lse, p->lse);
    io->mask = pick(d->mask, p->mask);
    io->ranges = (const uint32_t *)pick(d->ranges, p->ranges);
    io->range_first = (const uint32_t *)pick(d->range_first, p->range_first);
    io->budgets = (const float *)pick(d->budgets, p->budgets);
    io->hints = (float *)(uintptr_t)pick(d->select_hints, p->hints);
    io->indices = (uint32_t *)(uintptr_t)pick(d->indices, p->indices);
    io->counts = (uint32_t *)(uintptr_t)pick(d->counts, p->counts);
    io->scores = (float *)(uintptr_t)pick(d->scores, p->scores);
    io->cache = (fasa_label_cache *)(uintptr_t)pick(d->label_cache, p->cache);
    io->ws = workspace != NULL ? (char *)fasa__align_up((uintptr_t)workspace, 64) : NULL;

    const int tip = p->op == FASA_OP_PREDICT || p->op == FASA_OP_FASA;
    const char *missing = NULL;
    if (io->q.data == NULL)
        missing = "q data";
    else if (p->k.struct_size != 0 && io->k.data == NULL && (p->op != FASA_OP_PREDICT || !io->cache))
        missing = "k data";
    else if (p->has_v && io->v.data == NULL)
        missing = "v data";
    else if (p->has_out && io->out.data == NULL)
        missing = "out data";
    else if (p->vis_kind == FASA_VISIBLE_MASK && io->mask == NULL)
        missing = "mask (visibility MASK)";
    else if (p->vis_kind == FASA_VISIBLE_RANGES && (io->ranges == NULL || io->range_first == NULL))
        missing = "ranges / range_first (visibility RANGES)";
    else if ((p->op == FASA_OP_PREDICT || p->op == FASA_OP_SPARSE) &&
             (io->indices == NULL || io->counts == NULL))
        missing = io->indices == NULL ? "indices" : "counts";
    else if (tip && p->k.struct_size == 0 && io->cache == NULL)
        missing = "label_cache";
    else if (io->ws == NULL && p->ws.total > 64)
        missing = "workspace";
    if (missing != NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "%s is NULL", missing);
    return FASA_OK;
}

/* Byte spans of one execution's memory, for the aliasing rule. */
typedef struct span {
    const void *p;
    size_t bytes;
    const char *name;
    int written;
} span;

static size_t view_bytes(const fasa_view *v)
{
    const char *a, *b;
    if (v->struct_size == 0 || v->data == NULL)
        return 0;
    fasa__view_span(v, &a, &b);
    return (size_t)(b - a);
}

fasa_status fasa__bind(fasa_ctx *ctx, const fasa_plan *p, const fasa_attention_data *data,
                       void *workspace, size_t workspace_size, fasa__io *io)
{
    fasa_status st;
    if ((st = bind_pointers(ctx, p, data, workspace, io)) != FASA_OK)
        return st;
    if (workspace_size < p->ws.total)
        return fasa__fail(ctx, FASA_ERR_WORKSPACE_TOO_SMALL,
                          "workspace_size %zu < %zu (the *_workspace_size query)", workspace_size,
                          p->ws.total);

    const size_t sets = p->n_q * (p->mode == FASA_GQA_PER_HEAD ? p->n_q_heads : p->n_kv_heads);
    const int user_sets = p->op == FASA_OP_PREDICT || p->op == FASA_OP_SPARSE;
    const int tip = p->op == FASA_OP_PREDICT || p->op == FASA_OP_FASA;
    span sp[12];
    size_t n = 0;
    sp[n++] = (span){io->q.data, view_bytes(&io->q), "q", 0};
    sp[n++] = (span){io->k.data, view_bytes(&io->k), "k", 0};
    sp[n++] = (span){io->v.data, view_bytes(&io->v), "v", 0};
    sp[n++] = (span){io->out.data, view_bytes(&io->out), "out", 1};
    sp[n++] = (span){io->lse, p->has_out && io->lse ? p->n_q * p->n_q_heads * sizeof(float) : 0,
                     "lse", 1};
    if (io->mask != NULL)
        sp[n++] = (span){io->mask,
                         ((p->n_q - 1) * p->mask_stride + p->mask_cells) *
                             fasa__dtype_size(p->mask_dtype),
                         "mask", 0};
    if (user_sets) {
        sp[n++] = (span){io->indices, sets * p->index_stride * sizeof(uint32_t), "indices",
                         p->op == FASA_OP_PREDICT};
        sp[n++] = (span){io->counts, sets * sizeof(uint32_t), "counts", p->op == FASA_OP_PREDICT};
        if (p->op == FASA_OP_PREDICT && io->scores != NULL)
            sp[n++] = (span){io->scores, sets * p->t * sizeof(float), "scores", 1};
    }
    if (tip && io->hints != NULL)
        sp[n++] = (span){io->hints, sets * sizeof(float), "select_hints", 1};
    if (tip && io->cache != NULL) /* TIP updates the cache's threshold memo */
        sp[n++] = (span){io->cache, (size_t)io->cache->total_bytes, "label_cache", 1};
    sp[n++] = (span){workspace, workspace_size, "workspace", 1};
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++)
            if (a != b && sp[a].written && (b > a || !sp[b].written) &&
                fasa__span_overlap(sp[a].p, sp[a].bytes, sp[b].p, sp[b].bytes))
                return fasa__fail(ctx, FASA_ERR_ALIASING, "%s overlaps %s", sp[a].name,
                                  sp[b].name);
    return FASA_OK;
}

/* ------------------------------------------------------- data checks */

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

static fasa_status check_ranges(fasa_ctx *ctx, const fasa_plan *p, const fasa__io *io)
{
    for (size_t i = 0; i < p->n_q; i++) {
        uint32_t r0 = io->range_first[i], r1 = io->range_first[i + 1];
        if (r1 < r0)
            return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                              "visibility: range_first[%zu] = %u > range_first[%zu] = %u", i, r0,
                              i + 1, r1);
        uint32_t prev = 0;
        for (uint32_t r = r0; r < r1; r++) {
            uint32_t b = io->ranges[2 * (size_t)r], e = io->ranges[2 * (size_t)r + 1];
            if (b >= e || e > p->t)
                return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                  "visibility: query %zu range %u [%u, %u) is empty or beyond the "
                                  "%zu cells",
                                  i, r, b, e, p->t);
            if (r > r0 && b < prev)
                return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                  "visibility: query %zu range %u [%u, %u) overlaps or precedes "
                                  "the one before (ending at %u)",
                                  i, r, b, e, prev);
            prev = e;
        }
    }
    return FASA_OK;
}

/* Cell j visible to query i (for index sets given by the caller). */
static int cell_visible(const fasa_plan *p, const fasa__io *io, size_t i, uint32_t j)
{
    if (p->vis_kind == FASA_VISIBLE_CAUSAL) {
        size_t end = fasa__qpos(p, i) + 1;
        size_t lo = p->window != 0 && end > p->window ? end - p->window : 0;
        return j >= lo && j < end;
    }
    if (p->vis_kind == FASA_VISIBLE_RANGES) {
        for (uint32_t r = io->range_first[i]; r < io->range_first[i + 1]; r++)
            if (j >= io->ranges[2 * (size_t)r] && j < io->ranges[2 * (size_t)r + 1])
                return 1;
        return 0;
    }
    return j < p->t; /* MASK: hidden cells get no weight */
}

static fasa_status check_sets(fasa_ctx *ctx, const fasa_plan *p, const fasa__io *io)
{
    for (size_t i = 0; i < p->n_q; i++)
        for (size_t s = 0; s < p->n_sets; s++) {
            size_t set = i * p->n_sets + s, n = io->counts[set];
            if (n > p->index_stride)
                return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                  "counts[%zu] = %zu > index_stride %zu (query %zu, set %zu)", set,
                                  n, p->index_stride, i, s);
            const uint32_t *idx = io->indices + set * p->index_stride;
            for (size_t j = 0; j < n; j++) {
                if (!cell_visible(p, io, i, idx[j]))
                    return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                      "query %zu set %zu: index %u at position %zu is not visible "
                                      "to the query (t_i %zu)",
                                      i, s, (unsigned)idx[j], j,
                                      p->vis_kind == FASA_VISIBLE_CAUSAL ? fasa__qpos(p, i) + 1
                                                                         : p->t);
                if (j > 0 && idx[j] <= idx[j - 1])
                    return fasa__fail(ctx, FASA_ERR_BAD_INDEX,
                                      "query %zu set %zu: indices not strictly ascending at "
                                      "position %zu (%u after %u)",
                                      i, s, j, (unsigned)idx[j], (unsigned)idx[j - 1]);
            }
        }
    return FASA_OK;
}

static fasa_status check_finite_array(fasa_ctx *ctx, const float *a, size_t n, const char *name)
{
    for (size_t i = 0; a != NULL && i < n; i++)
        if (!isfinite(a[i]))
            return fasa__fail(ctx, FASA_ERR_NONFINITE, "params: %s[%zu] = %g is not finite", name,
                              i, (double)a[i]);
    return FASA_OK;
}

fasa_status fasa__bind_check(fasa_ctx *ctx, const fasa_plan *p, const fasa__io *io,
                             size_t workspace_size)
{
    fasa_status st;
    (void)workspace_size;
    const int tip = p->op == FASA_OP_PREDICT || p->op == FASA_OP_FASA;
    if (p->vis_kind == FASA_VISIBLE_RANGES && (st = check_ranges(ctx, p, io)) != FASA_OK)
        return st;
    if (p->op == FASA_OP_SPARSE && (st = check_sets(ctx, p, io)) != FASA_OK)
        return st;
    if ((st = check_finite_array(ctx, p->sinks, p->n_q_heads, "sinks")) != FASA_OK ||
        (st = check_finite_array(ctx, p->slopes, p->n_q_heads, "alibi_slopes")) != FASA_OK)
        return st;
    if (!tip)
        return FASA_OK;
    if (io->cache != NULL && (st = fasa__plan_check_cache(ctx, p, io->cache, "label_cache")) != FASA_OK)
        return st;
    for (size_t i = 0; io->budgets != NULL && i < p->n_q; i++)
        if (!(io->budgets[i] > 0.0f) || !isfinite(io->budgets[i]) ||
            (double)io->budgets[i] > p->budget)
            return fasa__fail(ctx, FASA_ERR_BAD_BUDGET,
                              "budgets[%zu] = %g must be finite, > 0 and <= budget %g", i,
                              (double)io->budgets[i], p->budget);
    return check_q_finite(ctx, &io->q);
}

/* ------------------------------------------------------------- running */

void fasa__run_item(const fasa_plan *p, const fasa__io *io, size_t phase, size_t item,
                    size_t slot)
{
    const fasa__stage *st = &p->stages[phase % p->n_stages];
    const size_t q0 = phase / p->n_stages * p->qb;
    const size_t qb = p->n_q - q0 < p->qb ? p->n_q - q0 : p->qb;
    const size_t hkv = p->n_kv_heads;
    switch (st->kind) {
    case FASA__ST_VIS:
        if (item < qb)
            fasa__vis_item(p, io, q0 + item);
        break;
    case FASA__ST_TIP_HEAD:
        if (item / hkv < qb)
            fasa__tip_head_item(p, io, q0 + item / hkv, item % hkv, slot);
        break;
    case FASA__ST_TIP_SCORE: {
        size_t per_q = st->n_items / p->qb, qi = item / per_q, r = item % per_q;
        if (qi < qb) /* chunk-major: threads at work together read nearby tiles */
            fasa__tip_score_item(p, io, q0 + qi, r % hkv, r / hkv, slot);
        break;
    }
    case FASA__ST_TIP_SELECT:
        if (item / p->n_sets < qb)
            fasa__tip_select_item(p, io, q0 + item / p->n_sets, item % p->n_sets, slot);
        break;
    case FASA__ST_ATTN_PART: {
        size_t per_q = p->attn_sets * p->n_chunks, qi = item / per_q, r = item % per_q;
        if (qi < qb)
            fasa__attn_part_item(p, io, q0 + qi, r % p->attn_sets, r / p->attn_sets, slot);
        break;
    }
    case FASA__ST_ATTN_MERGE:
        if (item / p->attn_sets < qb)
            fasa__attn_merge_item(p, io, q0 + item / p->attn_sets, item % p->attn_sets, slot);
        break;
    case FASA__ST_ATTN_FOLD: {
        size_t b = item / p->attn_sets, s = item % p->attn_sets;
        if (p->tiled) { /* unit-major: items in a row share one KV head's K/V in the LLC */
            const size_t n_blocks = st->n_items / p->attn_sets;
            b = item % n_blocks;
            s = item / n_blocks;
        }
        if (b * p->fold_qb < qb)
            fasa__attn_fold_item(p, io, q0 + b * p->fold_qb, s, slot);
        break;
    }
    default: break;
    }
}

/* (query row x cell) pairs of the plan, saturating: decides whether a team
 * is worth starting (threading.h), never the result. */
static size_t plan_work(const fasa_plan *p)
{
    size_t w, cells = p->op == FASA_OP_SPARSE ? p->max_sel : p->t;
    if (!fasa__mul_ok(p->n_q, p->n_q_heads, &w) || !fasa__mul_ok(w, cells, &w))
        return SIZE_MAX;
    return w;
}

void fasa__run_all(const fasa_plan *p, const fasa__io *io, size_t threads)
{
    size_t most = 0;
    for (size_t s = 0; s < p->n_stages; s++)
        if (p->stages[s].n_items > most)
            most = p->stages[s].n_items;
    const int team = fasa__team(threads < p->n_threads ? threads : p->n_threads, most, plan_work(p));
    (void)team;
#pragma omp parallel num_threads(team) if (team > 1)
    {
        const size_t slot = (size_t)fasa__thread_id();
        for (size_t ph = 0; ph < p->n_phases; ph++) {
            const size_t n = p->stages[ph % p->n_stages].n_items;
#pragma omp for schedule(dynamic, 1)
            for (size_t it = 0; it < n; it++)
                fasa__run_item(p, io, ph, it, slot);
            /* implicit barrier: phase ph is complete */
        }
    }
}

/* ------------------------------------------------------- public calls */

static fasa_status plan_ok(fasa_ctx *ctx, const fasa_plan *plan)
{
    if (plan == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "plan is NULL");
    if (plan->magic != FASA__PLAN_MAGIC)
        return fasa__fail(ctx, FASA_ERR_BAD_STATE, "plan: not made by fasa_plan_init");
    return FASA_OK;
}

FASA_API fasa_status fasa_plan_size(size_t *bytes)
{
    if (bytes == NULL)
        return FASA_ERR_NULL_POINTER;
    *bytes = sizeof(fasa_plan) + 63;
    return FASA_OK;
}

FASA_API fasa_status fasa_plan_init(fasa_ctx *ctx, const fasa_attention_desc *desc, void *mem,
                                    size_t bytes, fasa_plan **out)
{
    fasa__enter(ctx, "fasa_plan_init");
    if (mem == NULL || out == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "%s is NULL", mem == NULL ? "mem" : "out");
    size_t lead = (size_t)(-(uintptr_t)mem & 63);
    if (bytes < lead || bytes - lead < sizeof(fasa_plan))
        return fasa__fail(ctx, FASA_ERR_BUFFER_TOO_SMALL, "bytes %zu < %zu (fasa_plan_size)",
                          bytes, sizeof(fasa_plan) + 63);
    fasa_plan tmp;
    fasa_status st = fasa__plan_make(ctx, "fasa_plan_init", desc, &tmp);
    if (st != FASA_OK)
        return st;
    fasa_plan *p = (fasa_plan *)(void *)((char *)mem + lead);
    *p = tmp;
    *out = p;
    return FASA_OK;
}

FASA_API fasa_status fasa_plan_workspace_size(const fasa_plan *plan, size_t *bytes)
{
    if (plan == NULL || bytes == NULL)
        return FASA_ERR_NULL_POINTER;
    if (plan->magic != FASA__PLAN_MAGIC)
        return FASA_ERR_BAD_STATE;
    *bytes = plan->ws.total;
    return FASA_OK;
}

FASA_API fasa_status fasa_plan_phases(const fasa_plan *plan, uint32_t *n_phases)
{
    if (plan == NULL || n_phases == NULL)
        return FASA_ERR_NULL_POINTER;
    if (plan->magic != FASA__PLAN_MAGIC)
        return FASA_ERR_BAD_STATE;
    *n_phases = (uint32_t)plan->n_phases;
    return FASA_OK;
}

/* bind + check (+ run): the body of fasa_execute and of every one-shot
 * attention call. */
fasa_status fasa__execute(fasa_ctx *ctx, const fasa_plan *p, const fasa_attention_data *data,
                          void *workspace, size_t workspace_size, int run)
{
    fasa__io io;
    fasa_status st;
    if ((st = fasa__bind(ctx, p, data, workspace, workspace_size, &io)) != FASA_OK ||
        (st = fasa__bind_check(ctx, p, &io, workspace_size)) != FASA_OK)
        return st;
    if (run) {
        if (io.cache != NULL && (p->op == FASA_OP_PREDICT || p->op == FASA_OP_FASA))
            fasa__lc_flush(io.cache, p->kern);
        fasa__run_all(p, &io, (size_t)fasa__threads(ctx));
    }
    return FASA_OK;
}

FASA_API fasa_status fasa_execute(fasa_ctx *ctx, const fasa_plan *plan,
                                  const fasa_attention_data *data, void *workspace,
                                  size_t workspace_size)
{
    fasa__enter(ctx, "fasa_execute");
    fasa_status st = plan_ok(ctx, plan);
    return st != FASA_OK ? st : fasa__execute(ctx, plan, data, workspace, workspace_size, 1);
}

FASA_API fasa_status fasa_execute_check(fasa_ctx *ctx, const fasa_plan *plan,
                                        const fasa_attention_data *data, void *workspace,
                                        size_t workspace_size)
{
    fasa__enter(ctx, "fasa_execute_check");
    fasa_status st = plan_ok(ctx, plan);
    return st != FASA_OK ? st : fasa__execute(ctx, plan, data, workspace, workspace_size, 0);
}

FASA_API fasa_status fasa_execute_share(const fasa_plan *plan, const fasa_attention_data *data,
                                        void *workspace, uint32_t phase, uint32_t ith,
                                        uint32_t nth)
{
    fasa_status st = plan_ok(NULL, plan);
    if (st != FASA_OK)
        return st;
    if (nth == 0 || ith >= nth || nth > plan->n_threads || phase >= plan->n_phases)
        return FASA_ERR_INVALID_ARGUMENT;
    fasa__io io;
    if ((st = bind_pointers(NULL, plan, data, workspace, &io)) != FASA_OK)
        return st;
    const size_t n = plan->stages[phase % plan->n_stages].n_items;
    for (size_t it = ith; it < n; it += nth)
        fasa__run_item(plan, &io, phase, it, ith);
    return FASA_OK;
}

FASA_API fasa_status fasa_attention_workspace_size(fasa_ctx *ctx, const fasa_attention_desc *desc,
                                                   size_t *bytes)
{
    fasa__enter(ctx, "fasa_attention_workspace_size");
    if (bytes == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "bytes is NULL");
    fasa_plan p;
    fasa_status st = fasa__plan_make(ctx, "fasa_attention_workspace_size", desc, &p);
    if (st == FASA_OK)
        *bytes = p.ws.total;
    return st;
}

FASA_API fasa_status fasa_attention(fasa_ctx *ctx, const fasa_attention_desc *desc,
                                    void *workspace, size_t workspace_size)
{
    fasa__enter(ctx, "fasa_attention");
    fasa_plan p;
    fasa_status st = fasa__plan_make(ctx, "fasa_attention", desc, &p);
    return st != FASA_OK ? st : fasa__execute(ctx, &p, NULL, workspace, workspace_size, 1);
}
