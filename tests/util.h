/*
 * util.h - shared helpers of the libfasa test programs (tests/test_*.c).
 * Only the public header is used: tests see the library as a user does.
 */
#ifndef FASA_TEST_UTIL_H
#define FASA_TEST_UTIL_H

#include "fasa.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- checks */

/* Seed the PRNG from FASA_TEST_SEED (or the clock) and print it, so every
 * failure can be replayed with FASA_TEST_SEED=<seed>. With
 * FASA_TEST_LEVEL=<level name> (src/levels.def) the program runs at exactly
 * that CPU level: FASA_CPU is set to it before the library reads it, and
 * the program exits 77 ("SKIP <program>: ...") when this CPU cannot run the
 * level. Call first in main, before any library call. */
void test_init(const char *program);
uint64_t test_seed(void);

/* ------------------------------------------- CPU levels (src/levels.def) */

typedef struct test_level {
    int id;          /* fasa_cpu_level */
    const char *name;
    int parent;      /* -1 for the root */
    uint32_t needs;  /* FASA_CPU_FEATURE_* bits */
} test_level;
int test_level_count(void);
const test_level *test_level_get(int id); /* NULL outside 0 .. count-1 */
int test_level_by_name(const char *name); /* -1 when unknown */
/* fasa_cpu_features() (after the FASA_CPU cap) has every bit level needs. */
int test_level_usable(int id);
/* The level FASA_TEST_LEVEL forces, or -1. */
int test_forced_level(void);
/* Kernels registered at level are tested in this run: it is usable and no
 * other level is forced (each forced run tests its own level's kernels). */
int test_level_selected(int id);

/* Count one assertion; on failure print file:line, the expression and an
 * optional printf-style detail. Returns cond so callers can skip follow-ups. */
