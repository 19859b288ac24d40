/*
 * test_kernels.c - every kernel of the registry (src/kernels.def) that this
 * CPU supports against the scalar reference of its op. Ops, their test
 * family, element type and tolerance come from the FASA_OP / FASA_TOL lines
 * of kernels.def, the levels from src/levels.def. Error scales per family
 * (tol from the registry):
 *   score_labels, score_dims  |simd - ref| <= tol * sum|w*x|
 *   attn, attn_tile lse within tol * (1 + |lse|), out = acc/l within
 *                   tol * 4 (4 bounds |v| of the N(0,1) data)
 *   convert, topk, topk_hint, lc_gather, lc_transpose  bit-identical (tol 0);
 *                   topk_hint and the lc ops have their own oracle (topk_ref,
 *                   the definition in kernels.h), so their references are
 *                   tested too
 * Sizes 0, 1, tile-1, tile, tile+1, 2*tile+3 and large random ones; inputs
 * offset by one element (4 bytes) from 64-byte alignment; every dtype.
 * Outputs beyond the written extent must keep their sentinel.
 * FASA_TEST_LEVEL=<level> tests only that level's kernels (make check runs
 * one process per level); without it, every level this CPU runs.
 * Also: FASA_CPU=<level> caps every op to that level's chain (checked in a
 * child process per level: the cap is read once per process). Options:
 * --cap-check NAME (child mode: every op must resolve within NAME's chain),
 * --no-spawn.
 */
#include "internal.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*any_fn)(void);

/* The test registry: one line per op (FASA_OP), level overrides (FASA_TOL). */
typedef struct op_info {
    const char *op;
    const char *family;
    int dtype;
    double tol;
} op_info;
static const op_info ops[] = {
#define FASA_KERNEL(op, level, fn, slot, type)
#define FASA_OP(op, test, dtype, tol) {#op, #test, dtype, tol},
#include "kernels.def"
#undef FASA_OP
#undef FASA_KERNEL
};
#define N_OPS (sizeof ops / sizeof ops[0])

typedef struct tol_override {
    const char *op;
    int level;
    double tol;
} tol_override;
static const tol_override tol_overrides[] = {
#define FASA_KERNEL(op, level, fn, slot, type)
#define FASA_TOL(op, level, tol) {#op, level, tol},
#include "kernels.def"
#undef FASA_TOL
#undef FASA_KERNEL
    {NULL, -1, 0.0} /* keeps the array non-empty */
};

typedef struct entry {
    const char *op;
    int level;
    const char *name;
    any_fn fn;
    const op_info *info; /* NULL: the op has no FASA_OP line */
    double tol;          /* the op's, or its FASA_TOL for this level */
} entry;

static entry registry[] = {
#define FASA_KERNEL(op, level, fn, slot, type) {#op, level, #fn, (any_fn)fn, NULL, 0.0},
#include "kernels.def"
#undef FASA_KERNEL
};
#define N_ENTRIES (sizeof registry / sizeof registry[0])

static const op_info *op_find(const char *op)
{
    for (size_t i = 0; i < N_OPS; i++)
        if (strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}

static const entry *ref_of(const char *op)
{
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (registry[i].level == FASA_CPU_SCALAR && strcmp(registry[i].op, op) == 0)
            return &registry[i];
    return NULL;
}

/* Attach each kernel line's op entry and tolerance; check the registry is
 * consistent: every op one FASA_OP line and a reference, every level real,
 * every override naming an op and a level. */
static void resolve_registry(void)
{
    for (size_t i = 0; i < N_OPS; i++) {
        CHECKF(ref_of(ops[i].op) != NULL, "op %s has no scalar reference", ops[i].op);
        for (size_t j = i + 1; j < N_OPS; j++)
            CHECKF(strcmp(ops[i].op, ops[j].op) != 0, "op %s has two FASA_OP lines", ops[i].op);
    }
    for (size_t i = 0; i < N_ENTRIES; i++) {
        entry *e = &registry[i];
        e->info = op_find(e->op);
        CHECKF(e->info != NULL, "%s: op %s has no FASA_OP line in kernels.def", e->name, e->op);
        CHECKF(test_level_get(e->level) != NULL, "%s: level %d is not in levels.def", e->name,
               e->level);
        e->tol = e->info ? e->info->tol : 0.0;
        for (const tol_override *t = tol_overrides; t->op != NULL; t++)
            if (t->level == e->level && strcmp(t->op, e->op) == 0)
                e->tol = t->tol;
    }
    for (const tol_override *t = tol_overrides; t->op != NULL; t++)
        CHECKF(op_find(t->op) != NULL && test_level_get(t->level) != NULL,
               "FASA_TOL(%s, %d): no such op or level", t->op, t->level);
}

static int dtype_of(const entry *e) { return e->info->dtype; }

/* 64-byte aligned block + `off` bytes; freed with free(base). */
static void *buf(size_t bytes, size_t off, void **base)
{
    *base = aligned_alloc(64, (bytes + off + 64 + 63) / 64 * 64);
    if (!*base)
        abort();
    memset(*base, 0, (bytes + off + 64 + 63) / 64 * 64);
    return (char *)*base + off;
}

static void put(void *p, int dtype, size_t i, float x)
{
    if (dtype == FASA_DTYPE_F32)
        ((float *)p)[i] = x;
    else if (dtype == FASA_DTYPE_F16)
        ((uint16_t *)p)[i] = test_f32_to_f16(x);
    else
        ((uint16_t *)p)[i] = test_f32_to_bf16(x);
}
static float get(const void *p, int dtype, size_t i)
{
    if (dtype == FASA_DTYPE_F32)
        return ((const float *)p)[i];
    return (float)test_load(p, dtype, i);
}

static const size_t SIZES[] = {0, 1, 63, 64, 65, 131};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])
static size_t pick_size(size_t i) { return i < N_SIZES ? SIZES[i] : test_rand_range(200, 3000); }

