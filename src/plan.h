/*
 * plan.h - struct fasa_plan: a validated attention call (plan.c) and the
 * interface of the execute layer (exec*.c) that runs it.
 *
 * A public attention call goes: fasa__plan_make (validate the descriptor
 * into a plan) -> fasa__bind (data pointers of the plan or of the call) ->
 * fasa__bind_check (data contents, once) -> phases of stages, each a list
 * of independent items run by any thread (fasa__run_stage). Items are cut
 * by fixed sizes, never by the thread count, and every partial result is
 * combined in item order, so every split gives bit-identical output.
 */
#ifndef FASA_PLAN_H
#define FASA_PLAN_H

#define FASA__PLAN_MAGIC 0x4e414c5041534146ull /* "FASAPLAN" */
#define FASA__MAX_STAGES 8

/* Tiles of FASA_TILE cells per TIP item, and per attention chunk. */
#define FASA__TIP_TILES 32  /* 2048 cells                  */
#define FASA__KV_TILES 16   /* 1024 cells (FASA_KV_CHUNK)  */
/* Tiled prefill: a fold item's block of queries grows (from FASA_Q_BLOCK,
 * doubling) up to FASA__TILE_ROWS rows (queries x G) while the call keeps
 * at least FASA__TILE_ITEMS items; cells per RANGES mask piece. */
#define FASA__TILE_ROWS 512
#define FASA__TILE_ITEMS 64
#define FASA__RANGE_PIECE (FASA__KV_TILES * FASA_TILE)

typedef enum fasa__stage_kind {
    FASA__ST_VIS = 0,       /* item = query: visible tiles, counts, dense flag   */
    FASA__ST_TIP_SCORE,     /* item = (query, KV head, TIP chunk): score rows    */
    FASA__ST_TIP_SELECT,    /* item = (query, set): top-n of its row             */
    FASA__ST_TIP_HEAD,      /* item = (query, KV head): score all + select       */
    FASA__ST_ATTN_PART,     /* item = (query, set, KV chunk): a partial          */
    FASA__ST_ATTN_MERGE,    /* item = (query, set): merge partials, finalize     */
    FASA__ST_ATTN_FOLD      /* item = (query block, set): all chunks in order    */
} fasa__stage_kind;

typedef struct fasa__stage {
    uint32_t kind;
    uint32_t round;   /* queries [round * qb, min(n_q, round * qb + qb)) */
    size_t n_items;
} fasa__stage;

/* Offsets (bytes from the 64-byte aligned workspace base) of the shared
 * regions; per-thread slots follow at slot0 + ith * slot_bytes. Every
 * region holds qb queries (one round). */
typedef struct fasa__ws_layout {
    size_t vis;        /* per query: fasa__qvis                             */
    size_t tiles;      /* uint32_t [qb][max_tiles]: visible tile list        */
    size_t sets;       /* uint32_t [qb][n_sets][max_sel] + counts (FASA op)  */
    size_t counts;
    size_t rows;       /* float [qb][n_sets][row_stride]: TIP score rows     */
    size_t row_stride; /* floats: listed tiles x FASA_TILE, rounded to 16    */
    size_t part_m;     /* float [qb][n_chunks][Hq]: partial maxima           */
    size_t part_l;
    size_t part_acc;   /* float [qb][n_chunks][Hq][dv]                       */
    size_t slot0;
    size_t slot_bytes;
    size_t total;      /* including the 64 bytes of alignment slack          */
    /* inside a slot */
    size_t s_q, s_m, s_l, s_acc, s_cm, s_cl, s_cacc, s_w, s_dims, s_topk;
    size_t s_tile;     /* attn_tile scratch (tiled plans)                    */
    size_t s_bound;    /* uint32_t [3][fold_qb]: begin, end, range cursor    */
    size_t s_rmask;    /* float [fold_qb][FASA__RANGE_PIECE] (tiled RANGES)  */
} fasa__ws_layout;

/* Per query of a round, written by the VIS stage (or derived on the fly for
 * CAUSAL). */
