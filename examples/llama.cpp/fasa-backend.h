/*
 * fasa-backend.h - everything the llama.cpp adapter asks of libfasa, behind
 * one small C interface. fasa-backend.c is the only file of the adapter that
 * calls libfasa, so a change of the library API touches that file alone.
 *
 * The llama.cpp side (fasa-llama.cpp) decides at graph-build time which cells
 * of the KV cache each query sees; this side runs the attention of one
 * "unit" (one KV head, or one KV head x one chunk of queries) on the calling
 * thread, with per-thread contexts and workspaces sized once at creation.
 */
#ifndef FASA_BACKEND_H
#define FASA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fasa_llama_backend fasa_llama_backend;

/* Element types of the KV cache as the backend knows them. */
enum { FB_F32 = 0, FB_F16 = 1, FB_BF16 = 2, FB_UNSUPPORTED = -1 };

typedef struct fasa_llama_config {
    size_t n_layers, n_q_heads, n_kv_heads, head_dim;
    int rope_interleaved; /* 1: llama.cpp ROPE_TYPE_NORM (pairs 2j, 2j+1); 0: NEOX (j, j+d/2) */
    size_t capacity;      /* KV cells of the cache                         */
    size_t max_queries;   /* largest number of queries in one graph         */
    int k_type, v_type;   /* FB_* of the K and V caches                     */
    int max_threads;      /* ggml threads that may run units                */
    double budget;        /* tokens (>= 1) or fraction (< 1), as libfasa    */
    int group_shared;     /* 0: FASA per query head (paper), 1: per KV group */
} fasa_llama_config;

/* Load the profile, check it against the model, select the FC sets for the
 * budget (as examples/llama does), relabel the RoPE layout to the runtime's
 * and split it per KV head; allocate label caches, contexts and workspaces.
 * Returns 0, or -1 with a message in err. */
int fasa_llama_backend_create(const char *profile_path, const fasa_llama_config *cfg,
                              fasa_llama_backend **out, char *err, size_t err_size);
void fasa_llama_backend_destroy(fasa_llama_backend *b);

/* One attention call of one layer: queries 0..n_q-1 occupy the last n_q of
 * the visible cells [first, first + t); query i sees cells
 * [first, first + t - n_q + i] (bottom-right causal, as libfasa). */
typedef struct fasa_llama_job {
    size_t layer;
    const float *q;        /* [n_q][n_q_heads][head_dim]                   */
    float *out;            /* [n_q][n_q_heads][head_dim]                   */
    const void *k, *v;     /* cache base: [cell][n_kv_heads][head_dim]     */
    size_t first, t, n_q;
    float scale;
} fasa_llama_job;

/* Number of independent units of a job (run in any order, any thread). */
size_t fasa_llama_units(const fasa_llama_backend *b, const fasa_llama_job *job);

/* Run unit `unit` of job on thread slot `slot` (< max_threads). A decode
 * (n_q == 1) unit first brings its label cache up to date with the cells.
 * Returns 0, or -1 after printing the libfasa error to stderr. */
int fasa_llama_run_unit(fasa_llama_backend *b, const fasa_llama_job *job, size_t unit, int slot);

/* K data of cells [cell0, cell0 + n) is about to change (a store): label
 * caches holding any of these cells are dropped. Not thread-safe with runs. */
void fasa_llama_cells_written(fasa_llama_backend *b, size_t cell0, size_t n);

/* All K data may have changed (K-shift, defrag, state load): drop every label
 * cache. Not thread-safe with runs. */
void fasa_llama_invalidate(fasa_llama_backend *b);

/* One line describing the configuration (for the log). */
const char *fasa_llama_describe(const fasa_llama_backend *b);

#ifdef __cplusplus
}
#endif

#endif
