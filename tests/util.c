/*
 * util.c - seeded PRNG, checks, CPU levels, own f16/bf16 conversions, guard
 * pages and strided tensors for the test programs. Independent of src/
 * except for the level list src/levels.def (data only).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *g_program = "test";
static uint64_t g_seed;
static uint64_t g_state[4];
static size_t g_pass, g_fail;

/* splitmix64 seeds xoshiro256** (both public-domain algorithms). */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* -------------------------------------------------------------- levels */

static const test_level g_levels[] = {
#define FASA_LEVEL(id, name, parent, arch, needs, keeps) {id, #name, parent, needs},
#include "levels.def"
#undef FASA_LEVEL
};
#define N_LEVELS ((int)(sizeof g_levels / sizeof g_levels[0]))
static int g_forced = -1;

int test_level_count(void) { return N_LEVELS; }

const test_level *test_level_get(int id)
{
    return id >= 0 && id < N_LEVELS ? &g_levels[id] : NULL;
}

int test_level_by_name(const char *name)
{
    for (int i = 0; name != NULL && i < N_LEVELS; i++)
        if (strcmp(g_levels[i].name, name) == 0)
            return i;
    return -1;
}

int test_level_usable(int id)
{
    const test_level *l = test_level_get(id);
    return l != NULL && (fasa_cpu_features() & l->needs) == l->needs;
}

int test_forced_level(void) { return g_forced; }

int test_level_selected(int id)
{
    return test_level_usable(id) && (g_forced < 0 || g_forced == id);
}

/* FASA_TEST_LEVEL: set the library's cap to the level before its first
 * call reads FASA_CPU; skip when this CPU cannot run the level. */
static void force_level(const char *program)
{
    const char *name = getenv("FASA_TEST_LEVEL");
    if (name == NULL || *name == '\0')
        return;
    g_forced = test_level_by_name(name);
    if (g_forced < 0) {
        printf("%s: FASA_TEST_LEVEL=%s names no level of src/levels.def\n", program, name);
        exit(2);
    }
    if (setenv("FASA_CPU", name, 1) != 0) {
        perror("setenv");
        exit(2);
    }
    if (!test_level_usable(g_forced)) {
        printf("SKIP %s: FASA_TEST_LEVEL=%s: this CPU cannot run the level\n", program, name);
        exit(77);
    }
}

void test_init(const char *program)
{
    const char *env = getenv("FASA_TEST_SEED");
    g_program = program;
    force_level(program);
    if (env && *env) {
        g_seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g_seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    uint64_t x = g_seed;
    for (int i = 0; i < 4; i++)
        g_state[i] = splitmix64(&x);
    if (g_forced >= 0)
        printf("%s: seed %llu, level %s (reproduce with FASA_TEST_SEED=%llu FASA_TEST_LEVEL=%s)\n",
               program, (unsigned long long)g_seed, g_levels[g_forced].name,
               (unsigned long long)g_seed, g_levels[g_forced].name);
    else
        printf("%s: seed %llu (reproduce with FASA_TEST_SEED=%llu)\n", program,
               (unsigned long long)g_seed, (unsigned long long)g_seed);
    fflush(stdout);
}

uint64_t test_seed(void) { return g_seed; }

int test_check_(int cond, const char *file, int line, const char *expr, const char *fmt, ...)
{
    if (cond) {
        g_pass++;
        return 1;
    }
    g_fail++;
    /* The first failures carry the information; thousands more drown it. */
    if (g_fail <= 60) {
        fprintf(stdout, "%s:%d: CHECK failed: %s", file, line, expr);
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            fputs(": ", stdout);
            vfprintf(stdout, fmt, ap);
            va_end(ap);
        }
        fputc('\n', stdout);
    } else if (g_fail == 61) {
        fputs("(further failures not printed)\n", stdout);
    }
    fflush(stdout);
    return 0;
}

void test_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", g_program);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

size_t test_failures(void) { return g_fail; }

