/*
 * bench_runtime.c - `make bench-runtime`: what a runtime that embeds
 * libfasa gets from the runtime-integration API, each figure a ratio
 * measured side by side in one run:
 *  1. batched decode: n_seq queries of different sequences sharing one KV
 *     buffer and one label cache, decoded in ONE call (RANGES or MASK
 *     visibility), against n_seq separate fasa_decode_step calls on the
 *     same cells with one label cache each (what a runtime had to do
 *     before), FASA group-shared @256 and dense, 1 and 2 threads;
 *  2. host threads: one plan executed on the caller's own threads
 *     (fasa_execute_share, a spinning barrier between phases as ggml's
 *     pool does) against the library's OpenMP team, 1 and 2 threads.
 * Layers shaped like llama-28m (Hq 4, Hkv 2) and Llama-3-8B (32, 8),
 * head_dim 128, f16 KV in the llama.cpp layout.
 *
 * Environment: BENCH_REPS (default 21), BENCH_SEQ (8), BENCH_TSEQ (4096),
 * BENCH_THOST (16384: t of the host-thread part), BENCH_ONLY=batched|host.
 */
#include "fasa.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define D 128
#define BUDGET 256.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
    return v[n / 2];
}

static size_t env_size(const char *name, size_t def)
{
    const char *s = getenv(name);
    return s && *s ? (size_t)strtoull(s, NULL, 10) : def;
}

static void *xalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        fprintf(stderr, "bench_runtime: out of memory\n");
        exit(1);
    }
    return p;
}

static void die(fasa_status st, fasa_ctx *ctx, const char *what)
{
    if (st != FASA_OK) {
        fprintf(stderr, "bench_runtime: %s: %s (%s)\n", what, fasa_status_name(st),
                fasa_ctx_last_error(ctx));
        exit(1);
    }
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float randn(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((float)(rng & 0xffffff) / 16777216.0f - 0.5f) * 3.4f;
}

static uint16_t f32_to_f16(float f)
{
    /* inputs are small normals: a plain round-to-nearest is enough here */
    union {
        float f;
        uint32_t u;
    } x = {f};
    uint32_t s = (x.u >> 16) & 0x8000u, e = (x.u >> 23) & 0xffu, m = x.u & 0x7fffffu;
    if (e < 103)
        return (uint16_t)s;
    if (e < 113)
        return (uint16_t)(s | ((m | 0x800000u) >> (126 - e)));
    return (uint16_t)(s | ((e - 112) << 10) | (m >> 13));
}

/* A profile with 16 FCs per head drawn from the 24 lowest frequencies. */
static fasa_profile *make_profile(size_t hq, size_t hkv)
{
    fasa_model_shape sh = {sizeof sh, 2, hq, hkv, D, FASA_PAIRS_HALF, 0};
    uint32_t *fcs = xalloc(2 * hq * 16 * sizeof(uint32_t));
    for (size_t r = 0; r < 2 * hq; r++) {
        uint32_t pool[24];
        for (uint32_t i = 0; i < 24; i++)
            pool[i] = D / 2 - 24 + i;
        for (size_t i = 0; i < 16; i++) {
            size_t j = i + (size_t)(rng % (24 - i));
            randn();
            uint32_t t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
            fcs[r * 16 + i] = pool[i];
        }
    }
    fasa_profile *p = NULL;
    die(fasa_profile_create(&sh, fcs, 16, NULL, &p), NULL, "profile");
    free(fcs);
    return p;
}

typedef struct layer {
    size_t hq, hkv, cells;
    uint16_t *k, *v;
    fasa_view kv_k, kv_v;
    fasa_profile *prof;
    void *lc_mem;
    fasa_label_cache *lc; /* over all cells */
} layer;

static void layer_make(layer *L, size_t hq, size_t hkv, size_t cells)
{
    L->hq = hq;
    L->hkv = hkv;
    L->cells = cells;
    size_t n = cells * hkv * D;
    L->k = xalloc(n * 2);
    L->v = xalloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        L->k[i] = f32_to_f16(randn());
        L->v[i] = f32_to_f16(randn());
    }
    fasa_view_make(&L->kv_k, L->k, FASA_DTYPE_F16, cells, hkv, D, hkv * D, D);
    fasa_view_make(&L->kv_v, L->v, FASA_DTYPE_F16, cells, hkv, D, hkv * D, D);
    L->prof = make_profile(hq, hkv);
    size_t bytes;
    die(fasa_label_cache_size(L->prof, 1, FASA_GQA_GROUP_SHARED, FASA_DTYPE_F16, cells, &bytes),
        NULL, "label cache size");
    L->lc_mem = xalloc(bytes);
    die(fasa_label_cache_init(L->lc_mem, bytes, L->prof, 1, FASA_GQA_GROUP_SHARED,
                              FASA_DTYPE_F16, cells, &L->lc),
        NULL, "label cache init");
    die(fasa_label_cache_build(L->lc, &L->kv_k), NULL, "label cache build");
}

