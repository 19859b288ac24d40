/*
 * test_views.c - fasa_view_make and fasa_view_validate: the real cache
 * layouts are accepted, every malformed view is rejected with its status;
 * quantized (Q8_0 / Q4_0) views follow the block alignment rule.
 */
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static float g_buf[64];

static fasa_view mk(int dtype, size_t t, size_t h, size_t d, size_t ts, size_t hs)
{
    fasa_view v;
    memset(&v, 0, sizeof v);
    fasa_view_make(&v, g_buf, (fasa_dtype)dtype, t, h, d, ts, hs);
    return v;
}

/* Validate with a context; the message must be empty exactly on success. */
static void expect(fasa_ctx *ctx, const char *name, const fasa_view *v, fasa_status want,
                   fasa_status alt)
{
    fasa_status st = fasa_view_validate(ctx, v);
    CHECKF(st == want || st == alt, "%s: got %s, want %s", name, fasa_status_name(st),
           fasa_status_name(want));
    const char *msg = fasa_ctx_last_error(ctx);
    if (st == FASA_OK)
        CHECKF(msg[0] == '\0', "%s: message after success '%s'", name, msg);
    else
        CHECKF(msg[0] != '\0', "%s: empty message after failure", name);
    /* without a context the status must be the same */
    CHECKF(fasa_view_validate(NULL, v) == st, "%s: status differs without ctx", name);
}

static void test_make(void)
{
    fasa_view v;
    memset(&v, 0x77, sizeof v);
    const int data = 0;
    CHECK_STATUS(fasa_view_make(&v, &data, FASA_DTYPE_BF16, 10, 3, 64, 192, 64), FASA_OK);
    CHECK(v.struct_size == sizeof(fasa_view));
    CHECK(v.data == (const void *)&data);
    CHECK(v.dtype == FASA_DTYPE_BF16 && v.kind == 0);
    CHECK(v.n_tokens == 10 && v.n_heads == 3 && v.head_dim == 64);
    CHECK(v.token_stride == 192 && v.head_stride == 64);
    CHECK_STATUS(fasa_view_make(NULL, &data, FASA_DTYPE_F32, 1, 1, 1, 1, 1), FASA_ERR_NULL_POINTER);
    /* make does no validation beyond NULL */
    CHECK_STATUS(fasa_view_make(&v, NULL, (fasa_dtype)9, 0, 0, 0, 0, 0), FASA_OK);
    CHECK(v.data == NULL && v.dtype == 9 && v.n_tokens == 0);
}

static void test_accept(fasa_ctx *ctx)
{
    const size_t t = 100, h = 8, d = 128, max_t = 4096;
    fasa_view v;
    v = mk(FASA_DTYPE_F16, t, h, d, h * d, d);
    expect(ctx, "llama.cpp token-major", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, t, h, d, d, t * d);
    expect(ctx, "head-major", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_BF16, t, h, d, d, max_t * d);
    expect(ctx, "HF [heads, max_tokens, dim] padded", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, t, h, d, h * (d + 3) + 7, d + 3);
    expect(ctx, "token-major with padding", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, 1, 1, d, 0, 0);
    expect(ctx, "single row, zero strides", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, 1, 4, d, 0, d);
    expect(ctx, "one token, token_stride 0", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, 5, 1, d, d, 0);
    expect(ctx, "one head, head_stride 0", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, 3, 2, 2, 5, 2);
    expect(ctx, "rows interleaved without overlap", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F32, 2, 2, 1, 1, 2);
    expect(ctx, "head_dim 1, head-major", &v, FASA_OK, FASA_OK);
    v = mk(FASA_DTYPE_F16, 7, 3, 2, 2, 14);
    expect(ctx, "head_stride exactly t*d", &v, FASA_OK, FASA_OK);
}