int test_summary(void)
{
    if (g_forced >= 0)
        printf("%s: %zu passed, %zu failed (seed %llu, level %s)\n", g_program, g_pass, g_fail,
               (unsigned long long)g_seed, g_levels[g_forced].name);
    else
        printf("%s: %zu passed, %zu failed (seed %llu)\n", g_program, g_pass, g_fail,
               (unsigned long long)g_seed);
    fflush(stdout);
    return g_fail == 0 && g_pass > 0 ? 0 : 1;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t test_rand_u64(void)
{
    uint64_t *s = g_state;
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double test_rand_uniform(void) { return (double)(test_rand_u64() >> 11) * 0x1.0p-53; }

double test_rand_normal(void)
{
    double u1 = test_rand_uniform(), u2 = test_rand_uniform();
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

size_t test_rand_range(size_t lo, size_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + (size_t)(test_rand_u64() % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------ conversions */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Via double arithmetic rather than bit tricks, so it shares no code path
 * with the library's conversion. */
uint16_t test_f32_to_f16(float f)
{
    uint16_t sign = (uint16_t)((f32_bits(f) >> 16) & 0x8000u);
    double a = fabs((double)f);
    if (isnan(f))
        return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0) /* rounds to Inf at and above max + half ulp */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x1.0p-14) { /* subnormal: units of 2^-24 */
        double m = nearbyint(a * 0x1.0p24); /* default rounding mode: ties to even */
        return (uint16_t)(sign | (uint16_t)m); /* m == 1024 becomes the smallest normal */
    }
    int e;
    double fr = frexp(a, &e);          /* a = fr * 2^e, fr in [0.5, 1) */
    double m = nearbyint(fr * 2048.0); /* 11 significant bits */
    if (m >= 2048.0) {
        m = 1024.0;
        e++;
    }
    uint16_t exp = (uint16_t)(e - 1 + 15);
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | (exp << 10) | ((uint16_t)m - 1024u));
}

float test_f16_to_f32(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp((double)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexp((double)(man + 1024), exp - 25);
    return (float)((h & 0x8000) ? -v : v);
}

uint16_t test_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40u);
    double a = fabs((double)f);
    if (a == 0.0 || isinf(f))
        return (uint16_t)(u >> 16);
    int e;
    double fr = frexp(a, &e);
    double m = nearbyint(fr * 256.0); /* 8 significant bits */
    double r = ldexp(m, e - 8);
    if (r < 0x1.0p-126) /* bf16 subnormals: fixed quantum 2^-133 */
        r = ldexp(nearbyint(ldexp(a, 133)), -133);
    float rf = (float)r; /* exact unless it overflows to Inf, which is correct */
    if (f < 0)
        rf = -rf;
    return (uint16_t)(f32_bits(rf) >> 16);
}

float test_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

size_t test_dtype_size(int dtype)
{
    return dtype == FASA_DTYPE_F32 ? 4 : dtype == FASA_DTYPE_F16 || dtype == FASA_DTYPE_BF16 ? 2 : 0;
}

int test_dtype_quant(int dtype) { return dtype == FASA_DTYPE_Q8_0 || dtype == FASA_DTYPE_Q4_0; }

static size_t qblock_bytes(int dtype) { return dtype == FASA_DTYPE_Q8_0 ? 34 : 18; }

size_t test_dtype_bytes(int dtype, size_t n)
{
    return test_dtype_quant(dtype) ? n / 32 * qblock_bytes(dtype) : n * test_dtype_size(dtype);
}

void test_quantize_row(int dtype, const float *x, size_t n, void *dst)
{
    unsigned char *b = dst;
    for (size_t i0 = 0; i0 < n; i0 += 32, b += qblock_bytes(dtype)) {
        const float *xb = x + i0;
        float amax = 0.0f, vmax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                vmax = xb[j];
            }
        float d = dtype == FASA_DTYPE_Q8_0 ? amax / 127.0f : vmax / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = test_f32_to_f16(d);
        memcpy(b, &h, 2);
        if (dtype == FASA_DTYPE_Q8_0) {
            for (int j = 0; j < 32; j++)
                b[2 + j] = (unsigned char)(int8_t)roundf(xb[j] * id);
        } else {
            for (int j = 0; j < 16; j++) {
                int lo = (int8_t)(xb[j] * id + 8.5f), hi = (int8_t)(xb[j + 16] * id + 8.5f);
                lo = lo > 15 ? 15 : lo;
                hi = hi > 15 ? 15 : hi;
                b[2 + j] = (unsigned char)(lo | hi << 4);
            }
        }
    }
}

