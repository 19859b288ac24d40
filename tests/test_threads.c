/*
 * test_threads.c - 8 threads share one profile and one read-only K/V cache
 * and run predict, attend, attend_dense and decode_step concurrently, each
 * with its own queries, ctx (half of them with 2 OpenMP threads), workspace
 * and outputs; and each builds its own label cache (the shared profile and
 * keys) and runs predict_cached on it. Their results must be bit-identical
 * to the same calls made later from one thread. The threads make the first
 * library calls of the process at the same moment, so the one-time CPU
 * dispatch resolution is raced too. `make tsan` runs it under
 * ThreadSanitizer (OPENMP=0: the application's pthreads only).
 */
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NTHREADS = 8, ROUNDS = 3, D = 128, HQ = 8, HKV = 2, T = 700, NQ = 2, NFC = 16 };

typedef struct result {
    uint32_t idx[NQ * HQ * T];
    uint32_t cnt[NQ * HQ];
    float scores[NQ * HQ * T];
    float out_sparse[NQ * HQ * D], lse_sparse[NQ * HQ];
    float out_dense[NQ * HQ * D], lse_dense[NQ * HQ];
    float out_step[NQ * HQ * D], lse_step[NQ * HQ];
    uint32_t idx_cached[NQ * HQ * T];
    uint32_t cnt_cached[NQ * HQ];
    int status;
} result;

typedef struct worker {
    pthread_t tid;
    int id;
    test_tensor q;
    result res[ROUNDS];
} worker;

static fasa_profile *g_prof;
static test_tensor g_k, g_v;
static pthread_barrier_t g_barrier;
static const double g_budget = 100;

/* n_threads > 1 nests the library's OpenMP team inside each application
 * thread (clamped to 1 without OpenMP); compared with the same option. */
static void compute(const test_tensor *q, int mode, int n_threads, result *r)
{
    fasa_ctx *ctx = NULL;
    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    o.n_threads = n_threads;
    fasa_status st = fasa_ctx_create(&o, &ctx);
    size_t wp = 0, wa = 0, wd = 0, wst = 0;
    st |= fasa_predict_workspace_size(ctx, g_prof, &q->view, T, (fasa_gqa_mode)mode, &wp);
    st |= fasa_attend_workspace_size(ctx, &q->view, &g_k.view, &g_v.view, (fasa_gqa_mode)mode, T, &wa);
    st |= fasa_attend_dense_workspace_size(ctx, &q->view, &g_k.view, &g_v.view, &wd);
    st |= fasa_decode_step_workspace_size(ctx, g_prof, &q->view, &g_k.view, &g_v.view,
                                          (fasa_gqa_mode)mode, g_budget, &wst);
    size_t ws = wp > wa ? wp : wa;
    ws = wd > ws ? wd : ws;
    ws = wst > ws ? wst : ws;
    void *work = test_xmalloc(ws);
    memset(r, 0, sizeof *r);
    fasa_view out;
    fasa_view_make(&out, r->out_sparse, FASA_DTYPE_F32, NQ, HQ, D, HQ * D, D);
    st |= fasa_predict(ctx, g_prof, 1, (fasa_gqa_mode)mode, &q->view, &g_k.view, g_budget, r->idx, T,
                       r->cnt, r->scores, work, ws);
    st |= fasa_attend(ctx, (fasa_gqa_mode)mode, &q->view, &g_k.view, &g_v.view, r->idx, T, r->cnt,
                      0.0f, &out, r->lse_sparse, work, ws);
    fasa_view_make(&out, r->out_dense, FASA_DTYPE_F32, NQ, HQ, D, HQ * D, D);
    st |= fasa_attend_dense(ctx, &q->view, &g_k.view, &g_v.view, 0.0f, &out, r->lse_dense, work, ws);
    fasa_view_make(&out, r->out_step, FASA_DTYPE_F32, NQ, HQ, D, HQ * D, D);
    st |= fasa_decode_step(ctx, g_prof, 1, (fasa_gqa_mode)mode, &q->view, &g_k.view, &g_v.view, NULL,
                           g_budget, 0.0f, &out, r->lse_step, work, ws);
    /* A label cache of this thread's own (caches are one thread at a time),
     * built from the shared keys. */
    size_t cb = 0;
    fasa_label_cache *cache = NULL;
    st |= fasa_label_cache_size(g_prof, 1, (fasa_gqa_mode)mode, FASA_DTYPE_F16, T, &cb);
    void *cmem = test_xmalloc(cb);
    st |= fasa_label_cache_init(cmem, cb, g_prof, 1, (fasa_gqa_mode)mode, FASA_DTYPE_F16, T, &cache);
    if (cache != NULL) {
        st |= fasa_label_cache_build(cache, &g_k.view);
        st |= fasa_predict_cached(ctx, g_prof, 1, (fasa_gqa_mode)mode, &q->view, cache, g_budget,
                                  r->idx_cached, T, r->cnt_cached, NULL, work, ws);
    }
    free(cmem);
    r->status = (int)st;
    free(work);
    fasa_ctx_destroy(ctx);
}

