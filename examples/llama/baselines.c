/* baselines.c - see baselines.h. */
#include "baselines.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "matmul.h"

#define QUEST_PAGE 16
#define STREAM_SINKS 8

/* k-th largest (0-based) of a[n] by quickselect; a is reordered. */
static float kth_largest(float *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float p = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > p) i++;
            while (a[j] < p) j--;
            if (i <= j) {
                float x = a[i];
                a[i] = a[j];
                a[j] = x;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

void topk_ascending(const float *s, size_t t, size_t n, uint32_t *out, float *tmp)
{
    if (n >= t) {
        for (size_t j = 0; j < t; j++)
            out[j] = (uint32_t)j;
        return;
    }
    if (n == 0)
        return;
    memcpy(tmp, s, t * sizeof(float));
    float thr = kth_largest(tmp, t, n - 1);
    size_t above = 0;
    for (size_t j = 0; j < t; j++)
        above += s[j] > thr;
    size_t ties = n - above, w = 0;
    for (size_t j = 0; j < t; j++) {
        if (s[j] > thr)
            out[w++] = (uint32_t)j;
        else if (s[j] == thr && ties) {
            out[w++] = (uint32_t)j;
            ties--;
        }
    }
}

static float kv_get(const llama_kv *kv, const void *base, size_t idx)
{
    return kv->dtype == FASA_DTYPE_F16 ? llama_f16_to_f32(((const uint16_t *)base)[idx])
                                       : ((const float *)base)[idx];
}

int method_init(method *me, method_kind kind, double budget, fasa_gqa_mode mode,
                const fasa_profile *profile, const llama_model *m, llama_runtime *rt,
                size_t capacity)
{
    memset(me, 0, sizeof *me);
    me->kind = kind;
    me->budget = budget;
    me->mode = mode;
    me->profile = profile;
    me->m = m;
    me->rt = rt;
    const llama_config *c = &m->c;
    size_t L = (size_t)c->n_layers, Hq = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads,
           hd = (size_t)c->head_dim;
    size_t ms = 0;
    if (fasa_predict_max_selected(budget, capacity, &ms) != FASA_OK)
        return -1;
    me->index_stride = capacity; /* QUEST pages may exceed the budget slightly */
    me->indices = malloc(Hq * capacity * sizeof(uint32_t));
    me->counts = malloc(Hq * sizeof(uint32_t));
    me->scores = malloc(capacity * sizeof(float));
    me->fscratch = malloc(capacity * sizeof(float));
    me->max_pages = (capacity + QUEST_PAGE - 1) / QUEST_PAGE;
    me->pages = malloc(me->max_pages * sizeof(uint32_t));
    if (!me->indices || !me->counts || !me->scores || !me->fscratch || !me->pages)
        return -1;
    if (kind == M_FASA) {
        me->caches = calloc(L, sizeof *me->caches);
        me->cache_mem = calloc(L, sizeof *me->cache_mem);
        if (!me->caches || !me->cache_mem)
            return -1;
        for (size_t l = 0; l < L; l++) {
            int dense = 0;
            if (fasa_profile_get_dense_layer(profile, l, &dense) != FASA_OK)
                return -1;
            if (dense)
                continue;
            size_t bytes = 0;
            fasa_status st = fasa_label_cache_size(profile, l, mode, (fasa_dtype)FASA_DTYPE_F32,
                                                   capacity, &bytes);
            if (st == FASA_OK && !(me->cache_mem[l] = malloc(bytes)))
                st = FASA_ERR_OUT_OF_MEMORY;
            if (st == FASA_OK)
                st = fasa_label_cache_init(me->cache_mem[l], bytes, profile, l, mode,
                                           FASA_DTYPE_F32, capacity, &me->caches[l]);
            if (st != FASA_OK) {
                fprintf(stderr, "llama: label cache for layer %zu: %s\n", l, fasa_status_name(st));
                return -1;
            }
        }
    }
    if (kind == M_ORACLE_L0) {
        if (!(me->dense_layer = calloc(L, 1)))
            return -1;
        /* Follow the profile so that the comparison with FASA differs only in
         * how the tokens of sparse layers are chosen. */
        for (size_t l = 0; l < L; l++) {
            int dense = l == 0;
            if (profile && fasa_profile_get_dense_layer(profile, l, &dense) != FASA_OK)
                return -1;
            me->dense_layer[l] = (unsigned char)(dense != 0);
        }
    }
    if (kind == M_QUEST) {
        size_t n = L * me->max_pages * Hkv * hd;
        me->qmin = malloc(n * sizeof(float));
        me->qmax = malloc(n * sizeof(float));
        if (!me->qmin || !me->qmax)
            return -1;
    }
    return 0;
}

void method_free(method *me)
{
    if (me->cache_mem)
        for (int l = 0; l < me->m->c.n_layers; l++)
            free(me->cache_mem[l]);
    free(me->cache_mem);
    free(me->caches);
    free(me->qmin);
    free(me->qmax);
    free(me->scores);
    free(me->indices);
    free(me->counts);
    free(me->fscratch);
    free(me->pages);
    free(me->dense_layer);
    memset(me, 0, sizeof *me);
}

/* Fold token j of layer l into its page's bounds. */
static void quest_add(method *me, const llama_kv *kv, int l, size_t j)
{
    size_t Hkv = (size_t)kv->n_kv_heads, hd = (size_t)kv->head_dim, p = j / QUEST_PAGE;
    float *mn = me->qmin + (((size_t)l * me->max_pages + p) * Hkv) * hd;
    float *mx = me->qmax + (((size_t)l * me->max_pages + p) * Hkv) * hd;
    for (size_t i = 0; i < Hkv * hd; i++) {
        float x = kv_get(kv, kv->k[l], j * Hkv * hd + i);
        if (j % QUEST_PAGE == 0 || x < mn[i])
            mn[i] = x;
        if (j % QUEST_PAGE == 0 || x > mx[i])
            mx[i] = x;
    }
}

int method_after_prefill(method *me, const llama_kv *kv)
{
    if (me->kind == M_FASA) {
        for (int l = 0; l < kv->n_layers; l++) {
            if (!me->caches[l])
                continue;
            fasa_view k;
            llama_kv_view(kv, l, 0, kv->n, &k);
            fasa_status st = fasa_label_cache_build(me->caches[l], &k);
            if (st != FASA_OK) {
                fprintf(stderr, "llama: label cache build: %s\n", fasa_status_name(st));
                return -1;
            }
        }
    }
    if (me->kind == M_QUEST)
        for (int l = 0; l < kv->n_layers; l++)
            for (size_t j = 0; j < kv->n; j++)
                quest_add(me, kv, l, j);
    return 0;
}

static int check(fasa_status st, const method *me, const char *what)
{
    if (st == FASA_OK)
        return 0;
    fprintf(stderr, "llama: %s failed: %s (%s)\n", what, fasa_status_name(st),
            fasa_ctx_last_error(me->rt->ctx));
    return -1;
}

static int attend_sets(method *me, int layer, fasa_gqa_mode mode, const fasa_view *qv,
                       const llama_kv *kv, const fasa_view *ov)
{
    fasa_view k, v;
    llama_kv_view(kv, layer, 0, kv->n, &k);
    llama_kv_view(kv, layer, 1, kv->n, &v);
    size_t ws = 0;
    fasa_status st =
        fasa_attend_workspace_size(me->rt->ctx, qv, &k, &v, mode, me->index_stride, &ws);
    if (st == FASA_OK && llama_runtime_ws(me->rt, ws ? ws : 1))
        st = FASA_ERR_OUT_OF_MEMORY;
    if (st == FASA_OK)
        st = fasa_attend(me->rt->ctx, mode, qv, &k, &v, me->indices, me->index_stride,
                         me->counts, 0.0f, ov, NULL, me->rt->ws, me->rt->ws_size);
    return check(st, me, "fasa_attend");
}

static int attend_dense(method *me, int layer, const fasa_view *qv, const llama_kv *kv,
                        const fasa_view *ov)
{
    fasa_view k, v;
    llama_kv_view(kv, layer, 0, kv->n, &k);
    llama_kv_view(kv, layer, 1, kv->n, &v);
    size_t ws = 0;
    fasa_status st = fasa_attend_dense_workspace_size(me->rt->ctx, qv, &k, &v, &ws);
    if (st == FASA_OK && llama_runtime_ws(me->rt, ws ? ws : 1))
        st = FASA_ERR_OUT_OF_MEMORY;
    if (st == FASA_OK)
        st = fasa_attend_dense(me->rt->ctx, qv, &k, &v, 0.0f, ov, NULL, me->rt->ws,
                               me->rt->ws_size);
    return check(st, me, "fasa_attend_dense");
}

static size_t budget_tokens(double budget, size_t t)
{
    size_t n = 0;
    fasa_predict_max_selected(budget, t, &n);
    return n;
}

int method_attend(void *user, int layer, const float *q, const llama_kv *kv, float *out)
{
    method *me = user;
    const llama_config *c = &me->m->c;
    size_t Hq = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads, hd = (size_t)c->head_dim,
           t = kv->n, G = Hq / Hkv;
    fasa_view qv, ov;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, Hq, hd, Hq * hd, hd);
    fasa_view_make(&ov, out, FASA_DTYPE_F32, 1, Hq, hd, Hq * hd, hd);
    size_t n = budget_tokens(me->budget, t);

    switch (me->kind) {
    case M_FULL:
        return attend_dense(me, layer, &qv, kv, &ov);

    case M_FASA: {
        fasa_view k, v;
        llama_kv_view(kv, layer, 0, t, &k);
        llama_kv_view(kv, layer, 1, t, &v);
        fasa_label_cache *cache = me->caches[layer];
        fasa_status st = FASA_OK;
        if (cache) {
            fasa_view knew;
            llama_kv_view(kv, layer, 0, t, &knew);
            size_t row = Hkv * hd, esz = kv->dtype == FASA_DTYPE_F16 ? 2 : 4;
            knew.data = (char *)kv->k[layer] + (t - 1) * row * esz;
            knew.n_tokens = 1;
            st = fasa_label_cache_append(cache, &knew);
            if (check(st, me, "fasa_label_cache_append"))
                return -1;
        }
        size_t ws = 0;
        st = fasa_decode_step_workspace_size(me->rt->ctx, me->profile, &qv, &k, &v, me->mode,
                                             me->budget, &ws);
        if (st == FASA_OK && llama_runtime_ws(me->rt, ws ? ws : 1))
            st = FASA_ERR_OUT_OF_MEMORY;
        if (st == FASA_OK)
            st = fasa_decode_step(me->rt->ctx, me->profile, (size_t)layer, me->mode, &qv, &k, &v,
                                  cache, me->budget, 0.0f, &ov, NULL, me->rt->ws,
                                  me->rt->ws_size);
        return check(st, me, "fasa_decode_step");
    }

    case M_ORACLE_L0:
    case M_ORACLE:
        if (n >= t || (me->kind == M_ORACLE_L0 && me->dense_layer[layer]))
            return attend_dense(me, layer, &qv, kv, &ov);
        for (size_t h = 0; h < Hq; h++) {
            size_t g = h / G;
            const float *qh = q + h * hd;
            if (kv->dtype == FASA_DTYPE_F32) {
                mm_gemm_ld(qh, 1, hd, (const float *)kv->k[layer] + g * hd, Hkv * hd, t,
                           me->scores, 1);
            } else {
                for (size_t j = 0; j < t; j++) {
                    float s = 0;
                    for (size_t i = 0; i < hd; i++)
                        s += qh[i] * kv_get(kv, kv->k[layer], (j * Hkv + g) * hd + i);
                    me->scores[j] = s;
                }
            }
            topk_ascending(me->scores, t, n, me->indices + h * me->index_stride, me->fscratch);
            me->counts[h] = (uint32_t)n;
        }
        return attend_sets(me, layer, FASA_GQA_PER_HEAD, &qv, kv, &ov);

    case M_STREAM: {
        if (layer == 0 || n >= t)
            return attend_dense(me, layer, &qv, kv, &ov);
        size_t sinks = n < STREAM_SINKS ? n : STREAM_SINKS, recent = n - sinks;
        for (size_t g = 0; g < Hkv; g++) {
            uint32_t *ix = me->indices + g * me->index_stride;
            size_t w = 0;
            for (size_t j = 0; j < sinks; j++)
                ix[w++] = (uint32_t)j;
            for (size_t j = t - recent; j < t; j++)
                ix[w++] = (uint32_t)j;
            me->counts[g] = (uint32_t)w;
        }
        return attend_sets(me, layer, FASA_GQA_GROUP_SHARED, &qv, kv, &ov);
    }

    case M_QUEST: {
        quest_add(me, kv, layer, t - 1);
        size_t n_pages = (t + QUEST_PAGE - 1) / QUEST_PAGE;
        size_t keep = (size_t)me->budget / QUEST_PAGE;
        if (keep < 3)
            keep = 3;
        if (layer == 0 || keep >= n_pages)
            return attend_dense(me, layer, &qv, kv, &ov);
        for (size_t h = 0; h < Hq; h++) {
            size_t g = h / G;
            const float *qh = q + h * hd;
            for (size_t p = 0; p < n_pages; p++) {
                const float *mn = me->qmin + (((size_t)layer * me->max_pages + p) * Hkv + g) * hd;
                const float *mx = me->qmax + (((size_t)layer * me->max_pages + p) * Hkv + g) * hd;
                float s = 0;
                for (size_t i = 0; i < hd; i++) {
                    float a = qh[i] * mn[i], b = qh[i] * mx[i];
                    s += a > b ? a : b;
                }
                me->scores[p] = s;
            }
            /* The current page is always kept. */
            me->scores[n_pages - 1] = INFINITY;
            topk_ascending(me->scores, n_pages, keep, me->pages, me->fscratch);
            uint32_t *ix = me->indices + h * me->index_stride;
            size_t w = 0;
            for (size_t i = 0; i < keep; i++)
                for (size_t j = (size_t)me->pages[i] * QUEST_PAGE;
                     j < ((size_t)me->pages[i] + 1) * QUEST_PAGE && j < t; j++)
                    ix[w++] = (uint32_t)j;
            me->counts[h] = (uint32_t)w;
        }
        return attend_sets(me, layer, FASA_GQA_PER_HEAD, &qv, kv, &ov);
    }
    }
    return -1;
}
