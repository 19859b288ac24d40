/*
 * fasa-backend.c - the adapter's only libfasa calls (see fasa-backend.h).
 *
 * Threading with today's API (a stopgap until "plan once, execute share ith
 * of nth" exists): the work of one layer is split per KV head, and for
 * multi-query graphs also per chunk of queries. Each KV head gets its own
 * single-KV-head copy of the profile and its own label cache per layer, so
 * the unit that owns a KV head appends its labels and predicts without any
 * barrier with the threads that run the other heads.
 */
#include "fasa-backend.h"

#include <fasa.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queries per dense unit of a multi-query graph (prefill). */
#define QCHUNK 64

typedef struct label_slot {
    void *mem;
    fasa_label_cache *cache; /* NULL in dense layers */
    size_t first;            /* cell of label 0 */
} label_slot;

typedef struct thread_slot {
    fasa_ctx *ctx;
    void *ws;
    size_t ws_size;
} thread_slot;

struct fasa_llama_backend {
    fasa_llama_config cfg;
    fasa_gqa_mode mode;
    size_t group; /* query heads per KV head */
    fasa_profile **sub; /* [n_kv_heads] single-KV-head profiles */
    label_slot *labels; /* [n_layers][n_kv_heads] */
    thread_slot *threads;
    char text[512];
};

static int fail(char *err, size_t n, const char *what, fasa_status st)
{
    snprintf(err, n, "%s: %s", what, fasa_status_name(st));
    return -1;
}

/* Single-KV-head profiles: KV head g keeps query heads g*G .. g*G+G-1 with
 * their FC sets, the group set of g, and every dense-layer mark. The RoPE
 * layout becomes the runtime's; FC indices are frequency indices in both
 * true-pair layouts, so they carry over unchanged. */
static int split_profile(fasa_llama_backend *b, const fasa_profile *p, int layout, size_t n_fc,
                         char *err, size_t n)
{
    const fasa_llama_config *c = &b->cfg;
    size_t L = c->n_layers, G = b->group;
    uint32_t *fcs = malloc(L * G * n_fc * sizeof *fcs), *gfcs = malloc(L * n_fc * sizeof *gfcs);
    int rc = (fcs && gfcs) ? 0 : fail(err, n, "split profile", FASA_ERR_OUT_OF_MEMORY);
    for (size_t g = 0; g < c->n_kv_heads && !rc; g++) {
        for (size_t l = 0; l < L && !rc; l++) {
            size_t got = 0;
            for (size_t h = 0; h < G && !rc; h++) {
                fasa_status st = fasa_profile_get_fcs(p, l, FASA_GQA_PER_HEAD, g * G + h,
                                                      fcs + (l * G + h) * n_fc, n_fc, &got);
                if (st != FASA_OK || got != n_fc) {
                    snprintf(err, n, "profile: layer %zu head %zu has %zu FCs, others %zu "
                                     "(%s)", l, g * G + h, got, n_fc, fasa_status_name(st));
                    rc = -1;
                }
            }
            fasa_status st = rc ? FASA_OK
                                : fasa_profile_get_fcs(p, l, FASA_GQA_GROUP_SHARED, g,
                                                       gfcs + l * n_fc, n_fc, &got);
            if (!rc && (st != FASA_OK || got != n_fc))
                rc = fail(err, n, "profile group FCs", st != FASA_OK ? st : FASA_ERR_BAD_SHAPE);
        }
        if (rc)
            break;
        fasa_model_shape sh = {sizeof sh, L, G, 1, c->head_dim, layout, 0};
        fasa_status st = fasa_profile_create(&sh, fcs, n_fc, gfcs, &b->sub[g]);
        for (size_t l = 0; l < L && st == FASA_OK; l++) {
            int dense = 0;
            st = fasa_profile_get_dense_layer(p, l, &dense);
            if (st == FASA_OK)
                st = fasa_profile_set_dense_layer(b->sub[g], l, dense);
        }
        if (st != FASA_OK)
            rc = fail(err, n, "fasa_profile_create (per KV head)", st);
    }
    free(fcs);
    free(gfcs);
    return rc;
}

