/*
 * exec_attn.c - attention stages: exact online-softmax attention of a
 * query's heads over a token source, in fixed chunks (threading.h), each
 * chunk computed from the empty state and merged in chunk order, so
 * folding the chunks in one item (ATTN_FOLD) and writing them as partials
 * for a later merge (ATTN_PART + ATTN_MERGE, flash-decoding) give the same
 * bits.
 *
 * Token sources: a sparse set (index list, chunks of FASA_KV_CHUNK
 * indices), or a dense query's visible cells (chunks of FASA__KV_TILES
 * listed tiles, walked as runs). A dense item covers a group of dense_per
 * KV heads (all G rows of each); a sparse item one set (one query head
 * PER_HEAD, the G rows of a KV head GROUP_SHARED).
 */
#include "internal.h"
#include "plan.h"
#include "threading.h"

static size_t b64f(size_t n) { return fasa__align_up(n * sizeof(float), 64); }

/* Whether query i attends densely (every visible cell). */
static int query_dense(const fasa_plan *p, const fasa__io *io, size_t i, fasa__qvis *tmp,
                       const fasa__qvis **qv)
{
    *qv = fasa__qvis_of(p, io, i, tmp);
    return p->op == FASA_OP_DENSE || (p->op == FASA_OP_FASA && (*qv)->dense);
}

/* Item s of a query: dense -> KV heads [g0, g1); sparse -> set s, rows
 * [h0, h0 + rows) of KV head kv. Returns 0 when s is past the query's items. */
typedef struct attn_unit {
    int dense;
    size_t g0, g1;        /* dense */
    size_t h0, rows, kv;  /* sparse */
    const uint32_t *idx;
    size_t len;           /* sparse: set size */
    size_t n_chunks;
} attn_unit;

static int unit_of(const fasa_plan *p, const fasa__io *io, size_t i, size_t s, attn_unit *u)
{
    fasa__qvis tmp;
    const fasa__qvis *qv;
    memset(u, 0, sizeof *u);
    u->dense = query_dense(p, io, i, &tmp, &qv);
    if (u->dense) {
        u->g0 = s * p->dense_per;
        if (u->g0 >= p->n_kv_heads)
            return 0;
        u->g1 = u->g0 + p->dense_per < p->n_kv_heads ? u->g0 + p->dense_per : p->n_kv_heads;
        u->n_chunks = fasa__n_chunks(qv->n_tiles, FASA__KV_TILES);
        return 1;
    }
    if (s >= p->n_sets)
        return 0;
    u->idx = fasa__set_idx(p, io, i, s);
    u->len = *fasa__set_count(p, io, i, s);
    if (p->mode == FASA_GQA_GROUP_SHARED) {
        u->kv = s;
        u->h0 = s * p->group;
        u->rows = p->group;
    } else {
        u->kv = s / p->group;
        u->h0 = s;
        u->rows = 1;
    }
    u->n_chunks = fasa__n_chunks(u->len, FASA_KV_CHUNK);
    return 1;
}

/* Pre-scaled f32 rows of query i, heads [h0, h0 + rows). */
static void load_q(const fasa_plan *p, const fasa__io *io, size_t i, size_t h0, size_t rows,
                   float *dst)
{
    const size_t d = p->head_dim;
    for (size_t r = 0; r < rows; r++) {
        const void *row = fasa__row(&io->q, i, h0 + r);
        for (size_t c = 0; c < d; c++)
            dst[r * d + c] = fasa__load(row, io->q.dtype, c) * p->scale;
    }
}

