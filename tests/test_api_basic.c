/*
 * test_api_basic.c - version, status strings, contexts, last_error, CPU and
 * kernel introspection: the small calls every binding relies on.
 */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <string.h>

static void test_version(void)
{
    CHECKF(fasa_version_number() == FASA_VERSION_NUMBER, "%u vs %u", fasa_version_number(),
           (unsigned)FASA_VERSION_NUMBER);
    const char *s = fasa_version_string();
    CHECK(s != NULL);
    if (s)
        CHECKF(strcmp(s, FASA_VERSION_STRING) == 0, "'%s' vs '%s'", s, FASA_VERSION_STRING);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", FASA_VERSION_MAJOR, FASA_VERSION_MINOR,
             FASA_VERSION_PATCH);
    CHECKF(strcmp(buf, FASA_VERSION_STRING) == 0, "macros %s vs string %s", buf,
           FASA_VERSION_STRING);
}

static void test_status_strings(void)
{
    static const char *const names[] = {
        "FASA_OK", "FASA_ERR_NULL_POINTER", "FASA_ERR_INVALID_ARGUMENT", "FASA_ERR_ZERO_SIZE",
        "FASA_ERR_OVERFLOW", "FASA_ERR_BAD_SHAPE", "FASA_ERR_BAD_STRIDE", "FASA_ERR_BAD_DTYPE",
        "FASA_ERR_BAD_BUDGET", "FASA_ERR_PROFILE_MISMATCH", "FASA_ERR_WORKSPACE_TOO_SMALL",
        "FASA_ERR_BUFFER_TOO_SMALL", "FASA_ERR_BAD_INDEX", "FASA_ERR_NONFINITE",
        "FASA_ERR_ALIASING", "FASA_ERR_OUT_OF_MEMORY", "FASA_ERR_IO", "FASA_ERR_BAD_FILE",
        "FASA_ERR_BAD_VERSION", "FASA_ERR_CHECKSUM", "FASA_ERR_BAD_STATE",
        "FASA_ERR_UNSUPPORTED", "FASA_ERR_MISALIGNED"};
    size_t n = sizeof names / sizeof names[0];
    CHECK(FASA_ERR_MISALIGNED == 22 && n == 23);
    for (size_t i = 0; i < n; i++) {
        const char *name = fasa_status_name((fasa_status)i);
        const char *str = fasa_status_string((fasa_status)i);
        CHECKF(name != NULL && strcmp(name, names[i]) == 0, "status %zu name '%s'", i,
               name ? name : "(null)");
        CHECKF(str != NULL && str[0] != '\0', "status %zu string", i);
        for (size_t j = 0; j < i && str; j++) {
            const char *other = fasa_status_string((fasa_status)j);
            CHECKF(other == NULL || strcmp(other, str) != 0, "status %zu and %zu share '%s'", i,
                   j, str);
        }
    }
    const int unknown[] = {-1, 23, 99, 1000000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *name = fasa_status_name((fasa_status)unknown[i]);
        const char *str = fasa_status_string((fasa_status)unknown[i]);
        CHECKF(name != NULL && name[0] != '\0', "unknown status %d name", unknown[i]);
        CHECKF(str != NULL && strcmp(str, "unknown fasa_status") == 0, "unknown status %d: '%s'",
               unknown[i], str ? str : "(null)");
    }
}