/* ------------------------------------------------------- score_labels */

static void test_score_labels(const entry *e, const entry *ref)
{
    int dt = dtype_of(e), pairs = dt == FASA_DTYPE_BF16;
    size_t es = test_dtype_size(dt);
    double tol = e->tol;
    fasa__score_labels_fn f = (fasa__score_labels_fn)e->fn, fr = (fasa__score_labels_fn)ref->fn;
    /* Wide unions (130 FCs) and more than 16 rows; zw = 1 zeroes whole FCs
     * of a row, as PER_HEAD unions do (a head's weight is zero on the FCs of
     * the union it does not use), and some FCs of every row. */
    static const size_t FCS[] = {1, 3, 16, 130};
    static const size_t ROWS[] = {1, 2, 3, 4, 5, 8, 17};
    for (size_t si = 0; si < N_SIZES + 2; si++)
        for (size_t fi = 0; fi < 4; fi++)
            for (size_t ri = 0; ri < 7; ri++)
            for (int zw = 0; zw < 2; zw++) {
                size_t n = pick_size(si), n_fc = FCS[fi], rows = ROWS[ri], n_ch = 2 * n_fc;
                if (fi == 3 && (n > 130 || (rows != 4 && rows != 5)))
                    continue; /* the wide case once per shape class: keeps valgrind short */
                size_t tiles = (n + FASA_TILE - 1) / FASA_TILE, elems = tiles * n_ch * FASA_TILE;
                size_t stride = n + 3;
                void *b1, *b2, *b3, *b4;
                char *lab = buf(elems * es, 4, &b1);
                float *w = buf(rows * n_ch * 4, 4, &b2);
                float *o1 = buf((rows * stride + 1) * 4, 4, &b3);
                float *o2 = buf((rows * stride + 1) * 4, 4, &b4);
                for (size_t i = 0; i < elems; i++)
                    put(lab, dt, i, (float)test_rand_normal());
                for (size_t i = 0; i < rows * n_ch; i++)
                    w[i] = (float)test_rand_normal();
                if (zw)
                    for (size_t u = 0; u < n_fc; u++) {
                        int all = test_rand_u64() % 5 == 0;
                        for (size_t r = 0; r < rows; r++)
                            if (all || test_rand_u64() % 3 == 0)
                                w[r * n_ch + 2 * u] = w[r * n_ch + 2 * u + 1] = 0.0f;
                    }
                for (size_t i = 0; i < rows * stride + 1; i++)
                    o1[i] = o2[i] = -7.0f;
                fr(lab, n_fc, n, w, rows, o1, stride);
                f(lab, n_fc, n, w, rows, o2, stride);
                size_t bad = 0;
                for (size_t r = 0; r < rows; r++)
                    for (size_t j = 0; j < stride; j++) {
                        float a = o1[r * stride + j], b = o2[r * stride + j];
                        if (j >= n) {
                            bad += b != -7.0f;
                            continue;
                        }
                        double mag = 0;
                        size_t base = (j / FASA_TILE) * n_ch * FASA_TILE, jj = j % FASA_TILE;
                        for (size_t c = 0; c < n_ch; c++) {
                            size_t off = pairs ? (c / 2) * 2 * FASA_TILE + 2 * jj + c % 2
                                               : c * FASA_TILE + jj;
                            mag += fabs((double)w[r * n_ch + c] * get(lab, dt, base + off));
                        }
                        bad += !(fabs((double)a - b) <= tol * mag + 1e-30);
                    }
                bad += o2[rows * stride] != -7.0f;
                CHECKF(bad == 0, "%s: n %zu n_fc %zu rows %zu zero-w %d: %zu mismatches", e->name,
                       n, n_fc, rows, zw, bad);
                free(b1), free(b2), free(b3), free(b4);
            }
}

/* n*d elements of dtype dt at p, N(0,1) (block formats: quantized rows). */
static void fill_kv(void *p, int dt, size_t n, size_t d)
{
    if (!test_dtype_quant(dt)) {
        for (size_t i = 0; i < n * d; i++)
            put(p, dt, i, (float)test_rand_normal());
        return;
    }
    float *row = test_xmalloc(d * sizeof(float));
    for (size_t t = 0; t < n; t++) {
        for (size_t i = 0; i < d; i++)
            row[i] = (float)test_rand_normal();
        test_quantize_row(dt, row, d, (char *)p + test_dtype_bytes(dt, t * d));
    }
    free(row);
}

/* --------------------------------------------------------- score_dims */