/* The profile, selected for the budget as examples/llama selects it. */
static int load_profile(const char *path, const fasa_llama_config *c, fasa_profile **out,
                        size_t *n_fc, int *layout, char *err, size_t n)
{
    fasa_status st = fasa_profile_load(path, out);
    if (st != FASA_OK) {
        snprintf(err, n, "profile %s: %s", path, fasa_status_string(st));
        return -1;
    }
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if ((st = fasa_profile_get_info(*out, &info)) != FASA_OK)
        return fail(err, n, "fasa_profile_get_info", st);
    if (info.shape.n_layers != c->n_layers || info.shape.n_q_heads != c->n_q_heads ||
        info.shape.n_kv_heads != c->n_kv_heads || info.shape.head_dim != c->head_dim) {
        snprintf(err, n, "profile %s is for %zu layers, %zu/%zu heads, head_dim %zu; the model "
                         "has %zu, %zu/%zu, %zu", path, info.shape.n_layers, info.shape.n_q_heads,
                 info.shape.n_kv_heads, info.shape.head_dim, c->n_layers, c->n_q_heads,
                 c->n_kv_heads, c->head_dim);
        return -1;
    }
    if (info.shape.pair_layout == FASA_PAIRS_ADJACENT) {
        snprintf(err, n, "profile %s uses the ADJACENT grouping, which is no RoPE pairing of a "
                         "llama.cpp cache; calibrate with --layout half or interleaved", path);
        return -1;
    }
    if (info.has_agreement) {
        fasa_select_options so;
        fasa_select_options_default(&so);
        so.n_fc = so.min_fc = so.max_fc = (uint32_t)(c->head_dim / 8 ? c->head_dim / 8 : 1);
        if (c->budget >= 1)
            so.budget_hint = (uint32_t)c->budget;
        if ((st = fasa_profile_select(*out, &so)) != FASA_OK)
            return fail(err, n, "fasa_profile_select", st);
    }
    *n_fc = info.max_fc;
    if (info.has_agreement)
        *n_fc = (size_t)(c->head_dim / 8 ? c->head_dim / 8 : 1);
    *layout = info.shape.pair_layout;
    return 0;
}

static int alloc_labels(fasa_llama_backend *b, char *err, size_t n)
{
    const fasa_llama_config *c = &b->cfg;
    for (size_t l = 0; l < c->n_layers; l++) {
        int dense = 0;
        fasa_profile_get_dense_layer(b->sub[0], l, &dense);
        for (size_t g = 0; g < c->n_kv_heads && !dense; g++) {
            label_slot *s = &b->labels[l * c->n_kv_heads + g];
            size_t bytes = 0;
            fasa_status st = fasa_label_cache_size(b->sub[g], l, b->mode, (fasa_dtype)c->k_type,
                                                   c->capacity, &bytes);
            if (st == FASA_OK && !(s->mem = malloc(bytes)))
                st = FASA_ERR_OUT_OF_MEMORY;
            if (st == FASA_OK)
                st = fasa_label_cache_init(s->mem, bytes, b->sub[g], l, b->mode,
                                           (fasa_dtype)c->k_type, c->capacity, &s->cache);
            if (st != FASA_OK)
                return fail(err, n, "label cache", st);
        }
    }
    return 0;
}

/* Workspace for the largest job any unit can get. Views need data pointers
 * for validation only; nothing is read. */
static int alloc_threads(fasa_llama_backend *b, char *err, size_t n)
{
    const fasa_llama_config *c = &b->cfg;
    static const char dummy[64];
    size_t d = c->head_dim, Hq = c->n_q_heads, Hkv = c->n_kv_heads, G = b->group, need = 0;
    size_t nq = c->max_queries < QCHUNK ? c->max_queries : QCHUNK;
    fasa_view q1, qn, k, v;
    fasa_view_make(&q1, dummy, FASA_DTYPE_F32, 1, G, d, Hq * d, d);
    fasa_view_make(&qn, dummy, FASA_DTYPE_F32, nq ? nq : 1, G, d, Hq * d, d);
    fasa_view_make(&k, dummy, (fasa_dtype)c->k_type, c->capacity, 1, d, Hkv * d, d);
    fasa_view_make(&v, dummy, (fasa_dtype)c->v_type, c->capacity, 1, d, Hkv * d, d);
    for (size_t g = 0; g < Hkv; g++) {
        size_t a = 0, bd = 0;
        fasa_status st = fasa_decode_step_workspace_size(NULL, b->sub[g], &q1, &k, &v, b->mode,
                                                         c->budget, &a);
        if (st == FASA_OK)
            st = fasa_attend_dense_workspace_size(NULL, &qn, &k, &v, &bd);
        if (st != FASA_OK)
            return fail(err, n, "workspace size", st);
        need = a > need ? a : need;
        need = bd > need ? bd : need;
    }
    for (int i = 0; i < c->max_threads; i++) {
        thread_slot *t = &b->threads[i];
        fasa_status st = fasa_ctx_create(NULL, &t->ctx);
        t->ws_size = need ? need : 1;
        if (st == FASA_OK && !(t->ws = malloc(t->ws_size)))
            st = FASA_ERR_OUT_OF_MEMORY;
        if (st != FASA_OK)
            return fail(err, n, "thread context", st);
    }
    return 0;
}