static void layer_free(layer *L)
{
    free(L->k);
    free(L->v);
    free(L->lc_mem);
    fasa_profile_destroy(L->prof);
}

/* ------------------------------------------------------ 1. batched */

static void bench_batched(size_t hq, size_t hkv, size_t n_seq, size_t tseq, size_t reps)
{
    const size_t cells = n_seq * tseq;
    layer L;
    layer_make(&L, hq, hkv, cells);
    float *q = xalloc(n_seq * hq * D * sizeof(float));
    float *out = xalloc(n_seq * hq * D * sizeof(float));
    for (size_t i = 0; i < n_seq * hq * D; i++)
        q[i] = randn();
    fasa_view qv, ov;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, n_seq, hq, D, hq * D, D);
    fasa_view_make(&ov, out, FASA_DTYPE_F32, n_seq, hq, D, hq * D, D);

    /* one label cache per sequence over its own cells (the old way) */
    fasa_label_cache **own = xalloc(n_seq * sizeof *own);
    void **own_mem = xalloc(n_seq * sizeof *own_mem);
    fasa_view *ks = xalloc(n_seq * sizeof *ks), *vs = xalloc(n_seq * sizeof *vs);
    size_t bytes;
    die(fasa_label_cache_size(L.prof, 1, FASA_GQA_GROUP_SHARED, FASA_DTYPE_F16, tseq, &bytes),
        NULL, "size");
    for (size_t s = 0; s < n_seq; s++) {
        fasa_view_make(&ks[s], L.k + s * tseq * hkv * D, FASA_DTYPE_F16, tseq, hkv, D, hkv * D, D);
        fasa_view_make(&vs[s], L.v + s * tseq * hkv * D, FASA_DTYPE_F16, tseq, hkv, D, hkv * D, D);
        own_mem[s] = xalloc(bytes);
        die(fasa_label_cache_init(own_mem[s], bytes, L.prof, 1, FASA_GQA_GROUP_SHARED,
                                  FASA_DTYPE_F16, tseq, &own[s]),
            NULL, "init");
        die(fasa_label_cache_build(own[s], &ks[s]), NULL, "build");
    }
    /* visibility: ranges, and the same as an f16 mask */
    uint32_t *rf = xalloc((n_seq + 1) * sizeof(uint32_t)), *rg = xalloc(2 * n_seq * sizeof(uint32_t));
    uint16_t *mask = xalloc(n_seq * cells * 2);
    for (size_t s = 0; s < n_seq; s++) {
        rf[s] = (uint32_t)s;
        rg[2 * s] = (uint32_t)(s * tseq);
        rg[2 * s + 1] = (uint32_t)((s + 1) * tseq);
        for (size_t j = 0; j < cells; j++)
            mask[s * cells + j] = j / tseq == s ? 0 : 0xfc00u;
    }
    rf[n_seq] = (uint32_t)n_seq;
    fasa_visibility vr = {sizeof vr, FASA_VISIBLE_RANGES, 0, rg, rf, NULL, 0, 0};
    fasa_visibility vm = {sizeof vm, FASA_VISIBLE_MASK, FASA_DTYPE_F16, NULL, NULL, mask, cells, cells};

    printf("\n1. batched decode: %zu sequences x %zu cells in one KV buffer, Hq %zu, Hkv %zu, f16 "
           "KV, budget %g group-shared (FASA) and dense; median of %zu\n",
           n_seq, tseq, hq, hkv, BUDGET, reps);
    printf("   %-6s %-5s %-28s %10s %10s\n", "thr", "op", "path", "ms/step", "vs separate");
    for (int thr = 1; thr <= 2; thr++) {
        fasa_ctx *ctx;
        fasa_ctx_options o;
        fasa_ctx_options_default(&o);
        o.n_threads = thr;
        die(fasa_ctx_create(&o, &ctx), NULL, "ctx");
        if (fasa_ctx_threads(ctx) != thr) {
            fasa_ctx_destroy(ctx);
            continue;
        }
        for (int fasa = 1; fasa >= 0; fasa--) {
            fasa_attention_desc d;
            memset(&d, 0, sizeof d);
            d.struct_size = sizeof d;
            d.op = fasa ? FASA_OP_FASA : FASA_OP_DENSE;
            d.mode = FASA_GQA_GROUP_SHARED;
            d.q = &qv;
            d.k = &L.kv_k;
            d.v = &L.kv_v;
            d.out = &ov;
            d.profile = L.prof;
            d.layer = 1;
            d.label_cache = L.lc;
            d.budget = BUDGET;
            /* per-sequence selection hints, kept across steps as a
             * runtime keeps them per sequence and layer */
            float *hints = xalloc(n_seq * hkv * sizeof(float));
            for (size_t i = 0; i < n_seq * hkv; i++)
                hints[i] = NAN;
            d.select_hints = hints;
            size_t ws_b = 0, ws_m = 0, ws_s = 0, ws_sd = 0;
            d.visibility = &vr;
            die(fasa_attention_workspace_size(ctx, &d, &ws_b), ctx, "ws");
            d.visibility = &vm;
            die(fasa_attention_workspace_size(ctx, &d, &ws_m), ctx, "ws");
            fasa_view q1 = qv, o1 = ov;
            q1.n_tokens = o1.n_tokens = 1;
            die(fasa_decode_step_workspace_size(ctx, L.prof, &q1, &ks[0], &vs[0],
                                                FASA_GQA_GROUP_SHARED, BUDGET, &ws_s),
                ctx, "ws");
            die(fasa_attend_dense_workspace_size(ctx, &q1, &ks[0], &vs[0], &ws_sd), ctx, "ws");
            size_t ws_max = ws_b > ws_m ? ws_b : ws_m;
            ws_max = ws_max > ws_s ? ws_max : ws_s;
            ws_max = ws_max > ws_sd ? ws_max : ws_sd;
            void *ws = xalloc(ws_max);
            double *tb = xalloc(reps * sizeof(double)), *tm = xalloc(reps * sizeof(double));
            double *ts = xalloc(reps * sizeof(double));
            for (size_t r = 0; r < reps + 2; r++) { /* interleaved, 2 warm-ups */
                double t0 = now_s();
                d.visibility = &vr;
                die(fasa_attention(ctx, &d, ws, ws_max), ctx, "batched ranges");
                double t1 = now_s();
                d.visibility = &vm;
                die(fasa_attention(ctx, &d, ws, ws_max), ctx, "batched mask");
                double t2 = now_s();
                for (size_t s = 0; s < n_seq; s++) {
                    q1.data = q + s * hq * D;
                    o1.data = out + s * hq * D;
                    if (fasa)
                        die(fasa_decode_step(ctx, L.prof, 1, FASA_GQA_GROUP_SHARED, &q1, &ks[s],
                                             &vs[s], own[s], BUDGET, 0.0f, &o1, NULL, ws, ws_max),
                            ctx, "separate");
                    else
                        die(fasa_attend_dense(ctx, &q1, &ks[s], &vs[s], 0.0f, &o1, NULL, ws, ws_max),
                            ctx, "separate dense");
                }
                double t3 = now_s();
                if (r >= 2) {
                    tb[r - 2] = t1 - t0;
                    tm[r - 2] = t2 - t1;
                    ts[r - 2] = t3 - t2;
                }
            }
            double mb = median(tb, reps), mm = median(tm, reps), msep = median(ts, reps);
            const char *op = fasa ? "fasa" : "dense";
            printf("   %-6d %-5s %-28s %10.3f %10s\n", thr, op, "separate calls (one per seq)",
                   1e3 * msep, "1.00x");
            printf("   %-6d %-5s %-28s %10.3f %9.2fx\n", thr, op, "one call, RANGES", 1e3 * mb,
                   msep / mb);
            printf("   %-6d %-5s %-28s %10.3f %9.2fx\n", thr, op, "one call, f16 MASK", 1e3 * mm,
                   msep / mm);
            free(tb);
            free(tm);
            free(ts);
            free(ws);
            free(hints);
        }
        fasa_ctx_destroy(ctx);
    }
    for (size_t s = 0; s < n_seq; s++)
        free(own_mem[s]);
    free(own_mem);
    free(own);
    free(ks);
    free(vs);
    free(rf);
    free(rg);
    free(mask);
    free(q);
    free(out);
    layer_free(&L);
}

