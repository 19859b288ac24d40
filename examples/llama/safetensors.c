/*
 * safetensors.c - load a Hugging Face Llama checkpoint: config.json plus
 * one model.safetensors or shards listed in model.safetensors.index.json.
 * Every tensor's dtype, shape and byte range is checked against config.json
 * and the file size before anything is read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "json.h"
#include "model.h"

#define MAX_SHARDS 64
#define MAX_HEADER (64u << 20)

typedef struct {
    char path[1600];
    json_doc doc;
    uint64_t data_start, data_size;
} shard;

typedef struct {
    shard shards[MAX_SHARDS];
    int n_shards;
    json_doc index;
    int have_index;
} st_files;

static int read_config(llama_config *c, int *tied, const char *dir, char *err, size_t cap)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc d;
    if (json_load(&d, path, err, cap))
        return -1;
    const json_node *r = json_root(&d);
    long long v;
    double x;
    memset(c, 0, sizeof *c);
    struct {
        const char *key;
        int *dst;
        int required;
    } ints[] = {{"vocab_size", &c->vocab, 1},           {"hidden_size", &c->dim, 1},
                {"intermediate_size", &c->hidden, 1},   {"num_hidden_layers", &c->n_layers, 1},
                {"num_attention_heads", &c->n_heads, 1}, {"num_key_value_heads", &c->n_kv_heads, 0},
                {"head_dim", &c->head_dim, 0},          {"max_position_embeddings", &c->max_seq, 1}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (json_get_int(&d, r, ints[i].key, &v)) {
            if (!ints[i].required)
                continue;
            snprintf(err, cap, "%s: missing or non-integer \"%s\"", path, ints[i].key);
            json_free(&d);
            return -1;
        }
        if (v <= 0 || v > (1 << 24)) {
            snprintf(err, cap, "%s: \"%s\" = %lld out of range", path, ints[i].key, v);
            json_free(&d);
            return -1;
        }
        *ints[i].dst = (int)v;
    }
    if (!c->n_kv_heads)
        c->n_kv_heads = c->n_heads;
    if (!c->head_dim)
        c->head_dim = c->dim / c->n_heads;
    c->rope_theta = json_get_num(&d, r, "rope_theta", &x) ? 10000.0 : x;
    c->norm_eps = json_get_num(&d, r, "rms_norm_eps", &x) ? 1e-6 : x;
    const json_node *t = json_get(&d, r, "tie_word_embeddings");
    *tied = t && t->type == JSON_BOOL && t->number != 0;
    const json_node *rs = json_get(&d, r, "rope_scaling");
    int bad_scaling = rs && rs->type != JSON_NULL;
    json_free(&d);
    if (bad_scaling) {
        snprintf(err, cap, "%s: rope_scaling is not supported", path);
        return -1;
    }
    if (c->n_heads % c->n_kv_heads || c->head_dim % 2 || c->rope_theta <= 0 ||
        c->norm_eps <= 0) {
        snprintf(err, cap, "%s: inconsistent heads/head_dim/rope_theta/eps", path);
        return -1;
    }
    c->pair_layout = FASA_PAIRS_HALF;
    return 0;
}

static int open_shard(shard *s, const char *path, char *err, size_t cap)
{
    snprintf(s->path, sizeof s->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: cannot open", path);
        return -1;
    }
    unsigned char hb[8];
    uint64_t hl = 0, fsize = 0;
    int ok = fread(hb, 1, 8, f) == 8;
    for (int i = 7; ok && i >= 0; i--)
        hl = hl << 8 | hb[i];
    if (ok && fseek(f, 0, SEEK_END) == 0) {
        long e = ftell(f);
        fsize = e < 0 ? 0 : (uint64_t)e;
    }
    if (!ok || hl == 0 || hl > MAX_HEADER || 8 + hl > fsize) {
        fclose(f);
        snprintf(err, cap, "%s: truncated or bad safetensors header length", path);
        return -1;
    }
    char *text = malloc(hl);
    ok = text && fseek(f, 8, SEEK_SET) == 0 && fread(text, 1, hl, f) == hl;
    fclose(f);
    char jerr[200];
    if (!ok || json_parse(&s->doc, text, hl, jerr, sizeof jerr)) {
        snprintf(err, cap, "%s: %s", path, ok ? jerr : "cannot read header");
        free(text);
        return -1;
    }
    free(text);
    if (json_root(&s->doc)->type != JSON_OBJECT) {
        snprintf(err, cap, "%s: header is not a JSON object", path);
        json_free(&s->doc);
        return -1;
    }
    s->data_start = 8 + hl;
    s->data_size = fsize - s->data_start;
    return 0;
}

static void close_files(st_files *fs)
{
    for (int i = 0; i < fs->n_shards; i++)
        json_free(&fs->shards[i].doc);
    if (fs->have_index)
        json_free(&fs->index);
    free(fs);
}

static shard *shard_for(st_files *fs, const char *dir, const char *name, char *err, size_t cap)
{
    char file[512] = "model.safetensors";
    if (fs->have_index) {
        const json_node *wm = json_get(&fs->index, json_root(&fs->index), "weight_map");
        const json_node *e = json_get(&fs->index, wm, name);
        if (!e || e->type != JSON_STRING || e->len == 0 || e->len >= sizeof file ||
            memchr(e->str, '/', e->len)) {
            snprintf(err, cap, "index: no valid shard entry for tensor %s", name);
            return NULL;
        }
        memcpy(file, e->str, e->len);
        file[e->len] = 0;
    }
    char path[1600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    for (int i = 0; i < fs->n_shards; i++)
        if (!strcmp(fs->shards[i].path, path))
            return &fs->shards[i];
    if (fs->n_shards == MAX_SHARDS) {
        snprintf(err, cap, "too many shards");
        return NULL;
    }
    shard *s = &fs->shards[fs->n_shards];
    memset(s, 0, sizeof *s);
    if (open_shard(s, path, err, cap))
        return NULL;
    fs->n_shards++;
    return s;
}

/* Find, validate and read one tensor of shape rows x cols into dst (f32). */
static int load_tensor(st_files *fs, const char *dir, const char *name, size_t rows, size_t cols,
                       float *dst, char *err, size_t cap)
{
    shard *s = shard_for(fs, dir, name, err, cap);
    if (!s)
        return -1;
    const json_node *t = json_get(&s->doc, json_root(&s->doc), name);
    if (!t || t->type != JSON_OBJECT) {
        snprintf(err, cap, "%s: tensor %s missing", s->path, name);
        return -1;
    }
    const json_node *dt = json_get(&s->doc, t, "dtype"), *sh = json_get(&s->doc, t, "shape"),
                    *off = json_get(&s->doc, t, "data_offsets");
    size_t esz = 0;
    int kind = -1;
    if (dt && dt->type == JSON_STRING) {
        if (dt->len == 3 && !memcmp(dt->str, "F16", 3)) { esz = 2; kind = 0; }
        else if (dt->len == 4 && !memcmp(dt->str, "BF16", 4)) { esz = 2; kind = 1; }
        else if (dt->len == 3 && !memcmp(dt->str, "F32", 3)) { esz = 4; kind = 2; }
    }
    if (kind < 0) {
        snprintf(err, cap, "%s: tensor %s has missing or unsupported dtype", s->path, name);
        return -1;
    }
    /* Shape must be exactly [rows, cols], or [cols] for vectors. */
    size_t want_rank = rows == 1 ? 1 : 2, dims[2] = {rows, cols};
    if (!sh || sh->type != JSON_ARRAY || sh->n_children != want_rank) {
        snprintf(err, cap, "%s: tensor %s: bad shape rank (want %zu)", s->path, name, want_rank);
        return -1;
    }
    for (size_t i = 0; i < want_rank; i++) {
        const json_node *dn = json_child(&s->doc, sh, i);
        size_t want = want_rank == 1 ? cols : dims[i];
        if (!dn || dn->type != JSON_NUMBER || dn->number != (double)want) {
            snprintf(err, cap, "%s: tensor %s: shape does not match config (dim %zu: want %zu)",
                     s->path, name, i, want);
            return -1;
        }
    }
    const json_node *o0 = json_child(&s->doc, off, 0), *o1 = json_child(&s->doc, off, 1);
    if (!off || off->type != JSON_ARRAY || off->n_children != 2 || !o0 || !o1 ||
        o0->type != JSON_NUMBER || o1->type != JSON_NUMBER || o0->number < 0 ||
        o1->number < o0->number || o1->number > (double)s->data_size) {
        snprintf(err, cap, "%s: tensor %s: data_offsets missing or outside the file (truncated?)",
                 s->path, name);
        return -1;
    }
    uint64_t b = (uint64_t)o0->number, e = (uint64_t)o1->number, n = (uint64_t)rows * cols;
    if (e - b != n * esz) {
        snprintf(err, cap, "%s: tensor %s: byte size %llu != %llu elements x %zu", s->path, name,
                 (unsigned long long)(e - b), (unsigned long long)n, esz);
        return -1;
    }
    FILE *f = fopen(s->path, "rb");
    unsigned char *raw = malloc((size_t)(e - b) ? (size_t)(e - b) : 1);
    int ok = f && raw && fseek(f, (long)(s->data_start + b), SEEK_SET) == 0 &&
             fread(raw, 1, (size_t)(e - b), f) == (size_t)(e - b);
    if (f)
        fclose(f);
    if (!ok) {
        free(raw);
        snprintf(err, cap, "%s: tensor %s: read failed", s->path, name);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *p = raw + i * esz;
        if (kind == 0) {
            dst[i] = llama_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        } else if (kind == 1) {
            uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
            memcpy(&dst[i], &bits, 4);
        } else {
            uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                            (uint32_t)p[3] << 24;
            memcpy(&dst[i], &bits, 4);
        }
    }
    free(raw);
    return 0;
}