static void test_score_dims(const entry *e, const entry *ref)
{
    int dt = dtype_of(e);
    size_t es = test_dtype_size(dt);
    fasa__score_dims_fn f = (fasa__score_dims_fn)e->fn, fr = (fasa__score_dims_fn)ref->fn;
    for (size_t si = 0; si < N_SIZES + 2; si++) {
        size_t n = pick_size(si), d = 128, ts = 8 * 128 + 3, nd = 32;
        uint32_t dims[32];
        for (size_t c = 0; c < nd; c++)
            dims[c] = (uint32_t)((c * 37 + 5) % d);
        void *b1, *b2, *b3, *b4;
        char *k = buf((n * ts + d) * es, 4, &b1);
        float *w = buf(nd * 4, 4, &b2);
        float *o1 = buf((n + 1) * 4, 4, &b3), *o2 = buf((n + 1) * 4, 4, &b4);
        for (size_t i = 0; i < n * ts + d; i++)
            put(k, dt, i, (float)test_rand_normal());
        for (size_t c = 0; c < nd; c++)
            w[c] = (float)test_rand_normal();
        o1[n] = o2[n] = -7.0f;
        fr(k, ts, n, dims, nd, w, o1);
        f(k, ts, n, dims, nd, w, o2);
        size_t bad = o2[n] != -7.0f;
        for (size_t j = 0; j < n; j++) {
            double mag = 0;
            for (size_t c = 0; c < nd; c++)
                mag += fabs((double)w[c] * get(k, dt, j * ts + dims[c]));
            bad += !(fabs((double)o1[j] - o2[j]) <= e->tol * mag + 1e-30);
        }
        CHECKF(bad == 0, "%s: n %zu: %zu mismatches", e->name, n, bad);
        free(b1), free(b2), free(b3), free(b4);
    }
}

/* The score_dims references of the block formats (the only score_dims
 * kernels of those dtypes) against double sums over the decoded values,
 * strided rows of whole blocks, any dims. */
static void test_score_dims_quant(const entry *e, const entry *ref)
{
    (void)ref;
    {
        const int dt = dtype_of(e);
        fasa__score_dims_fn f = (fasa__score_dims_fn)e->fn;
        for (size_t si = 0; si < N_SIZES + 2; si++) {
            size_t n = pick_size(si), d = 128, ts = 4 * 128 + 32, nd = 32;
            uint32_t dims[32];
            for (size_t c = 0; c < nd; c++)
                dims[c] = (uint32_t)((c * 37 + 5) % d);
            void *b1, *b2, *b3;
            char *k = buf(test_dtype_bytes(dt, n * ts + d), 1, &b1); /* odd address */
            float *w = buf(nd * 4, 4, &b2), *o = buf((n + 1) * 4, 4, &b3);
            fill_kv(k, dt, n, ts);
            for (size_t c = 0; c < nd; c++)
                w[c] = (float)test_rand_normal();
            o[n] = -7.0f;
            f(k, ts, n, dims, nd, w, o);
            size_t bad = o[n] != -7.0f;
            for (size_t j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (size_t c = 0; c < nd; c++) {
                    double x = test_load(k, dt, j * ts + dims[c]);
                    want += (double)w[c] * x;
                    mag += fabs((double)w[c] * x);
                }
                bad += !(fabs(want - o[j]) <= 2e-6 * mag + 1e-30);
            }
            CHECKF(bad == 0, "score_dims %s: n %zu: %zu mismatches", test_dtype_name(dt), n, bad);
            free(b1), free(b2), free(b3);
        }
    }
}

/* ------------------------------------------------------------ convert */

static void test_convert(const entry *e, const entry *ref)
{
    fasa__convert_fn f = (fasa__convert_fn)e->fn, fr = (fasa__convert_fn)ref->fn;
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 65504.0f,
                                    65519.0f, 65520.0f, 1e-8f, 5.96e-8f, 3e-8f, 6.1e-5f,
                                    1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1e-40f, -1e-45f,
                                    3.4e38f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
    size_t ns = sizeof special / sizeof special[0];
    for (size_t si = 0; si < N_SIZES + 2; si++) {
        size_t n = pick_size(si);
        void *b1, *b2, *b3;
        float *src = buf(n * 4, 4, &b1);
        uint16_t *d1 = buf((n + 1) * 2, 2, &b2), *d2 = buf((n + 1) * 2, 2, &b3);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = test_rand_u64();
            src[i] = r % 4 == 0 ? special[(r >> 8) % ns] : (float)(test_rand_normal() * 100.0);
            if (r % 7 == 0)
                src[i] *= 1e-6f;
        }
        d1[n] = d2[n] = 0xBEEF;
        fr(src, n, d1);
        f(src, n, d2);
        CHECKF(memcmp(d1, d2, (n + 1) * 2) == 0, "%s: n %zu differs from %s", e->name, n,
               ref->name);
        free(b1), free(b2), free(b3);
    }
}

/* ------------------------------------------- label-cache staging ops */

/* Kernel and reference against the definition in kernels.h (elements of
 * es bytes; sentinels after every output). */