static void state_clear(float *m, float *l, float *acc, size_t rows, size_t dv)
{
    for (size_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    memset(acc, 0, rows * dv * sizeof(float));
}

/* A job of query i's rows [h0, h0 + rows) on KV head kv with state (m, l,
 * acc [rows][dv]); the caller sets the tokens and the mask. */
static void job_init(const fasa_plan *p, const fasa__io *io, size_t i, const float *qrows,
                     size_t h0, size_t rows, size_t kv, float *m, float *l, float *acc,
                     fasa__attn_job *job)
{
    memset(job, 0, sizeof *job);
    job->q = qrows;
    job->n_rows = rows;
    job->q_stride = p->head_dim;
    job->k = fasa__row(&io->k, 0, kv);
    job->k_stride = io->k.token_stride;
    job->k_dtype = io->k.dtype;
    job->v = fasa__row(&io->v, 0, kv);
    job->v_stride = io->v.token_stride;
    job->v_dtype = io->v.dtype;
    job->head_dim = p->head_dim;
    job->head_dim_v = p->head_dim_v;
    job->m = m;
    job->l = l;
    job->acc = acc;
    job->acc_stride = p->head_dim_v;
    job->softcap = p->softcap;
    job->mask_dtype = p->mask_dtype;
    if (p->slopes != NULL) {
        job->slope = p->slopes + h0;
        job->qpos = (int64_t)fasa__qpos(p, i);
    }
}

/* ------------------------------------------------------------ chunks */

/* Chunk c of sparse unit u from the empty state into (m, l, acc). */
static void sparse_chunk(const fasa_plan *p, const fasa__io *io, size_t i, const attn_unit *u,
                         const float *qrows, size_t c, float *m, float *l, float *acc)
{
    const size_t lo = c * FASA_KV_CHUNK;
    const size_t n = u->len - lo < FASA_KV_CHUNK ? u->len - lo : FASA_KV_CHUNK;
    fasa__attn_job job;
    state_clear(m, l, acc, u->rows, p->head_dim_v);
    job_init(p, io, i, qrows, u->h0, u->rows, u->kv, m, l, acc, &job);
    job.mask = fasa__mask_row(p, io, i); /* MASK: hidden indices weigh nothing */
    job.idx = u->idx + lo;
    job.n = n;
    p->kern->attn(&job);
}

/* Dense sub-blocks: the heads of an item advance together, one job per
 * (sub-block, head), and each job prefetches part of what a later job
 * reads. Two layouts get two orders:
 *  - rows_packed (the llama.cpp layout, every head of a token in one
 *    contiguous row, the item covers all heads, head rows of 64 to 256
 *    bytes): sub-blocks of 16 tokens; the jobs of a sub-block prefetch the
 *    next sub-block's token rows as consecutive shares, so together they
 *    prefetch it front to back, in address order (7-9% more stream than
 *    the other order there, docs/performance.md);
 *  - otherwise: sub-blocks of FASA_DENSE_SUB tokens, each job prefetching
 *    the first rows of the job that runs next.
 * Kernel blocks start at multiples of 16 tokens from a run's start either
 * way, so the arithmetic is that of one job per run. */
#define FASA_DENSE_SUB 128
#define FASA_DENSE_SUB_PACKED 16
_Static_assert(FASA_DENSE_SUB_PACKED == 16, "a job's prefetch run is 16 head rows (pf_n <= 16)");

/* Whether heads [g0, g1) of a view are all its heads, packed into
 * contiguous token rows, with head rows of 64 to 256 bytes (f32 rows of
 * 512 bytes measured 8% slower on one thread in the packed order; below 64
 * bytes a row is less than one cache line to prefetch). */
static int rows_packed(const fasa_view *x, size_t dim, size_t g0, size_t g1)
{
    const size_t row_bytes = dim * fasa__dtype_size(x->dtype);
    return g0 == 0 && g1 == x->n_heads && (x->n_heads == 1 || x->head_stride == dim) &&
           x->token_stride == x->n_heads * dim && row_bytes >= 64 && row_bytes <= 256;
}

/* Chunk c of dense query i for KV heads [g0, g1) from the empty state into
 * the rows (g - g0) * G of (m, l, acc [.][dv]); qrows: heads g0*G .. . */
static void dense_chunk(const fasa_plan *p, const fasa__io *io, size_t i, size_t g0, size_t g1,
                        const float *qrows, size_t c, float *m, float *l, float *acc)
{
    const size_t G = p->group, d = p->head_dim, dv = p->head_dim_v;
    const int packed = rows_packed(&io->k, d, g0, g1) && rows_packed(&io->v, dv, g0, g1);
    const size_t kspan = packed ? d * fasa__dtype_size(io->k.dtype) : 0;
    const size_t vspan = packed ? dv * fasa__dtype_size(io->v.dtype) : 0;
    const size_t sub = packed ? FASA_DENSE_SUB_PACKED : FASA_DENSE_SUB;
    fasa__qvis tmp;
    const fasa__qvis *qv = fasa__qvis_of(p, io, i, &tmp);
    const size_t u0 = c * FASA__KV_TILES;
    const size_t u1 = u0 + FASA__KV_TILES < qv->n_tiles ? u0 + FASA__KV_TILES : qv->n_tiles;
    const void *mrow = fasa__mask_row(p, io, i);
    state_clear(m, l, acc, (g1 - g0) * G, dv);
    fasa__run_iter it;
    fasa__run run;
    fasa__runs_begin(p, io, i, u0, u1, &it);
    while (fasa__runs_next(&it, &run)) {
        const size_t lo = run.b, hi = run.e;
        for (size_t i0 = lo; i0 < hi; i0 += sub)
            for (size_t g = g0; g < g1; g++) {
                size_t row = (g - g0) * G;
                fasa__attn_job job;
                job_init(p, io, i, qrows + row * d, g * G, G, g, m + row, l + row, acc + row * dv,
                         &job);
                if (run.masked || qv->biased)
                    job.mask = mrow;
                job.first = i0;
                job.n = hi - i0 < sub ? hi - i0 : sub;
                if (packed) {
                    /* share g - g0 of the next sub-block, when it is whole */
                    if (i0 + 2 * sub <= hi) {
                        job.pf_k = (const char *)fasa__row(&io->k, i0 + sub, 0) + (g - g0) * 16 * kspan;
                        job.pf_v = (const char *)fasa__row(&io->v, i0 + sub, 0) + (g - g0) * 16 * vspan;
                        job.pf_n = 16;
                        job.pf_kst = job.pf_kspan = kspan;
                        job.pf_vst = job.pf_vspan = vspan;
                    }
                } else {
                    /* the next job's first rows: next head, or first head
                     * of the next sub-block */
                    size_t ng = g + 1 < g1 ? g + 1 : g0, ni = g + 1 < g1 ? i0 : i0 + sub;
                    if (ni < hi) {
                        job.pf_k = fasa__row(&io->k, ni, ng);
                        job.pf_v = fasa__row(&io->v, ni, ng);
                        job.pf_n = hi - ni < 16 ? hi - ni : 16;
                    }
                }
                p->kern->attn(&job);
            }
    }
}

/* ---------------------------------------------------------- finishing */

/* out = acc / l and lse = m + log(l) for query i, heads [h0, h0 + rows),
 * joined by the heads' sinks; nothing seen (l = 0) gives zero rows and
 * lse = -inf (or the sink). */
static void finalize(const fasa_plan *p, const fasa__io *io, size_t i, size_t h0, size_t rows,
                     const float *m, const float *l, const float *acc)
{
    const size_t dv = p->head_dim_v;
    for (size_t r = 0; r < rows; r++) {
        size_t h = h0 + r;
        void *dst = (void *)(uintptr_t)fasa__row(&io->out, i, h);
        float mr = m[r], lr = l[r], a = 1.0f;
        if (p->sinks != NULL) {
            float sk = p->sinks[h], m2 = lr > 0.0f && mr > sk ? mr : sk;
            a = lr > 0.0f ? expf(mr - m2) : 0.0f;
            lr = lr * a + expf(sk - m2);
            mr = m2;
        }
        if (!(lr > 0.0f)) {
            for (size_t c = 0; c < dv; c++)
                fasa__store(dst, io->out.dtype, c, 0.0f);
            if (io->lse != NULL)
                io->lse[i * p->n_q_heads + h] = -INFINITY;
            continue;
        }
        if (p->sinks == NULL)
            for (size_t c = 0; c < dv; c++)
                fasa__store(dst, io->out.dtype, c, acc[r * dv + c] / lr);
        else
            for (size_t c = 0; c < dv; c++)
                fasa__store(dst, io->out.dtype, c, acc[r * dv + c] * a / lr);
        if (io->lse != NULL)
            io->lse[i * p->n_q_heads + h] = mr + logf(lr);
    }
}

/* ------------------------------------------------------------- items */

typedef struct slot_scratch {
    float *q, *m, *l, *acc, *cm, *cl, *cacc;
} slot_scratch;

static void carve(const fasa_plan *p, const fasa__io *io, size_t slot, slot_scratch *sc)
{
    char *b = fasa__slot(p, io, slot);
    sc->q = (float *)(void *)(b + p->ws.s_q);
    sc->m = (float *)(void *)(b + p->ws.s_m);
    sc->l = (float *)(void *)(b + p->ws.s_l);
    sc->acc = (float *)(void *)(b + p->ws.s_acc);
    sc->cm = (float *)(void *)(b + p->ws.s_cm);
    sc->cl = (float *)(void *)(b + p->ws.s_cl);
    sc->cacc = (float *)(void *)(b + p->ws.s_cacc);
}

/* Partial rows of chunk c of query i: [c][Hq] m, l and [c][Hq][dv] acc. */
static void partials(const fasa_plan *p, const fasa__io *io, size_t i, size_t c, float **m,
                     float **l, float **acc)
{
    const size_t H = p->n_q_heads, q = fasa__round_q(p, i);
    *m = (float *)(void *)(io->ws + p->ws.part_m + q * b64f(p->n_chunks * H)) + c * H;
    *l = (float *)(void *)(io->ws + p->ws.part_l + q * b64f(p->n_chunks * H)) + c * H;
    *acc = (float *)(void *)(io->ws + p->ws.part_acc + q * b64f(p->n_chunks * H * p->head_dim_v)) +
           c * H * p->head_dim_v;
}

void fasa__attn_part_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                          size_t c, size_t slot)
{
    attn_unit u;
    slot_scratch sc;
    if (!unit_of(p, io, i, s, &u) || c >= u.n_chunks)
        return;
    carve(p, io, slot, &sc);
    float *pm, *pl, *pacc;
    partials(p, io, i, c, &pm, &pl, &pacc);
    const size_t G = p->group, dv = p->head_dim_v;
    if (u.dense) {
        load_q(p, io, i, u.g0 * G, (u.g1 - u.g0) * G, sc.q);
        dense_chunk(p, io, i, u.g0, u.g1, sc.q, c, pm + u.g0 * G, pl + u.g0 * G,
                    pacc + u.g0 * G * dv);
    } else {
        load_q(p, io, i, u.h0, u.rows, sc.q);
        sparse_chunk(p, io, i, &u, sc.q, c, pm + u.h0, pl + u.h0, pacc + u.h0 * dv);
    }
}

