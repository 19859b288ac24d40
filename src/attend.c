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
#include "threading.h"

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
    size_t max_len;     /* bound on the tokens of one set (workspace)    */
} attend_plan;

/* Per-worker scratch, every array 64-byte aligned: pre-scaled query rows
 * and running state of up to FASA_Q_BLOCK queries of one set, and the
 * state of one KV chunk (threading.h explains the chunking). */
typedef struct attend_scratch {
    float *q;    /* [qb][G][head_dim]   pre-scaled query rows */
    float *m;    /* [qb][G]                                   */
    float *l;    /* [qb][G]                                   */
    float *acc;  /* [qb][G][head_dim_v]                       */
    float *cm;   /* [G]  one chunk                            */
    float *cl;   /* [G]                                       */
    float *cacc; /* [G][head_dim_v]                           */
} attend_scratch;

/* ------------------------------------------------------------ workspace */

/* Scratch slots of a call with ctx: the one place threading enlarges the
 * attention workspace (shared by fasa_attend and fasa_attend_dense). */
static size_t attend_workers(const fasa_ctx *ctx) { return (size_t)fasa__threads(ctx); }

static size_t bytes64(size_t n_floats) { return fasa__align_up(n_floats * sizeof(float), 64); }

static size_t attend_q_block(size_t n_q) { return n_q < FASA_Q_BLOCK ? n_q : FASA_Q_BLOCK; }

/* Split-KV partials are stored only for single-query calls whose longest
 * set spans several chunks; otherwise each item folds its own chunks. */
static size_t attend_partial_chunks(size_t n_q, size_t max_len)
{
    size_t c = fasa__n_chunks(max_len, FASA_KV_CHUNK);
    return n_q == 1 && c > 1 ? c : 0;
}

/* One worker's scratch bytes, or 0 on overflow. */
static size_t attend_worker_bytes(size_t qb, size_t group, size_t d, size_t dv)
{
    size_t rows, rd, rdv, gdv;
    if (!fasa__mul_ok(qb, group, &rows) || !fasa__mul_ok(rows, d, &rd) ||
        !fasa__mul_ok(rows, dv, &rdv) || !fasa__mul_ok(group, dv, &gdv) ||
        rd > SIZE_MAX / 16 || rdv > SIZE_MAX / 16 || rows > SIZE_MAX / 16)
        return 0;
    return bytes64(rd) + 2 * bytes64(rows) + bytes64(rdv) + 2 * bytes64(group) + bytes64(gdv);
}

/* Bytes of the flash-decoding region: the query's pre-scaled rows
 * [Hq][d], and the partials [n_chunks][Hq] m, l and [n_chunks][Hq][dv] acc;
 * 0 on overflow (callers only ask when partials exist). */
static size_t attend_partial_bytes(size_t n_chunks, size_t n_q_heads, size_t d, size_t dv)
{
    size_t rows, all, qd;
    if (!fasa__mul_ok(n_chunks, n_q_heads, &rows) || !fasa__mul_ok(rows, dv, &all) ||
        !fasa__mul_ok(n_q_heads, d, &qd) || all > SIZE_MAX / 16 || rows > SIZE_MAX / 16 ||
        qd > SIZE_MAX / 16)
        return 0;
    return bytes64(qd) + 2 * bytes64(rows) + bytes64(all);
}

/* Total workspace bytes including the slack that aligns the pointer. */
static fasa_status attend_workspace_bytes(fasa_ctx *ctx, size_t n_q, size_t n_q_heads,
                                          size_t group, size_t d, size_t dv, size_t max_len,
                                          size_t workers, size_t *bytes)
{
    size_t per = attend_worker_bytes(attend_q_block(n_q), group, d, dv), all = 0;
    size_t nch = attend_partial_chunks(n_q, max_len);
    int ok = per != 0 && fasa__mul_ok(per, workers, &all);
    if (ok && nch > 0) {
        size_t part = attend_partial_bytes(nch, n_q_heads, d, dv);
        ok = part != 0 && fasa__add_ok(all, part, &all);
    }
    if (!ok || !fasa__add_ok(all, 64, &all))
        return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                          "attention workspace for G %zu, head_dim %zu/%zu, %zu tokens, "
                          "%zu threads overflows size_t",
                          group, d, dv, max_len, workers);
    *bytes = all;
    return FASA_OK;
}