const char *test_dtype_name(int dtype)
{
    switch (dtype) {
    case FASA_DTYPE_F32: return "f32";
    case FASA_DTYPE_F16: return "f16";
    case FASA_DTYPE_BF16: return "bf16";
    case FASA_DTYPE_Q8_0: return "q8_0";
    case FASA_DTYPE_Q4_0: return "q4_0";
    default: return "?";
    }
}

void test_store(void *buf, int dtype, size_t i, double v)
{
    if (test_dtype_quant(dtype)) {
        fprintf(stderr, "test_store: block formats are written a row at a time\n");
        abort();
    }
    float f = (float)v;
    if (dtype == FASA_DTYPE_F32) {
        memcpy((char *)buf + 4 * i, &f, 4);
    } else {
        uint16_t h = dtype == FASA_DTYPE_F16 ? test_f32_to_f16(f) : test_f32_to_bf16(f);
        memcpy((char *)buf + 2 * i, &h, 2);
    }
}

double test_load(const void *buf, int dtype, size_t i)
{
    if (test_dtype_quant(dtype)) {
        const unsigned char *b = (const unsigned char *)buf + i / 32 * qblock_bytes(dtype);
        uint16_t h;
        memcpy(&h, b, 2);
        size_t j = i % 32;
        int q = dtype == FASA_DTYPE_Q8_0 ? (int8_t)b[2 + j]
                                         : (j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4) - 8;
        return (double)test_f16_to_f32(h) * q;
    }
    if (dtype == FASA_DTYPE_F32) {
        float f;
        memcpy(&f, (const char *)buf + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)buf + 2 * i, 2);
    return dtype == FASA_DTYPE_F16 ? test_f16_to_f32(h) : test_bf16_to_f32(h);
}

double test_half_ulp(int dtype, double x)
{
    int bits = dtype == FASA_DTYPE_F16 ? 11 : dtype == FASA_DTYPE_BF16 ? 8 : 24;
    int min_exp = dtype == FASA_DTYPE_F16 ? -14 : -126;
    int e;
    x = fabs(x);
    if (x == 0.0 || isnan(x) || isinf(x))
        e = min_exp;
    else {
        frexp(x, &e);
        e -= 1; /* x in [2^e, 2^(e+1)) */
        if (e < min_exp)
            e = min_exp;
    }
    return ldexp(1.0, e - (bits - 1)) * 0.5;
}

/* ------------------------------------------------------------ guard pages */

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

void *test_alloc(size_t bytes, int guard)
{
    if (guard == TEST_PLAIN) {
        void *p = malloc(bytes ? bytes : 1);
        if (!p) {
            fprintf(stderr, "test_alloc: out of memory (%zu bytes)\n", bytes);
            abort();
        }
        return p;
    }
    size_t ps = page_size();
    size_t data_pages = (bytes + ps - 1) / ps;
    if (data_pages == 0)
        data_pages = 1;
    size_t total = (data_pages + 1) * ps;
    char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("test_alloc: mmap");
        abort();
    }
    if (guard == TEST_GUARD_AFTER) {
        if (mprotect(base + data_pages * ps, ps, PROT_NONE) != 0) {
            perror("mprotect");
            abort();
        }
        return base + data_pages * ps - bytes;
    }
    if (mprotect(base, ps, PROT_NONE) != 0) {
        perror("mprotect");
        abort();
    }
    return base + ps;
}

