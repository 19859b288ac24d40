/*
 * internal.h - declarations shared by the library's translation units.
 * Not installed. Names shared between files start with fasa__ and are never
 * exported (the build uses -fvisibility=hidden; only FASA_API is default).
 */
#ifndef FASA_INTERNAL_H
#define FASA_INTERNAL_H

#ifdef FASA_H_7F3C19A2
#error "include internal.h before fasa.h so FASA_API gets default visibility"
#endif
#if defined(__GNUC__) || defined(__clang__)
#define FASA_API __attribute__((visibility("default")))
#else
#define FASA_API
#endif

#include "fasa.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FASA_TILE 64 /* tokens per label-cache tile and per attention block */

/* ---------------------------------------------------------------- context */

struct fasa_ctx {
    fasa_ctx_options options; /* validated: n_threads >= 1, cpu_level resolved */
    const char *fn;           /* public function in progress (message prefix)  */
    char last_error[320];
};

/* Record a failure: sets ctx->last_error (if ctx) and returns status.
 * printf-style detail, e.g. FASA_FAIL(ctx, FASA_ERR_BAD_STRIDE, "k: token_stride %zu < %zu", a, b) */
fasa_status fasa__fail(fasa_ctx *ctx, fasa_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Clear ctx->last_error at the start of a public call. */
void fasa__clear_error(fasa_ctx *ctx);
/* Start public call `fn`: clears the message; later messages are
 * prefixed "fn: ". */
void fasa__enter(fasa_ctx *ctx, const char *fn);

/* The struct_size rule of appendable input structs (fasa.h): at least the
 * `known` bytes of this library's version; bytes past them must be zero. */
fasa_status fasa__struct_ok(fasa_ctx *ctx, const void *s, size_t struct_size, size_t known,
                            const char *name);
/* The rule for output structs: at least `known`; fill the caller's tail
 * past it with zeros. Returns FASA_ERR_INVALID_ARGUMENT when too small. */
fasa_status fasa__struct_out(void *s, size_t struct_size, size_t known);

/* Effective thread count / CPU level of a possibly-NULL ctx. */
int fasa__threads(const fasa_ctx *ctx);
int fasa__level(const fasa_ctx *ctx);

/* ------------------------------------------------------------ arithmetic */

/* a*b into *out; returns 0 on overflow. */
static inline int fasa__mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}
static inline int fasa__add_ok(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 0;
    *out = a + b;
    return 1;
}

static inline size_t fasa__align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* ------------------------------------------------------ element formats */

static inline float fasa__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest even; overflow to Inf; NaN stays NaN (quiet). */
static inline uint16_t fasa__f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* Inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below the smallest normal half: subnormal or 0 */
        if (ax < 0x33000000u) /* < 2^-25: rounds to 0 */
            return (uint16_t)sign;
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14 + (113 - e) - 1 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u; /* rebias 127->15 */
    return (uint16_t)(sign | (r >> 13));
}

static inline float fasa__bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t fasa__f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* Element formats. F32/F16/BF16 have a size per element; the block
 * formats Q8_0/Q4_0 (fasa.h) hold 32 elements in 34 / 18 bytes, an f16
 * scale d first, and are addressed per block: the element offsets of a
 * valid quantized view (strides, head_dim) are multiples of FASA_QBLOCK, so
 * a row starts at byte (offset / 32) * block bytes. Byte arithmetic goes
 * through fasa__bytes, element reads through fasa__load / fasa__row_to_f32;
 * dequantized values d*q are exact in f32 (an 11-bit by <= 8-bit product). */
#define FASA_QBLOCK 32
#define FASA__N_DTYPES 5 /* FASA_DTYPE_F32 .. FASA_DTYPE_Q4_0 */

static inline int fasa__dtype_known(int32_t dtype) { return dtype >= 0 && dtype < FASA__N_DTYPES; }
static inline int fasa__dtype_quant(int32_t dtype)
{
    return dtype == FASA_DTYPE_Q8_0 || dtype == FASA_DTYPE_Q4_0;
}
/* Bytes per block of a quantized dtype (0 for the others). */
static inline size_t fasa__qblock_bytes(int32_t dtype)
{
    return dtype == FASA_DTYPE_Q8_0 ? 34 : dtype == FASA_DTYPE_Q4_0 ? 18 : 0;
}
/* Bytes per element of F32/F16/BF16; 0 for block formats, which have no
 * size per element (use fasa__bytes). */