/* Merge the partials of rows [h0, h0 + rows) in chunk order and finish. */
static void merge_rows(const fasa_plan *p, const fasa__io *io, size_t i, size_t h0, size_t rows,
                       size_t n_chunks, const slot_scratch *sc)
{
    const size_t dv = p->head_dim_v;
    state_clear(sc->m, sc->l, sc->acc, rows, dv);
    for (size_t c = 0; c < n_chunks; c++) {
        float *pm, *pl, *pacc;
        partials(p, io, i, c, &pm, &pl, &pacc);
        fasa__softmax_merge(sc->m, sc->l, sc->acc, dv, pm + h0, pl + h0, pacc + h0 * dv, dv, rows,
                            dv);
    }
    finalize(p, io, i, h0, rows, sc->m, sc->l, sc->acc);
}

void fasa__attn_merge_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                           size_t slot)
{
    attn_unit u;
    slot_scratch sc;
    if (!unit_of(p, io, i, s, &u))
        return;
    carve(p, io, slot, &sc);
    if (u.dense)
        for (size_t g = u.g0; g < u.g1; g++)
            merge_rows(p, io, i, g * p->group, p->group, u.n_chunks, &sc);
    else
        merge_rows(p, io, i, u.h0, u.rows, u.n_chunks, &sc);
}

