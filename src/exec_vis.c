/*
 * exec_vis.c - which cells a query sees: the VIS stage (per query: listed
 * tiles, visible count, cells to select, dense or not) and the run
 * iterator every later stage walks the visible cells with.
 *
 * A query's cells are seen through its *listed tiles*: the FASA_TILE-cell
 * tiles holding at least one visible cell, ascending. TIP scores whole
 * listed tiles into a compact row (tile u at u * FASA_TILE) and attention
 * chunks are fixed runs of listed tiles, so nothing outside them costs
 * work. CAUSAL lists are a contiguous span computed on the fly; RANGES and
 * MASK lists are written by the VIS stage into the workspace (a MASK entry
 * carries FASA__TILE_MASKED when its cells need the mask row: some hidden
 * or some bias).
 */
#include "internal.h"
#include "plan.h"

#define FASA__TILE_MASKED 0x80000000u

static fasa__qvis *qvis_slot(const fasa_plan *p, const fasa__io *io, size_t i)
{
    return (fasa__qvis *)(void *)(io->ws + p->ws.vis) + fasa__round_q(p, i);
}

static uint32_t *tile_list(const fasa_plan *p, const fasa__io *io, size_t i)
{
    return (uint32_t *)(void *)(io->ws + p->ws.tiles) + fasa__round_q(p, i) * p->max_tiles;
}

/* First visible cell of query i under CAUSAL (the window's start). */
static size_t causal_lo(const fasa_plan *p, size_t i)
{
    size_t end = fasa__qpos(p, i) + 1;
    return p->window != 0 && end > p->window ? end - p->window : 0;
}

static double query_budget(const fasa_plan *p, const fasa__io *io, size_t i)
{
    return io->budgets != NULL ? (double)io->budgets[i] : p->budget;
}

/* n_sel and dense from the visible count (FASA and PREDICT only). */
static void finish_counts(const fasa_plan *p, const fasa__io *io, size_t i, fasa__qvis *v)
{
    v->n_sel = 0;
    v->dense = p->op == FASA_OP_DENSE;
    if (p->op != FASA_OP_FASA && p->op != FASA_OP_PREDICT)
        return;
    size_t n = v->n_vis == 0 ? 0 : fasa__budget_count(query_budget(p, io, i), v->n_vis);
    if (n > p->max_sel) /* budgets[] may ask for more than the plan holds */
        n = p->max_sel;
    v->n_sel = (uint32_t)n;
    v->dense = p->op == FASA_OP_FASA && n >= v->n_vis;
}

const fasa__qvis *fasa__qvis_of(const fasa_plan *p, const fasa__io *io, size_t i,
                                fasa__qvis *tmp)
{
    if (p->vis_kind != FASA_VISIBLE_CAUSAL)
        return qvis_slot(p, io, i);
    size_t lo = causal_lo(p, i), end = fasa__qpos(p, i) + 1;
    memset(tmp, 0, sizeof *tmp);
    tmp->n_tiles = (uint32_t)(fasa__n_tiles(end) - lo / FASA_TILE);
    tmp->n_vis = (uint32_t)(end - lo);
    tmp->biased = p->slopes != NULL;
    finish_counts(p, io, i, tmp);
    return tmp;
}

uint32_t fasa__tile_of(const fasa_plan *p, const fasa__io *io, size_t i, size_t u)
{
    if (p->vis_kind == FASA_VISIBLE_CAUSAL)
        return (uint32_t)(causal_lo(p, i) / FASA_TILE + u);
    return tile_list(p, io, i)[u] & ~FASA__TILE_MASKED;
}

void fasa__vis_hull(const fasa_plan *p, const fasa__io *io, size_t i, uint32_t *b, uint32_t *e)
{
    *b = *e = 0;
    if (p->vis_kind == FASA_VISIBLE_CAUSAL) {
        *b = (uint32_t)causal_lo(p, i);
        *e = (uint32_t)(fasa__qpos(p, i) + 1);
    } else if (p->vis_kind == FASA_VISIBLE_RANGES) {
        uint32_t r0 = io->range_first[i], r1 = io->range_first[i + 1];
        if (r0 < r1) {
            *b = io->ranges[2 * (size_t)r0];
            *e = io->ranges[2 * (size_t)r1 - 1];
        }
    } else {
        const fasa__qvis *v = qvis_slot(p, io, i);
        if (v->n_tiles > 0) {
            size_t last = ((size_t)fasa__tile_of(p, io, i, v->n_tiles - 1) + 1) * FASA_TILE;
            *b = fasa__tile_of(p, io, i, 0) * FASA_TILE;
            *e = (uint32_t)(last < p->t ? last : p->t);
        }
    }
}