void test_free(void *p, size_t bytes, int guard)
{
    if (!p)
        return;
    if (guard == TEST_PLAIN) {
        free(p);
        return;
    }
    size_t ps = page_size();
    size_t data_pages = (bytes + ps - 1) / ps;
    if (data_pages == 0)
        data_pages = 1;
    char *base = guard == TEST_GUARD_AFTER ? (char *)p + bytes - data_pages * ps : (char *)p - ps;
    munmap(base, (data_pages + 1) * ps);
}

/* ----------------------------------------------------------------- tensors */

const char *test_layout_name(int layout)
{
    switch (layout) {
    case TEST_LAYOUT_TOKEN_MAJOR: return "token-major";
    case TEST_LAYOUT_HEAD_MAJOR: return "head-major";
    case TEST_LAYOUT_HF_PADDED: return "hf-padded";
    case TEST_LAYOUT_TOKEN_PADDED: return "token-padded";
    default: return "?";
    }
}

void test_tensor_make(test_tensor *t, int dtype, size_t n_tokens, size_t n_heads,
                      size_t head_dim, int layout, int guard)
{
    size_t ts, hs;
    switch (layout) {
    case TEST_LAYOUT_HEAD_MAJOR:
        ts = head_dim;
        hs = n_tokens * head_dim;
        break;
    case TEST_LAYOUT_HF_PADDED:
        ts = head_dim;
        hs = (n_tokens + 5) * head_dim;
        break;
    case TEST_LAYOUT_TOKEN_PADDED: /* block formats: whole blocks of padding */
        hs = head_dim + (test_dtype_quant(dtype) ? 32 : 3);
        ts = n_heads * hs + (test_dtype_quant(dtype) ? 32 : 7);
        break;
    default:
        ts = n_heads * head_dim;
        hs = head_dim;
        break;
    }
    size_t extent = (n_tokens - 1) * ts + (n_heads - 1) * hs + head_dim;
    t->bytes = test_dtype_bytes(dtype, extent);
    t->guard = guard;
    t->mem = test_alloc(t->bytes, guard);
    fasa_view_make(&t->view, t->mem, (fasa_dtype)dtype, n_tokens, n_heads, head_dim, ts, hs);
    /* fasa_view_make is under test elsewhere; do not let a bug there make
     * every other test unreadable. */
    t->view.struct_size = sizeof(fasa_view);
    t->view.data = t->mem;
    t->view.dtype = dtype;
    t->view.kind = 0;
    t->view.n_tokens = n_tokens;
    t->view.n_heads = n_heads;
    t->view.head_dim = head_dim;
    t->view.token_stride = ts;
    t->view.head_stride = hs;
    if (test_dtype_quant(dtype)) { /* NaN scales in the padding, zero rows */
        memset(t->mem, 0xff, t->bytes);
        float *zero = calloc(head_dim, sizeof(float));
        for (size_t a = 0; a < n_tokens; a++)
            for (size_t h = 0; h < n_heads; h++)
                test_tensor_set_row(t, a, h, zero);
        free(zero);
        return;
    }
    for (size_t i = 0; i < extent; i++)
        test_store(t->mem, dtype, i, NAN);
    for (size_t a = 0; a < n_tokens; a++)
        for (size_t h = 0; h < n_heads; h++)
            for (size_t i = 0; i < head_dim; i++)
                test_tensor_set(t, a, h, i, 0.0);
}

void test_tensor_set_row(test_tensor *t, size_t tok, size_t head, const float *x)
{
    size_t off = test_tensor_offset(t, tok, head, 0);
    if (test_dtype_quant(t->view.dtype)) {
        test_quantize_row(t->view.dtype, x, t->view.head_dim,
                          (char *)t->mem + test_dtype_bytes(t->view.dtype, off));
        return;
    }
    for (size_t i = 0; i < t->view.head_dim; i++)
        test_store(t->mem, t->view.dtype, off + i, x[i]);
}

void test_tensor_free(test_tensor *t)
{
    test_free(t->mem, t->bytes, t->guard);
    t->mem = NULL;
}

size_t test_tensor_offset(const test_tensor *t, size_t tok, size_t head, size_t i)
{
    return tok * t->view.token_stride + head * t->view.head_stride + i;
}