static void test_lc_gather(const entry *e, const entry *ref)
{
    static const size_t DS[] = {1, 2, 3, 5, 64, 100, 127, 128, 200, 256, 300, 65535};
    static const uint32_t NFC[] = {0, 1, 15, 16, 17, 39, 100};
    const size_t H = 3;
    fasa__lc_gather_fn fns[2] = {(fasa__lc_gather_fn)e->fn, (fasa__lc_gather_fn)ref->fn};
    for (size_t es = 2; es <= 4; es += 2)
        for (size_t di = 0; di < sizeof DS / sizeof DS[0]; di++)
            for (size_t ni = 0; ni < sizeof NFC / sizeof NFC[0]; ni++) {
                /* H heads: n_fc[h] cycles through the list; rows and
                 * outputs strided with gaps (sentinels in the gaps). */
                size_t d = DS[di], rs = d + 3, is = 2 * 100 + 5, ds = 2 * 100 + 8;
                uint32_t n_fc[3];
                for (size_t h = 0; h < H; h++)
                    n_fc[h] = NFC[(ni + h) % (sizeof NFC / sizeof NFC[0])];
                void *b1, *b2, *b3;
                unsigned char *row = buf(H * rs * es, 4, &b1), *out = buf(H * ds * es, 4, &b2);
                uint16_t *idx = buf(H * is * 2, 2, &b3);
                for (size_t i = 0; i < H * rs * es; i++)
                    row[i] = (unsigned char)test_rand_u64();
                for (size_t i = 0; i < H * is; i++)
                    idx[i] = (uint16_t)(test_rand_u64() % d);
                /* The last dim first and last in every head: a kernel that
                 * loads more than one element per index (a word gather
                 * through dword loads) must not step past the row there. */
                for (size_t h = 0; h < H; h++)
                    if (n_fc[h])
                        idx[h * is] = idx[h * is + 2 * n_fc[h] - 1] = (uint16_t)(d - 1);
                for (int f = 0; f < 2; f++) {
                    memset(out, 0xCD, H * ds * es);
                    fns[f](row, rs, d, idx, is, n_fc, H, es, out, ds);
                    int ok = 1;
                    for (size_t h = 0; h < H; h++)
                        for (size_t i = 0; i < ds; i++) {
                            const unsigned char *got = out + (h * ds + i) * es;
                            if (i < 2 * n_fc[h])
                                ok &= memcmp(got, row + (h * rs + idx[h * is + i]) * es, es) == 0;
                            else
                                for (size_t b = 0; b < es; b++)
                                    ok &= got[b] == 0xCD;
                        }
                    CHECKF(ok, "%s: es %zu d %zu n_fc %u %u %u wrong", f ? ref->name : e->name,
                           es, d, n_fc[0], n_fc[1], n_fc[2]);
                }
                /* Again with the rows, the indices and the output each
                 * exactly as long as the contract says (up to the last
                 * head's d elements / 2*n_fc entries) and ending at, then
                 * starting after, a PROT_NONE page: any access outside
                 * them faults. */
                size_t nl = 2 * (size_t)n_fc[H - 1];
                size_t rb = ((H - 1) * rs + d) * es, ib = ((H - 1) * is + nl) * 2,
                       ob = ((H - 1) * ds + nl) * es;
                for (int g = TEST_GUARD_AFTER; g <= TEST_GUARD_BEFORE; g++)
                    for (int f = 0; f < 2; f++) {
                        unsigned char *grow = test_alloc(rb, g), *gout = test_alloc(ob, g);
                        uint16_t *gidx = test_alloc(ib, g);
                        memcpy(grow, row, rb);
                        memcpy(gidx, idx, ib);
                        memset(gout, 0xCD, ob);
                        fns[f](grow, rs, d, gidx, is, n_fc, H, es, gout, ds);
                        int ok = 1;
                        for (size_t h = 0; h < H; h++)
                            for (size_t i = 0; i < 2 * n_fc[h]; i++)
                                ok &= memcmp(gout + (h * ds + i) * es,
                                             row + (h * rs + idx[h * is + i]) * es, es) == 0;
                        CHECKF(ok, "%s: guarded (%s) es %zu d %zu n_fc %u %u %u wrong",
                               f ? ref->name : e->name, g == TEST_GUARD_AFTER ? "after" : "before",
                               es, d, n_fc[0], n_fc[1], n_fc[2]);
                        test_free(grow, rb, g), test_free(gout, ob, g), test_free(gidx, ib, g);
                    }
                free(b1), free(b2), free(b3);
            }
}

