/*
 * ctx.c - fasa_ctx (options + last error) and the error helpers every public
 * call uses.
 */
#include "internal.h"
#include "levels.h"

#include <stdio.h>
#include <stdlib.h>

/* Upper bound on threads per call: keeps workspace sizes (which grow with
 * the thread count) sane when a caller passes a wild value. */
#define FASA_MAX_THREADS 1024

void fasa__clear_error(fasa_ctx *ctx)
{
    if (ctx != NULL)
        ctx->last_error[0] = '\0';
}

fasa_status fasa__fail(fasa_ctx *ctx, fasa_status status, const char *fmt, ...)
{
    if (ctx != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
        va_end(ap);
    }
    return status;
}

int fasa__threads(const fasa_ctx *ctx)
{
    return ctx != NULL ? ctx->options.n_threads : 1;
}

int fasa__level(const fasa_ctx *ctx)
{
    return ctx != NULL ? ctx->options.cpu_level : FASA_CPU_AUTO;
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
        if (options->struct_size != sizeof(fasa_ctx_options))
            return FASA_ERR_INVALID_ARGUMENT;
        if (options->n_threads < 0)
            return FASA_ERR_INVALID_ARGUMENT;
        if (options->cpu_level < FASA_CPU_AUTO || options->cpu_level >= FASA__N_LEVELS)
            return FASA_ERR_INVALID_ARGUMENT;
        o = *options;
    }
    if (o.n_threads == 0)
        o.n_threads = 1;
#if defined(FASA_OPENMP) && FASA_OPENMP
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
