/*
 * topk_filter.c - exact top-k by threshold filtering (docs/kernels.md).
 *
 * 1. A threshold tau: the caller's hint (the previous decode step of the
 *    same head) or the (2k*m/n)-th largest of m evenly strided samples, so
 *    about 2k scores pass.
 * 2. One scan (SIMD compare + compress, supplied by the caller) writes the
 *    indices with s >= tau; it stops as soon as more than `cap` pass.
 * 3. If k <= count <= cap: exact selection among the candidates with the
 *    rank order of fasa__topk_ref (score, then lower index; NaN never passes
 *    a compare, and -0 equals +0), emitted in index order. Otherwise tau is
 *    lowered / raised from the sample and the scan repeated; after a few
 *    tries (all-equal scores, NaN among the winners, ...) the reference
 *    decides. Nothing of size n is ever sorted.
 */
#include "internal.h"
#include "topk_filter.h"

#define MIN_N 1024     /* below this the reference heap is as fast */
#define MAX_SAMPLE 1024
#define MAX_TRIES 4

/* Order-preserving map of a float to uint32 (larger float, larger key);
 * -0 maps like +0 and NaN below everything, as in the reference order. */
static inline uint32_t ord32(float x)
{
    uint32_t u;
    if (x != x)
        return 0;
    if (x == 0.0f)
        x = 0.0f;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float unord32(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Score and index in one key: larger score first, then lower index. */
static inline uint64_t key_of(float x, uint32_t j)
{
    return ((uint64_t)ord32(x) << 32) | (uint32_t)~j;
}

/* Partially order a[0..n) so that a[r] is the (r+1)-th largest, larger ones
 * before it and smaller after it (keys distinct). Median-of-three Hoare
 * quickselect, insertion sort below 16 elements. */
static void select_desc(uint64_t *a, size_t n, size_t r)
{
    size_t lo = 0, hi = n; /* [lo, hi) holds position r */
    while (hi - lo > 16) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t x = a[lo], y = a[mid], z = a[hi - 1], p;
        p = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
        size_t i = lo, j = hi - 1;
        for (;;) {
            while (a[i] > p)
                i++;
            while (a[j] < p)
                j--;
            if (i >= j)
                break;
            uint64_t t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        /* Now [lo, j] >= p >= (j, hi): keep the side holding r. */
        if (r <= j)
            hi = j + 1;
        else
            lo = j + 1;
    }
    for (size_t i = lo + 1; i < hi; i++) {
        uint64_t t = a[i];
        size_t j = i;
        while (j > lo && a[j - 1] < t) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = t;
    }
}

size_t fasa__topk_scan_scalar(const float *s, size_t n, float tau, uint32_t *cand, size_t cap)
{
    return fasa__topk_scan_tail(s, 0, n, tau, cand, 0, cap);
}

/* tau such that about `target` scores pass: the ceil(target*m/n)-th
 * largest of the m sample keys (reordered in place). */
static float sample_tau(uint64_t *sample, size_t m, size_t n, size_t target)
{
    size_t r = (size_t)(((double)target * (double)m + (double)n - 1) / (double)n);
    if (r < 1)
        r = 1;
    if (r > m)
        return -INFINITY;
    select_desc(sample, m, r - 1);
    uint32_t key = (uint32_t)(sample[r - 1] >> 32);
    return key == 0 ? -INFINITY : unord32(key); /* key 0: a NaN sample */
}

void fasa__topk_filter(const float *s, size_t n, size_t k, uint32_t *out, void *scratch,
                       float *tau, fasa__topk_scan_fn scan)
{
    if (k > n)
        k = n;
    if (k == 0)
        return;
    if (k == n) {
        for (size_t j = 0; j < n; j++)
            out[j] = (uint32_t)j;
        return;
    }
    size_t bytes = fasa__topk_scratch_size(n, k);
    size_t m = n / 8 < MAX_SAMPLE ? n / 8 : MAX_SAMPLE;
    size_t cap = bytes > 8 * m + 64 + 12 * 16 ? (bytes - 8 * m - 64) / 12 - 16 : 0;
    if (cap > n)
        cap = n;
    /* Large k (a big fraction of n) still filters as long as the candidate
     * list can hold k plus a margin for the sampling error. */
    if (n < MIN_N || cap < k + k / 8 + 64) {
        fasa__topk_ref(s, n, k, out, scratch);
        return;
    }
    /* scratch: keys [cap] | sample [m] | cand [cap + 16]; 64-aligned base. */
    uint64_t *keys = scratch;
    uint64_t *sample = keys + cap;
    uint32_t *cand = (uint32_t *)(sample + m);

    int have_sample = 0;
    size_t target = 2 * k < (k + cap) / 2 ? 2 * k : (k + cap) / 2;
    float t = *tau;
    int from_hint = t == t; /* a NaN hint means none */
    for (int attempt = 0; attempt < MAX_TRIES; attempt++) {
        if (!from_hint) {
            if (!have_sample) {
                size_t stride = n / m;
                for (size_t i = 0; i < m; i++)
                    sample[i] = key_of(s[i * stride], (uint32_t)i);
                have_sample = 1;
            }
            t = sample_tau(sample, m, n, target);
        }
        size_t c = scan(s, n, t, cand, cap);
        if (c >= k && c <= cap) {
            for (size_t i = 0; i < c; i++)
                keys[i] = key_of(s[cand[i]], cand[i]);
            select_desc(keys, c, k - 1);
            uint64_t kth = keys[k - 1];
            /* Next call's hint: about 2k should pass again. */
            if (c > 2 * k) {
                select_desc(keys + k, c - k, k - 1);
                *tau = unord32((uint32_t)(keys[2 * k - 1] >> 32));
            } else {
                *tau = t;
            }
            size_t o = 0;
            for (size_t i = 0; i < c; i++)
                if (key_of(s[cand[i]], cand[i]) >= kth)
                    out[o++] = cand[i];
            return;
        }
        if (from_hint) {
            from_hint = 0; /* the hint missed: start from the sample */
            continue;
        }
        if (c < k) {
            if (t == -INFINITY)
                break; /* NaN must fill the set: the reference orders them */
            target = 4 * target < (target + cap) / 2 ? 4 * target : (target + cap) / 2;
        } else {
            if (target == k)
                break; /* too many equal scores at tau */
            target = target / 4 < k ? k : target / 4;
        }
    }
    *tau = NAN;
    fasa__topk_ref(s, n, k, out, scratch);
}