int fasa_llama_backend_create(const char *profile_path, const fasa_llama_config *cfg,
                              fasa_llama_backend **out, char *err, size_t n)
{
    *out = NULL;
    if (cfg->k_type == FB_UNSUPPORTED || cfg->v_type == FB_UNSUPPORTED || cfg->n_kv_heads == 0 ||
        cfg->n_q_heads % cfg->n_kv_heads || cfg->max_threads < 1 || !(cfg->budget > 0)) {
        snprintf(err, n, "unsupported configuration (KV type, heads, threads or budget)");
        return -1;
    }
    fasa_llama_backend *b = calloc(1, sizeof *b);
    if (!b)
        return fail(err, n, "backend", FASA_ERR_OUT_OF_MEMORY);
    b->cfg = *cfg;
    b->mode = cfg->group_shared ? FASA_GQA_GROUP_SHARED : FASA_GQA_PER_HEAD;
    b->group = cfg->n_q_heads / cfg->n_kv_heads;
    b->sub = calloc(cfg->n_kv_heads, sizeof *b->sub);
    b->labels = calloc(cfg->n_layers * cfg->n_kv_heads, sizeof *b->labels);
    b->threads = calloc((size_t)cfg->max_threads, sizeof *b->threads);
    fasa_profile *p = NULL;
    size_t n_fc = 0;
    int layout = cfg->rope_interleaved ? FASA_PAIRS_INTERLEAVED : FASA_PAIRS_HALF;
    int rc = (b->sub && b->labels && b->threads) ? 0 : fail(err, n, "backend", FASA_ERR_OUT_OF_MEMORY);
    int from = -1;
    if (!rc)
        rc = load_profile(profile_path, cfg, &p, &n_fc, &from, err, n);
    if (!rc)
        rc = split_profile(b, p, layout, n_fc, err, n) || alloc_labels(b, err, n) ||
             alloc_threads(b, err, n);
    if (!rc) {
        char dense[128] = "";
        for (size_t l = 0; l < cfg->n_layers; l++) {
            int dl = 0;
            fasa_profile_get_dense_layer(b->sub[0], l, &dl);
            if (dl && strlen(dense) < sizeof dense - 8)
                snprintf(dense + strlen(dense), sizeof dense - strlen(dense), "%s%zu",
                         dense[0] ? "," : "", l);
        }
        static const char *tn[] = {"f32", "f16", "bf16"};
        snprintf(b->text, sizeof b->text,
                 "profile %s, budget %g, %s, %zu FCs per head, layout %s -> %s, labels %s, "
                 "dense layers {%s}, %d thread slots, %zu KiB workspace each",
                 profile_path, cfg->budget, cfg->group_shared ? "group-shared" : "per query head",
                 n_fc, from == FASA_PAIRS_HALF ? "half" : "interleaved", cfg->rope_interleaved ? "interleaved" : "half", tn[cfg->k_type], dense,
                 cfg->max_threads, b->threads[0].ws_size / 1024);
    }
    fasa_profile_destroy(p);
    if (rc) {
        fasa_llama_backend_destroy(b);
        return -1;
    }
    *out = b;
    return 0;
}

void fasa_llama_backend_destroy(fasa_llama_backend *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->labels && i < b->cfg.n_layers * b->cfg.n_kv_heads; i++)
        free(b->labels[i].mem);
    for (int i = 0; b->threads && i < b->cfg.max_threads; i++) {
        fasa_ctx_destroy(b->threads[i].ctx);
        free(b->threads[i].ws);
    }
    for (size_t g = 0; b->sub && g < b->cfg.n_kv_heads; g++)
        fasa_profile_destroy(b->sub[g]);
    free(b->labels);
    free(b->threads);
    free(b->sub);
    free(b);
}

const char *fasa_llama_describe(const fasa_llama_backend *b) { return b->text; }

size_t fasa_llama_units(const fasa_llama_backend *b, const fasa_llama_job *job)
{
    size_t chunks = job->n_q == 1 ? 1 : (job->n_q + QCHUNK - 1) / QCHUNK;
    return chunks * b->cfg.n_kv_heads;
}

static size_t esize(int type) { return type == FB_F32 ? 4 : 2; }