double test_tensor_get(const test_tensor *t, size_t tok, size_t head, size_t i)
{
    return test_load(t->mem, t->view.dtype, test_tensor_offset(t, tok, head, i));
}

void test_tensor_set(test_tensor *t, size_t tok, size_t head, size_t i, double v)
{
    test_store(t->mem, t->view.dtype, test_tensor_offset(t, tok, head, i), v);
}

void test_tensor_randn(test_tensor *t, double scale)
{
    if (test_dtype_quant(t->view.dtype)) {
        float *row = test_xmalloc(t->view.head_dim * sizeof(float));
        for (size_t a = 0; a < t->view.n_tokens; a++)
            for (size_t h = 0; h < t->view.n_heads; h++) {
                for (size_t i = 0; i < t->view.head_dim; i++)
                    row[i] = (float)(scale * test_rand_normal());
                test_tensor_set_row(t, a, h, row);
            }
        free(row);
        return;
    }
    for (size_t a = 0; a < t->view.n_tokens; a++)
        for (size_t h = 0; h < t->view.n_heads; h++)
            for (size_t i = 0; i < t->view.head_dim; i++)
                test_tensor_set(t, a, h, i, scale * test_rand_normal());
}

double *test_tensor_to_double(const test_tensor *t)
{
    size_t n = t->view.n_tokens, hh = t->view.n_heads, d = t->view.head_dim;
    double *out = test_xmalloc(n * hh * d * sizeof(double));
    for (size_t a = 0; a < n; a++)
        for (size_t h = 0; h < hh; h++)
            for (size_t i = 0; i < d; i++)
                out[(a * hh + h) * d + i] = test_tensor_get(t, a, h, i);
    return out;
}

void test_tensor_fill_bytes(test_tensor *t, unsigned char pattern)
{
    memset(t->mem, pattern, t->bytes);
}

/* An element is padding when its offset maps to no (token, head, i). */
static int is_row_element(const test_tensor *t, size_t off)
{
    const fasa_view *v = &t->view;
    for (size_t h = 0; h < v->n_heads; h++) {
        size_t base = h * v->head_stride;
        if (off < base)
            continue;
        size_t rel = off - base;
        size_t tok = rel / v->token_stride;
        if (tok < v->n_tokens && rel - tok * v->token_stride < v->head_dim)
            return 1;
    }
    return 0;
}

int test_tensor_padding_intact(const test_tensor *t)
{
    if (test_dtype_quant(t->view.dtype)) { /* padding blocks keep their 0xff bytes */
        size_t bb = qblock_bytes(t->view.dtype), nb = t->bytes / bb;
        for (size_t k = 0; k < nb; k++)
            if (!is_row_element(t, 32 * k))
                for (size_t i = 0; i < bb; i++)
                    if (((const unsigned char *)t->mem)[k * bb + i] != 0xff)
                        return 0;
        return 1;
    }
    size_t n = t->bytes / test_dtype_size(t->view.dtype);
    for (size_t off = 0; off < n; off++)
        if (!is_row_element(t, off) && !isnan(test_load(t->mem, t->view.dtype, off)))
            return 0;
    return 1;
}

uint32_t *test_random_fcs(size_t n_layers, size_t n_heads, size_t n_fc, size_t head_dim)
{
    size_t n_all = head_dim / 2;
    uint32_t *fcs = test_xmalloc(n_layers * n_heads * n_fc * sizeof(uint32_t));
    uint32_t *perm = test_xmalloc(n_all * sizeof(uint32_t));
    for (size_t r = 0; r < n_layers * n_heads; r++) {
        for (size_t i = 0; i < n_all; i++)
            perm[i] = (uint32_t)i;
        for (size_t i = 0; i < n_fc; i++) { /* partial Fisher-Yates */
            size_t j = test_rand_range(i, n_all - 1);
            uint32_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
            fcs[r * n_fc + i] = perm[i];
        }
    }
    free(perm);
    return fcs;
}

void *test_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}