static void test_reject(fasa_ctx *ctx)
{
    const size_t t = 100, h = 8, d = 128;
    fasa_view v;
    expect(ctx, "NULL view", NULL, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    v = mk(FASA_DTYPE_F32, t, h, d, h * d, d);
    v.data = NULL;
    expect(ctx, "NULL data", &v, FASA_ERR_NULL_POINTER, FASA_ERR_NULL_POINTER);
    v = mk(FASA_DTYPE_F32, t, h, d, h * d, d);
    v.struct_size = 0;
    expect(ctx, "struct_size 0", &v, FASA_ERR_INVALID_ARGUMENT, FASA_ERR_INVALID_ARGUMENT);
    v.struct_size = sizeof(fasa_view) - 8;
    expect(ctx, "struct_size too small", &v, FASA_ERR_INVALID_ARGUMENT, FASA_ERR_INVALID_ARGUMENT);
    v = mk(FASA_DTYPE_F32, t, h, d, h * d, d);
    v.kind = 1;
    /* the header reserves kind values without naming the status */
    expect(ctx, "kind 1", &v, FASA_ERR_INVALID_ARGUMENT, FASA_ERR_UNSUPPORTED);
    v = mk(FASA_DTYPE_F32, t, h, d, h * d, d);
    v.dtype = 5;
    expect(ctx, "dtype 5", &v, FASA_ERR_BAD_DTYPE, FASA_ERR_BAD_DTYPE);
    v.dtype = -1;
    expect(ctx, "dtype -1", &v, FASA_ERR_BAD_DTYPE, FASA_ERR_BAD_DTYPE);
    v = mk(FASA_DTYPE_F32, 0, h, d, h * d, d);
    expect(ctx, "n_tokens 0", &v, FASA_ERR_ZERO_SIZE, FASA_ERR_ZERO_SIZE);
    v = mk(FASA_DTYPE_F32, t, 0, d, h * d, d);
    expect(ctx, "n_heads 0", &v, FASA_ERR_ZERO_SIZE, FASA_ERR_ZERO_SIZE);
    v = mk(FASA_DTYPE_F32, t, h, 0, h * d, d);
    expect(ctx, "head_dim 0", &v, FASA_ERR_ZERO_SIZE, FASA_ERR_ZERO_SIZE);
    v = mk(FASA_DTYPE_F32, t, 1, d, d - 1, 0);
    expect(ctx, "token_stride < head_dim", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, t, 2, d, 2 * d, 0);
    expect(ctx, "head_stride 0 with 2 heads", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, t, 2, d, d, d);
    expect(ctx, "token_stride == head_stride, 2 heads", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, t, h, d, h * d - 1, d);
    expect(ctx, "token-major token_stride one short", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, t, h, d, d, (t - 1) * d);
    expect(ctx, "head-major head_stride one token short", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, t, h, d, h * d, d - 1);
    expect(ctx, "head_stride < head_dim", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, t, 1, d, 0, 0);
    expect(ctx, "token_stride 0 with many tokens", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, 3, 2, 2, 3, 2);
    expect(ctx, "interleaved rows overlapping", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
    v = mk(FASA_DTYPE_F32, SIZE_MAX / 2, 1, 4, 4, 0);
    expect(ctx, "extent overflows size_t", &v, FASA_ERR_OVERFLOW, FASA_ERR_OVERFLOW);
    v = mk(FASA_DTYPE_F32, SIZE_MAX / 4 + 2, 1, 1, 1, 0);
    expect(ctx, "byte size overflows size_t", &v, FASA_ERR_OVERFLOW, FASA_ERR_OVERFLOW);
    v = mk(FASA_DTYPE_F16, 2, 2, 4, SIZE_MAX / 2, 4);
    expect(ctx, "huge token_stride", &v, FASA_ERR_OVERFLOW, FASA_ERR_OVERFLOW);
}

/* Quantized views: llama.cpp's q8_0 / q4_0 caches are accepted; head_dim
 * or a stride of a dimension > 1 off the 32-element block is MISALIGNED,
 * with a message naming the field and its value. */
static void test_quant(fasa_ctx *ctx)
{
    const size_t t = 100, h = 8, d = 128, max_t = 4096;
    fasa_view v;
    for (int dt = FASA_DTYPE_Q8_0; dt <= FASA_DTYPE_Q4_0; dt++) {
        v = mk(dt, t, h, d, h * d, d);
        expect(ctx, "quant llama.cpp token-major", &v, FASA_OK, FASA_OK);
        v = mk(dt, t, h, d, d, max_t * d);
        expect(ctx, "quant head-major padded", &v, FASA_OK, FASA_OK);
        v = mk(dt, t, h, 64, h * 96 + 32, 96);
        expect(ctx, "quant padded rows", &v, FASA_OK, FASA_OK);
        v = mk(dt, 1, 1, 32, 7, 5);
        expect(ctx, "quant single row, odd strides ignored", &v, FASA_OK, FASA_OK);
        static const struct {
            const char *what, *field;
            size_t n_t, n_h, d, ts, hs;
        } bad[] = {
            {"quant head_dim 80", "head_dim 80", 4, 2, 80, 160, 80},
            {"quant head_dim 16", "head_dim 16", 4, 1, 16, 32, 0},
            {"quant token_stride 1000", "token_stride 1000", 4, 2, 128, 1000, 128},
            {"quant head_stride 144", "head_stride 144", 4, 2, 128, 2 * 160, 144},
            {"quant token_stride 1 block + 1", "token_stride 33", 3, 1, 32, 33, 0},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            v = mk(dt, bad[i].n_t, bad[i].n_h, bad[i].d, bad[i].ts, bad[i].hs);
            expect(ctx, bad[i].what, &v, FASA_ERR_MISALIGNED, FASA_ERR_MISALIGNED);
            const char *msg = fasa_ctx_last_error(ctx);
            CHECKF(strstr(msg, "misaligned quant blocks") && strstr(msg, bad[i].field) &&
                       strstr(msg, dt == FASA_DTYPE_Q8_0 ? "Q8_0" : "Q4_0"),
                   "%s: message '%s'", bad[i].what, msg);
        }
        /* the block rule comes after the overlap-free sizes, before overlap */
        v = mk(dt, t, h, d, h * d, d);
        v.token_stride = 32;
        expect(ctx, "quant rows overlap", &v, FASA_ERR_BAD_STRIDE, FASA_ERR_BAD_STRIDE);
        v = mk(dt, SIZE_MAX / 64, 2, 32, 32, 32 * (SIZE_MAX / 64));
        expect(ctx, "quant extent overflows", &v, FASA_ERR_OVERFLOW, FASA_ERR_OVERFLOW);
    }
}

int main(void)
{
    test_init("test_views");
    fasa_ctx *ctx = NULL;
    CHECK_STATUS(fasa_ctx_create(NULL, &ctx), FASA_OK);
    test_make();
    test_accept(ctx);
    test_reject(ctx);
    test_quant(ctx);
    fasa_ctx_destroy(ctx);
    return test_summary();
}