/* ------------------------------------------------------------ VIS stage */

static void vis_ranges(const fasa_plan *p, const fasa__io *io, size_t i, fasa__qvis *v)
{
    uint32_t *list = tile_list(p, io, i);
    size_t n_tiles = 0, n_vis = 0;
    for (uint32_t r = io->range_first[i]; r < io->range_first[i + 1]; r++) {
        uint32_t b = io->ranges[2 * (size_t)r], e = io->ranges[2 * (size_t)r + 1];
        n_vis += e - b;
        for (uint32_t tl = b / FASA_TILE; tl <= (e - 1) / FASA_TILE; tl++)
            if (n_tiles == 0 || list[n_tiles - 1] != tl) /* ranges ascend: dedup the last */
                list[n_tiles++] = tl;
    }
    v->n_tiles = (uint32_t)n_tiles;
    v->n_vis = (uint32_t)n_vis;
    v->biased = 0;
}

/* Cells [a, b) of a mask row all +0 (visible, no bias) or all -inf
 * (hidden), the common tiles of a runtime's mask: decided on 64-bit words
 * (with *vis / *zero set) without a per-cell loop. */
static int tile_uniform(const void *row, int f16, size_t a, size_t b, size_t *vis, size_t *zero)
{
    const size_t es = f16 ? 2 : 4, bytes = (b - a) * es;
    const unsigned char *m = (const unsigned char *)row + a * es;
    const uint64_t ninf = f16 ? 0xfc00fc00fc00fc00ull : 0xff800000ff800000ull;
    uint64_t all_zero = 0, all_ninf = 1;
    size_t o = 0;
    for (; o + 8 <= bytes; o += 8) {
        uint64_t w;
        memcpy(&w, m + o, 8);
        all_zero |= w;
        all_ninf &= w == ninf;
    }
    if (o != bytes)
        return 0; /* a partial word: the per-cell loop decides */
    if (all_zero == 0) {
        *vis = *zero = b - a;
        return 1;
    }
    if (all_ninf) {
        *vis = *zero = 0;
        return 1;
    }
    return 0;
}

static void vis_mask(const fasa_plan *p, const fasa__io *io, size_t i, fasa__qvis *v)
{
    uint32_t *list = tile_list(p, io, i);
    const void *row = fasa__mask_row(p, io, i);
    const int f16 = p->mask_dtype == FASA_DTYPE_F16;
    size_t n_tiles = 0, n_vis = 0;
    int biased = p->slopes != NULL;
    for (size_t tl = 0; tl * FASA_TILE < p->t; tl++) {
        size_t a = tl * FASA_TILE, b = a + FASA_TILE < p->t ? a + FASA_TILE : p->t;
        size_t vis = 0, zero = 0;
        if (tile_uniform(row, f16, a, b, &vis, &zero)) {
        } else if (f16) {
            /* -inf is 0xfc00; +-0 are 0x0000 / 0x8000 */
            const uint16_t *m = (const uint16_t *)row;
            for (size_t j = a; j < b; j++) {
                vis += m[j] != 0xfc00u;
                zero += (m[j] & 0x7fffu) == 0;
            }
        } else {
            const float *m = (const float *)row;
            for (size_t j = a; j < b; j++) {
                vis += m[j] != -INFINITY;
                zero += m[j] == 0.0f;
            }
        }
        if (vis == 0)
            continue;
        /* masked: some cell hidden, or some bias to add */
        int masked = vis < b - a || zero < b - a || p->slopes != NULL;
        biased |= zero < vis;
        list[n_tiles++] = (uint32_t)tl | (masked ? FASA__TILE_MASKED : 0);
        n_vis += vis;
    }
    v->n_tiles = (uint32_t)n_tiles;
    v->n_vis = (uint32_t)n_vis;
    v->biased = (uint8_t)biased;
}