int test_check_(int cond, const char *file, int line, const char *expr, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
#define CHECK(cond) test_check_(!!(cond), __FILE__, __LINE__, #cond, NULL)
#define CHECKF(cond, ...) test_check_(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
/* Evaluates st exactly once (st is often the call under test). */
#define CHECK_STATUS(st, want) test_check_status_((st), (want), __FILE__, __LINE__, #st " == " #want)
static inline int test_check_status_(fasa_status got, fasa_status want, const char *file, int line,
                                     const char *expr)
{
    return test_check_(got == want, file, line, expr, "got %s (%d)", fasa_status_name(got),
                       (int)got);
}

/* Informational line (not an assertion). */
void test_note(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Print "<program>: N passed, M failed" and return the exit code. */
int test_summary(void);
size_t test_failures(void);

/* ------------------------------------------------------------------ PRNG */

uint64_t test_rand_u64(void);
double test_rand_uniform(void);                 /* [0, 1)            */
double test_rand_normal(void);                  /* N(0, 1)           */
size_t test_rand_range(size_t lo, size_t hi);   /* lo..hi inclusive  */

/* ------------------------------------------------ element formats (own) */

uint16_t test_f32_to_f16(float f);   /* round to nearest even */
float test_f16_to_f32(uint16_t h);
uint16_t test_f32_to_bf16(float f);  /* round to nearest even */
float test_bf16_to_f32(uint16_t h);
size_t test_dtype_size(int dtype);   /* 0 for the block formats Q8_0 / Q4_0 */
const char *test_dtype_name(int dtype);
int test_dtype_quant(int dtype);     /* Q8_0 or Q4_0 */
/* Bytes of n elements from a block boundary (block formats: 32 a block). */
size_t test_dtype_bytes(int dtype, size_t n);
/* Store v (rounded: double->float->dtype; F32/F16/BF16 only) / load
 * element i of buf (any dtype; block formats decoded: d * q). */
void test_store(void *buf, int dtype, size_t i, double v);
double test_load(const void *buf, int dtype, size_t i);
/* Quantize n (a multiple of 32) floats into blocks at dst the way ggml's
 * reference quantizers do (Q8_0: d = amax/127, q = round(x/d); Q4_0:
 * d = max/-8 of the element of largest |x|, q = min(15, trunc(x/d + 8.5))),
 * written here from the format's definition. */
void test_quantize_row(int dtype, const float *x, size_t n, void *dst);
/* Half a unit in the last place of x in dtype (0 for F32: exact enough). */
double test_half_ulp(int dtype, double x);

/* ---------------------------------------------------- guard-page memory */

enum { TEST_PLAIN = 0, TEST_GUARD_AFTER = 1, TEST_GUARD_BEFORE = 2 };

/* bytes of memory whose last byte is followed (GUARD_AFTER) or whose first
 * byte is preceded (GUARD_BEFORE) by a PROT_NONE page, so any access past
 * the extent faults. TEST_PLAIN is malloc. Aborts on failure. */
void *test_alloc(size_t bytes, int guard);
void test_free(void *p, size_t bytes, int guard);

/* ------------------------------------------------------- tensors / views */

/* Stride layouts of real KV caches and activations. */
enum {
    TEST_LAYOUT_TOKEN_MAJOR = 0, /* llama.cpp: [t][H][d] contiguous            */
    TEST_LAYOUT_HEAD_MAJOR = 1,  /* [H][t][d] contiguous                       */
    TEST_LAYOUT_HF_PADDED = 2,   /* [H][max_t][d], max_t > t (pre-allocated)  */
    TEST_LAYOUT_TOKEN_PADDED = 3,/* [t][H][d + pad] + extra pad per token     */
    TEST_LAYOUT_COUNT = 4
};
const char *test_layout_name(int layout);

typedef struct test_tensor {
    fasa_view view;
    void *mem;      /* allocation; view.data == mem (first element at offset 0) */
    size_t bytes;
    int guard;
} test_tensor;

/* A [n_tokens][n_heads][head_dim] tensor in the given layout; the allocation
 * is exactly the view's extent. Padding elements hold NaN so a kernel that
 * reads them corrupts its result visibly; data starts zeroed. Block formats
 * (head_dim a multiple of 32): strides stay multiples of 32 (the padded
 * layouts pad by 32), padding blocks are 0xff bytes (scale NaN), and
 * elements are written a row at a time (test_tensor_randn,
 * test_tensor_set_row), not by test_tensor_set. */
void test_tensor_make(test_tensor *t, int dtype, size_t n_tokens, size_t n_heads,
                      size_t head_dim, int layout, int guard);
void test_tensor_free(test_tensor *t);
size_t test_tensor_offset(const test_tensor *t, size_t tok, size_t head, size_t i);
double test_tensor_get(const test_tensor *t, size_t tok, size_t head, size_t i);
void test_tensor_set(test_tensor *t, size_t tok, size_t head, size_t i, double v);
/* Fill every element with scale * N(0,1), rounded to the dtype (block
 * formats: quantized a row at a time). */
void test_tensor_randn(test_tensor *t, double scale);
/* Row (tok, head) from head_dim floats, rounded / quantized to the dtype. */
void test_tensor_set_row(test_tensor *t, size_t tok, size_t head, const float *x);
/* Copy out as dense doubles [n_tokens][n_heads][head_dim] (malloc'ed). */
double *test_tensor_to_double(const test_tensor *t);
/* Fill the whole allocation (padding included) with a byte pattern. */
void test_tensor_fill_bytes(test_tensor *t, unsigned char pattern);
/* 1 when every padding element (not part of any row) still holds NaN. */
int test_tensor_padding_intact(const test_tensor *t);

/* Random FC lists [n_layers][n_heads][n_fc], distinct per row, any order. */
uint32_t *test_random_fcs(size_t n_layers, size_t n_heads, size_t n_fc, size_t head_dim);

/* Bytes for a workspace; malloc(max(1, n)). */
void *test_xmalloc(size_t n);

#endif
