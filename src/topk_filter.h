/*
 * topk_filter.h - exact top-k by threshold filtering (topk_filter.c), shared
 * by the SIMD topk kernels, which supply only the compare-and-compress scan.
 */
#ifndef FASA_TOPK_FILTER_H
#define FASA_TOPK_FILTER_H

/* Write, in ascending order, every j < n with s[j] >= tau into cand and
 * return how many. Stops early and returns cap + 1 once more than cap are
 * found. cand has room for cap + 16 entries (vector stores may spill up to
 * 16 past the count). tau is never NaN. */
typedef size_t (*fasa__topk_scan_fn)(const float *s, size_t n, float tau, uint32_t *cand,
                                     size_t cap);

/* The topk_hint contract of kernels.h (identical result to fasa__topk_ref
 * for every input), using scan for the one pass over s. */
void fasa__topk_filter(const float *s, size_t n, size_t k, uint32_t *out, void *scratch,
                       float *tau, fasa__topk_scan_fn scan);

/* The two registry entry points of an ISA's top-k: fasa__topk_<isa> (no
 * hint) and fasa__topk_hint_<isa>, both fasa__topk_filter over `scan`. */
#define FASA_TOPK_KERNELS(isa, scan)                                                         \
    void fasa__topk_##isa(const float *s, size_t n, size_t k, uint32_t *out, void *scratch)  \
    {                                                                                        \
        float tau = NAN;                                                                     \
        fasa__topk_filter(s, n, k, out, scratch, &tau, scan);                                \
    }                                                                                        \
    void fasa__topk_hint_##isa(const float *s, size_t n, size_t k, uint32_t *out,            \
                               void *scratch, float *tau)                                    \
    {                                                                                        \
        fasa__topk_filter(s, n, k, out, scratch, tau, scan);                                 \
    }

/* Portable scan (reference for the SIMD scans and the scalar fallback). */
size_t fasa__topk_scan_scalar(const float *s, size_t n, float tau, uint32_t *cand, size_t cap);

/* The scan contract for positions j0 .. n-1, continuing a count c: the
 * scalar body of fasa__topk_scan_scalar and the tail of every SIMD scan.
 * Branch-free store: cand[c] is written before the compare decides. */
static inline size_t fasa__topk_scan_tail(const float *s, size_t j0, size_t n, float tau,
                                          uint32_t *cand, size_t c, size_t cap)
{
    for (size_t j = j0; j < n; j++) {
        cand[c] = (uint32_t)j;
        c += s[j] >= tau;
        if (c > cap)
            return cap + 1;
    }
    return c;
}

#endif
