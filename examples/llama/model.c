/* model.c - weights, KV cache and the forward pass (see model.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "half.h"
#include "matmul.h"

int llama_load(llama_model *m, const char *path, char *err, size_t err_cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, err_cap, "%s: no such file or directory", path);
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return llama_load_safetensors(m, path, err, err_cap);
    return llama_load_llama2c(m, path, err, err_cap);
}

int llama_alloc_weights(llama_model *m, int tied, char *err, size_t err_cap)
{
    const llama_config *c = &m->c;
    size_t D = (size_t)c->dim, H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, V = (size_t)c->vocab;
    size_t per_layer = D + qd * D + 2 * kvd * D + D * qd + D + 3 * H * D;
    size_t total = V * D + D + (tied ? 0 : V * D) + (size_t)c->n_layers * per_layer;
    m->blob = calloc(total, sizeof(float));
    m->layers = calloc((size_t)c->n_layers, sizeof(llama_layer));
    if (!m->blob || !m->layers) {
        snprintf(err, err_cap, "out of memory for %zu weights", total);
        return -1;
    }
    float *p = m->blob;
    m->tok_emb = p; p += V * D;
    m->final_norm = p; p += D;
    if (tied) {
        m->out = m->tok_emb;
    } else {
        m->out = p; p += V * D;
    }
    for (int l = 0; l < c->n_layers; l++) {
        llama_layer *L = &m->layers[l];
        L->attn_norm = p; p += D;
        L->wq = p; p += qd * D;
        L->wk = p; p += kvd * D;
        L->wv = p; p += kvd * D;
        L->wo = p; p += D * qd;
        L->ffn_norm = p; p += D;
        L->w_gate = p; p += H * D;
        L->w_up = p; p += H * D;
        L->w_down = p; p += D * H;
    }
    return 0;
}

int llama_init_rope(llama_model *m)
{
    size_t half = (size_t)m->c.head_dim / 2, S = (size_t)m->c.max_seq;
    m->rope_cos = malloc(S * half * sizeof(float));
    m->rope_sin = malloc(S * half * sizeof(float));
    if (!m->rope_cos || !m->rope_sin)
        return -1;
    for (size_t j = 0; j < half; j++) {
        float inv = (float)(1.0 / pow(m->c.rope_theta, (double)(2 * j) / (double)m->c.head_dim));
        for (size_t p = 0; p < S; p++) {
            /* The angle is rounded to f32 as HF and llama2.c do; the model
             * was trained with that rounding. */
            float a = (float)p * inv;
            m->rope_cos[p * half + j] = (float)cos((double)a);
            m->rope_sin[p * half + j] = (float)sin((double)a);
        }
    }
    return 0;
}

void llama_free(llama_model *m)
{
    free(m->blob);
    free(m->layers);
    free(m->rope_cos);
    free(m->rope_sin);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- KV cache */

int llama_kv_init(llama_kv *kv, const llama_config *c, size_t capacity, int dtype)
{
    memset(kv, 0, sizeof *kv);
    kv->capacity = capacity;
    kv->dtype = dtype;
    kv->n_layers = c->n_layers;
    kv->n_kv_heads = c->n_kv_heads;
    kv->head_dim = c->head_dim;
    size_t esz = dtype == FASA_DTYPE_F16 ? 2 : 4;
    size_t bytes = capacity * (size_t)c->n_kv_heads * (size_t)c->head_dim * esz;
    kv->k = calloc((size_t)c->n_layers, sizeof(void *));
    kv->v = calloc((size_t)c->n_layers, sizeof(void *));
    if (!kv->k || !kv->v)
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        kv->k[l] = malloc(bytes);
        kv->v[l] = malloc(bytes);
        if (!kv->k[l] || !kv->v[l])
            return -1;
    }
    return 0;
}