/* ------------------------------------------------------- tiled prefill */

/* RANGES as mask rows: row b of rmask (FASA__RANGE_PIECE floats) gets 0 on
 * the cells of [a, a + n) query i0 + b sees, -inf elsewhere; cur[b] is the
 * query's first range not yet behind a. */
static void ranges_piece(const fasa__io *io, size_t i0, size_t nb, size_t a,
                         size_t n, uint32_t *cur, float *rmask)
{
    for (size_t b = 0; b < nb; b++) {
        float *row = rmask + b * FASA__RANGE_PIECE;
        for (size_t j = 0; j < n; j++)
            row[j] = -INFINITY;
        const uint32_t r_end = io->range_first[i0 + b + 1];
        for (uint32_t r = cur[b]; r < r_end; r++) {
            size_t rb = io->ranges[2 * (size_t)r], re = io->ranges[2 * (size_t)r + 1];
            if (rb >= a + n)
                break;
            if (re <= a) {
                cur[b] = r + 1;
                continue;
            }
            for (size_t j = rb > a ? rb : a; j < re && j < a + n; j++)
                row[j - a] = 0.0f;
        }
    }
}

/* Dense queries [i0, i0 + nb) on KV head g through attn_tile: the rows of
 * all queries (x G) in one job over the hull of their visible cells, so
 * each K/V tile is converted once for all of them. CAUSAL bounds each
 * query by its own cells; MASK passes the mask rows (hidden cells weigh
 * nothing); RANGES become mask rows of FASA__RANGE_PIECE cells at a time.
 * A row's arithmetic does not depend on the other queries of the block
 * (kernels.h), so a FASA query that attends densely alone equals DENSE. */
