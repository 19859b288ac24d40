/*
 * view.h - validation of caller views and shared shape checks (view.c).
 * Every public entry point validates its arguments with these before it
 * touches caller memory; kernels assume validated input.
 */
#ifndef FASA_VIEW_H
#define FASA_VIEW_H

/* Validate one view. `name` ("q", "k", "v", "out") prefixes the message
 * and is the view's role: quantized dtypes are refused for "q" and "out"
 * (FASA_ERR_BAD_DTYPE). Checks: non-NULL, struct_size, kind 0, known dtype,
 * sizes > 0, quantized: head_dim and strides of dimensions > 1 multiples
 * of FASA_QBLOCK (FASA_ERR_MISALIGNED), extent (last element offset) fits
 * size_t and the byte size fits, rows of distinct (token, head) do not
 * overlap. */
fasa_status fasa__check_view(fasa_ctx *ctx, const fasa_view *v, const char *name);
/* The same; with need_data = 0 a NULL data pointer is accepted (a plan's
 * view whose data comes at execution). */
fasa_status fasa__check_view_ex(fasa_ctx *ctx, const fasa_view *v, const char *name, int need_data);

/* First and one-past-last byte a valid view spans. */
void fasa__view_span(const fasa_view *v, const char **begin, const char **end);

/* 1 when the byte spans of two valid views intersect (conservative). */
int fasa__views_overlap(const fasa_view *a, const fasa_view *b);
int fasa__span_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes);

/* Shape check shared by predict/attend/decode_step: q [n_q][Hq][d],
 * k [t][Hkv][d], optional v [t][Hkv][dv]; Hkv divides Hq; n_q <= t;
 * t < 2^32 (indices are uint32_t). */
fasa_status fasa__check_qkv(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                            const fasa_view *v);

/* Every view of an attention call (fasa__check_view each, then
 * fasa__check_qkv, then out [n_q][Hq][head_dim_v]): what fasa_attend,
 * fasa_attend_dense and fasa_decode_step check first. */
fasa_status fasa__check_attn_views(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                   const fasa_view *v, const fasa_view *out);

/* Resolve a budget for t_i visible tokens (see fasa.h); 0 = invalid budget. */
size_t fasa__budget_count(double budget, size_t t_i);

#endif
