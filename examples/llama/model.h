/*
 * model.h - a small Llama forward pass whose attention all goes through
 * libfasa. Weights are f32, row-major [out][in]; the KV cache is token-major
 * with KV heads interleaved (llama.cpp layout), f32 or f16.
 */
#ifndef LLAMA_MODEL_H
#define LLAMA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "fasa.h"

typedef struct llama_config {
    int n_layers, dim, hidden, n_heads, n_kv_heads, head_dim, vocab, max_seq;
    double rope_theta, norm_eps;
    int pair_layout; /* FASA_PAIRS_HALF or FASA_PAIRS_INTERLEAVED */
} llama_config;

typedef struct llama_layer {
    float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w_gate, *w_up, *w_down;
} llama_layer;

typedef struct llama_model {
    llama_config c;
    float *tok_emb;    /* [vocab][dim]                            */
    float *final_norm; /* [dim]                                   */
    float *out;        /* [vocab][dim]; == tok_emb when tied       */
    llama_layer *layers;
    float *rope_cos, *rope_sin; /* [max_seq][head_dim/2]          */
    void *blob;        /* every weight lives here (one allocation) */
} llama_model;

/* Load from a directory with config.json + safetensors, or a llama2.c .bin
 * file (chosen by whether path is a directory). 0 on success, else -1 with a
 * message in err. */
int llama_load(llama_model *m, const char *path, char *err, size_t err_cap);
int llama_load_safetensors(llama_model *m, const char *dir, char *err, size_t err_cap);
int llama_load_llama2c(llama_model *m, const char *file, char *err, size_t err_cap);
void llama_free(llama_model *m);
/* Allocate the blob and set every pointer from the config (loaders call it). */
int llama_alloc_weights(llama_model *m, int tied, char *err, size_t err_cap);
int llama_init_rope(llama_model *m);

typedef struct llama_kv {
    size_t capacity, n; /* tokens allocated / held                    */
    int dtype;          /* FASA_DTYPE_F32 or FASA_DTYPE_F16           */
    int n_layers, n_kv_heads, head_dim;
    void **k, **v;      /* per layer: [capacity][n_kv_heads][head_dim] */
} llama_kv;

int llama_kv_init(llama_kv *kv, const llama_config *c, size_t capacity, int dtype);
void llama_kv_free(llama_kv *kv);
/* Copy the first n tokens of src into dst (same shape, dst capacity >= n). */
void llama_kv_copy(llama_kv *dst, const llama_kv *src);
/* View of layer l's keys or values, tokens [0, n). */
void llama_kv_view(const llama_kv *kv, int layer, int values, size_t n, fasa_view *view);

/* Decode-time attention of one sequence at one layer: q is [Hq][head_dim]
 * post-RoPE, the new token's k/v are already in the cache (kv->n includes
 * it), out receives [Hq][head_dim]. Returns 0 or -1 (message printed). */
typedef int (*llama_attn_fn)(void *user, int layer, const float *q, const llama_kv *kv,
                             float *out);

/* Observer of post-RoPE q of a prefill chunk (q: [n][Hq][head_dim] for
 * positions pos0..pos0+n-1); k/v of those tokens are already in the cache. */
typedef void (*llama_q_observer)(void *user, int layer, const float *q, size_t pos0, size_t n);

typedef struct llama_runtime {
    fasa_ctx *ctx;
    int n_threads;
    void *ws;          /* attention workspace, grown on demand */
    size_t ws_size;
} llama_runtime;

int llama_runtime_init(llama_runtime *rt, int n_threads);
void llama_runtime_free(llama_runtime *rt);
/* Make sure rt->ws holds at least bytes. */
int llama_runtime_ws(llama_runtime *rt, size_t bytes);

/* Dense causal prefill of tokens[n] appended to kv (attention through
 * fasa_attend_dense). logits: NULL, or [n_logits][vocab] for the LAST
 * n_logits positions. */
int llama_prefill(const llama_model *m, llama_runtime *rt, llama_kv *kv, const uint16_t *tokens,
                  size_t n, float *logits, size_t n_logits, llama_q_observer obs, void *obs_user);

/* One decode step for n_seq independent sequences at once (weights are read
 * once for all of them): token[i] is appended to kv[i], attention runs
 * through attn[i](user[i], ...); NULL attn means dense (fasa_attend_dense).
 * logits: [n_seq][vocab]. Each sequence's result does not depend on the
 * others or on n_seq. */
int llama_decode_batch(const llama_model *m, llama_runtime *rt, size_t n_seq,
                       const uint16_t *token, llama_kv *const *kv, const llama_attn_fn *attn,
                       void *const *user, float *logits);

/* log softmax of logits[vocab] at target (double accumulation). */
double llama_logprob(const float *logits, int vocab, int target);

#endif