/* View of KV head g over cells [first, first + n) of a cache base. */
static void cache_view(const fasa_llama_backend *b, const void *base, int type, size_t g,
                       size_t first, size_t n, fasa_view *out)
{
    size_t d = b->cfg.head_dim, row = b->cfg.n_kv_heads * d;
    const char *p = (const char *)base + (first * row + g * d) * esize(type);
    fasa_view_make(out, p, (fasa_dtype)type, n, 1, d, row, d);
}

static int report(const thread_slot *t, const char *what, fasa_status st)
{
    fprintf(stderr, "fasa-llama: %s: %s (%s)\n", what, fasa_status_name(st),
            fasa_ctx_last_error(t->ctx));
    return -1;
}

/* Labels of cells [job->first, job->first + job->t) for (layer, g). */
static fasa_status sync_labels(fasa_llama_backend *b, label_slot *s, const fasa_llama_job *job,
                               size_t g)
{
    size_t have = 0;
    fasa_status st = fasa_label_cache_tokens(s->cache, &have);
    if (st == FASA_OK && (s->first != job->first || have > job->t)) {
        st = fasa_label_cache_reset(s->cache);
        s->first = job->first;
        have = 0;
    }
    if (st == FASA_OK && have < job->t) {
        fasa_view k;
        cache_view(b, job->k, b->cfg.k_type, g, job->first + have, job->t - have, &k);
        st = fasa_label_cache_append(s->cache, &k);
    }
    return st;
}

int fasa_llama_run_unit(fasa_llama_backend *b, const fasa_llama_job *job, size_t unit, int slot)
{
    const fasa_llama_config *c = &b->cfg;
    thread_slot *t = &b->threads[slot];
    size_t d = c->head_dim, Hq = c->n_q_heads, G = b->group, g = unit % c->n_kv_heads;
    size_t i0 = job->n_q == 1 ? 0 : (unit / c->n_kv_heads) * QCHUNK;
    size_t i1 = job->n_q == 1 ? 1 : (i0 + QCHUNK < job->n_q ? i0 + QCHUNK : job->n_q);
    size_t visible = job->t - job->n_q + i1; /* cells seen by the chunk's last query */
    fasa_view q, o, k, v;
    fasa_view_make(&q, job->q + (i0 * Hq + g * G) * d, FASA_DTYPE_F32, i1 - i0, G, d, Hq * d, d);
    fasa_view_make(&o, job->out + (i0 * Hq + g * G) * d, FASA_DTYPE_F32, i1 - i0, G, d, Hq * d, d);
    cache_view(b, job->k, c->k_type, g, job->first, visible, &k);
    cache_view(b, job->v, c->v_type, g, job->first, visible, &v);
    fasa_status st;
    if (job->n_q > 1) {
        st = fasa_attend_dense(t->ctx, &q, &k, &v, job->scale, &o, NULL, t->ws, t->ws_size);
        return st == FASA_OK ? 0 : report(t, "fasa_attend_dense", st);
    }
    label_slot *s = &b->labels[job->layer * c->n_kv_heads + g];
    size_t keep = 0;
    fasa_predict_max_selected(c->budget, job->t, &keep);
    fasa_label_cache *cache = NULL;
    if (s->cache && keep < job->t) { /* sparse this step: labels needed */
        if ((st = sync_labels(b, s, job, g)) != FASA_OK)
            return report(t, "label cache", st);
        cache = s->cache;
    }
    st = fasa_decode_step(t->ctx, b->sub[g], job->layer, b->mode, &q, &k, &v, cache, c->budget,
                          job->scale, &o, NULL, t->ws, t->ws_size);
    return st == FASA_OK ? 0 : report(t, "fasa_decode_step", st);
}

void fasa_llama_cells_written(fasa_llama_backend *b, size_t cell0, size_t n)
{
    for (size_t i = 0; i < b->cfg.n_layers * b->cfg.n_kv_heads; i++) {
        label_slot *s = &b->labels[i];
        size_t have = 0;
        if (!s->cache || fasa_label_cache_tokens(s->cache, &have) != FASA_OK || !have)
            continue;
        if (cell0 < s->first + have && s->first < cell0 + n)
            fasa_label_cache_reset(s->cache);
    }
}

void fasa_llama_invalidate(fasa_llama_backend *b)
{
    for (size_t i = 0; i < b->cfg.n_layers * b->cfg.n_kv_heads; i++)
        if (b->labels[i].cache)
            fasa_label_cache_reset(b->labels[i].cache);
}