static char *attend_base(void *workspace) { return (char *)fasa__align_up((uintptr_t)workspace, 64); }

static void attend_carve(const attend_plan *p, void *workspace, size_t worker, attend_scratch *sc)
{
    const size_t G = p->group, rows = attend_q_block(p->n_q) * G;
    char *base = attend_base(workspace) +
                 worker * attend_worker_bytes(attend_q_block(p->n_q), G, p->head_dim, p->head_dim_v);
    sc->q = (float *)(void *)base;
    base += bytes64(rows * p->head_dim);
    sc->m = (float *)(void *)base;
    base += bytes64(rows);
    sc->l = (float *)(void *)base;
    base += bytes64(rows);
    sc->acc = (float *)(void *)base;
    base += bytes64(rows * p->head_dim_v);
    sc->cm = (float *)(void *)base;
    base += bytes64(G);
    sc->cl = (float *)(void *)base;
    base += bytes64(G);
    sc->cacc = (float *)(void *)base;
}

/* The partials region, after every worker's scratch. */
static void attend_carve_partials(const attend_plan *p, void *workspace, size_t n_chunks,
                                  float **pq, float **pm, float **pl, float **pacc)
{
    size_t rows = n_chunks * p->n_q_heads;
    char *base = attend_base(workspace) +
                 p->workers * attend_worker_bytes(attend_q_block(p->n_q), p->group, p->head_dim,
                                                  p->head_dim_v);
    *pq = (float *)(void *)base;
    base += bytes64(p->n_q_heads * p->head_dim);
    *pm = (float *)(void *)base;
    base += bytes64(rows);
    *pl = (float *)(void *)base;
    base += bytes64(rows);
    *pacc = (float *)(void *)base;
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
    fasa_status st = shapes_for_size(q, k, v, bytes);
    if (st != FASA_OK)
        return st;
    if (mode != FASA_GQA_PER_HEAD && mode != FASA_GQA_GROUP_SHARED)
        return FASA_ERR_INVALID_ARGUMENT;
    /* a set holds at most min(t, index_stride) tokens */
    size_t max_len = k->n_tokens < index_stride ? k->n_tokens : index_stride;
    return attend_workspace_bytes(NULL, q->n_tokens, q->n_heads, q->n_heads / k->n_heads,
                                  q->head_dim, v->head_dim, max_len, attend_workers(ctx), bytes);
}

FASA_API fasa_status fasa_attend_dense_workspace_size(const fasa_ctx *ctx, const fasa_view *q,
                                                      const fasa_view *k, const fasa_view *v,
                                                      size_t *bytes)
{
    fasa_status st = shapes_for_size(q, k, v, bytes);
    if (st != FASA_OK)
        return st;
    return attend_workspace_bytes(NULL, q->n_tokens, q->n_heads, q->n_heads / k->n_heads,
                                  q->head_dim, v->head_dim, k->n_tokens, attend_workers(ctx),
                                  bytes);
}

/* ----------------------------------------------------------- validation */

/* Checks shared by both calls: views, shapes, scale, the overlaps of out and
 * lse with the inputs and each other, and the workspace size. */