void llama_kv_free(llama_kv *kv)
{
    for (int l = 0; l < kv->n_layers && kv->k; l++) {
        free(kv->k[l]);
        free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

void llama_kv_copy(llama_kv *dst, const llama_kv *src)
{
    size_t esz = src->dtype == FASA_DTYPE_F16 ? 2 : 4;
    size_t bytes = src->n * (size_t)src->n_kv_heads * (size_t)src->head_dim * esz;
    for (int l = 0; l < src->n_layers; l++) {
        memcpy(dst->k[l], src->k[l], bytes);
        memcpy(dst->v[l], src->v[l], bytes);
    }
    dst->n = src->n;
}

void llama_kv_view(const llama_kv *kv, int layer, int values, size_t n, fasa_view *view)
{
    size_t row = (size_t)kv->n_kv_heads * (size_t)kv->head_dim;
    fasa_view_make(view, values ? kv->v[layer] : kv->k[layer], (fasa_dtype)kv->dtype, n,
                   (size_t)kv->n_kv_heads, (size_t)kv->head_dim, row, (size_t)kv->head_dim);
}

static void kv_store(llama_kv *kv, int layer, size_t pos, const float *k, const float *v,
                     size_t n)
{
    size_t row = (size_t)kv->n_kv_heads * (size_t)kv->head_dim;
    if (kv->dtype == FASA_DTYPE_F32) {
        memcpy((float *)kv->k[layer] + pos * row, k, n * row * sizeof(float));
        memcpy((float *)kv->v[layer] + pos * row, v, n * row * sizeof(float));
        return;
    }
    uint16_t *kd = (uint16_t *)kv->k[layer] + pos * row, *vd = (uint16_t *)kv->v[layer] + pos * row;
    for (size_t i = 0; i < n * row; i++) {
        kd[i] = llama_f32_to_f16(k[i]);
        vd[i] = llama_f32_to_f16(v[i]);
    }
}

/* ---------------------------------------------------------------- runtime */

int llama_runtime_init(llama_runtime *rt, int n_threads)
{
    memset(rt, 0, sizeof *rt);
    rt->n_threads = n_threads > 0 ? n_threads : 1;
    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    o.n_threads = rt->n_threads;
    if (fasa_ctx_create(&o, &rt->ctx) != FASA_OK)
        return -1;
    return 0;
}

void llama_runtime_free(llama_runtime *rt)
{
    fasa_ctx_destroy(rt->ctx);
    free(rt->ws);
    memset(rt, 0, sizeof *rt);
}

int llama_runtime_ws(llama_runtime *rt, size_t bytes)
{
    if (bytes <= rt->ws_size)
        return 0;
    void *p = realloc(rt->ws, bytes);
    if (!p)
        return -1;
    rt->ws = p;
    rt->ws_size = bytes;
    return 0;
}

/* ---------------------------------------------------------------- math */

static void rmsnorm(float *out, const float *x, const float *w, size_t n, double eps)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * r * w[i];
}

static void rope(const llama_model *m, float *vec, size_t n_heads, size_t pos)
{
    size_t hd = (size_t)m->c.head_dim, half = hd / 2;
    const float *cs = m->rope_cos + pos * half, *sn = m->rope_sin + pos * half;
    for (size_t h = 0; h < n_heads; h++) {
        float *v = vec + h * hd;
        for (size_t j = 0; j < half; j++) {
            size_t a = m->c.pair_layout == FASA_PAIRS_HALF ? j : 2 * j;
            size_t b = m->c.pair_layout == FASA_PAIRS_HALF ? j + half : 2 * j + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[j] - x1 * sn[j];
            v[b] = x1 * cs[j] + x0 * sn[j];
        }
    }
}

double llama_logprob(const float *logits, int vocab, int target)
{
    double mx = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double s = 0;
    for (int i = 0; i < vocab; i++)
        s += exp((double)logits[i] - mx);
    return (double)logits[target] - mx - log(s);
}

/* Scratch of one forward call over M rows. */
typedef struct {
    float *x, *xb, *q, *k, *v, *att, *g, *u;
} fwd_buf;

static int fwd_alloc(fwd_buf *b, const llama_config *c, size_t M)
{
    size_t D = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, H = (size_t)c->hidden;
    b->x = malloc(M * D * sizeof(float));
    b->xb = malloc(M * (D > qd ? D : qd) * sizeof(float));
    b->q = malloc(M * qd * sizeof(float));
    b->k = malloc(M * kvd * sizeof(float));
    b->v = malloc(M * kvd * sizeof(float));
    b->att = malloc(M * qd * sizeof(float));
    b->g = malloc(M * H * sizeof(float));
    b->u = malloc(M * H * sizeof(float));
    return (b->x && b->xb && b->q && b->k && b->v && b->att && b->g && b->u) ? 0 : -1;
}

static void fwd_free(fwd_buf *b)
{
    free(b->x); free(b->xb); free(b->q); free(b->k); free(b->v); free(b->att);
    free(b->g); free(b->u);
}

/* Shared tail of a layer: output projection, residual, SwiGLU MLP. */
static void layer_tail(const llama_model *m, const llama_runtime *rt, const llama_layer *L,
                       fwd_buf *b, size_t M)
{
    size_t D = (size_t)m->c.dim, qd = (size_t)m->c.n_heads * m->c.head_dim, H = (size_t)m->c.hidden;
    mm_gemm(b->att, M, qd, L->wo, D, b->xb, rt->n_threads);
    for (size_t i = 0; i < M * D; i++)
        b->x[i] += b->xb[i];
    for (size_t r = 0; r < M; r++)
        rmsnorm(b->xb + r * D, b->x + r * D, L->ffn_norm, D, m->c.norm_eps);
    mm_gemm(b->xb, M, D, L->w_gate, H, b->g, rt->n_threads);
    mm_gemm(b->xb, M, D, L->w_up, H, b->u, rt->n_threads);
    for (size_t i = 0; i < M * H; i++) {
        float g = b->g[i];
        b->g[i] = g / (1.0f + expf(-g)) * b->u[i];
    }
    mm_gemm(b->g, M, H, L->w_down, D, b->xb, rt->n_threads);
    for (size_t i = 0; i < M * D; i++)
        b->x[i] += b->xb[i];
}

static int dense_attend(llama_runtime *rt, const llama_model *m, const float *q, size_t n_q,
                        const llama_kv *kv, int layer, size_t t, float *out)
{
    size_t Hq = (size_t)m->c.n_heads, hd = (size_t)m->c.head_dim;
    fasa_view qv, kvw, vv, ov;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, n_q, Hq, hd, Hq * hd, hd);
    fasa_view_make(&ov, out, FASA_DTYPE_F32, n_q, Hq, hd, Hq * hd, hd);
    llama_kv_view(kv, layer, 0, t, &kvw);
    llama_kv_view(kv, layer, 1, t, &vv);
    size_t ws = 0;
    fasa_status st = fasa_attend_dense_workspace_size(rt->ctx, &qv, &kvw, &vv, &ws);
    if (st == FASA_OK && llama_runtime_ws(rt, ws ? ws : 1))
        st = FASA_ERR_OUT_OF_MEMORY;
    if (st == FASA_OK)
        st = fasa_attend_dense(rt->ctx, &qv, &kvw, &vv, 0.0f, &ov, NULL, rt->ws, rt->ws_size);
    if (st != FASA_OK) {
        fprintf(stderr, "llama: fasa_attend_dense failed: %s (%s)\n", fasa_status_name(st),
                fasa_ctx_last_error(rt->ctx));
        return -1;
    }
    return 0;
}

