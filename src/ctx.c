/*
 * ctx.c - fasa_ctx (options + last error) and the error helpers every public
 * call uses.
 */
#include "internal.h"
#include "levels.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Upper bound on threads per call: keeps workspace sizes (which grow with
 * the thread count) sane when a caller passes a wild value. */
#define FASA_MAX_THREADS 1024

void fasa__clear_error(fasa_ctx *ctx) { fasa__enter(ctx, NULL); }

void fasa__enter(fasa_ctx *ctx, const char *fn)
{
    if (ctx != NULL) {
        ctx->fn = fn;
        ctx->last_error[0] = '\0';
    }
}

fasa_status fasa__fail(fasa_ctx *ctx, fasa_status status, const char *fmt, ...)
{
    if (ctx != NULL) {
        size_t n = 0;
        if (ctx->fn != NULL) {
            int k = snprintf(ctx->last_error, sizeof ctx->last_error, "%s: ", ctx->fn);
            n = k > 0 && (size_t)k < sizeof ctx->last_error ? (size_t)k : 0;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->last_error + n, sizeof ctx->last_error - n, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* struct_size rule of every appendable struct: at least the fields this
 * library knows; a larger struct (a newer caller) must have zero bytes
 * after them (fields this version cannot honour). */
fasa_status fasa__struct_ok(fasa_ctx *ctx, const void *s, size_t struct_size, size_t known,
                            const char *name)
{
    if (struct_size < known)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT,
                          "%s: struct_size %zu < %zu (set it to sizeof)", name, struct_size, known);
    for (size_t b = known; b < struct_size; b++)
        if (((const unsigned char *)s)[b] != 0)
            return fasa__fail(ctx, FASA_ERR_UNSUPPORTED,
                              "%s: byte %zu past the %zu this library knows is set", name, b,
                              known);
    return FASA_OK;
}

fasa_status fasa__struct_out(void *s, size_t struct_size, size_t known)
{
    if (struct_size < known)
        return FASA_ERR_INVALID_ARGUMENT;
    memset((char *)s + known, 0, struct_size - known);
    return FASA_OK;
}

int fasa__threads(const fasa_ctx *ctx)
{
    return ctx != NULL ? ctx->options.n_threads : 1;
}

int fasa__level(const fasa_ctx *ctx)
{
    return ctx != NULL ? ctx->options.cpu_level : FASA_CPU_AUTO;
}

/* CPUs online (at least 1). */
static inline long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? n : 1;
}

/* The process-wide default thread count: FASA_NUM_THREADS when it is a
 * positive integer, else 1 (read at each context creation; no state). */
static int32_t env_threads(void)
{
    const char *e = getenv("FASA_NUM_THREADS");
    if (e == NULL || *e == '\0')
        return 1;
    char *end;
    long n = strtol(e, &end, 10);
    return *end == '\0' && n >= 1 && n <= FASA_MAX_THREADS ? (int32_t)n : 1;
}

FASA_API void fasa_ctx_options_default(fasa_ctx_options *options)
{
    if (options == NULL)
        return;
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->n_threads = 1;
    options->cpu_level = FASA_CPU_AUTO;
}

FASA_API fasa_status fasa_ctx_create(const fasa_ctx_options *options, fasa_ctx **out)
{
    if (out == NULL)
        return FASA_ERR_NULL_POINTER;
    fasa_ctx_options o;
    fasa_ctx_options_default(&o);
    if (options != NULL) {
        fasa_status st = fasa__struct_ok(NULL, options, options->struct_size, sizeof *options,
                                         "options");
        if (st != FASA_OK)
            return st;
        if (options->n_threads < 0)
            return FASA_ERR_INVALID_ARGUMENT;
        if (options->cpu_level < FASA_CPU_AUTO || options->cpu_level >= FASA__N_LEVELS)
            return FASA_ERR_INVALID_ARGUMENT;
        o = *options;
    }
    if (o.n_threads == 0)
        o.n_threads = env_threads();
#if defined(FASA_OPENMP) && FASA_OPENMP
    /* More threads than CPUs only oversubscribe: clamp (fasa.h). */
    long cpus = online_cpus();
    if (o.n_threads > cpus)
        o.n_threads = (int32_t)cpus;
    if (o.n_threads > FASA_MAX_THREADS)
        o.n_threads = FASA_MAX_THREADS;
#else
    o.n_threads = 1; /* documented: >1 needs an OpenMP build */
#endif
    /* Store the level the dispatcher will really use, so that the context
     * and fasa_kernel_name agree (an unsupported level falls down its chain,
     * e.g. AVX-512 -> AVX2 -> scalar; NEON -> scalar on x86). */
    o.cpu_level = fasa__level_resolve(o.cpu_level);

    fasa_ctx *ctx = malloc(sizeof *ctx);
    if (ctx == NULL)
        return FASA_ERR_OUT_OF_MEMORY;
    ctx->options = o;
    ctx->fn = NULL;
    ctx->last_error[0] = '\0';
    *out = ctx;
    return FASA_OK;
}

FASA_API void fasa_ctx_destroy(fasa_ctx *ctx) { free(ctx); }

FASA_API const char *fasa_ctx_last_error(const fasa_ctx *ctx)
{
    return ctx != NULL ? ctx->last_error : "";
}

FASA_API int fasa_ctx_threads(const fasa_ctx *ctx) { return fasa__threads(ctx); }

FASA_API int fasa_ctx_cpu_level(const fasa_ctx *ctx)
{
    return ctx != NULL ? ctx->options.cpu_level : fasa_cpu_best_level();
}