static void tiled_fold(const fasa_plan *p, const fasa__io *io, size_t i0, size_t nb, size_t g,
                       size_t slot)
{
    slot_scratch sc;
    carve(p, io, slot, &sc);
    const size_t G = p->group, d = p->head_dim, dv = p->head_dim_v;
    char *base = fasa__slot(p, io, slot);
    uint32_t *begin = (uint32_t *)(void *)(base + p->ws.s_bound), *end = begin + p->fold_qb;
    uint32_t *cur = end + p->fold_qb;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (size_t b = 0; b < nb; b++) {
        load_q(p, io, i0 + b, g * G, G, sc.q + b * G * d);
        fasa__vis_hull(p, io, i0 + b, &begin[b], &end[b]);
        if (begin[b] < end[b]) {
            lo = begin[b] < lo ? begin[b] : lo;
            hi = end[b] > hi ? end[b] : hi;
        }
        if (p->vis_kind == FASA_VISIBLE_RANGES)
            cur[b] = io->range_first[i0 + b];
    }
    state_clear(sc.m, sc.l, sc.acc, nb * G, dv);
    fasa__attn_tile_job job;
    memset(&job, 0, sizeof job);
    job.q = sc.q;
    job.n_q = nb;
    job.group = G;
    job.q_stride = d;
    job.k = fasa__row(&io->k, 0, g);
    job.k_stride = io->k.token_stride;
    job.k_dtype = io->k.dtype;
    job.v = fasa__row(&io->v, 0, g);
    job.v_stride = io->v.token_stride;
    job.v_dtype = io->v.dtype;
    job.head_dim = d;
    job.head_dim_v = dv;
    job.begin = begin;
    job.end = end;
    job.m = sc.m;
    job.l = sc.l;
    job.acc = sc.acc;
    job.acc_stride = dv;
    job.softcap = p->softcap;
    job.slope = p->slopes != NULL ? p->slopes + g * G : NULL;
    job.qpos = (int64_t)fasa__qpos(p, i0);
    job.scratch = base + p->ws.s_tile;
    if (lo < hi && p->vis_kind != FASA_VISIBLE_RANGES) {
        job.first = lo;
        job.n = hi - lo;
        if (p->vis_kind == FASA_VISIBLE_MASK) {
            job.mask = (const char *)fasa__mask_row(p, io, i0) +
                       (size_t)lo * fasa__dtype_size(p->mask_dtype);
            job.mask_stride = p->mask_stride;
            job.mask_dtype = p->mask_dtype;
        }
        p->kern->attn_tile(&job);
    } else if (lo < hi) {
        float *rmask = (float *)(void *)(base + p->ws.s_rmask);
        job.mask = rmask;
        job.mask_stride = FASA__RANGE_PIECE;
        job.mask_dtype = FASA_DTYPE_F32;
        for (size_t a = lo; a < hi;) { /* pieces end on multiples of the piece size */
            size_t e = (a / FASA__RANGE_PIECE + 1) * FASA__RANGE_PIECE;
            e = e < hi ? e : hi;
            ranges_piece(io, i0, nb, a, e - a, cur, rmask);
            job.first = a;
            job.n = e - a;
            p->kern->attn_tile(&job);
            a = e;
        }
    }
    for (size_t b = 0; b < nb; b++)
        finalize(p, io, i0 + b, g * G, G, sc.m + b * G, sc.l + b * G, sc.acc + b * G * dv);
}