typedef struct fasa__qvis {
    uint32_t n_tiles;  /* listed tiles (those with a visible cell)           */
    uint32_t n_vis;    /* visible cells                                      */
    uint32_t n_sel;    /* cells to select (FASA/PREDICT)                     */
    uint8_t dense;     /* FASA: attend every visible cell                    */
    uint8_t biased;    /* logits get a bias (mask values or ALiBi)           */
    uint8_t pad[2];
} fasa__qvis;

struct fasa_plan {
    uint64_t magic;
    int32_t op, mode;
    int32_t vis_kind, mask_dtype;
    const char *fn;        /* public function that made the plan (messages) */
    /* shapes */
    size_t n_q, n_q_heads, n_kv_heads, group, head_dim, head_dim_v, t;
    fasa_view q, k, v, out; /* data may be NULL: bound at execution          */
    int has_v, has_out;
    float *lse;
    /* visibility */
    const uint32_t *ranges, *range_first;
    const void *mask;
    size_t mask_stride, mask_cells;
    uint32_t window;
    /* logits */
    float scale, softcap;
    const float *sinks, *slopes;
    /* FASA */
    const fasa_profile *profile;
    size_t layer;
    fasa_label_cache *cache;
    double budget;
    const float *budgets;
    float *hints;          /* [n_q][n_sets] selection threshold hints       */
    uint32_t *indices;     /* user sets (PREDICT output, SPARSE input)      */
    uint32_t *counts;
    float *scores;
    size_t index_stride;
    size_t n_sets;         /* token sets per query (sparse)                 */
    size_t max_sel;        /* cells a set can hold                          */
    int own_sets;          /* FASA: sets live in the workspace              */
    int dense_only;        /* FASA planned as DENSE (dense layer / budget)  */
    int tip_from_cache;
    /* execution */
    const fasa__kernels *kern;
    size_t n_threads;
    size_t qb, n_rounds;   /* queries per round                             */
    size_t max_tiles;      /* tiles of t cells                              */
    size_t n_chunks;       /* attention chunks of a partial (0: folding)    */
    size_t attn_sets;      /* attention items per query                     */
    size_t dense_per;      /* KV heads per dense attention item             */
    size_t fold_qb;        /* queries per fold item (dense prefill block)   */
    int tiled;             /* fold items attend dense queries with attn_tile */
    size_t n_stages, n_phases;
    fasa__stage stages[FASA__MAX_STAGES];
    fasa__ws_layout ws;
};

/* The pointers one execution uses: the plan's, replaced by the call's. */
typedef struct fasa__io {
    fasa_view q, k, v, out;
    float *lse;
    const void *mask;
    const uint32_t *ranges, *range_first;
    const float *budgets;
    float *hints;
    uint32_t *indices, *counts;
    float *scores;
    fasa_label_cache *cache;
    char *ws;              /* 64-byte aligned workspace base              */
} fasa__io;

/* plan.c: validate desc into *p (messages name fn). */
fasa_status fasa__plan_make(fasa_ctx *ctx, const char *fn, const fasa_attention_desc *desc,
                            fasa_plan *p);
/* A label cache fits the plan (profile, layer, mode, cells). */
fasa_status fasa__plan_check_cache(fasa_ctx *ctx, const fasa_plan *p, const fasa_label_cache *c,
                                   const char *name);


/* exec.c */
fasa_status fasa__bind(fasa_ctx *ctx, const fasa_plan *p, const fasa_attention_data *data,
                       void *workspace, size_t workspace_size, fasa__io *io);
fasa_status fasa__bind_check(fasa_ctx *ctx, const fasa_plan *p, const fasa__io *io,
                             size_t workspace_size);
/* Item `item` of phase `phase` on scratch slot `slot`. */
void fasa__run_item(const fasa_plan *p, const fasa__io *io, size_t phase, size_t item,
                    size_t slot);
/* bind + check, then (run != 0) every phase on ctx's threads. */
fasa_status fasa__execute(fasa_ctx *ctx, const fasa_plan *p, const fasa_attention_data *data,
                          void *workspace, size_t workspace_size, int run);
