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

static inline size_t fasa__n_chunks(size_t n, size_t chunk) { return (n + chunk - 1) / chunk; }

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