static void test_ctx(void)
{
    fasa_ctx *ctx = NULL;
    CHECK_STATUS(fasa_ctx_create(NULL, &ctx), FASA_OK);
    CHECK(ctx != NULL);
    CHECK(fasa_ctx_last_error(ctx) != NULL && fasa_ctx_last_error(ctx)[0] == '\0');
    CHECK(fasa_ctx_threads(ctx) == 1);
    CHECK(fasa_ctx_threads(NULL) == 1);
    CHECK(fasa_ctx_last_error(NULL) != NULL && fasa_ctx_last_error(NULL)[0] == '\0');

    /* a failure leaves a message, a later success clears it */
    fasa_view v;
    CHECK_STATUS(fasa_view_make(&v, NULL, FASA_DTYPE_F32, 4, 1, 8, 8, 8), FASA_OK);
    CHECK_STATUS(fasa_view_validate(ctx, &v), FASA_ERR_NULL_POINTER);
    CHECK(fasa_ctx_last_error(ctx)[0] != '\0');
    float data[32] = {0};
    CHECK_STATUS(fasa_view_make(&v, data, FASA_DTYPE_F32, 4, 1, 8, 8, 8), FASA_OK);
    CHECK_STATUS(fasa_view_validate(ctx, &v), FASA_OK);
    CHECKF(fasa_ctx_last_error(ctx)[0] == '\0', "after success: '%s'", fasa_ctx_last_error(ctx));
    size_t ms = 0;
    CHECK_STATUS(fasa_predict_max_selected(0.0, 10, &ms), FASA_ERR_BAD_BUDGET);
    fasa_ctx_destroy(ctx);
    fasa_ctx_destroy(NULL);

    fasa_ctx_options o;
    memset(&o, 0x5a, sizeof o);
    fasa_ctx_options_default(&o);
    CHECK(o.struct_size == sizeof o && o.n_threads == 1 && o.cpu_level == FASA_CPU_AUTO);
    o.n_threads = 2;
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK);
    if (ctx) {
        int n = fasa_ctx_threads(ctx);
        CHECKF(n == 1 || n == 2, "threads %d", n); /* 1 without OpenMP */
        CHECK(fasa_ctx_cpu_level(ctx) == fasa_cpu_best_level());
        fasa_ctx_destroy(ctx);
    }
    ctx = (fasa_ctx *)&o; /* must stay untouched on error */
    CHECK_STATUS(fasa_ctx_create(NULL, NULL), FASA_ERR_NULL_POINTER);
    o.n_threads = -3;
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_ERR_INVALID_ARGUMENT);
    CHECK(ctx == (fasa_ctx *)&o);
    fasa_ctx_options_default(&o);
    o.struct_size = 3;
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_ERR_INVALID_ARGUMENT);
    CHECK(ctx == (fasa_ctx *)&o);
}

static void test_cpu(void)
{
    int best = fasa_cpu_best_level();
    CHECKF(best >= 0 && best < test_level_count() && test_level_usable(best), "best level %d",
           best);
    for (int l = best + 1; l < test_level_count(); l++)
        CHECKF(!test_level_usable(l), "level %d is usable but best is %d", l, best);
    /* FASA_TEST_LEVEL forces a level through the FASA_CPU cap: exactly it. */
    if (test_forced_level() >= 0)
        CHECKF(best == test_forced_level(), "FASA_TEST_LEVEL=%s but best level %d",
               test_level_get(test_forced_level())->name, best);
    uint32_t f = fasa_cpu_features();
    CHECKF((f & ~0x3fu) == 0, "unknown feature bits %#x", (unsigned)f);
    if (best == FASA_CPU_AVX2)
        CHECK(f & FASA_CPU_FEATURE_AVX2);
    if (best == FASA_CPU_AVX512 || best == FASA_CPU_AVX512_BF16)
        CHECK(f & FASA_CPU_FEATURE_AVX512);
    if (best == FASA_CPU_NEON)
        CHECK(f & FASA_CPU_FEATURE_NEON);
    const char *env = getenv("FASA_CPU");
    if (env && strcmp(env, "scalar") == 0)
        CHECKF(best == FASA_CPU_SCALAR, "FASA_CPU=scalar but best level %d", best);
    static const char *const ops[] = {"score_dims", "attn", "topk"};
    for (size_t i = 0; i < 3; i++) {
        const char *a = fasa_kernel_name(ops[i], FASA_CPU_AUTO);
        const char *s = fasa_kernel_name(ops[i], FASA_CPU_SCALAR);
        CHECKF(a != NULL && a[0] != '\0', "kernel name of %s (auto)", ops[i]);
        CHECKF(s != NULL && s[0] != '\0', "kernel name of %s (scalar)", ops[i]);
        if (a && s)
            test_note("op %s: auto %s, scalar %s", ops[i], a, s);
    }
    CHECK(fasa_kernel_name("no_such_op", FASA_CPU_AUTO) == NULL);
    test_note("cpu features %#x, best level %d", (unsigned)f, best);
}