static void test_lc_transpose(const entry *e, const entry *ref)
{
    static const size_t MS[] = {1, 15, 16, 17, 32, 33, 78};
    static const size_t ROWS[] = {0, 1, 31, 33, 63, 64};
    fasa__lc_transpose_fn fns[2] = {(fasa__lc_transpose_fn)e->fn,
                                    (fasa__lc_transpose_fn)ref->fn};
    for (size_t es = 2; es <= 4; es += 2)
        for (size_t mi = 0; mi < sizeof MS / sizeof MS[0]; mi++)
            for (size_t extra = 0; extra < 2; extra++)
                for (size_t ri = 0; ri < sizeof ROWS / sizeof ROWS[0]; ri++) {
                    size_t m = MS[mi], rows = ROWS[ri], per = 64 / es;
                    size_t ld = (m + per - 1) / per * per + extra * per;
                    size_t tb = (m * FASA_TILE + 16) * es;
                    void *b1, *b2;
                    unsigned char *st = buf(FASA_TILE * ld * es, 4, &b1), *tile = buf(tb, 4, &b2);
                    for (size_t i = 0; i < FASA_TILE * ld * es; i++)
                        st[i] = (unsigned char)test_rand_u64();
                    for (int f = 0; f < 2; f++) {
                        memset(tile, 0xCD, tb);
                        fns[f](st, ld, rows, m, es, tile);
                        int ok = 1;
                        for (size_t c = 0; c < m; c++)
                            for (size_t j = 0; j < FASA_TILE; j++) {
                                const unsigned char *got = tile + (c * FASA_TILE + j) * es;
                                for (size_t b = 0; b < es; b++)
                                    ok &= got[b] == (j < rows ? st[(j * ld + c) * es + b] : 0);
                            }
                        for (size_t i = m * FASA_TILE * es; i < tb; i++)
                            ok &= tile[i] == 0xCD;
                        CHECKF(ok, "%s: es %zu m %zu ld %zu rows %zu wrong",
                               f ? ref->name : e->name, es, m, ld, rows);
                    }
                    /* Again with the stage (64 rows of ld) and the tile (m
                     * rows of 64) each exactly that long and ending at, then
                     * starting after, a PROT_NONE page: loads rounded past
                     * m must stay inside ld, stores inside the m rows. */
                    size_t sb = FASA_TILE * ld * es, ob = m * FASA_TILE * es;
                    for (int g = TEST_GUARD_AFTER; g <= TEST_GUARD_BEFORE; g++)
                        for (int f = 0; f < 2; f++) {
                            unsigned char *gst = test_alloc(sb, g), *gtile = test_alloc(ob, g);
                            memcpy(gst, st, sb);
                            memset(gtile, 0xCD, ob);
                            fns[f](gst, ld, rows, m, es, gtile);
                            int ok = 1;
                            for (size_t c = 0; c < m; c++)
                                for (size_t j = 0; j < FASA_TILE; j++)
                                    for (size_t b = 0; b < es; b++)
                                        ok &= gtile[(c * FASA_TILE + j) * es + b] ==
                                              (j < rows ? st[(j * ld + c) * es + b] : 0);
                            CHECKF(ok, "%s: guarded (%s) es %zu m %zu ld %zu rows %zu wrong",
                                   f ? ref->name : e->name,
                                   g == TEST_GUARD_AFTER ? "after" : "before", es, m, ld, rows);
                            test_free(gst, sb, g), test_free(gtile, ob, g);
                        }
                    free(b1), free(b2);
                }
}

/* --------------------------------------------------------------- topk */

enum { P_NORMAL, P_EQUAL, P_NAN, P_NEGINF, P_ASC, P_DESC, P_FEW, P_SIGNED_ZERO, P_COUNT };

static void fill_pattern(float *s, size_t n, int p)
{
    for (size_t j = 0; j < n; j++) {
        switch (p) {
        case P_NORMAL: s[j] = (float)test_rand_normal(); break;
        case P_EQUAL: s[j] = 0.5f; break;
        case P_NAN: s[j] = test_rand_range(0, 9) == 0 ? NAN : (float)test_rand_normal(); break;
        case P_NEGINF:
            s[j] = test_rand_range(0, 2) == 0 ? -INFINITY : (float)test_rand_normal();
            break;
        case P_ASC: s[j] = (float)j; break;
        case P_DESC: s[j] = -(float)j; break;
        case P_FEW: s[j] = (float)test_rand_range(0, 3); break;
        default: s[j] = test_rand_range(0, 1) ? 0.0f : -0.0f; break;
        }
    }
    if (p == P_NAN && n > 0)
        s[n - 1] = NAN; /* a NaN near the end, where the scan's tail runs */
}

static void test_topk(const entry *e, int hinted)
{
    static const size_t NS[] = {0, 1, 63, 64, 65, 1000, 1024, 1500, 4096, 33000};
    for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++)
        for (int p = 0; p < P_COUNT; p++) {
            size_t n = NS[ni];
            size_t ks[7] = {1, 2, n / 2, n > 0 ? n - 1 : 0, n, 256, test_rand_range(1, n + 1)};
            void *b1, *b2, *b3, *b4;
            float *s = buf(n * 4, 4, &b1);
            fill_pattern(s, n, p);
            uint32_t *o1 = buf((n + 1) * 4, 4, &b2), *o2 = buf((n + 1) * 4, 4, &b3);
            size_t sb = fasa__topk_scratch_size(n, n);
            void *scratch = buf(sb, 0, &b4);
            for (int ki = 0; ki < 7; ki++) {
                size_t k = ks[ki] > n ? n : ks[ki];
                o1[k] = o2[k] = 0xDEADBEEFu;
                fasa__topk_ref(s, n, k, o1, scratch);
                /* Hints: none, the returned one, and bad ones (too high / low). */
                static const float hints[4] = {NAN, NAN, INFINITY, -INFINITY};
                float tau = NAN;
                for (int h = 0; h < (hinted ? 4 : 1); h++) {
                    memset(o2, 0xff, k * 4);
                    if (hinted) {
                        if (h >= 2)
                            tau = hints[h];
                        ((fasa__topk_hint_fn)e->fn)(s, n, k, o2, scratch, &tau);
                    } else {
                        ((fasa__topk_fn)e->fn)(s, n, k, o2, scratch);
                    }
                    CHECKF(memcmp(o1, o2, (k + 1) * 4) == 0,
                           "%s: n %zu k %zu pattern %d hint %d differs from topk_ref", e->name, n,
                           k, p, h);
                }
            }
            free(b1), free(b2), free(b3), free(b4);
        }
    /* Decode-like: the scores drift a little between calls, the hint is reused. */
    size_t n = 20000, k = 256;
    void *b1, *b2, *b3, *b4;
    float *s = buf(n * 4, 4, &b1);
    uint32_t *o1 = buf(k * 4, 0, &b2), *o2 = buf(k * 4, 0, &b3);
    void *scratch = buf(fasa__topk_scratch_size(n, n), 0, &b4);
    fill_pattern(s, n, P_NORMAL);
    float tau = NAN;
    for (int step = 0; step < 20 && hinted; step++) {
        for (size_t j = 0; j < n; j++)
            s[j] += 0.05f * (float)test_rand_normal();
        fasa__topk_ref(s, n, k, o1, scratch);
        ((fasa__topk_hint_fn)e->fn)(s, n, k, o2, scratch, &tau);
        CHECKF(memcmp(o1, o2, k * 4) == 0, "%s: drifting step %d", e->name, step);
    }
    free(b1), free(b2), free(b3), free(b4);
}