/* ------------------------------------------------- 2. host threads */

/* A pool of spinning workers, as a runtime's graph executor keeps: the
 * caller is share 0; phases are separated by a sense-reversing barrier. */
typedef struct pool {
    const fasa_plan *plan;
    void *ws;
    uint32_t nth, phases;
    atomic_uint arrived, sense, go, stop;
    pthread_t th[8];
} pool;

static void barrier(pool *P, unsigned *local)
{
    unsigned s = *local = !*local;
    if (atomic_fetch_add(&P->arrived, 1) + 1 == P->nth) {
        atomic_store(&P->arrived, 0);
        atomic_store(&P->sense, s);
    } else {
        while (atomic_load(&P->sense) != s) {
        }
    }
}

static void run_share(pool *P, uint32_t ith, unsigned *local)
{
    for (uint32_t ph = 0; ph < P->phases; ph++) {
        fasa_execute_share(P->plan, NULL, P->ws, ph, ith, P->nth);
        barrier(P, local);
    }
}

typedef struct worker_arg {
    pool *P;
    uint32_t ith;
} worker_arg;

static void *worker(void *a)
{
    worker_arg *w = a;
    pool *P = w->P;
    unsigned local = 0, seen = 0;
    for (;;) {
        unsigned g;
        while ((g = atomic_load(&P->go)) == seen && !atomic_load(&P->stop)) {
        }
        if (atomic_load(&P->stop))
            return NULL;
        seen = g;
        run_share(P, w->ith, &local);
    }
}

