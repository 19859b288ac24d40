/*
 * threading.h - how the hot calls split work over OpenMP threads.
 *
 * Rule that makes results independent of the thread count: work is cut
 * into items by fixed sizes (FASA_KV_CHUNK tokens of a KV range or index
 * list, FASA_Q_BLOCK queries), never by the number of threads, and partial
 * results are combined in item order. Threads only decide who computes an
 * item, so every thread count (1 included) gives bit-identical output.
 * Without OpenMP (OPENMP=0) the pragmas are ignored and fasa__thread_id()
 * is 0.
 */
#ifndef FASA_THREADING_H
#define FASA_THREADING_H

#include <stddef.h>

#if defined(FASA_OPENMP) && defined(_OPENMP)
#include <omp.h>
#endif

/* Tokens per split-KV partial. Large enough that the per-chunk merge
 * (Hq x head_dim_v) is noise against reading the chunk's K/V, small enough
 * that t = 4k over 8 KV heads still gives 32 items to share. */
#define FASA_KV_CHUNK 1024

/* Queries per prefill item: one KV chunk is read once for all of them. */
#define FASA_Q_BLOCK 16

/* Tokens per TIP scoring item (whole 64-token label tiles): t = 128k over
 * 8 KV heads gives 512 items, t = 3000 still two chunks per head. */
#define FASA_TIP_CHUNK 2048

/* Below this many (query row x token) pairs in a parallel loop, starting a
 * team costs more than the loop: run it on the calling thread. A fixed
 * count, so the choice never depends on timing (and the output never on
 * the choice). */
#define FASA_PAR_MIN_WORK 2048

static inline size_t fasa__n_chunks(size_t n, size_t chunk) { return (n + chunk - 1) / chunk; }

/* Threads for a loop of `items` items totalling `work` (query row x token)
 * pairs with `workers` available: 1 (inline, the parallel region skipped)
 * for tiny loops, else all workers, even when there are fewer items than
 * workers (the spare threads only pass the barrier). A team whose size
 * changes from one region to the next costs more: on the 16-core machine,
 * group-shared FAC on 8 items followed by TIP on 16 threads made TIP 0.3 ms
 * (40%) slower at t = 128k than with a constant team (docs/performance.md). */
static inline int fasa__team(size_t workers, size_t items, size_t work)
{
    if (items < 2 || work < FASA_PAR_MIN_WORK || workers < 2)
        return 1;
    return (int)workers;
}

/* Index of the calling thread inside the current parallel region. */
static inline int fasa__thread_id(void)
{
#if defined(FASA_OPENMP) && defined(_OPENMP)
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Merge one online-softmax partial (mc, lc, accc) of `rows` rows into the
 * running state (m, l, acc), both [rows][dv] with their own strides, in the
 * exact arithmetic every path uses (so a single partial merged into the
 * empty state reproduces it bit for bit). */
void fasa__softmax_merge(float *m, float *l, float *acc, size_t acc_stride, const float *mc,
                         const float *lc, const float *accc, size_t accc_stride, size_t rows,
                         size_t dv);

#endif