/* Prefill in chunks: bounded scratch, and the causal alignment of
 * fasa_attend_dense makes chunk boundaries invisible in the result. */
#define PREFILL_CHUNK 1024

int llama_prefill(const llama_model *m, llama_runtime *rt, llama_kv *kv, const uint16_t *tokens,
                  size_t n, float *logits, size_t n_logits, llama_q_observer obs, void *obs_user)
{
    const llama_config *c = &m->c;
    size_t D = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, V = (size_t)c->vocab;
    if (kv->n + n > kv->capacity || kv->n + n > (size_t)c->max_seq || n_logits > n) {
        fprintf(stderr, "llama: prefill of %zu tokens does not fit (cache %zu/%zu, max %d)\n", n,
                kv->n, kv->capacity, c->max_seq);
        return -1;
    }
    fwd_buf b;
    size_t CH = n < PREFILL_CHUNK ? n : PREFILL_CHUNK;
    if (fwd_alloc(&b, c, CH)) {
        fwd_free(&b);
        return -1;
    }
    int rc = 0;
    for (size_t c0 = 0; c0 < n && !rc; c0 += CH) {
        size_t M = n - c0 < CH ? n - c0 : CH, pos0 = kv->n;
        for (size_t r = 0; r < M; r++) {
            if (tokens[c0 + r] >= V) {
                fprintf(stderr, "llama: token %u out of vocabulary\n", tokens[c0 + r]);
                rc = -1;
                break;
            }
            memcpy(b.x + r * D, m->tok_emb + (size_t)tokens[c0 + r] * D, D * sizeof(float));
        }
        for (int l = 0; l < c->n_layers && !rc; l++) {
            const llama_layer *L = &m->layers[l];
            for (size_t r = 0; r < M; r++)
                rmsnorm(b.xb + r * D, b.x + r * D, L->attn_norm, D, c->norm_eps);
            mm_gemm(b.xb, M, D, L->wq, qd, b.q, rt->n_threads);
            mm_gemm(b.xb, M, D, L->wk, kvd, b.k, rt->n_threads);
            mm_gemm(b.xb, M, D, L->wv, kvd, b.v, rt->n_threads);
            for (size_t r = 0; r < M; r++) {
                rope(m, b.q + r * qd, (size_t)c->n_heads, pos0 + r);
                rope(m, b.k + r * kvd, (size_t)c->n_kv_heads, pos0 + r);
            }
            kv_store(kv, l, pos0, b.k, b.v, M);
            if (dense_attend(rt, m, b.q, M, kv, l, pos0 + M, b.att)) {
                rc = -1;
                break;
            }
            if (obs)
                obs(obs_user, l, b.q, pos0, M);
            layer_tail(m, rt, L, &b, M);
        }
        if (rc)
            break;
        kv->n = pos0 + M;
        /* Logits for the rows of this chunk that are among the last n_logits. */
        size_t first = n - n_logits;
        if (logits && c0 + M > first) {
            size_t r0 = first > c0 ? first - c0 : 0;
            for (size_t r = r0; r < M; r++)
                rmsnorm(b.xb + (r - r0) * D, b.x + r * D, m->final_norm, D, c->norm_eps);
            mm_gemm(b.xb, M - r0, D, m->out, V, logits + (c0 + r0 - first) * V, rt->n_threads);
        }
    }
    fwd_free(&b);
    return rc;
}