static fasa_status check_common(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                const fasa_view *v, float scale, const fasa_view *out,
                                const float *lse, const void *workspace, size_t workspace_size,
                                size_t len_cap, attend_plan *p)
{
    fasa_status st;
    if ((st = fasa__check_attn_views(ctx, q, k, v, out)) != FASA_OK)
        return st;
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
    p->max_len = p->t < len_cap ? p->t : len_cap;

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
    if ((st = attend_workspace_bytes(ctx, p->n_q, p->n_q_heads, p->group, p->head_dim,
                                     p->head_dim_v, p->max_len, p->workers, &need)) != FASA_OK)
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

/* Set s of query i: rows h0 .. h0 + rows - 1 of the query heads, one KV
 * head, and its tokens (a range [0, len) when dense). */
typedef struct attend_set {
    size_t h0, rows, kv;
    const uint32_t *idx;
    size_t len;
} attend_set;

static size_t plan_sets(const attend_plan *p) { return p->dense ? p->n_kv_heads : p->n_sets; }

static void attend_set_of(const attend_plan *p, size_t i, size_t s, attend_set *st)
{
    const size_t G = p->group;
    if (p->dense) {
        st->kv = s;
        st->h0 = s * G;
        st->rows = G;
        st->idx = NULL;
        st->len = plan_t_i(p, i);
        return;
    }
    size_t set = i * p->n_sets + s;
    st->idx = p->indices + set * p->index_stride;
    st->len = p->counts[set];
    if (p->mode == FASA_GQA_GROUP_SHARED) {
        st->kv = s;
        st->h0 = s * G;
        st->rows = G;
    } else {
        st->kv = s / G;
        st->h0 = s;
        st->rows = 1;
    }
}

static void load_q(const attend_plan *p, const fasa_view *q, size_t i, const attend_set *st,
                   float *dst)
{
    const size_t d = p->head_dim;
    for (size_t r = 0; r < st->rows; r++) {
        const void *row = fasa__row(q, i, st->h0 + r);
        for (size_t c = 0; c < d; c++)
            dst[r * d + c] = fasa__load(row, q->dtype, c) * p->scale;
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

/* A job for the set's rows and KV head with state (m, l, acc [rows][dv]);
 * the caller sets the tokens (idx/first/n). */
static void attend_job(const attend_plan *p, const fasa_view *k, const fasa_view *v,
                       const float *qrows, const attend_set *st, float *m, float *l, float *acc,
                       fasa__attn_job *job)
{
    memset(job, 0, sizeof *job);
    job->q = qrows;
    job->n_rows = st->rows;
    job->q_stride = p->head_dim;
    job->k = fasa__row(k, 0, st->kv);
    job->k_stride = k->token_stride;
    job->k_dtype = k->dtype;
    job->v = fasa__row(v, 0, st->kv);
    job->v_stride = v->token_stride;
    job->v_dtype = v->dtype;
    job->head_dim = p->head_dim;
    job->head_dim_v = p->head_dim_v;
    job->idx = st->idx;
    job->m = m;
    job->l = l;
    job->acc = acc;
    job->acc_stride = p->head_dim_v;
}

/* Chunk c (FASA_KV_CHUNK tokens of the set's list) from the empty state
 * into m, l, acc [rows][dv]. */
static void attend_chunk(const attend_plan *p, const fasa__kernels *kern, const fasa_view *k,
                         const fasa_view *v, const float *qrows, const attend_set *st, size_t c,
                         float *m, float *l, float *acc)
{
    const size_t lo = c * FASA_KV_CHUNK;
    const size_t n = st->len - lo < FASA_KV_CHUNK ? st->len - lo : FASA_KV_CHUNK;
    state_clear(m, l, acc, st->rows, p->head_dim_v);
    fasa__attn_job job;
    attend_job(p, k, v, qrows, st, m, l, acc, &job);
    job.idx = st->idx != NULL ? st->idx + lo : NULL;
    job.first = st->idx != NULL ? 0 : lo;
    job.n = n;
    kern->attn(&job);
}

/* Dense single-query item: chunk c of KV heads [g0, g1), all from the empty
 * state into their partials. The heads advance together in sub-blocks of
 * tokens, one job per (sub-block, head), and each job prefetches part of
 * what a later job reads. Two layouts get two orders:
 *  - rows_packed (the llama.cpp layout, every head of a token in one
 *    contiguous row, the item covers all heads, head rows of at most 256
 *    bytes): sub-blocks of 16 tokens; the m jobs of a sub-block prefetch
 *    the next sub-block's token rows as m consecutive shares, so together
 *    they prefetch it front to back, in address order. The other order
 *    below streamed 7-9% less there (docs/performance.md);
 *  - otherwise: sub-blocks of FASA_DENSE_SUB tokens, and each job
 *    prefetches the first rows of the job that runs next.
 * Kernel blocks start at multiples of 16 tokens either way, so the
 * arithmetic is exactly attend_chunk's. */
#define FASA_DENSE_SUB 128
#define FASA_DENSE_SUB_PACKED 16
_Static_assert(FASA_DENSE_SUB_PACKED == 16, "a job's prefetch run is 16 head rows (pf_n <= 16)");

/* Whether heads [g0, g1) of a view are all its heads, packed into
 * contiguous token rows, with head rows of 64 to 256 bytes (f16/bf16 at
 * head_dim 128; f32 rows of 512 bytes measured 8% slower on one thread in
 * the packed order, so they keep the other; below 64 bytes a row is less
 * than one cache line to prefetch). */
static int rows_packed(const fasa_view *x, size_t dim, size_t g0, size_t g1)
{
    const size_t row_bytes = dim * fasa__dtype_size(x->dtype);
    return g0 == 0 && g1 == x->n_heads && (x->n_heads == 1 || x->head_stride == dim) &&
           x->token_stride == x->n_heads * dim && row_bytes >= 64 && row_bytes <= 256;
}

static void attend_dense_chunk(const attend_plan *p, const fasa__kernels *kern,
                               const fasa_view *k, const fasa_view *v, const float *qall,
                               size_t c, size_t g0, size_t g1, float *pm, float *pl, float *pacc)
{
    const size_t H = p->n_q_heads, G = p->group, d = p->head_dim, dv = p->head_dim_v;
    const size_t lo = c * FASA_KV_CHUNK, len = plan_t_i(p, 0);
    const size_t hi = len - lo < FASA_KV_CHUNK ? len : lo + FASA_KV_CHUNK;
    /* Packed: the next 16-token sub-block is 16 * m head rows in a row;
     * the job of head g prefetches its g-th run of 16 of them (span =
     * one head row, 0 = the other order). */
    const int packed = rows_packed(k, d, g0, g1) && rows_packed(v, dv, g0, g1);
    const size_t kspan = packed ? d * fasa__dtype_size(k->dtype) : 0;
    const size_t vspan = packed ? dv * fasa__dtype_size(v->dtype) : 0;
    const size_t sub = packed ? FASA_DENSE_SUB_PACKED : FASA_DENSE_SUB;
    for (size_t g = g0; g < g1; g++) {
        size_t row = c * H + g * G;
        state_clear(pm + row, pl + row, pacc + row * dv, G, dv);
    }
    for (size_t i0 = lo; i0 < hi; i0 += sub)
        for (size_t g = g0; g < g1; g++) {
            attend_set st;
            attend_set_of(p, 0, g, &st);
            size_t row = c * H + g * G;
            fasa__attn_job job;
            attend_job(p, k, v, qall + st.h0 * d, &st, pm + row, pl + row, pacc + row * dv, &job);
            job.first = i0;
            job.n = hi - i0 < sub ? hi - i0 : sub;
            if (packed) {
                /* run g - g0 of the next sub-block, when it is whole */
                if (i0 + 2 * sub <= hi) {
                    job.pf_k = (const char *)fasa__row(k, i0 + sub, 0) + (g - g0) * 16 * kspan;
                    job.pf_v = (const char *)fasa__row(v, i0 + sub, 0) + (g - g0) * 16 * vspan;
                    job.pf_n = 16;
                    job.pf_kst = job.pf_kspan = kspan;
                    job.pf_vst = job.pf_vspan = vspan;
                }
            } else {
                /* the next job's first rows: next head, or first head of
                 * the next sub-block */
                size_t ng = g + 1 < g1 ? g + 1 : g0, ni = g + 1 < g1 ? i0 : i0 + sub;
                if (ni < hi) {
                    job.pf_k = fasa__row(k, ni, ng);
                    job.pf_v = fasa__row(v, ni, ng);
                    job.pf_n = hi - ni < 16 ? hi - ni : 16;
                }
            }
            kern->attn(&job);
        }
}

/* out = acc / l and lse = m + log(l) of the set's rows; an empty set gives
 * zero rows and lse = -inf. */
static void finalize_set(const attend_plan *p, const fasa_view *out, float *lse, size_t i,
                         const attend_set *st, const float *m, const float *l, const float *acc)
{
    const size_t dv = p->head_dim_v;
    for (size_t r = 0; r < st->rows; r++) {
        size_t h = st->h0 + r;
        void *dst = (void *)(uintptr_t)fasa__row(out, i, h);
        if (st->len == 0) {
            for (size_t c = 0; c < dv; c++)
                fasa__store(dst, out->dtype, c, 0.0f);
            if (lse != NULL)
                lse[i * p->n_q_heads + h] = -INFINITY;
            continue;
        }
        for (size_t c = 0; c < dv; c++)
            fasa__store(dst, out->dtype, c, acc[r * dv + c] / l[r]);
        if (lse != NULL)
            lse[i * p->n_q_heads + h] = m[r] + logf(l[r]);
    }
}

/* Item = set s of query i, its chunks computed and merged in order. */
static void attend_item_fold(const attend_plan *p, const fasa__kernels *kern, const fasa_view *q,
                             const fasa_view *k, const fasa_view *v, const fasa_view *out,
                             float *lse, const attend_scratch *sc, size_t i, size_t s)
{
    const size_t dv = p->head_dim_v;
    attend_set st;
    attend_set_of(p, i, s, &st);
    load_q(p, q, i, &st, sc->q);
    state_clear(sc->m, sc->l, sc->acc, st.rows, dv);
    for (size_t c = 0; c < fasa__n_chunks(st.len, FASA_KV_CHUNK); c++) {
        attend_chunk(p, kern, k, v, sc->q, &st, c, sc->cm, sc->cl, sc->cacc);
        fasa__softmax_merge(sc->m, sc->l, sc->acc, dv, sc->cm, sc->cl, sc->cacc, dv, st.rows, dv);
    }
    finalize_set(p, out, lse, i, &st, sc->m, sc->l, sc->acc);
}

/* Dense prefill item = FASA_Q_BLOCK queries x KV head g: each KV chunk is
 * used by every query of the block while it is in cache. Per query the
 * arithmetic is exactly attend_item_fold's. */
static void attend_item_block(const attend_plan *p, const fasa__kernels *kern,
                              const fasa_view *q, const fasa_view *k, const fasa_view *v,
                              const fasa_view *out, float *lse, const attend_scratch *sc,
                              size_t i0, size_t g)
{
    const size_t G = p->group, d = p->head_dim, dv = p->head_dim_v;
    const size_t qb = p->n_q - i0 < FASA_Q_BLOCK ? p->n_q - i0 : FASA_Q_BLOCK;
    attend_set st;
    for (size_t b = 0; b < qb; b++) {
        attend_set_of(p, i0 + b, g, &st);
        load_q(p, q, i0 + b, &st, sc->q + b * G * d);
        state_clear(sc->m + b * G, sc->l + b * G, sc->acc + b * G * dv, G, dv);
    }
    attend_set_of(p, i0 + qb - 1, g, &st); /* the longest range of the block */
    const size_t nch = fasa__n_chunks(st.len, FASA_KV_CHUNK);
    for (size_t c = 0; c < nch; c++)
        for (size_t b = 0; b < qb; b++) {
            attend_set_of(p, i0 + b, g, &st);
            if (c * FASA_KV_CHUNK >= st.len)
                continue;
            attend_chunk(p, kern, k, v, sc->q + b * G * d, &st, c, sc->cm, sc->cl, sc->cacc);
            fasa__softmax_merge(sc->m + b * G, sc->l + b * G, sc->acc + b * G * dv, dv, sc->cm,
                                sc->cl, sc->cacc, dv, G, dv);
        }
    for (size_t b = 0; b < qb; b++) {
        attend_set_of(p, i0 + b, g, &st);
        finalize_set(p, out, lse, i0 + b, &st, sc->m + b * G, sc->l + b * G,
                     sc->acc + b * G * dv);
    }
}

/* The execution over work items, on p->workers OpenMP threads (one
 * scratch slot each). Items are cut by fixed sizes only (threading.h), so
 * the output does not depend on the thread count:
 *  - one query, sets longer than a chunk (flash-decoding): item = (set,
 *    chunk) writes a partial; then item = set merges its partials in order;
 *  - dense prefill: item = (block of queries, KV head);
 *  - otherwise: item = (query, set). */
static void attend_run(const attend_plan *p, const fasa__kernels *kern, const fasa_view *q,
                       const fasa_view *k, const fasa_view *v, const fasa_view *out, float *lse,
                       void *workspace)
{
    const int nt = (int)p->workers;
    const size_t nsets = plan_sets(p);
    /* (query row x token) pairs, a bound fixed by the shapes: decides
     * whether a team is worth starting (threading.h). Saturates. */
    size_t work;
    if (!fasa__mul_ok(p->n_q, p->n_q_heads, &work) || !fasa__mul_ok(work, p->max_len, &work))
        work = SIZE_MAX;
    int team;
    (void)team;

    if (p->dense && p->n_q > 1) {
        const size_t items = fasa__n_chunks(p->n_q, FASA_Q_BLOCK) * p->n_kv_heads;
        team = fasa__team(p->workers, items, work);
#pragma omp parallel for num_threads(team) schedule(dynamic, 1) if (team > 1)
        for (size_t it = 0; it < items; it++) {
            attend_scratch sc;
            attend_carve(p, workspace, (size_t)fasa__thread_id(), &sc);
            attend_item_block(p, kern, q, k, v, out, lse, &sc, it / p->n_kv_heads * FASA_Q_BLOCK,
                              it % p->n_kv_heads);
        }
        return;
    }

    const size_t nch = attend_partial_chunks(p->n_q, p->max_len);
    if (nch == 0) {
        const size_t items = p->n_q * nsets;
        team = fasa__team(p->workers, items, work);
#pragma omp parallel for num_threads(team) schedule(dynamic, 1) if (team > 1)
        for (size_t it = 0; it < items; it++) {
            attend_scratch sc;
            attend_carve(p, workspace, (size_t)fasa__thread_id(), &sc);
            attend_item_fold(p, kern, q, k, v, out, lse, &sc, it / nsets, it % nsets);
        }
        return;
    }

    /* flash-decoding: n_q == 1 */
    float *pq, *pm, *pl, *pacc;
    attend_carve_partials(p, workspace, nch, &pq, &pm, &pl, &pacc);
    const size_t H = p->n_q_heads, dv = p->head_dim_v, d = p->head_dim;
    attend_set all = {0, H, 0, NULL, 0};
    load_q(p, q, 0, &all, pq);
    /* Dense: item = (chunk, group of KV heads). How the heads are grouped
     * does not change the arithmetic, so the group count may follow the
     * thread count (about two items per thread). */
    size_t per = nsets;
    if (p->dense) {
        size_t want = (2 * (size_t)nt + nch - 1) / nch; /* groups per chunk */
        want = want < 1 ? 1 : want > nsets ? nsets : want;
        per = (nsets + want - 1) / want;
    }
    const size_t n_groups = (nsets + per - 1) / per;
    team = fasa__team(p->workers, (p->dense ? n_groups : nsets) * nch, work);
#pragma omp parallel num_threads(team) if (team > 1)
    {
        attend_scratch sc;
        attend_carve(p, workspace, (size_t)fasa__thread_id(), &sc);
        /* chunk-major order: threads working at the same time read nearby
         * tokens of the interleaved cache (DRAM page locality) */
        if (p->dense) {
#pragma omp for schedule(dynamic, 1)
            for (size_t it = 0; it < nch * n_groups; it++) {
                size_t c = it / n_groups, g0 = it % n_groups * per;
                size_t g1 = g0 + per < nsets ? g0 + per : nsets;
                attend_dense_chunk(p, kern, k, v, pq, c, g0, g1, pm, pl, pacc);
            }
        } else {
#pragma omp for schedule(dynamic, 1)
            for (size_t it = 0; it < nsets * nch; it++) {
                attend_set st;
                size_t s = it % nsets, c = it / nsets;
                attend_set_of(p, 0, s, &st);
                if (c * FASA_KV_CHUNK >= st.len)
                    continue;
                size_t row = c * H + st.h0;
                attend_chunk(p, kern, k, v, pq + st.h0 * d, &st, c, pm + row, pl + row,
                             pacc + row * dv);
            }
        }
        /* implicit barrier: every partial is written */
#pragma omp for schedule(dynamic, 1)
        for (size_t s = 0; s < nsets; s++) {
            attend_set st;
            attend_set_of(p, 0, s, &st);
            state_clear(sc.m, sc.l, sc.acc, st.rows, dv);
            for (size_t c = 0; c < fasa__n_chunks(st.len, FASA_KV_CHUNK); c++) {
                size_t row = c * H + st.h0;
                fasa__softmax_merge(sc.m, sc.l, sc.acc, dv, pm + row, pl + row, pacc + row * dv,
                                    dv, st.rows, dv);
            }
            finalize_set(p, out, lse, 0, &st, sc.m, sc.l, sc.acc);
        }
    }
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
    fasa_status st = check_common(ctx, q, k, v, scale, out, lse, workspace, workspace_size,
                                  index_stride, &p);
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
    fasa_status st = check_common(ctx, q, k, v, scale, out, lse, workspace, workspace_size,
                                  SIZE_MAX, &p);
    if (st != FASA_OK)
        return st;
    p.dense = 1;
    attend_run(&p, fasa__kernels_get(fasa__level(ctx)), q, k, v, out, lse, workspace);
    return FASA_OK;
}