void fasa__vis_item(const fasa_plan *p, const fasa__io *io, size_t i)
{
    fasa__qvis *v = qvis_slot(p, io, i);
    memset(v, 0, sizeof *v);
    if (p->vis_kind == FASA_VISIBLE_RANGES)
        vis_ranges(p, io, i, v);
    else
        vis_mask(p, io, i, v);
    finish_counts(p, io, i, v);
}

/* ---------------------------------------------------------------- runs */

void fasa__runs_begin(const fasa_plan *p, const fasa__io *io, size_t i, size_t u0, size_t u1,
                      fasa__run_iter *it)
{
    memset(it, 0, sizeof *it);
    it->p = p;
    it->io = io;
    it->i = i;
    it->u = u0;
    it->u1 = u1;
    if (p->vis_kind == FASA_VISIBLE_RANGES) {
        /* first range ending after the first listed tile's start */
        uint32_t lo = io->range_first[i], hi = io->range_first[i + 1];
        size_t a = u0 < u1 ? (size_t)fasa__tile_of(p, io, i, u0) * FASA_TILE : 0;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (io->ranges[2 * (size_t)mid + 1] <= a)
                lo = mid + 1;
            else
                hi = mid;
        }
        it->r = lo;
    }
}

int fasa__runs_next(fasa__run_iter *it, fasa__run *run)
{
    const fasa_plan *p = it->p;
    const fasa__io *io = it->io;
    if (it->u >= it->u1)
        return 0;
    if (p->vis_kind == FASA_VISIBLE_CAUSAL) {
        size_t lo = causal_lo(p, it->i), end = fasa__qpos(p, it->i) + 1;
        size_t a = (size_t)fasa__tile_of(p, io, it->i, it->u) * FASA_TILE;
        size_t b = (size_t)fasa__tile_of(p, io, it->i, it->u1 - 1) * FASA_TILE + FASA_TILE;
        run->b = (uint32_t)(a > lo ? a : lo);
        run->e = (uint32_t)(b < end ? b : end);
        run->masked = 0;
        it->u = it->u1;
        return 1;
    }
    if (p->vis_kind == FASA_VISIBLE_MASK) {
        const uint32_t *list = tile_list(p, io, it->i);
        uint32_t first = list[it->u];
        uint32_t flag = first & FASA__TILE_MASKED, tl = first & ~FASA__TILE_MASKED;
        size_t u = it->u + 1;
        /* merge contiguous tiles of the same kind */
        while (u < it->u1 && list[u] == ((tl + (uint32_t)(u - it->u)) | flag))
            u++;
        size_t e = ((size_t)tl + (u - it->u)) * FASA_TILE;
        run->b = tl * FASA_TILE;
        run->e = (uint32_t)(e < p->t ? e : p->t);
        run->masked = flag != 0;
        it->u = u;
        return 1;
    }
    /* RANGES: the next range piece inside the listed tiles [u, u1); runs
     * from ranges that touch the same tile come out one by one. */
    const uint32_t r_end = io->range_first[it->i + 1];
    while (it->u < it->u1 && it->r < r_end) {
        size_t a = (size_t)fasa__tile_of(p, io, it->i, it->u) * FASA_TILE, b = a + FASA_TILE;
        size_t rb = io->ranges[2 * (size_t)it->r], re = io->ranges[2 * (size_t)it->r + 1];
        size_t lo = rb > a ? rb : a;
        if (lo >= b) { /* the range starts beyond this tile */
            it->u++;
            continue;
        }
        /* extend through the following listed tiles while contiguous */
        size_t hi = b;
        while (hi < re && it->u + 1 < it->u1 &&
               (size_t)fasa__tile_of(p, io, it->i, it->u + 1) * FASA_TILE == hi) {
            it->u++;
            hi += FASA_TILE;
        }
        size_t e = re < hi ? re : hi;
        run->b = (uint32_t)lo;
        run->e = (uint32_t)e;
        run->masked = 0;
        if (re <= hi) /* range done; the tile may hold more ranges */
            it->r++;
        if (e >= hi) /* tile done */
            it->u++;
        return 1;
    }
    it->u = it->u1;
    return 0;
}