/* struct_size: an older (smaller) struct is refused, a newer (larger) one
 * is accepted when its unknown tail is zero and refused otherwise; output
 * structs get their tail zero-filled. */
static void test_struct_size(void)
{
    struct {
        fasa_ctx_options o;
        uint64_t tail[2];
    } in;
    fasa_ctx *ctx = NULL;
    memset(&in, 0, sizeof in);
    fasa_ctx_options_default(&in.o);
    in.o.struct_size = sizeof in;
    CHECK_STATUS(fasa_ctx_create(&in.o, &ctx), FASA_OK);
    fasa_ctx_destroy(ctx);
    in.tail[1] = 7;
    CHECK_STATUS(fasa_ctx_create(&in.o, &ctx), FASA_ERR_UNSUPPORTED);
    in.o.struct_size = sizeof in.o - 4;
    CHECK_STATUS(fasa_ctx_create(&in.o, &ctx), FASA_ERR_INVALID_ARGUMENT);

    fasa_model_shape sh = {sizeof sh, 2, 4, 2, 8, FASA_PAIRS_HALF, 0};
    uint32_t fcs[2 * 4] = {0, 1, 2, 3, 0, 1, 2, 3};
    fasa_profile *p = NULL;
    CHECK_STATUS(fasa_profile_create(&sh, fcs, 1, NULL, &p), FASA_OK);
    struct {
        fasa_profile_info info;
        unsigned char tail[24];
    } out;
    memset(&out, 0xab, sizeof out);
    out.info.struct_size = sizeof out;
    CHECK_STATUS(fasa_profile_get_info(p, &out.info), FASA_OK);
    int zero = 1;
    for (size_t i = 0; i < sizeof out.tail; i++)
        zero &= out.tail[i] == 0;
    CHECK(zero && out.info.shape.n_q_heads == 4);
    out.info.struct_size = sizeof out.info - 8;
    CHECK_STATUS(fasa_profile_get_info(p, &out.info), FASA_ERR_INVALID_ARGUMENT);
    fasa_profile_destroy(p);
}

/* Thread counts: clamped to the CPUs online; 0 reads FASA_NUM_THREADS. */
static void test_threads_rule(void)
{
    fasa_ctx_options o;
    fasa_ctx *ctx = NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    fasa_ctx_options_default(&o);
    o.n_threads = 1000;
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK);
    CHECKF(fasa_ctx_threads(ctx) >= 1 && fasa_ctx_threads(ctx) <= (cpus > 0 ? cpus : 1),
           "1000 threads on %ld CPUs gave %d", cpus, fasa_ctx_threads(ctx));
    fasa_ctx_destroy(ctx);
    setenv("FASA_NUM_THREADS", "2", 1);
    o.n_threads = 0;
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK);
    int n = fasa_ctx_threads(ctx);
    CHECKF(n == 1 || n == 2, "FASA_NUM_THREADS=2 gave %d", n); /* 1: one CPU or no OpenMP */
    fasa_ctx_destroy(ctx);
    setenv("FASA_NUM_THREADS", "junk", 1);
    CHECK_STATUS(fasa_ctx_create(&o, &ctx), FASA_OK);
    CHECK(fasa_ctx_threads(ctx) == 1);
    fasa_ctx_destroy(ctx);
    unsetenv("FASA_NUM_THREADS");
}

int main(void)
{
    test_init("test_api_basic");
    test_version();
    test_status_strings();
    test_ctx();
    test_cpu();
    test_struct_size();
    test_threads_rule();
    CHECK(fasa_ctx_cpu_level(NULL) == fasa_cpu_best_level());
    {
        fasa_ctx_options o;
        fasa_ctx *c = NULL;
        fasa_ctx_options_default(&o);
        o.cpu_level = FASA_CPU_SCALAR;
        CHECK_STATUS(fasa_ctx_create(&o, &c), FASA_OK);
        CHECK(fasa_ctx_cpu_level(c) == FASA_CPU_SCALAR);
        fasa_ctx_destroy(c);
    }
    return test_summary();
}
