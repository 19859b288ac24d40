/*
 * view.c - validation of caller views, byte spans for aliasing checks, the
 * q/k/v shape rule and the budget rule.
 */
#include "internal.h"

FASA_API fasa_status fasa_view_make(fasa_view *view, const void *data, fasa_dtype dtype,
                                    size_t n_tokens, size_t n_heads, size_t head_dim,
                                    size_t token_stride, size_t head_stride)
{
    if (view == NULL)
        return FASA_ERR_NULL_POINTER;
    memset(view, 0, sizeof *view);
    view->struct_size = sizeof *view;
    /* The cast drops const: input views are never written (fasa.h). */
    view->data = (void *)(uintptr_t)data;
    view->dtype = (int32_t)dtype;
    view->kind = 0;
    view->n_tokens = n_tokens;
    view->n_heads = n_heads;
    view->head_dim = head_dim;
    view->token_stride = token_stride;
    view->head_stride = head_stride;
    return FASA_OK;
}

/* Element offset of the last element; 0 when it overflows size_t. */
static int last_offset(const fasa_view *v, size_t *off)
{
    size_t a, b, s;
    if (!fasa__mul_ok(v->n_tokens - 1, v->token_stride, &a) ||
        !fasa__mul_ok(v->n_heads - 1, v->head_stride, &b) || !fasa__add_ok(a, b, &s) ||
        !fasa__add_ok(s, v->head_dim - 1, off))
        return 0;
    return 1;
}

static const char *quant_name(int32_t dtype) { return dtype == FASA_DTYPE_Q8_0 ? "Q8_0" : "Q4_0"; }

/* The rules of quantized views (fasa.h): K and V only (the view's name is
 * its role: "q" and "out" are refused), whole blocks per row, rows on
 * block boundaries. */
static fasa_status check_quant(fasa_ctx *ctx, const fasa_view *v, const char *name)
{
    if (strcmp(name, "q") == 0 || strcmp(name, "out") == 0)
        return fasa__fail(ctx, FASA_ERR_BAD_DTYPE,
                          "%s: dtype %s is a quantized KV-cache format; only k and v views may "
                          "be quantized (%s must be F32, F16 or BF16)",
                          name, quant_name(v->dtype), name);
    const char *what = NULL;
    size_t val = 0;
    if (v->head_dim % FASA_QBLOCK != 0)
        what = "head_dim", val = v->head_dim;
    else if (v->n_tokens > 1 && v->token_stride % FASA_QBLOCK != 0)
        what = "token_stride", val = v->token_stride;
    else if (v->n_heads > 1 && v->head_stride % FASA_QBLOCK != 0)
        what = "head_stride", val = v->head_stride;
    if (what != NULL)
        return fasa__fail(ctx, FASA_ERR_MISALIGNED,
                          "%s: misaligned quant blocks: %s %zu is not a multiple of the "
                          "%d-element %s block",
                          name, what, val, FASA_QBLOCK, quant_name(v->dtype));
    return FASA_OK;
}

fasa_status fasa__check_view(fasa_ctx *ctx, const fasa_view *v, const char *name)
{
    return fasa__check_view_ex(ctx, v, name, 1);
}

fasa_status fasa__check_view_ex(fasa_ctx *ctx, const fasa_view *v, const char *name, int need_data)
{
    if (v == NULL)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "%s: view pointer is NULL", name);
    fasa_status st = fasa__struct_ok(ctx, v, v->struct_size, sizeof *v, name);
    if (st != FASA_OK)
        return st;
    if (v->kind != 0)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "%s: kind %d is not 0 (strided)", name,
                          (int)v->kind);
    if (v->data == NULL && need_data)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "%s: data is NULL", name);
    if (!fasa__dtype_known(v->dtype))
        return fasa__fail(ctx, FASA_ERR_BAD_DTYPE, "%s: unknown dtype %d", name, (int)v->dtype);
    if (v->n_tokens == 0 || v->n_heads == 0 || v->head_dim == 0)
        return fasa__fail(ctx, FASA_ERR_ZERO_SIZE,
                          "%s: n_tokens %zu, n_heads %zu, head_dim %zu must all be > 0", name,
                          v->n_tokens, v->n_heads, v->head_dim);
    if (fasa__dtype_quant(v->dtype) && (st = check_quant(ctx, v, name)) != FASA_OK)
        return st;

    size_t off, bytes;
    if (!last_offset(v, &off) || !fasa__add_ok(off, 1, &bytes) ||
        !fasa__mul_ok(bytes, fasa__dtype_quant(v->dtype) ? 2 : fasa__dtype_size(v->dtype), &bytes) ||
        bytes > (size_t)PTRDIFF_MAX || (uintptr_t)v->data > UINTPTR_MAX - bytes)
        return fasa__fail(ctx, FASA_ERR_OVERFLOW,
                          "%s: extent of %zu tokens x token_stride %zu + %zu heads x head_stride "
                          "%zu + head_dim %zu overflows",
                          name, v->n_tokens, v->token_stride, v->n_heads, v->head_stride,
                          v->head_dim);

    /* Distinct (token, head) rows must not overlap. A dimension of size 1
     * has no second row, so its stride is irrelevant. Sort the remaining
     * (stride, count) pairs by stride: the inner one must step over a whole
     * row, the outer one over all inner rows. */
    size_t s_in = 0, c_in = 1, s_out = 0, c_out = 1;
    if (v->n_tokens > 1) {
        s_in = v->token_stride;
        c_in = v->n_tokens;
    }
    if (v->n_heads > 1) {
        if (c_in == 1 || v->head_stride < s_in) {
            s_out = s_in;
            c_out = c_in;
            s_in = v->head_stride;
            c_in = v->n_heads;
        } else {
            s_out = v->head_stride;
            c_out = v->n_heads;
        }
    }
    if (c_in > 1 && s_in < v->head_dim)
        return fasa__fail(ctx, FASA_ERR_BAD_STRIDE,
                          "%s: rows overlap: stride %zu < head_dim %zu (token_stride %zu, "
                          "head_stride %zu)",
                          name, s_in, v->head_dim, v->token_stride, v->head_stride);
    if (c_out > 1) {
        /* Cannot overflow: bounded by the extent checked above. */
        size_t need = s_in * (c_in - 1) + v->head_dim;
        if (s_out < need)
            return fasa__fail(ctx, FASA_ERR_BAD_STRIDE,
                              "%s: rows overlap: stride %zu < %zu needed to step over %zu rows of "
                              "stride %zu (token_stride %zu, head_stride %zu)",
                              name, s_out, need, c_in, s_in, v->token_stride, v->head_stride);
    }
    return FASA_OK;
}