int llama_load_safetensors(llama_model *m, const char *dir, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    int tied;
    if (read_config(&m->c, &tied, dir, err, cap))
        return -1;
    st_files *fs = calloc(1, sizeof *fs);
    if (!fs) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int irc = json_load(&fs->index, path, err, cap);
    if (irc < 0) {
        free(fs);
        return -1;
    }
    if (irc == JSON_LOAD_NOFILE && cap > 0)
        err[0] = 0; /* no index: one model.safetensors, not an error */
    if (irc == 0) {
        fs->have_index = 1;
        const json_node *wm = json_get(&fs->index, json_root(&fs->index), "weight_map");
        if (!wm || wm->type != JSON_OBJECT) {
            snprintf(err, cap, "%s: no weight_map object", path);
            close_files(fs);
            return -1;
        }
        /* Without a tied config the output head must be listed. */
        if (!tied && !json_get(&fs->index, wm, "lm_head.weight")) {
            snprintf(err, cap, "%s: lm_head.weight missing and embeddings not tied", path);
            close_files(fs);
            return -1;
        }
    }
    if (llama_alloc_weights(m, tied, err, cap)) {
        close_files(fs);
        llama_free(m);
        return -1;
    }
    const llama_config *c = &m->c;
    size_t D = (size_t)c->dim, H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, V = (size_t)c->vocab;
    int rc = load_tensor(fs, dir, "model.embed_tokens.weight", V, D, m->tok_emb, err, cap);
    if (!rc)
        rc = load_tensor(fs, dir, "model.norm.weight", 1, D, m->final_norm, err, cap);
    if (!rc && !tied)
        rc = load_tensor(fs, dir, "lm_head.weight", V, D, m->out, err, cap);
    for (int l = 0; l < c->n_layers && !rc; l++) {
        llama_layer *L = &m->layers[l];
        struct {
            const char *suffix;
            size_t rows, cols;
            float *dst;
        } t[] = {{"input_layernorm.weight", 1, D, L->attn_norm},
                 {"self_attn.q_proj.weight", qd, D, L->wq},
                 {"self_attn.k_proj.weight", kvd, D, L->wk},
                 {"self_attn.v_proj.weight", kvd, D, L->wv},
                 {"self_attn.o_proj.weight", D, qd, L->wo},
                 {"post_attention_layernorm.weight", 1, D, L->ffn_norm},
                 {"mlp.gate_proj.weight", H, D, L->w_gate},
                 {"mlp.up_proj.weight", H, D, L->w_up},
                 {"mlp.down_proj.weight", D, H, L->w_down}};
        for (size_t i = 0; i < sizeof t / sizeof t[0] && !rc; i++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].suffix);
            rc = load_tensor(fs, dir, name, t[i].rows, t[i].cols, t[i].dst, err, cap);
        }
    }
    close_files(fs);
    if (!rc && llama_init_rope(m)) {
        snprintf(err, cap, "out of memory (rope tables)");
        rc = -1;
    }
    if (rc)
        llama_free(m);
    return rc;
}
