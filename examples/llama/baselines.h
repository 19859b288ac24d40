/*
 * baselines.h - the decode-time attention methods compared in the study.
 * Token selection for the baselines is done here; every attention itself
 * runs in libfasa (fasa_attend / fasa_attend_dense / fasa_decode_step).
 *
 *  FULL    dense attention (fasa_attend_dense)
 *  FASA    fasa_decode_step with a profile (PER_HEAD or GROUP_SHARED) and a
 *          label cache per sparse layer; the profile decides dense layers
 *  ORACLE  top-budget tokens of the full logits, per query head, every layer
 *          (as the official oracle code)
 *  ORACLE_L0  the same, but dense in the layers FASA keeps dense: the
 *          profile's dense layers when one is given, else layer 0 (the
 *          ablation separating "exact top-k" from "sparse layer 0")
 *  STREAM  StreamingLLM: 8 sinks + the last budget-8 tokens, layers >= 1,
 *          positions not re-indexed
 *  QUEST   16-token pages with per-channel key min/max, page score
 *          sum_d max(q_d min_d, q_d max_d), last page always kept,
 *          min(max(3, budget/16), n_pages) pages per query head, layers >= 1
 */
#ifndef LLAMA_BASELINES_H
#define LLAMA_BASELINES_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum { M_FULL, M_FASA, M_ORACLE, M_ORACLE_L0, M_STREAM, M_QUEST } method_kind;

typedef struct method {
    method_kind kind;
    double budget;
    fasa_gqa_mode mode;          /* FASA only                       */
    const fasa_profile *profile; /* FASA; ORACLE_L0: dense layers (may be NULL); not owned */
    const llama_model *m;
    llama_runtime *rt;
    fasa_label_cache **caches;   /* FASA: per layer, NULL for dense  */
    void **cache_mem;
    float *qmin, *qmax;          /* QUEST: [layers][pages][Hkv][hd]  */
    size_t max_pages;
    unsigned char *dense_layer;  /* ORACLE_L0: [layers], 1 = dense   */
    /* per-call scratch */
    float *scores;
    uint32_t *indices, *counts;
    size_t index_stride;
    float *fscratch;
    uint32_t *pages;
} method;

/* Prepare a method for sequences of up to capacity tokens. */
int method_init(method *me, method_kind kind, double budget, fasa_gqa_mode mode,
                const fasa_profile *profile, const llama_model *m, llama_runtime *rt,
                size_t capacity);
void method_free(method *me);
/* Call after a dense prefill that left kv->n tokens: builds label caches /
 * page bounds from the cached keys. */
int method_after_prefill(method *me, const llama_kv *kv);
/* llama_attn_fn for this method (user = method*). */
int method_attend(void *user, int layer, const float *q, const llama_kv *kv, float *out);

/* Indices of the n largest of s[t] in ascending index order; ties go to the
 * lower index. tmp needs t floats. */
void topk_ascending(const float *s, size_t t, size_t n, uint32_t *out, float *tmp);

#endif