FASA_API fasa_status fasa_view_validate(fasa_ctx *ctx, const fasa_view *view)
{
    fasa__clear_error(ctx);
    return fasa__check_view(ctx, view, "view");
}

void fasa__view_span(const fasa_view *v, const char **begin, const char **end)
{
    size_t off = 0;
    last_offset(v, &off);
    *begin = (const char *)v->data;
    *end = *begin + fasa__bytes(v->dtype, off + 1);
}

int fasa__span_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes)
{
    if (a == NULL || b == NULL || a_bytes == 0 || b_bytes == 0)
        return 0;
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

int fasa__views_overlap(const fasa_view *a, const fasa_view *b)
{
    const char *a0, *a1, *b0, *b1;
    fasa__view_span(a, &a0, &a1);
    fasa__view_span(b, &b0, &b1);
    return fasa__span_overlap(a0, (size_t)(a1 - a0), b0, (size_t)(b1 - b0));
}

fasa_status fasa__check_qkv(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                            const fasa_view *v)
{
    if (k->head_dim != q->head_dim)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "k: head_dim %zu != q head_dim %zu",
                          k->head_dim, q->head_dim);
    if (q->n_heads % k->n_heads != 0)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "k: n_heads (Hkv) %zu does not divide q n_heads (Hq) %zu", k->n_heads,
                          q->n_heads);
    if (k->n_tokens > UINT32_MAX)
        return fasa__fail(ctx, FASA_ERR_OVERFLOW, "k: n_tokens %zu exceeds the uint32 index range",
                          k->n_tokens);
    if (q->n_tokens > k->n_tokens)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "q: n_tokens %zu > k n_tokens %zu (queries are the last cached tokens)",
                          q->n_tokens, k->n_tokens);
    if (v != NULL) {
        if (v->n_tokens != k->n_tokens)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "v: n_tokens %zu != k n_tokens %zu",
                              v->n_tokens, k->n_tokens);
        if (v->n_heads != k->n_heads)
            return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "v: n_heads %zu != k n_heads %zu",
                              v->n_heads, k->n_heads);
    }
    return FASA_OK;
}

size_t fasa__budget_count(double budget, size_t t_i)
{
    if (!(budget > 0.0) || !isfinite(budget))
        return 0;
    if (budget >= 1.0) {
        /* Compare in double first: floor(budget) may not fit size_t. */
        if (budget >= (double)t_i)
            return t_i;
        size_t n = (size_t)budget;
        return n < t_i ? n : t_i;
    }
    size_t n = (size_t)floor((double)t_i * budget);
    if (n < 1)
        n = 1;
    return n < t_i ? n : t_i;
}

fasa_status fasa__check_attn_views(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                   const fasa_view *v, const fasa_view *out)
{
    fasa_status st;
    if ((st = fasa__check_view(ctx, q, "q")) != FASA_OK ||
        (st = fasa__check_view(ctx, k, "k")) != FASA_OK ||
        (st = fasa__check_view(ctx, v, "v")) != FASA_OK ||
        (st = fasa__check_view(ctx, out, "out")) != FASA_OK ||
        (st = fasa__check_qkv(ctx, q, k, v)) != FASA_OK)
        return st;
    if (out->n_tokens != q->n_tokens || out->n_heads != q->n_heads ||
        out->head_dim != v->head_dim)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "out: shape [%zu][%zu][%zu] != [n_q %zu][Hq %zu][head_dim_v %zu]",
                          out->n_tokens, out->n_heads, out->head_dim, q->n_tokens, q->n_heads,
                          v->head_dim);
    return FASA_OK;
}