static inline size_t fasa__dtype_size(int32_t dtype)
{
    return dtype == FASA_DTYPE_F32 ? 4 : dtype == FASA_DTYPE_F16 || dtype == FASA_DTYPE_BF16 ? 2 : 0;
}
/* Bytes of n elements that start on a block boundary: the byte offset of
 * element offset n, or the size of an n-element row (quantized: n is a
 * multiple of FASA_QBLOCK in every valid use). The one place where element
 * counts become bytes. */
static inline size_t fasa__bytes(int32_t dtype, size_t n)
{
    if (fasa__dtype_quant(dtype))
        return n / FASA_QBLOCK * fasa__qblock_bytes(dtype);
    return n * fasa__dtype_size(dtype);
}

/* The f16 scale of the quant block at b (any alignment), as float. */
static inline float fasa__qscale(const unsigned char *b)
{
    uint16_t h;
    memcpy(&h, b, sizeof h);
    return fasa__f16_to_f32(h);
}

/* Element i of a row (or buffer) of the given dtype that starts at p (on
 * a block boundary for block formats), as float. */
static inline float fasa__load(const void *p, int32_t dtype, size_t i)
{
    switch (dtype) {
    case FASA_DTYPE_F16: return fasa__f16_to_f32(((const uint16_t *)p)[i]);
    case FASA_DTYPE_BF16: return fasa__bf16_to_f32(((const uint16_t *)p)[i]);
    case FASA_DTYPE_Q8_0: {
        const unsigned char *b = (const unsigned char *)p + i / FASA_QBLOCK * 34;
        return fasa__qscale(b) * (float)(int8_t)b[2 + i % FASA_QBLOCK];
    }
    case FASA_DTYPE_Q4_0: {
        const unsigned char *b = (const unsigned char *)p + i / FASA_QBLOCK * 18;
        unsigned j = (unsigned)(i % FASA_QBLOCK), byte = b[2 + (j & 15u)];
        return fasa__qscale(b) * (float)((int)(j < 16 ? byte & 15u : byte >> 4) - 8);
    }
    default: return ((const float *)p)[i];
    }
}
/* Store element i (F32/F16/BF16 only: outputs are never quantized). */
static inline void fasa__store(void *p, int32_t dtype, size_t i, float x)
{
    switch (dtype) {
    case FASA_DTYPE_F16: ((uint16_t *)p)[i] = fasa__f32_to_f16(x); break;
    case FASA_DTYPE_BF16: ((uint16_t *)p)[i] = fasa__f32_to_bf16(x); break;
    default: ((float *)p)[i] = x; break;
    }
}

/* dst[i] = element i of the row at p, i < n, exactly (f16/bf16 widened,
 * quant blocks dequantized; n a multiple of FASA_QBLOCK for block
 * formats). For the label cache and other per-row readers of K. */
void fasa__row_to_f32(const void *row, int32_t dtype, size_t n, float *dst);

/* Address of row (token, head) of a validated view. */
static inline const void *fasa__row(const fasa_view *v, size_t token, size_t head)
{
    return (const char *)v->data + fasa__bytes(v->dtype, token * v->token_stride + head * v->head_stride);
}

/* --------------------------------------------------------- FC <-> dims */

/* The two head dims of FC f for a pair layout (d = head_dim, even). */
static inline void fasa__fc_dims(int32_t layout, size_t d, size_t f, uint32_t *d0, uint32_t *d1)
{
    if (layout == FASA_PAIRS_HALF) {
        *d0 = (uint32_t)f;
        *d1 = (uint32_t)(f + d / 2);
    } else { /* INTERLEAVED and ADJACENT group the same dims */
        *d0 = (uint32_t)(2 * f);
        *d1 = (uint32_t)(2 * f + 1);
    }
}

#include "view.h"
#include "profile.h"
#include "kernels.h"

#endif /* FASA_INTERNAL_H */