/* Queries [i0, i0 + fold_qb) x unit s, every chunk folded in order. For a
 * dense block (prefill) each KV chunk is used by every query of the block
 * while it is in cache; per query the arithmetic is that of one query.
 * Tiled plans send dense units to attn_tile instead (a DENSE block, or
 * one dense FASA query). */
void fasa__attn_fold_item(const fasa_plan *p, const fasa__io *io, size_t i0, size_t s,
                          size_t slot)
{
    slot_scratch sc;
    attn_unit u;
    const size_t q_end0 = (i0 / p->qb + 1) * p->qb < p->n_q ? (i0 / p->qb + 1) * p->qb : p->n_q;
    if (p->tiled && unit_of(p, io, i0, s, &u) && u.dense) {
        /* a fold item holds only dense queries or only one query */
        tiled_fold(p, io, i0, q_end0 - i0 < p->fold_qb ? q_end0 - i0 : p->fold_qb, u.g0, slot);
        return;
    }
    carve(p, io, slot, &sc);
    const size_t G = p->group, d = p->head_dim, dv = p->head_dim_v;
    const size_t R = p->dense_per * G; /* rows a unit can have: the slot's stride */
    const size_t q_end = (i0 / p->qb + 1) * p->qb < p->n_q ? (i0 / p->qb + 1) * p->qb : p->n_q;
    const size_t nb = q_end - i0 < p->fold_qb ? q_end - i0 : p->fold_qb;
    size_t most = 0;
    for (size_t b = 0; b < nb; b++) {
        if (!unit_of(p, io, i0 + b, s, &u))
            continue;
        size_t h0 = u.dense ? u.g0 * G : u.h0, rows = u.dense ? (u.g1 - u.g0) * G : u.rows;
        load_q(p, io, i0 + b, h0, rows, sc.q + b * R * d);
        state_clear(sc.m + b * R, sc.l + b * R, sc.acc + b * R * dv, rows, dv);
        if (u.n_chunks > most)
            most = u.n_chunks;
    }
    for (size_t c = 0; c < most; c++)
        for (size_t b = 0; b < nb; b++) {
            if (!unit_of(p, io, i0 + b, s, &u) || c >= u.n_chunks)
                continue;
            size_t rows = u.dense ? (u.g1 - u.g0) * G : u.rows;
            if (u.dense)
                dense_chunk(p, io, i0 + b, u.g0, u.g1, sc.q + b * R * d, c, sc.cm, sc.cl, sc.cacc);
            else
                sparse_chunk(p, io, i0 + b, &u, sc.q + b * R * d, c, sc.cm, sc.cl, sc.cacc);
            fasa__softmax_merge(sc.m + b * R, sc.l + b * R, sc.acc + b * R * dv, dv, sc.cm, sc.cl,
                                sc.cacc, dv, rows, dv);
        }
    for (size_t b = 0; b < nb; b++) {
        if (!unit_of(p, io, i0 + b, s, &u))
            continue;
        size_t h0 = u.dense ? u.g0 * G : u.h0, rows = u.dense ? (u.g1 - u.g0) * G : u.rows;
        finalize(p, io, i0 + b, h0, rows, sc.m + b * R, sc.l + b * R, sc.acc + b * R * dv);
    }
}
