/*
 * topk.c - scalar reference of exact top-k selection.
 *
 * Rank order (a total order, so the result is deterministic): a larger score
 * first; equal scores: the lower index first; NaN after every number,
 * -INFINITY included, NaNs among themselves by index. A bounded binary
 * min-heap holds the k best seen so far with the worst at the root, so the
 * cost is O(n log k) and nothing of size n is sorted; the k winners are then
 * sorted by index.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct topk_item {
    float s;
    uint32_t i;
} topk_item;

/* 1 when a ranks before b. */
static int ranks_before(topk_item a, topk_item b)
{
    int an = isnan(a.s), bn = isnan(b.s);
    if (an != bn)
        return bn;
    if (!an && a.s != b.s)
        return a.s > b.s;
    return a.i < b.i;
}

/* Restore the heap below position p (root = the item ranked last). */
static void sift_down(topk_item *h, size_t k, size_t p)
{
    for (;;) {
        size_t c = 2 * p + 1;
        if (c >= k)
            return;
        if (c + 1 < k && ranks_before(h[c], h[c + 1]))
            c++;
        if (!ranks_before(h[p], h[c]))
            return;
        topk_item tmp = h[p];
        h[p] = h[c];
        h[c] = tmp;
        p = c;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

size_t fasa__topk_scratch_size(size_t n, size_t k)
{
    (void)k;
    /* Room for n (score, index) pairs, not only k: faster top-k kernels
     * share this size and may keep every candidate. */
    if (n > (SIZE_MAX - 128) / sizeof(topk_item))
        return SIZE_MAX;
    return fasa__align_up(n * sizeof(topk_item), 64) + 64;
}

void fasa__topk_ref(const float *s, size_t n, size_t k, uint32_t *out, void *scratch)
{
    if (k > n)
        k = n;
    if (k == n) {
        for (size_t j = 0; j < n; j++)
            out[j] = (uint32_t)j;
        return;
    }
    if (k == 0)
        return;
    topk_item *h = scratch;
    for (size_t j = 0; j < k; j++) {
        h[j].s = s[j];
        h[j].i = (uint32_t)j;
    }
    for (size_t p = k / 2; p-- > 0;)
        sift_down(h, k, p);
    for (size_t j = k; j < n; j++) {
        topk_item x = {s[j], (uint32_t)j};
        if (ranks_before(x, h[0])) {
            h[0] = x;
            sift_down(h, k, 0);
        }
    }
    for (size_t j = 0; j < k; j++)
        out[j] = h[j].i;
    qsort(out, k, sizeof *out, cmp_u32);
}