/* --------------------------------------------------------------- attn */

static void test_attn(const entry *e, const entry *ref)
{
    static const int dts[5] = {FASA_DTYPE_F32, FASA_DTYPE_F16, FASA_DTYPE_BF16, FASA_DTYPE_Q8_0,
                               FASA_DTYPE_Q4_0};
    for (int kd = 0; kd < 5; kd++)
        for (size_t si = 0; si < N_SIZES + 1; si++)
            for (size_t rows = 1; rows <= 4; rows += 3) {
                size_t n = pick_size(si), d = 128, t = n + 5;
                void *bk, *bv, *bq, *bi, *bs[2];
                char *k = buf(test_dtype_bytes(dts[kd], t * d), 4, &bk);
                char *v = buf(test_dtype_bytes(dts[kd], t * d), 4, &bv);
                float *q = buf(rows * d * 4, 4, &bq);
                uint32_t *idx = buf((n + 1) * 4, 4, &bi);
                fill_kv(k, dts[kd], t, d);
                fill_kv(v, dts[kd], t, d);
                for (size_t i = 0; i < rows * d; i++)
                    q[i] = (float)(test_rand_normal() * 0.1);
                for (size_t i = 0, j = 0; i < n; i++, j += 1 + (test_rand_u64() % 4 == 0))
                    idx[i] = (uint32_t)(j < t ? j : t - 1 - (n - 1 - i));
                float *st[2];
                for (int x = 0; x < 2; x++)
                    st[x] = buf(rows * (d + 2) * 4, 4, &bs[x]);
                for (int use_idx = 0; use_idx < 2; use_idx++) {
                    for (int x = 0; x < 2; x++) {
                        float *m = st[x], *l = m + rows, *acc = l + rows;
                        for (size_t r = 0; r < rows; r++)
                            m[r] = -INFINITY, l[r] = 0.0f;
                        memset(acc, 0, rows * d * 4);
                        fasa__attn_job job;
                        memset(&job, 0, sizeof job);
                        job.q = q, job.n_rows = rows, job.q_stride = d;
                        job.k = k, job.k_stride = d, job.k_dtype = dts[kd];
                        job.v = v, job.v_stride = d, job.v_dtype = dts[kd];
                        job.head_dim = job.head_dim_v = d;
                        job.idx = use_idx ? idx : NULL, job.first = 2, job.n = n;
                        job.m = m, job.l = l, job.acc = acc, job.acc_stride = d;
                        if (!use_idx && n + 2 > t)
                            job.n = t - 2;
                        if (x) { /* the prefetch hint must not change results */
                            job.pf_k = k;
                            job.pf_v = v;
                            job.pf_n = t < 16 ? t : 16;
                            /* span form (dense decode over packed rows):
                             * the whole buffer as 16 spans */
                            const size_t span = fasa__bytes(dts[kd], t * d) / 16;
                            if (use_idx && span > 0) {
                                job.pf_n = 16;
                                job.pf_kst = job.pf_kspan = span;
                                job.pf_vst = job.pf_vspan = span;
                            }
                        }
                        ((fasa__attn_fn)(x ? e->fn : ref->fn))(&job);
                    }
                    size_t bad = 0;
                    for (size_t r = 0; r < rows; r++) {
                        float *m0 = st[0], *l0 = m0 + rows, *a0 = l0 + rows;
                        float *m1 = st[1], *l1 = m1 + rows, *a1 = l1 + rows;
                        if (n == 0) {
                            bad += l1[r] != 0.0f;
                            continue;
                        }
                        double lse0 = m0[r] + log(l0[r]), lse1 = m1[r] + log(l1[r]);
                        bad += !(fabs(lse0 - lse1) <= e->tol * (1 + fabs(lse0)));
                        for (size_t c = 0; c < d; c++) {
                            double o0 = a0[r * d + c] / l0[r], o1 = a1[r * d + c] / l1[r];
                            bad += !(fabs(o0 - o1) <= e->tol * 4);
                        }
                    }
                    CHECKF(bad == 0, "%s: dtype %d n %zu rows %zu idx %d: %zu mismatches",
                           e->name, dts[kd], n, rows, use_idx, bad);
                }
                free(bk), free(bv), free(bq), free(bi), free(bs[0]), free(bs[1]);
            }
}

/* ---------------------------------------------------------- attn_tile */