int llama_decode_batch(const llama_model *m, llama_runtime *rt, size_t n_seq,
                       const uint16_t *token, llama_kv *const *kv, const llama_attn_fn *attn,
                       void *const *user, float *logits)
{
    const llama_config *c = &m->c;
    size_t D = (size_t)c->dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, V = (size_t)c->vocab;
    for (size_t i = 0; i < n_seq; i++)
        if (kv[i]->n + 1 > kv[i]->capacity || kv[i]->n + 1 > (size_t)c->max_seq ||
            token[i] >= V) {
            fprintf(stderr, "llama: decode step %zu does not fit or bad token\n", i);
            return -1;
        }
    fwd_buf b;
    if (fwd_alloc(&b, c, n_seq)) {
        fwd_free(&b);
        return -1;
    }
    for (size_t i = 0; i < n_seq; i++)
        memcpy(b.x + i * D, m->tok_emb + (size_t)token[i] * D, D * sizeof(float));
    int rc = 0;
    for (int l = 0; l < c->n_layers && !rc; l++) {
        const llama_layer *L = &m->layers[l];
        for (size_t r = 0; r < n_seq; r++)
            rmsnorm(b.xb + r * D, b.x + r * D, L->attn_norm, D, c->norm_eps);
        mm_gemm(b.xb, n_seq, D, L->wq, qd, b.q, rt->n_threads);
        mm_gemm(b.xb, n_seq, D, L->wk, kvd, b.k, rt->n_threads);
        mm_gemm(b.xb, n_seq, D, L->wv, kvd, b.v, rt->n_threads);
        for (size_t i = 0; i < n_seq && !rc; i++) {
            size_t pos = kv[i]->n;
            rope(m, b.q + i * qd, (size_t)c->n_heads, pos);
            rope(m, b.k + i * kvd, (size_t)c->n_kv_heads, pos);
            kv_store(kv[i], l, pos, b.k + i * kvd, b.v + i * kvd, 1);
            /* Attention sees the new token: n is bumped for the call only. */
            llama_kv *s = kv[i];
            s->n = pos + 1;
            if (attn && attn[i])
                rc = attn[i](user ? user[i] : NULL, l, b.q + i * qd, s, b.att + i * qd);
            else
                rc = dense_attend(rt, m, b.q + i * qd, 1, s, l, pos + 1, b.att + i * qd);
            s->n = pos;
        }
        if (!rc)
            layer_tail(m, rt, L, &b, n_seq);
    }
    if (!rc) {
        for (size_t i = 0; i < n_seq; i++) {
            kv[i]->n++;
            rmsnorm(b.xb + i * D, b.x + i * D, m->final_norm, D, c->norm_eps);
        }
        mm_gemm(b.xb, n_seq, D, m->out, V, logits, rt->n_threads);
    }
    fwd_free(&b);
    return rc;
}