static void bench_host(size_t hq, size_t hkv, size_t t, size_t reps)
{
    layer L;
    layer_make(&L, hq, hkv, t);
    float *q = xalloc(hq * D * sizeof(float)), *out = xalloc(hq * D * sizeof(float));
    for (size_t i = 0; i < hq * D; i++)
        q[i] = randn();
    fasa_view qv, ov;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, hq, D, hq * D, D);
    fasa_view_make(&ov, out, FASA_DTYPE_F32, 1, hq, D, hq * D, D);
    printf("\n2. host threads: one decode step, t = %zu, Hq %zu, Hkv %zu, f16 KV; plan made for 2 "
           "threads; median of %zu\n",
           t, hq, hkv, reps);
    printf("   %-5s %-34s %10s %10s\n", "op", "how", "ms/step", "vs 1 host");
    for (int fasa = 1; fasa >= 0; fasa--) {
        fasa_attention_desc d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.op = fasa ? FASA_OP_FASA : FASA_OP_DENSE;
        d.mode = FASA_GQA_GROUP_SHARED;
        d.q = &qv;
        d.k = &L.kv_k;
        d.v = &L.kv_v;
        d.out = &ov;
        d.profile = L.prof;
        d.layer = 1;
        d.label_cache = L.lc;
        d.budget = BUDGET;
        d.n_threads = 2;
        size_t pb, wsb;
        fasa_plan_size(&pb);
        void *pm = xalloc(pb);
        fasa_plan *plan;
        die(fasa_plan_init(NULL, &d, pm, pb, &plan), NULL, "plan");
        fasa_plan_workspace_size(plan, &wsb);
        void *ws = xalloc(wsb);
        uint32_t phases;
        fasa_plan_phases(plan, &phases);
        fasa_ctx *c1, *c2;
        fasa_ctx_options o;
        fasa_ctx_options_default(&o);
        die(fasa_ctx_create(&o, &c1), NULL, "ctx");
        o.n_threads = 2;
        die(fasa_ctx_create(&o, &c2), NULL, "ctx");
        const int have2 = fasa_ctx_threads(c2) == 2;

        pool P1 = {.plan = plan, .ws = ws, .nth = 1, .phases = phases};
        pool P2 = {.plan = plan, .ws = ws, .nth = 2, .phases = phases};
        worker_arg wa = {&P2, 1};
        pthread_create(&P2.th[0], NULL, worker, &wa);
        unsigned l1 = 0, l2 = 0;
        double *t_h1 = xalloc(reps * sizeof(double)), *t_h2 = xalloc(reps * sizeof(double));
        double *t_o1 = xalloc(reps * sizeof(double)), *t_o2 = xalloc(reps * sizeof(double));
        for (size_t r = 0; r < reps + 2; r++) {
            double a = now_s();
            run_share(&P1, 0, &l1);
            double b = now_s();
            atomic_fetch_add(&P2.go, 1);
            run_share(&P2, 0, &l2);
            double c = now_s();
            die(fasa_execute(c1, plan, NULL, ws, wsb), c1, "execute");
            double e = now_s();
            if (have2)
                die(fasa_execute(c2, plan, NULL, ws, wsb), c2, "execute");
            double f = now_s();
            if (r >= 2) {
                t_h1[r - 2] = b - a;
                t_h2[r - 2] = c - b;
                t_o1[r - 2] = e - c;
                t_o2[r - 2] = f - e;
            }
        }
        atomic_store(&P2.stop, 1);
        pthread_join(P2.th[0], NULL);
        double h1 = median(t_h1, reps), h2 = median(t_h2, reps), o1 = median(t_o1, reps),
               o2 = median(t_o2, reps);
        const char *op = fasa ? "fasa" : "dense";
        printf("   %-5s %-34s %10.3f %10s\n", op, "1 host thread (execute_share)", 1e3 * h1, "1.00x");
        printf("   %-5s %-34s %10.3f %9.2fx\n", op, "2 host threads (execute_share)", 1e3 * h2,
               h1 / h2);
        printf("   %-5s %-34s %10.3f %9.2fx\n", op, "OpenMP, 1 thread (fasa_execute)", 1e3 * o1,
               h1 / o1);
        if (have2)
            printf("   %-5s %-34s %10.3f %9.2fx\n", op, "OpenMP, 2 threads (fasa_execute)",
                   1e3 * o2, h1 / o2);
        free(t_h1);
        free(t_h2);
        free(t_o1);
        free(t_o2);
        fasa_ctx_destroy(c1);
        fasa_ctx_destroy(c2);
        free(ws);
        free(pm);
    }
    free(q);
    free(out);
    layer_free(&L);
}

int main(void)
{
    size_t reps = env_size("BENCH_REPS", 21), n_seq = env_size("BENCH_SEQ", 8);
    size_t tseq = env_size("BENCH_TSEQ", 4096), thost = env_size("BENCH_THOST", 16384);
    printf("libfasa bench_runtime (%s)\n", fasa_version_string());
    const char *only = getenv("BENCH_ONLY"); /* "batched" or "host" */
    if (only == NULL || strcmp(only, "host") != 0) {
        bench_batched(4, 2, n_seq, tseq, reps);
        bench_batched(32, 8, n_seq, tseq, reps);
    }
    if (only == NULL || strcmp(only, "batched") != 0) {
        bench_host(4, 2, thost, reps);
        bench_host(32, 8, thost, reps);
    }
    return 0;
}