/* Against the scalar reference (tests/test_attn_tile.c checks every kernel
 * against double precision): blocks of 1..17 queries x G 1..4, causal ends,
 * an f16 mask with hidden cells and biases, softcap, every dtype. */
static void test_attn_tile(const entry *e, const entry *ref)
{
    static const int dts[3] = {FASA_DTYPE_F32, FASA_DTYPE_F16, FASA_DTYPE_BF16};
    for (int kd = 0; kd < 3; kd++)
        for (size_t si = 0; si < N_SIZES + 1; si++)
            for (int variant = 0; variant < 2; variant++) {
                const size_t n = pick_size(si), d = variant ? 36 : 128, nq = variant ? 17 : 3;
                const size_t G = variant ? 1 : 4, rows = nq * G, first = 5, t = first + n + 1;
                const size_t es = test_dtype_size(dts[kd]);
                void *bk, *bv, *bq, *bm, *bs[2], *bscr;
                char *k = buf(t * d * es, 4, &bk), *v = buf(t * d * es, 4, &bv);
                float *q = buf(rows * d * 4, 4, &bq);
                uint16_t *mask = buf(nq * (n + 1) * 2, 0, &bm);
                uint32_t end[17];
                for (size_t i = 0; i < t * d; i++) {
                    put(k, dts[kd], i, (float)test_rand_normal());
                    put(v, dts[kd], i, (float)test_rand_normal());
                }
                for (size_t i = 0; i < rows * d; i++)
                    q[i] = (float)(test_rand_normal() * 0.3);
                for (size_t b = 0; b < nq; b++) {
                    end[b] = (uint32_t)(first + n - nq + b + 1);
                    for (size_t j = 0; j < n; j++)
                        mask[b * (n + 1) + j] = test_f32_to_f16(
                            test_rand_u64() % 5 == 0 ? -INFINITY : (float)test_rand_normal());
                }
                float *st[2];
                for (int x = 0; x < 2; x++)
                    st[x] = buf(rows * (d + 2) * 4, 4, &bs[x]);
                void *scr = buf(fasa__attn_tile_scratch_size(rows, d, d), 0, &bscr);
                for (int x = 0; x < 2; x++) {
                    float *m = st[x], *l = m + rows, *acc = l + rows;
                    for (size_t r = 0; r < rows; r++)
                        m[r] = -INFINITY, l[r] = 0.0f;
                    memset(acc, 0, rows * d * 4);
                    fasa__attn_tile_job job;
                    memset(&job, 0, sizeof job);
                    job.q = q, job.n_q = nq, job.group = G, job.q_stride = d;
                    job.k = k, job.k_stride = d, job.k_dtype = dts[kd];
                    job.v = v, job.v_stride = d, job.v_dtype = dts[kd];
                    job.head_dim = job.head_dim_v = d;
                    job.first = first, job.n = n, job.end = n >= nq ? end : NULL;
                    job.m = m, job.l = l, job.acc = acc, job.acc_stride = d;
                    job.scratch = scr;
                    if (variant) {
                        job.mask = mask, job.mask_stride = n + 1, job.mask_dtype = FASA_DTYPE_F16;
                        job.softcap = 7.5f;
                    }
                    ((fasa__attn_tile_fn)(x ? e->fn : ref->fn))(&job);
                }
                size_t bad = 0;
                for (size_t r = 0; r < rows; r++) {
                    float *m0 = st[0], *l0 = m0 + rows, *a0 = l0 + rows;
                    float *m1 = st[1], *l1 = m1 + rows, *a1 = l1 + rows;
                    if (l0[r] == 0.0f) {
                        bad += l1[r] != 0.0f || m1[r] != -INFINITY;
                        continue;
                    }
                    double lse0 = m0[r] + log(l0[r]), lse1 = m1[r] + log(l1[r]);
                    bad += !(fabs(lse0 - lse1) <= 2e-5 * (1 + fabs(lse0)));
                    for (size_t c = 0; c < d; c++)
                        bad += !(fabs(a0[r * d + c] / l0[r] - a1[r * d + c] / l1[r]) <= 2e-5 * 4);
                }
                CHECKF(bad == 0, "%s: dtype %d n %zu variant %d: %zu mismatches", e->name,
                       dts[kd], n, variant, bad);
                free(bk), free(bv), free(bq), free(bm), free(bs[0]), free(bs[1]), free(bscr);
            }
}

/* ------------------------------------------------------------ the cap */

/* 1 when level is cap or one of its ancestors (levels.def parents). */
static int in_chain(int level, int cap)
{
    for (int l = cap; l >= 0; l = test_level_get(l)->parent)
        if (l == level)
            return 1;
    return 0;
}

/* Child mode: every op must resolve to a kernel within the cap's chain. */
static int cap_check(const char *cap_name)
{
    int cap = test_level_by_name(cap_name);
    if (!CHECKF(cap >= 0, "unknown cap %s", cap_name))
        return test_summary();
    CHECKF(in_chain(fasa_cpu_best_level(), cap), "FASA_CPU=%s: best level %d", cap_name,
           fasa_cpu_best_level());
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const char *name = fasa_kernel_name(registry[i].op, FASA_CPU_AUTO);
        int ok = 0;
        for (size_t j = 0; name && j < N_ENTRIES; j++)
            if (strcmp(&registry[j].name[6], name) == 0 && strcmp(registry[j].op, registry[i].op) == 0)
                ok = in_chain(registry[j].level, cap);
        CHECKF(ok, "FASA_CPU=%s: op %s resolves to %s", cap_name, registry[i].op,
               name ? name : "(null)");
    }
    if (test_level_get(cap)->parent < 0)
        CHECK(fasa_cpu_features() == 0 && fasa_cpu_best_level() == cap);
    return test_summary();
}