static void *thread_main(void *arg)
{
    worker *w = arg;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_wait(&g_barrier);
        compute(&w->q, (w->id + round) % 2, 1 + w->id % 2, &w->res[round]);
    }
    return NULL;
}

int main(void)
{
    test_init("test_threads");
    static worker workers[NTHREADS];
    /* data first (no dispatch-relevant calls: view_make and profile only) */
    test_tensor_make(&g_k, FASA_DTYPE_F16, T, HKV, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
    test_tensor_make(&g_v, FASA_DTYPE_BF16, T, HKV, D, TEST_LAYOUT_HEAD_MAJOR, TEST_PLAIN);
    test_tensor_randn(&g_k, 1.0);
    test_tensor_randn(&g_v, 1.0);
    for (int i = 0; i < NTHREADS; i++) {
        workers[i].id = i;
        test_tensor_make(&workers[i].q, i % 3, NQ, HQ, D, TEST_LAYOUT_TOKEN_MAJOR, TEST_PLAIN);
        test_tensor_randn(&workers[i].q, 1.0);
    }
    fasa_model_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.struct_size = sizeof shape;
    shape.n_layers = 2;
    shape.n_q_heads = HQ;
    shape.n_kv_heads = HKV;
    shape.head_dim = D;
    shape.pair_layout = FASA_PAIRS_INTERLEAVED;
    uint32_t *fcs = test_random_fcs(2, HQ, NFC, D);
    CHECK_STATUS(fasa_profile_create(&shape, fcs, NFC, NULL, &g_prof), FASA_OK);
    free(fcs);

    CHECK(pthread_barrier_init(&g_barrier, NULL, NTHREADS) == 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&workers[i].tid, NULL, thread_main, &workers[i]) == 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(workers[i].tid, NULL);
    pthread_barrier_destroy(&g_barrier);

    result *single = test_xmalloc(sizeof *single);
    for (int i = 0; i < NTHREADS; i++)
        for (int round = 0; round < ROUNDS; round++) {
            const result *r = &workers[i].res[round];
            compute(&workers[i].q, (i + round) % 2, 1 + i % 2, single);
            CHECKF(r->status == FASA_OK && single->status == FASA_OK, "thread %d round %d: status %d/%d",
                   i, round, r->status, single->status);
            CHECKF(memcmp(r, single, sizeof *r) == 0,
                   "thread %d round %d: concurrent results differ from the single-threaded run", i, round);
        }
    /* the rounds differ in mode, so distinct results show the test has teeth */
    CHECK(memcmp(workers[0].res[0].idx, workers[0].res[1].idx, sizeof workers[0].res[0].idx) != 0 ||
          memcmp(workers[0].res[0].cnt, workers[0].res[1].cnt, sizeof workers[0].res[0].cnt) != 0);
    free(single);
    for (int i = 0; i < NTHREADS; i++)
        test_tensor_free(&workers[i].q);
    test_tensor_free(&g_k);
    test_tensor_free(&g_v);
    fasa_profile_destroy(g_prof);
    return test_summary();
}
