/*
 * fuzz_views.c - fuzz entry point for the argument validation of every
 * public call that takes views: shapes, strides, dtypes, layouts, budgets,
 * index strides, workspace sizes, modes, layers and aliasing, against small
 * exactly-sized heap buffers (ASan sees any access outside them).
 *
 * Oracles (violations abort()):
 *  - fasa_view_validate accepts a view only if its extent does not overflow
 *    and no two (token, head) rows overlap (checked here by brute force), and
 *    always accepts the plain token-major / head-major / padded layouts;
 *  - a view with a bad header (struct_size, kind, NULL data, dtype, zero
 *    size) makes every call that uses it fail;
 *  - inputs are never written; on failure the outputs are untouched;
 *  - on success the index sets are strictly ascending, inside t_i and no
 *    longer than index_stride;
 *  - a workspace one byte smaller than the size query said fails.
 * Views whose extent is too large to back with memory are only validated.
 */
#include "fasa.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                              \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "fuzz_views: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                               \
        }                                                                          \
    } while (0)

#define MAX_BACKED (1u << 18) /* bytes: larger views are validated only */

typedef struct reader {
    const uint8_t *p;
    size_t n;
    uint64_t rng;
} reader;

static unsigned u8(reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static uint64_t rnd(reader *r)
{
    r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
    return r->rng >> 33;
}

typedef struct fz_view {
    fasa_view v;
    unsigned char *mem; /* exactly `bytes` long when backed */
    size_t bytes;
    int backed;     /* the whole extent lies in mem */
    int header_bad; /* invalid whatever the strides */
    int regular;    /* a plain layout that must validate */
    int overflow;   /* the extent overflows */
} fz_view;

static size_t dsize(int dtype)
{
    return dtype == FASA_DTYPE_F32 ? 4 : 2;
}

/* Last element offset + 1, 0 on overflow. */
static size_t extent(const fasa_view *v)
{
    size_t a, b, s;
    if (__builtin_mul_overflow(v->n_tokens - 1, v->token_stride, &a) ||
        __builtin_mul_overflow(v->n_heads - 1, v->head_stride, &b) ||
        __builtin_add_overflow(a, b, &s) || __builtin_add_overflow(s, v->head_dim, &s))
        return 0;
    return s;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* 1 when two distinct rows share an element (views here are small). */
static int rows_overlap(const fasa_view *v)
{
    size_t n = v->n_tokens * v->n_heads, *off = malloc(n * sizeof *off);
    REQUIRE(off != NULL);
    for (size_t t = 0; t < v->n_tokens; t++)
        for (size_t h = 0; h < v->n_heads; h++)
            off[t * v->n_heads + h] = t * v->token_stride + h * v->head_stride;
    qsort(off, n, sizeof *off, cmp_size);
    int bad = 0;
    for (size_t i = 1; i < n && !bad; i++)
        bad = off[i] - off[i - 1] < v->head_dim;
    free(off);
    return bad;
}

static void fill(reader *r, unsigned char *mem, size_t bytes, int dtype)
{
    size_t es = dsize(dtype);
    for (size_t i = 0; i + es <= bytes; i += es) {
        float f = (float)((int)(rnd(r) % 17) - 8) * 0.25f;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        if (es == 4) {
            memcpy(mem + i, &bits, 4);
        } else {
            /* Values are exact in bf16 and f16 (multiples of 1/4, |x| <= 2). */
            uint16_t h = dtype == FASA_DTYPE_BF16
                             ? (uint16_t)(bits >> 16)
                             : (uint16_t)(f == 0 ? 0
                                                 : ((bits >> 16) & 0x8000) |
                                                       ((((bits >> 23) & 0xff) - 112) << 10) |
                                                       ((bits >> 13) & 0x3ff));
            memcpy(mem + i, &h, 2);
        }
    }
}

static void make_view(fz_view *f, reader *r, size_t nt, size_t nh, size_t hd)
{
    memset(f, 0, sizeof *f);
    unsigned lay = u8(r), dt = u8(r), hdr = u8(r);
    int dtype = (int)(dt % 3);
    size_t ts = nh * hd, hs = hd;
    f->regular = 1;
    switch (lay & 7) {
    case 2: ts = hd, hs = nt * hd; break;
    case 3: { size_t pad = u8(r) & 7; ts = nh * (hd + pad) + (u8(r) & 3); hs = hd + pad; } break;
    case 4: ts = u8(r) % 48, hs = u8(r) % 48, f->regular = 0; break;
    case 5: ts = SIZE_MAX / (1 + u8(r)), hs = u8(r), f->regular = 0; break;
    case 6: ts = hd, hs = (nt + (u8(r) & 7)) * hd; break;
    default: break;
    }
    fasa_view_make(&f->v, NULL, (fasa_dtype)dtype, nt, nh, hd, ts, hs);
    switch (hdr) {
    case 0xff: f->v.struct_size = sizeof f->v - 8, f->header_bad = 1; break;
    case 0xfe: f->v.kind = 1, f->header_bad = 1; break;
    case 0xfd: f->header_bad = 2; break; /* data stays NULL */
    case 0xfc: f->v.dtype = 3 + (int32_t)(dt >> 2), f->header_bad = 1; break;
    case 0xfb: f->v.n_tokens = 0, f->header_bad = 1; break;
    case 0xfa: f->v.head_dim = 0, f->header_bad = 1; break;
    case 0xf9: f->v.head_dim++, f->regular = 0; break;  /* shape mismatch */
    case 0xf8: f->v.n_heads++, f->regular = 0; break;
    case 0xf7: f->v.n_tokens++, f->regular = 0; break;
    default: break;
    }
    const int hdr_ok = !f->header_bad;
    size_t ext = hdr_ok ? extent(&f->v) : 0;
    f->overflow = hdr_ok && (ext == 0 || ext > SIZE_MAX / 4);
    if (hdr_ok && !f->overflow && ext * dsize(dtype) <= MAX_BACKED) {
        f->bytes = ext * dsize(dtype);
        f->mem = malloc(f->bytes);
        REQUIRE(f->mem != NULL);
        fill(r, f->mem, f->bytes, dtype);
        f->backed = 1;
    } else {
        f->bytes = 16;
        f->mem = calloc(1, 16);
        REQUIRE(f->mem != NULL);
    }
    if (f->header_bad != 2)
        f->v.data = f->mem;
}

static void check_validate(fasa_ctx *ctx, const fz_view *f)
{
    fasa_status st = fasa_view_validate(ctx, &f->v);
    if (f->header_bad || f->overflow)
        REQUIRE(st != FASA_OK);
    if (st == FASA_OK) {
        REQUIRE(!f->header_bad && !f->overflow);
        if (f->backed)
            REQUIRE(!rows_overlap(&f->v));
    } else {
        REQUIRE(fasa_ctx_last_error(ctx)[0] != 0);
    }
    if (f->regular && !f->header_bad && !f->overflow)
        REQUIRE(st == FASA_OK);
}

/* Copies of caller buffers, to prove inputs were not written and outputs not
 * touched on failure. */
typedef struct snap {
    const void *p;
    void *copy;
    size_t n;
} snap;

static void snap_take(snap *s, const void *p, size_t n)
{
    s->p = p;
    s->n = p ? n : 0;
    s->copy = malloc(n ? n : 1);
    REQUIRE(s->copy != NULL);
    if (s->n)
        memcpy(s->copy, p, n);
}

static int snap_same(const snap *s)
{
    return s->n == 0 || memcmp(s->p, s->copy, s->n) == 0;
}

static void snap_free(snap *s)
{
    free(s->copy);
    s->copy = NULL;
}

static double pick_budget(reader *r, size_t t)
{
    unsigned b = u8(r);
    switch (b % 12) {
    case 0: return 0.0;
    case 1: return -1.0;
    case 2: return NAN;
    case 3: return INFINITY;
    case 4: return 0.5;
    case 5: return 1.0;
    case 6: return (double)t;
    case 7: return (double)t + 5.5;
    case 8: return 1e-9;
    case 9: return 1e300;
    case 10: return 1.0 + (double)(b >> 4);
    default: return (double)(u8(r) + 1) / 256.0;
    }
}

/* Fresh workspace of the queried size; `short_by` bytes less when asked. */
static void *workspace(size_t bytes, size_t short_by, size_t *given)
{
    *given = bytes >= short_by ? bytes - short_by : 0;
    void *w = malloc(*given ? *given : 1);
    REQUIRE(w != NULL);
    memset(w, 0x5a, *given);
    return w;
}

static void check_sets(const uint32_t *idx, const uint32_t *cnt, size_t n_q, size_t n_sets,
                       size_t stride, size_t t)
{
    for (size_t i = 0; i < n_q; i++) {
        size_t ti = t - n_q + i + 1;
        for (size_t s = 0; s < n_sets; s++) {
            size_t c = cnt[i * n_sets + s];
            const uint32_t *p = idx + (i * n_sets + s) * stride;
            REQUIRE(c <= stride && c <= ti && c >= 1);
            for (size_t j = 0; j < c; j++)
                REQUIRE(p[j] < ti && (j == 0 || p[j - 1] < p[j]));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0x9e3779b97f4a7c15ull ^ size};
    for (size_t i = 0; i < size; i++)
        r.rng = (r.rng ^ data[i]) * 0x100000001b3ull;

    const size_t hkv = 1 + u8(&r) % 3, groups = 1 + u8(&r) % 3, hq = hkv * groups;
    const size_t hd = 2 * (1 + u8(&r) % 8), dv = 1 + u8(&r) % 9;
    const size_t t = 1 + u8(&r) % 80, n_q = 1 + u8(&r) % 3;
    const unsigned flags = u8(&r) | u8(&r) << 8;

    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    o.cpu_level = (int32_t)(u8(&r) % 6) - 1;
    o.n_threads = 1 + (int32_t)(flags >> 14);
    fasa_ctx *ctx = NULL;
    REQUIRE(fasa_ctx_create(&o, &ctx) == FASA_OK);

    /* Profile: 2 layers, layer 0 dense (the default). */
    fasa_model_shape shape = {sizeof shape, 2, hq, hkv, hd, (int32_t)(u8(&r) % 3), 0};
    if (flags & 1)
        shape.head_dim += 2; /* profile that does not fit the views */
    const size_t n_half = shape.head_dim / 2, n_fc = 1 + u8(&r) % n_half;
    uint32_t *fcs = malloc(2 * hq * n_fc * sizeof *fcs);
    REQUIRE(fcs != NULL);
    for (size_t row = 0; row < 2 * hq; row++) {
        size_t start = rnd(&r) % n_half;
        for (size_t j = 0; j < n_fc; j++)
            fcs[row * n_fc + j] = (uint32_t)((start + j) % n_half);
    }
    fasa_profile *prof = NULL;
    REQUIRE(fasa_profile_create(&shape, fcs, n_fc, NULL, &prof) == FASA_OK);
    free(fcs);

    fz_view q, k, v, out;
    make_view(&q, &r, n_q, hq, hd);
    make_view(&k, &r, t, hkv, hd);
    make_view(&v, &r, t, hkv, dv);
    make_view(&out, &r, n_q, hq, dv);
    check_validate(ctx, &q);
    check_validate(ctx, &k);
    check_validate(ctx, &v);
    check_validate(ctx, &out);
    const int qk_bad = q.header_bad || k.header_bad;
    const int any_bad = qk_bad || v.header_bad || out.header_bad;

    if (flags & 2 && q.backed && q.bytes >= dsize((int)q.v.dtype)) {
        float nan = NAN;
        if (q.v.dtype == FASA_DTYPE_F32)
            memcpy(q.mem, &nan, 4);
        else
            memcpy(q.mem, &(uint16_t){q.v.dtype == FASA_DTYPE_F16 ? 0x7e00 : 0x7fc0}, 2);
    }
    /* Output view placed over k: must be refused as aliasing. */
    int aliased = 0;
    if (flags & 4 && out.backed && k.backed && out.bytes <= k.bytes && !out.header_bad) {
        out.v.data = k.mem;
        aliased = 1;
    }

    if (q.backed && k.backed && v.backed && out.backed) {
        const fasa_gqa_mode mode = (fasa_gqa_mode)(u8(&r) % 3);
        const size_t layer = u8(&r) % 3;
        const size_t n_sets = mode == FASA_GQA_GROUP_SHARED ? k.v.n_heads : q.v.n_heads;
        const size_t kt = k.v.n_tokens;
        const double budget = pick_budget(&r, kt);
        const size_t short_by = flags & 8 ? 1 : 0;
        snap in_q, in_k, in_v;
        snap_take(&in_q, q.mem, q.bytes);
        snap_take(&in_k, k.mem, k.bytes);
        snap_take(&in_v, v.mem, v.bytes);

        /* ---- predict */
        size_t ms = 0, stride = 0;
        fasa_status st = fasa_predict_max_selected(budget, kt, &ms);
        if (st != FASA_OK)
            REQUIRE(!(budget > 0) || isinf(budget));
        stride = ms + (flags & 16 ? 0 : 2);
        if (flags & 32 && stride > 0)
            stride--;
        const size_t n_idx = q.v.n_tokens * n_sets * (stride ? stride : 1);
        uint32_t *idx = malloc(n_idx * sizeof *idx);
        uint32_t *cnt = malloc(q.v.n_tokens * n_sets * sizeof *cnt);
        float *scores = flags & 64 ? malloc(q.v.n_tokens * n_sets * kt * sizeof *scores) : NULL;
        REQUIRE(idx && cnt);
        memset(idx, 0xa5, n_idx * sizeof *idx);
        memset(cnt, 0xa5, q.v.n_tokens * n_sets * sizeof *cnt);
        size_t ws_need = 0, ws_given = 0;
        int predicted = 0;
        st = fasa_predict_workspace_size(ctx, prof, &q.v, kt, mode, &ws_need);
        if (st == FASA_OK && ws_need <= (64u << 20)) {
            void *ws = workspace(ws_need, short_by, &ws_given);
            snap o_idx, o_cnt;
            snap_take(&o_idx, idx, n_idx * sizeof *idx);
            snap_take(&o_cnt, cnt, q.v.n_tokens * n_sets * sizeof *cnt);
            st = fasa_predict(ctx, prof, layer, mode, &q.v, &k.v, budget, idx, stride, cnt, scores,
                              ws, ws_given);
            REQUIRE(snap_same(&in_q) && snap_same(&in_k));
            if (st == FASA_OK) {
                REQUIRE(!qk_bad && ws_given >= ws_need && !(flags & 2));
                check_sets(idx, cnt, q.v.n_tokens, n_sets, stride, kt);
                predicted = 1;
            } else {
                REQUIRE(snap_same(&o_idx) && snap_same(&o_cnt));
                REQUIRE(fasa_ctx_last_error(ctx)[0] != 0);
            }
            if (short_by && ws_need > 0)
                REQUIRE(st != FASA_OK);
            snap_free(&o_idx);
            snap_free(&o_cnt);
            free(ws);
        } else if (st != FASA_OK) {
            /* Size query refused: predict itself must refuse too. */
            REQUIRE(fasa_predict(ctx, prof, layer, mode, &q.v, &k.v, budget, idx, stride, cnt,
                                 scores, NULL, 0) != FASA_OK);
        }

        /* ---- attend over the predicted sets (or corrupted ones) */
        if (predicted && flags & 128) {
            size_t c = cnt[0];
            idx[c - 1] = (uint32_t)(kt + (flags >> 8 & 3)); /* outside t_i */
        }
        if (!predicted)
            for (size_t i = 0; i < q.v.n_tokens * n_sets; i++)
                cnt[i] = 0; /* empty sets are valid */
        const size_t out_vals = (size_t)out.bytes;
        float *lse = flags & 256 ? malloc(q.v.n_tokens * q.v.n_heads * sizeof *lse) : NULL;
        const size_t lse_bytes = lse ? q.v.n_tokens * q.v.n_heads * sizeof *lse : 0;
        if (lse)
            memset(lse, 0xa5, lse_bytes);
        const float scale = flags & 512 ? NAN : flags & 1024 ? 0.0f : 0.37f;
        st = fasa_attend_workspace_size(ctx, &q.v, &k.v, &v.v, mode, stride, &ws_need);
        if (st == FASA_OK && ws_need <= (64u << 20)) {
            void *ws = workspace(ws_need, short_by, &ws_given);
            snap o_out, o_lse, in_idx;
            snap_take(&o_out, out.v.data, out_vals);
            snap_take(&o_lse, lse, lse_bytes);
            snap_take(&in_idx, idx, n_idx * sizeof *idx);
            st = fasa_attend(ctx, mode, &q.v, &k.v, &v.v, idx, stride, cnt, scale, &out.v, lse,
                             ws, ws_given);
            REQUIRE(snap_same(&in_q) && snap_same(&in_v) && snap_same(&in_idx));
            if (st == FASA_OK) {
                REQUIRE(!any_bad && !aliased && ws_given >= ws_need && !(flags & 512));
                REQUIRE(!(predicted && flags & 128) && !(short_by && ws_need > 0));
                REQUIRE(snap_same(&in_k));
            } else {
                REQUIRE(snap_same(&o_out) && snap_same(&o_lse) && snap_same(&in_k));
            }
            snap_free(&o_out);
            snap_free(&o_lse);
            snap_free(&in_idx);
            free(ws);
        }

        /* ---- dense attention and one decode step */
        st = fasa_attend_dense_workspace_size(ctx, &q.v, &k.v, &v.v, &ws_need);
        if (st == FASA_OK && ws_need <= (64u << 20)) {
            void *ws = workspace(ws_need, short_by, &ws_given);
            snap o_out;
            snap_take(&o_out, out.v.data, out_vals);
            st = fasa_attend_dense(ctx, &q.v, &k.v, &v.v, scale, &out.v, lse, ws, ws_given);
            REQUIRE(snap_same(&in_q) && snap_same(&in_k) && snap_same(&in_v));
            if (st == FASA_OK)
                REQUIRE(!any_bad && !aliased && ws_given >= ws_need && !(short_by && ws_need));
            else
                REQUIRE(snap_same(&o_out));
            snap_free(&o_out);
            free(ws);
        }

        /* Label cache for this layer, filled from k. */
        fasa_label_cache *cache = NULL;
        void *cmem = NULL;
        size_t cbytes = 0;
        const fasa_dtype cdt = (fasa_dtype)(u8(&r) % 3);
        const size_t cap = kt + (flags >> 10 & 1 ? 0 : 3) - (flags >> 11 & 1 ? 1 : 0);
        if (fasa_label_cache_size(prof, layer, mode, cdt, cap, &cbytes) == FASA_OK &&
            cbytes <= (64u << 20)) {
            cmem = malloc(cbytes);
            REQUIRE(cmem != NULL);
            if (fasa_label_cache_init(cmem, cbytes, prof, layer, mode, cdt, cap, &cache) ==
                FASA_OK) {
                fasa_status b = (flags >> 12 & 1) ? fasa_label_cache_build(cache, &k.v)
                                                  : fasa_label_cache_append(cache, &k.v);
                size_t held = 99;
                REQUIRE(fasa_label_cache_tokens(cache, &held) == FASA_OK);
                REQUIRE(b == FASA_OK ? held == kt : held == 0);
                REQUIRE(snap_same(&in_k));
                if (b != FASA_OK)
                    cache = NULL;
            } else {
                cache = NULL;
            }
        }
        if (cache && flags & 8192) {
            st = fasa_predict_workspace_size(ctx, prof, &q.v, kt, mode, &ws_need);
            if (st == FASA_OK && ws_need <= (64u << 20)) {
                void *ws = workspace(ws_need, short_by, &ws_given);
                st = fasa_predict_cached(ctx, prof, layer, mode, &q.v, cache, budget, idx, stride,
                                         cnt, scores, ws, ws_given);
                REQUIRE(snap_same(&in_q));
                if (st == FASA_OK) {
                    REQUIRE(!qk_bad && ws_given >= ws_need && !(flags & 2));
                    check_sets(idx, cnt, q.v.n_tokens, n_sets, stride, kt);
                }
                free(ws);
            }
        }
        st = fasa_decode_step_workspace_size(ctx, prof, &q.v, &k.v, &v.v, mode, budget, &ws_need);
        if (st == FASA_OK && ws_need <= (64u << 20)) {
            void *ws = workspace(ws_need, short_by, &ws_given);
            snap o_out;
            snap_take(&o_out, out.v.data, out_vals);
            st = fasa_decode_step(ctx, prof, layer, mode, &q.v, &k.v, &v.v,
                                  flags & 8192 ? cache : NULL, budget, scale, &out.v, lse, ws,
                                  ws_given);
            REQUIRE(snap_same(&in_q) && snap_same(&in_k) && snap_same(&in_v));
            if (st == FASA_OK)
                REQUIRE(!any_bad && !aliased && ws_given >= ws_need);
            else
                REQUIRE(snap_same(&o_out));
            snap_free(&o_out);
            free(ws);
        }
        free(cmem);

        /* ---- one calibration step (q must be a single token) */
        fasa_calib_config cc;
        memset(&cc, 0, sizeof cc);
        cc.struct_size = sizeof cc;
        cc.shape = shape;
        cc.n_k = 1 + (flags >> 4 & 1);
        cc.k_values[0] = 1 + (uint32_t)(u8(&r) % 8);
        cc.k_values[1] = cc.k_values[0] + (uint32_t)(u8(&r) % 4); /* may repeat: invalid */
        fasa_calibrator *cal = NULL;
        if (fasa_calibrator_create(&cc, &cal) == FASA_OK) {
            st = fasa_calibrator_add_step(cal, ctx, layer, &q.v, &k.v);
            REQUIRE(snap_same(&in_q) && snap_same(&in_k));
            if (st == FASA_OK)
                REQUIRE(!qk_bad && q.v.n_tokens == 1 && !(flags & 2));
            fasa_calibrator_destroy(cal);
        }

        free(idx);
        free(cnt);
        free(scores);
        free(lse);
        snap_free(&in_q);
        snap_free(&in_k);
        snap_free(&in_v);
    } else {
        /* Unbacked views: the shape-only size queries must still be safe. */
        size_t bytes = 0;
        (void)fasa_predict_workspace_size(ctx, prof, &q.v, k.v.n_tokens, FASA_GQA_PER_HEAD, &bytes);
        (void)fasa_attend_workspace_size(ctx, &q.v, &k.v, &v.v, FASA_GQA_PER_HEAD, 4, &bytes);
        (void)fasa_attend_dense_workspace_size(ctx, &q.v, &k.v, &v.v, &bytes);
        (void)fasa_decode_step_workspace_size(ctx, prof, &q.v, &k.v, &v.v, FASA_GQA_PER_HEAD,
                                              4.0, &bytes);
    }

    free(q.mem);
    free(k.mem);
    free(v.mem);
    free(out.mem);
    fasa_profile_destroy(prof);
    fasa_ctx_destroy(ctx);
    return 0;
}