/* ----------------------------------------------------- the test families */

typedef void (*family_fn)(const entry *e, const entry *ref);
static void test_topk_plain(const entry *e, const entry *ref)
{
    (void)ref;
    test_topk(e, 0);
}
static void test_topk_hinted(const entry *e, const entry *ref)
{
    (void)ref;
    test_topk(e, 1);
}

static const struct family {
    const char *name;
    family_fn run;
    int exact;      /* compares bit for bit: the registry's tol must be 0 */
    int tests_root; /* has its own oracle, so the reference is tested too */
} families[] = {
    {"score_labels", test_score_labels, 0, 0}, {"score_dims", test_score_dims, 0, 0},
    {"convert", test_convert, 1, 0},           {"topk", test_topk_plain, 1, 0},
    {"topk_hint", test_topk_hinted, 1, 1},     {"attn", test_attn, 0, 0},
    {"lc_gather", test_lc_gather, 1, 1},       {"lc_transpose", test_lc_transpose, 1, 1},
    {"score_dims_quant", test_score_dims_quant, 0, 0},
    {"attn_tile", test_attn_tile, 0, 0},
};

static const struct family *family_of(const entry *e)
{
    for (size_t i = 0; e->info && i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i].name, e->info->family) == 0)
            return &families[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--cap-check") == 0) {
        test_init("test_kernels --cap-check");
        resolve_registry();
        return cap_check(argv[2]);
    }
    int spawn = !(argc >= 2 && strcmp(argv[1], "--no-spawn") == 0);
    test_init("test_kernels");
    resolve_registry();
    uint32_t f = fasa_cpu_features();
    test_note("cpu features 0x%x, best level %d", (unsigned)f, fasa_cpu_best_level());

    /* Names: every op has a reference and resolves at every level. */
    for (size_t i = 0; i < N_ENTRIES; i++) {
        CHECKF(strncmp(registry[i].name, "fasa__", 6) == 0, "%s: name", registry[i].name);
        const entry *ref = ref_of(registry[i].op);
        const char *s = fasa_kernel_name(registry[i].op, FASA_CPU_SCALAR);
        CHECKF(ref && s && strcmp(s, &ref->name[6]) == 0, "%s at SCALAR: %s", registry[i].op,
               s ? s : "(null)");
        const struct family *fam = family_of(&registry[i]);
        CHECKF(registry[i].info == NULL || fam != NULL, "%s: op %s: no test family '%s'",
               registry[i].name, registry[i].op,
               registry[i].info ? registry[i].info->family : "(no FASA_OP line)");
        CHECKF(fam == NULL || !fam->exact || registry[i].tol == 0.0,
               "%s: family %s compares bit for bit, but the registry gives tol %g",
               registry[i].name, fam ? fam->name : "?", registry[i].tol);
    }
    CHECK(fasa_kernel_name("no_such_op", FASA_CPU_AUTO) == NULL);
    CHECK(fasa_kernel_name(NULL, FASA_CPU_AUTO) == NULL);

    /* Level by level, each level's own kernels. */
    size_t tested = 0, other = 0;
    for (int lv = 0; lv < test_level_count(); lv++) {
        size_t n_level = 0;
        for (size_t i = 0; i < N_ENTRIES; i++)
            n_level += registry[i].level == lv;
        if (n_level == 0)
            continue;
        if (!test_level_usable(lv) && test_forced_level() < 0) {
            printf("SKIP test_kernels/%s: this CPU cannot run the level (%zu kernels)\n",
                   test_level_get(lv)->name, n_level);
            continue;
        }
        if (!test_level_selected(lv)) {
            other += n_level;
            continue;
        }
        for (size_t i = 0; i < N_ENTRIES; i++) {
            const entry *e = &registry[i];
            const struct family *fam = family_of(e);
            if (e->level != lv || fam == NULL || (e->level == FASA_CPU_SCALAR && !fam->tests_root))
                continue;
            size_t before = test_failures();
            fam->run(e, ref_of(e->op));
            test_note("%-40s tol %-6g %s", e->name, e->tol,
                      test_failures() == before ? "ok" : "FAILED");
            tested++;
        }
    }
    test_note("%zu kernels tested%s", tested,
              other ? ", the other levels' in their own FASA_TEST_LEVEL runs" : "");

    if (spawn) {
        /* Every level as a cap (children: the cap is read once per process);
         * FASA_TEST_LEVEL must not reach them, it would override FASA_CPU. */
        for (int lv = 0; lv < test_level_count(); lv++) {
            const char *cap = test_level_get(lv)->name;
            char cmd[4096];
            snprintf(cmd, sizeof cmd,
                     "env -u FASA_TEST_LEVEL FASA_CPU=%s '%s' --cap-check %s >/dev/null 2>&1", cap,
                     argv[0], cap);
            CHECKF(strlen(argv[0]) < 4000 && system(cmd) == 0, "child with FASA_CPU=%s failed",
                   cap);
        }
    }
    return test_summary();
}