/* Every phase on up to p->n_threads OpenMP threads (or inline). */
void fasa__run_all(const fasa_plan *p, const fasa__io *io, size_t threads);

/* exec_vis.c: per query visibility. */
void fasa__vis_item(const fasa_plan *p, const fasa__io *io, size_t i);
/* The visibility of query i (absolute index) of the current round. */
const fasa__qvis *fasa__qvis_of(const fasa_plan *p, const fasa__io *io, size_t i,
                                fasa__qvis *tmp);
/* Listed tile number u of query i: its cell tile index. */
uint32_t fasa__tile_of(const fasa_plan *p, const fasa__io *io, size_t i, size_t u);
/* Hull [*b, *e) of the cells query i sees (*b == *e: none). */
void fasa__vis_hull(const fasa_plan *p, const fasa__io *io, size_t i, uint32_t *b, uint32_t *e);
/* Position p_i of query i (its own cell under CAUSAL). */
static inline size_t fasa__qpos(const fasa_plan *p, size_t i) { return p->t - p->n_q + i; }

/* A run of visible cells [b, e) inside listed tiles; masked: the cells
 * need the mask row (some are hidden or biased). */
typedef struct fasa__run {
    uint32_t b, e;
    int masked;
} fasa__run;

/* Iterates the runs of query i inside its listed tiles [u0, u1), in cell
 * order (a range of RANGES visibility may come in several runs). */
typedef struct fasa__run_iter {
    const fasa_plan *p;
    const fasa__io *io;
    size_t i, u, u1;
    uint32_t r; /* RANGES: current range */
} fasa__run_iter;
void fasa__runs_begin(const fasa_plan *p, const fasa__io *io, size_t i, size_t u0, size_t u1,
                      fasa__run_iter *it);
int fasa__runs_next(fasa__run_iter *it, fasa__run *run);

static inline size_t fasa__n_tiles(size_t cells) { return (cells + FASA_TILE - 1) / FASA_TILE; }

/* Bias b_j of the mask row of query i (no slope), as float. */
static inline const void *fasa__mask_row(const fasa_plan *p, const fasa__io *io, size_t i)
{
    if (io->mask == NULL)
        return NULL;
    return (const char *)io->mask + i * p->mask_stride * fasa__dtype_size(p->mask_dtype);
}

/* exec_tip.c */
void fasa__tip_score_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t g,
                          size_t chunk, size_t slot);
void fasa__tip_select_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                           size_t slot);
void fasa__tip_head_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t g,
                         size_t slot);

/* exec_attn.c */
void fasa__attn_part_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                          size_t chunk, size_t slot);
void fasa__attn_merge_item(const fasa_plan *p, const fasa__io *io, size_t i, size_t s,
                           size_t slot);
void fasa__attn_fold_item(const fasa_plan *p, const fasa__io *io, size_t i0, size_t s,
                          size_t slot);

/* Workspace regions of a round (exec.c). */
static inline char *fasa__slot(const fasa_plan *p, const fasa__io *io, size_t slot)
{
    return io->ws + p->ws.slot0 + slot * p->ws.slot_bytes;
}
static inline size_t fasa__round_q(const fasa_plan *p, size_t i) { return i % p->qb; }

/* Set s of query i (sparse): its index list and count. */
static inline uint32_t *fasa__set_idx(const fasa_plan *p, const fasa__io *io, size_t i, size_t s)
{
    if (p->own_sets)
        return (uint32_t *)(void *)(io->ws + p->ws.sets) +
               (fasa__round_q(p, i) * p->n_sets + s) * p->max_sel;
    return io->indices + (i * p->n_sets + s) * p->index_stride;
}
static inline uint32_t *fasa__set_count(const fasa_plan *p, const fasa__io *io, size_t i,
                                        size_t s)
{
    if (p->own_sets)
        return (uint32_t *)(void *)(io->ws + p->ws.counts) + fasa__round_q(p, i) * p->n_sets + s;
    return io->counts + i * p->n_sets + s;
}

#endif
