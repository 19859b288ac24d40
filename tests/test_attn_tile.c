/*
 * test_attn_tile.c - every registered `attn_tile` kernel this CPU can run
 * (the scalar reference included) against a double-precision reference of
 * fasa__attn_tile_job, on random data.
 *
 * Cases: all nine (K dtype, V dtype) pairs; head dims 64, 128, 256 and odd
 * ones (20, 36, 80, 3); head_dim_v != head_dim; 1..33 queries x GQA groups
 * 1, 2, 3, 4, 8 (rows not a multiple of the vector width); 0..1000 cells
 * from an unaligned first cell (partial first and last tiles); per-query
 * bounds (none, causal ends, windows, random and empty); f32 and f16 masks
 * with hidden runs, biases and fully hidden rows; softcap; ALiBi slopes
 * with and without a mask; pointers one element off alignment and padded
 * strides; fresh state and a state carried from a first call (split at a
 * tile boundary and elsewhere); spread logits (exp underflow).
 * Tolerance on out = acc / l: 1e-5 * max|v| * (1 + log2 n), on lse 1e-5 *
 * (1 + |lse|) * (1 + log2 n); rows that see nothing must stay exactly
 * (m = -inf, l = 0, acc = 0).
 * Then, for each kernel: a row computed in a block equals, bit for bit, the
 * same row computed alone (the execute layer relies on it).
 */
#include "internal.h"
#include "dispatch.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kern {
    const char *name;
    fasa__attn_tile_fn run;
} kern;

static kern g_k[8];
static size_t g_nk;

