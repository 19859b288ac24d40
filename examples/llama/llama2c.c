/*
 * llama2c.c - load a llama2.c "v0" checkpoint: 7 int32 header fields, then
 * f32 tensors. A negative vocab means a separate classifier follows. RoPE is
 * the INTERLEAVED (Meta) layout with theta 10000; the stored freq_cis tables
 * are skipped because the runtime computes the same angles.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int read_f32(FILE *f, float *dst, size_t n)
{
    return fread(dst, sizeof(float), n, f) == n ? 0 : -1;
}


int llama_load_llama2c(llama_model *m, const char *file, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(err, cap, "%s: cannot open", file);
        return -1;
    }
    int32_t h[7];
    if (fread(h, sizeof(int32_t), 7, f) != 7) {
        fclose(f);
        snprintf(err, cap, "%s: truncated header", file);
        return -1;
    }
    llama_config *c = &m->c;
    int tied = h[5] > 0;
    c->dim = h[0];
    c->hidden = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->vocab = h[5] < 0 ? -h[5] : h[5];
    c->max_seq = h[6];
    c->rope_theta = 10000.0;
    c->norm_eps = 1e-5;
    c->pair_layout = FASA_PAIRS_INTERLEAVED;
    if (c->dim <= 0 || c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->vocab <= 0 || c->max_seq <= 0 || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2 || c->dim > (1 << 16) ||
        c->hidden > (1 << 18) || c->n_layers > 1024 || c->vocab > (1 << 20) ||
        c->max_seq > (1 << 20)) {
        fclose(f);
        snprintf(err, cap, "%s: implausible llama2.c header", file);
        return -1;
    }
    c->head_dim = c->dim / c->n_heads;
    size_t D = (size_t)c->dim, H = (size_t)c->hidden, hd = (size_t)c->head_dim,
           qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd, V = (size_t)c->vocab,
           NL = (size_t)c->n_layers, S = (size_t)c->max_seq;
    /* Exact expected size: a truncated or padded file is rejected. */
    size_t expect = 28 + 4 * (V * D + NL * (D + qd * D + 2 * kvd * D + D * qd + D + 3 * H * D) +
                              D + S * hd + (tied ? 0 : V * D));
    if (fseek(f, 0, SEEK_END) != 0 || (size_t)ftell(f) != expect || fseek(f, 28, SEEK_SET) != 0) {
        fclose(f);
        snprintf(err, cap, "%s: file size does not match the header (want %zu bytes)", file,
                 expect);
        return -1;
    }
    if (llama_alloc_weights(m, tied, err, cap)) {
        fclose(f);
        llama_free(m);
        return -1;
    }
    int rc = read_f32(f, m->tok_emb, V * D);
#define PER_LAYER(field, n)                                                                        \
    for (size_t l = 0; l < NL && !rc; l++)                                                         \
        rc = read_f32(f, m->layers[l].field, (n));
    PER_LAYER(attn_norm, D)
    PER_LAYER(wq, qd * D)
    PER_LAYER(wk, kvd * D)
    PER_LAYER(wv, kvd * D)
    PER_LAYER(wo, D * qd)
    PER_LAYER(ffn_norm, D)
    PER_LAYER(w_gate, H * D) /* w1 */
    PER_LAYER(w_down, D * H) /* w2 */
    PER_LAYER(w_up, H * D)   /* w3 */
#undef PER_LAYER
    if (!rc)
        rc = read_f32(f, m->final_norm, D);
    if (!rc && !tied)
        rc = fseek(f, (long)(S * hd * 4), SEEK_CUR) || read_f32(f, m->out, V * D);
    fclose(f);
    if (rc) {
        snprintf(err, cap, "%s: read failed", file);
        llama_free(m);
        return -1;
    }
    if (llama_init_rope(m)) {
        snprintf(err, cap, "out of memory (rope tables)");
        llama_free(m);
        return -1;
    }
    return 0;
}