static void collect(void)
{
#define FASA_KERNEL(op, level, fn, slot, type)                                               \
    if (strcmp(#op, "attn_tile") == 0 && g_nk < 8) {                                         \
        if (fasa__level_usable(level)) {                                                     \
            g_k[g_nk].name = #fn;                                                            \
            g_k[g_nk].run = (fasa__attn_tile_fn)(void (*)(void))fn;                          \
            g_nk++;                                                                          \
        } else {                                                                             \
            test_note("skip %s: CPU lacks level %d", #fn, (int)(level));                     \
        }                                                                                    \
    }
#include "kernels.def"
#undef FASA_KERNEL
}

typedef struct tcase {
    int kdt, vdt, mask_dt;
    size_t d, dv, nq, G, n, first;
    int bounds;   /* 0 none, 1 causal ends, 2 causal + window, 3 random (some empty) */
    int mask;     /* 0 none, 1 hidden runs + zeros, 2 biases too, 3 ALiBi-like */
    int hide_row; /* one query's mask row all hidden */
    float softcap;
    int slopes, misalign, carry;
    double qscale;
} tcase;

typedef struct tdata {
    size_t t_all, kst, vst, qs, accs, ms, rows;
    void *kmem, *vmem, *qmem, *mmem;
    void *k, *v, *mask;
    float *q;
    uint32_t *begin, *end;
    float *slope;
    int64_t qpos;
    double vmax;
} tdata;

static void *padded(size_t bytes, size_t off, void **mem)
{
    *mem = test_xmalloc(bytes + off + 64);
    memset(*mem, 0xff, bytes + off + 64); /* NaN padding: reading it shows */
    return (char *)*mem + off;
}

static void data_make(tdata *a, const tcase *c)
{
    memset(a, 0, sizeof *a);
    const size_t off = c->misalign ? 1 : 0;
    a->rows = c->nq * c->G;
    a->t_all = c->first + c->n + 3;
    a->kst = c->d + 3;
    a->vst = c->dv + 5;
    a->qs = c->d + 1;
    a->accs = c->dv + 2;
    const size_t ke = test_dtype_size(c->kdt), ve = test_dtype_size(c->vdt);
    a->k = padded(a->t_all * a->kst * ke, off * ke, &a->kmem);
    a->v = padded(a->t_all * a->vst * ve, off * ve, &a->vmem);
    a->q = padded(a->rows * a->qs * sizeof(float), off * 4, &a->qmem);
    for (size_t j = 0; j < a->t_all; j++) {
        for (size_t i = 0; i < c->d; i++)
            test_store(a->k, c->kdt, j * a->kst + i, test_rand_normal());
        for (size_t i = 0; i < c->dv; i++) {
            test_store(a->v, c->vdt, j * a->vst + i, test_rand_normal());
            double x = fabs(test_load(a->v, c->vdt, j * a->vst + i));
            a->vmax = x > a->vmax ? x : a->vmax;
        }
    }
    for (size_t r = 0; r < a->rows; r++)
        for (size_t i = 0; i < c->d; i++)
            a->q[r * a->qs + i] = (float)(test_rand_normal() * c->qscale / sqrt((double)c->d));

    /* query b at position qpos + b; causal ends put the last query on the
     * last cell */
    const size_t last = c->first + c->n;
    a->qpos = (int64_t)last - (int64_t)c->nq;
    if (c->bounds != 0) {
        a->begin = test_xmalloc(c->nq * sizeof(uint32_t));
        a->end = test_xmalloc(c->nq * sizeof(uint32_t));
        size_t win = test_rand_range(1, c->n + 70);
        for (size_t b = 0; b < c->nq; b++) {
            int64_t e = a->qpos + (int64_t)b + 1;
            size_t eb = e < 0 ? 0 : (size_t)e;
            a->begin[b] = 0;
            a->end[b] = (uint32_t)eb;
            if (c->bounds == 2)
                a->begin[b] = (uint32_t)(eb > win ? eb - win : 0);
            if (c->bounds == 3) {
                size_t x = test_rand_range(0, a->t_all), y = test_rand_range(0, a->t_all);
                a->begin[b] = (uint32_t)(x < y ? x : y);
                a->end[b] = (uint32_t)(x < y ? y : x); /* equal: empty */
            }
        }
    }
    if (c->mask != 0) {
        const size_t me = test_dtype_size(c->mask_dt);
        a->ms = c->n + 2;
        a->mask = padded(c->nq * a->ms * me, 0, &a->mmem);
        for (size_t b = 0; b < c->nq; b++) {
            int vis = (int)test_rand_range(0, 1);
            size_t left = 0;
            for (size_t j = 0; j < c->n; j++) {
                if (left == 0) {
                    vis = !vis;
                    left = test_rand_range(1, test_rand_range(0, 1) ? 8 : 150);
                }
                left--;
                double x = -INFINITY;
                if (vis && !(c->hide_row && b == c->nq / 2))
                    x = c->mask == 3   ? -(double)test_rand_range(0, 40)
                        : c->mask == 2 ? -2.0 + 3.0 * test_rand_uniform()
                                       : 0.0;
                test_store(a->mask, c->mask_dt, b * a->ms + j, x);
            }
        }
    }
    if (c->slopes) {
        a->slope = test_xmalloc(c->G * sizeof(float));
        for (size_t g = 0; g < c->G; g++)
            a->slope[g] = (float)(g % 3 == 2 ? -0.25 : 1.0 / (double)(1u << (g + 1)));
    }
}

static void data_free(tdata *a)
{
    free(a->kmem);
    free(a->vmem);
    free(a->qmem);
    free(a->mmem);
    free(a->begin);
    free(a->end);
    free(a->slope);
}

static fasa__attn_tile_job job_of(const tcase *c, const tdata *a, float *m, float *l, float *acc,
                                  void *scratch)
{
    fasa__attn_tile_job j;
    memset(&j, 0, sizeof j);
    j.q = a->q;
    j.n_q = c->nq;
    j.group = c->G;
    j.q_stride = a->qs;
    j.k = a->k;
    j.k_stride = a->kst;
    j.k_dtype = c->kdt;
    j.v = a->v;
    j.v_stride = a->vst;
    j.v_dtype = c->vdt;
    j.head_dim = c->d;
    j.head_dim_v = c->dv;
    j.first = c->first;
    j.n = c->n;
    j.begin = a->begin;
    j.end = a->end;
    j.m = m;
    j.l = l;
    j.acc = acc;
    j.acc_stride = a->accs;
    j.mask = a->mask;
    j.mask_stride = a->ms;
    j.mask_dtype = c->mask_dt;
    j.softcap = c->softcap;
    j.slope = a->slope;
    j.qpos = a->qpos;
    j.scratch = scratch;
    return j;
}

/* Double reference of row r over the cells [first, first + n) of job j,
 * starting from the state (m0, l0, acc0): out[dv], *lse; returns the count
 * of weighed cells. */
static size_t ref_row(const tcase *c, const tdata *a, const fasa__attn_tile_job *j, size_t r,
                      double m0, double l0, const float *acc0, double *out, double *lse)
{
    const size_t b = r / c->G, g = r % c->G;
    size_t lo = j->first, hi = j->first + j->n;
    if (a->begin && a->begin[b] > lo)
        lo = a->begin[b];
    if (a->end && a->end[b] < hi)
        hi = a->end[b];
    double *s = test_xmalloc((hi > lo ? hi - lo : 1) * sizeof(double));
    double mx = l0 > 0.0 ? m0 : -INFINITY;
    size_t cnt = 0;
    for (size_t x = lo; x < hi; x++) {
        double t = 0.0;
        for (size_t i = 0; i < c->d; i++)
            t += (double)a->q[r * a->qs + i] * test_load(a->k, c->kdt, x * a->kst + i);
        if (c->softcap > 0.0f)
            t = c->softcap * tanh(t / c->softcap);
        double bias = 0.0;
        if (a->mask)
            bias = test_load(a->mask, c->mask_dt, b * a->ms + (x - c->first));
        else if (a->slope)
            bias = (double)((int64_t)x - (a->qpos + (int64_t)b));
        if (bias == -INFINITY) {
            s[x - lo] = -INFINITY;
            continue;
        }
        t += (a->slope ? a->slope[g] : 1.0) * bias;
        s[x - lo] = t;
        mx = t > mx ? t : mx;
        cnt++;
    }
    double z = l0 > 0.0 ? l0 * exp(m0 - mx) : 0.0;
    for (size_t i = 0; i < c->dv; i++)
        out[i] = l0 > 0.0 ? acc0[i] * exp(m0 - mx) : 0.0;
    for (size_t x = lo; x < hi; x++) {
        if (s[x - lo] == -INFINITY)
            continue;
        double e = exp(s[x - lo] - mx);
        z += e;
        for (size_t i = 0; i < c->dv; i++)
            out[i] += e * test_load(a->v, c->vdt, x * a->vst + i);
    }
    for (size_t i = 0; i < c->dv; i++)
        out[i] = z > 0.0 ? out[i] / z : 0.0;
    *lse = z > 0.0 ? mx + log(z) : -INFINITY;
    free(s);
    return cnt;
}

static void describe(const kern *k, const tcase *c, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "%s k=%s v=%s d=%zu dv=%zu nq=%zu G=%zu n=%zu first=%zu bounds=%d mask=%d(%s) "
             "hide_row=%d softcap=%g slopes=%d misalign=%d carry=%d qscale=%g",
             k->name, test_dtype_name(c->kdt), test_dtype_name(c->vdt), c->d, c->dv, c->nq, c->G,
             c->n, c->first, c->bounds, c->mask, test_dtype_name(c->mask_dt), c->hide_row,
             (double)c->softcap, c->slopes, c->misalign, c->carry, c->qscale);
}

static size_t g_cases;

static void run_case(const kern *k, const tcase *c)
{
    tdata a;
    data_make(&a, c);
    const size_t rows = a.rows, off = c->misalign ? 1 : 0;
    float *m = test_xmalloc(rows * sizeof(float)), *l = test_xmalloc(rows * sizeof(float));
    void *accmem;
    float *acc = padded(rows * a.accs * sizeof(float), off * 4, &accmem);
    for (size_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (size_t i = 0; i < a.accs; i++)
            acc[r * a.accs + i] = 0.0f;
    }
    size_t sb = fasa__attn_tile_scratch_size(rows, c->d, c->dv);
    void *scratch = aligned_alloc(64, fasa__align_up(sb, 64));
    memset(scratch, 0xff, fasa__align_up(sb, 64)); /* stale scratch must not matter */
    fasa__attn_tile_job j = job_of(c, &a, m, l, acc, scratch);

    /* carry: a first call over [first, mid) by the kernel, then the rest */
    float *m0 = test_xmalloc(rows * sizeof(float)), *l0 = test_xmalloc(rows * sizeof(float));
    float *acc0 = test_xmalloc(rows * a.accs * sizeof(float));
    size_t mid = c->first;
    if (c->carry && c->n > 1) {
        mid = c->carry == 1 ? fasa__align_up(c->first + 1, FASA_TILE)
                            : c->first + test_rand_range(1, c->n - 1);
        if (mid > c->first + c->n)
            mid = c->first + c->n;
        fasa__attn_tile_job j1 = j;
        j1.n = mid - c->first;
        k->run(&j1);
    }
    memcpy(m0, m, rows * sizeof(float));
    memcpy(l0, l, rows * sizeof(float));
    memcpy(acc0, acc, rows * a.accs * sizeof(float));
    fasa__attn_tile_job j2 = j;
    j2.first = mid;
    j2.n = c->first + c->n - mid;
    /* the mask stays indexed from the job's first cell */
    if (a.mask != NULL)
        j2.mask = (const char *)a.mask + (mid - c->first) * test_dtype_size(c->mask_dt);
    k->run(&j2);

    /* reference: the whole range from the empty state (carry: from the
     * kernel's state after the first call, over the second call's cells) */
    double *want = test_xmalloc(c->dv * sizeof(double));
    double worst_o = 0.0, worst_l = 0.0;
    int bad = 0;
    for (size_t r = 0; r < rows; r++) {
        double lse;
        fasa__attn_tile_job jr = j2;
        jr.mask = a.mask;
        /* ref_row indexes the mask from c->first */
        size_t cnt = ref_row(c, &a, &jr, r, m0[r], l0[r], acc0 + r * a.accs, want, &lse);
        if (cnt == 0 && l0[r] == 0.0f) {
            bad |= !(m[r] == -INFINITY && l[r] == 0.0f);
            for (size_t i = 0; i < c->dv; i++)
                bad |= acc[r * a.accs + i] != 0.0f;
            continue;
        }
        double lg = 1.0 + log2((double)(cnt + 1));
        double lk = (double)m[r] + log((double)l[r]);
        double el = fabs(lk - lse);
        if (!(el <= 1e-5 * (1.0 + fabs(lse)) * lg))
            bad = 1;
        worst_l = el > worst_l ? el : worst_l;
        for (size_t i = 0; i < c->dv; i++) {
            double e = fabs(acc[r * a.accs + i] / l[r] - want[i]);
            if (!(e <= 1e-5 * (a.vmax > 0 ? a.vmax : 1.0) * lg))
                bad = 1;
            worst_o = e > worst_o ? e : worst_o;
        }
        for (size_t i = c->dv; i < a.accs; i++) /* padding untouched */
            bad |= acc[r * a.accs + i] != 0.0f;
    }
    char desc[512];
    describe(k, c, desc, sizeof desc);
    CHECKF(!bad, "%s: max|dout| %.3g (vmax %.3g), max|dlse| %.3g", desc, worst_o, a.vmax, worst_l);
    g_cases++;
    free(want);
    free(m0);
    free(l0);
    free(acc0);
    free(m);
    free(l);
    free(accmem);
    free(scratch);
    data_free(&a);
}

static void random_case(tcase *c, size_t i)
{
    static const size_t dims[] = {64, 128, 256, 20, 36, 80, 3, 128};
    static const size_t nqs[] = {1, 2, 3, 5, 16, 17, 33};
    static const size_t gs[] = {1, 2, 3, 4, 8};
    static const size_t ns[] = {0, 1, 63, 64, 65, 130, 300, 1000};
    memset(c, 0, sizeof *c);
    c->kdt = (int)(i % 3);
    c->vdt = (int)(i / 3 % 3);
    c->d = dims[test_rand_range(0, 7)];
    c->dv = test_rand_range(0, 3) ? c->d : dims[test_rand_range(0, 7)];
    c->nq = nqs[test_rand_range(0, 6)];
    c->G = gs[test_rand_range(0, 4)];
    c->n = ns[test_rand_range(0, 7)];
    if (c->n == 1000 && c->nq * c->G > 40)
        c->n = 300;
    c->first = test_rand_range(0, 2) ? test_rand_range(0, 130) : 64 * test_rand_range(0, 2);
    c->bounds = (int)test_rand_range(0, 3);
    c->mask = test_rand_range(0, 2) ? 0 : (int)test_rand_range(1, 3);
    c->mask_dt = test_rand_range(0, 1) ? FASA_DTYPE_F32 : FASA_DTYPE_F16;
    c->hide_row = c->mask != 0 && test_rand_range(0, 2) == 0;
    c->softcap = test_rand_range(0, 3) == 0 ? (float)(1.0 + 30.0 * test_rand_uniform()) : 0.0f;
    c->slopes = test_rand_range(0, 3) == 0;
    c->misalign = (int)test_rand_range(0, 1);
    c->carry = (int)test_rand_range(0, 2);
    c->qscale = test_rand_range(0, 7) == 0 ? 60.0 : 3.0;
}

/* Row independence: each query of a block, run alone (its rows, bounds,
 * mask row and position), gives the block's bits. */
static void check_alone(const kern *k, const tcase *c)
{
    tdata a;
    data_make(&a, c);
    const size_t rows = a.rows, G = c->G;
    float *m = test_xmalloc(rows * 4), *l = test_xmalloc(rows * 4);
    float *acc = test_xmalloc(rows * a.accs * 4);
    float m1[8], l1[8];
    float *acc1 = test_xmalloc(G * a.accs * 4);
    for (size_t r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    memset(acc, 0, rows * a.accs * 4);
    void *scratch = aligned_alloc(64, fasa__align_up(fasa__attn_tile_scratch_size(rows, c->d, c->dv), 64));
    fasa__attn_tile_job j = job_of(c, &a, m, l, acc, scratch);
    k->run(&j);
    int same = 1;
    for (size_t b = 0; b < c->nq && same; b++) {
        for (size_t g = 0; g < G; g++) {
            m1[g] = -INFINITY;
            l1[g] = 0.0f;
        }
        memset(acc1, 0, G * a.accs * 4);
        fasa__attn_tile_job j1 = job_of(c, &a, m1, l1, acc1, scratch);
        j1.q = a.q + b * G * a.qs;
        j1.n_q = 1;
        j1.begin = a.begin ? a.begin + b : NULL;
        j1.end = a.end ? a.end + b : NULL;
        if (a.mask)
            j1.mask = (const char *)a.mask + b * a.ms * test_dtype_size(c->mask_dt);
        j1.qpos = a.qpos + (int64_t)b;
        k->run(&j1);
        same = memcmp(m1, m + b * G, G * 4) == 0 && memcmp(l1, l + b * G, G * 4) == 0 &&
               memcmp(acc1, acc + b * G * a.accs, G * a.accs * 4) == 0;
        if (!same) {
            char desc[512];
            describe(k, c, desc, sizeof desc);
            CHECKF(0, "%s: query %zu alone differs from the block", desc, b);
        }
    }
    free(m);
    free(l);
    free(acc);
    free(acc1);
    free(scratch);
    data_free(&a);
}

int main(void)
{
    test_init("test_attn_tile");
    collect();
    for (size_t i = 0; i < g_nk; i++) {
        size_t before = g_cases, fails = test_failures();
        for (size_t ci = 0; ci < 360 && test_failures() - fails < 10; ci++) {
            tcase c;
            random_case(&c, ci);
            run_case(&g_k[i], &c);
        }
        /* the prefill shape: causal block of 16 queries x G 4, d 128 */
        for (int dt = 0; dt < 3; dt++) {
            tcase c = {dt, dt, FASA_DTYPE_F32, 128, 128, 16, 4, 1000, 5, 1, 0, 0, 0.0f,
                       0, 0, 1, 3.0};
            run_case(&g_k[i], &c);
        }
        for (size_t ci = 0; ci < 40; ci++) {
            tcase c;
            random_case(&c, ci);
            if (c.nq * c.G > 8 * 8)
                c.nq = 2;
            check_alone(&g_k[i], &c);
        }
        test_note("%s: %zu cases against the double reference, row independence %s", g_k[i].name,
                  g_cases - before, test_failures() == fails ? "ok" : "FAILED");
    }
    return test_summary();
}
