/*
 * predict.h - the parts of token importance prediction (TIP) shared by
 * fasa_predict (predict.c, keys from a view) and fasa_predict_cached
 * (predict_cached.c, keys from a label cache).
 *
 * A call goes: fasa__predict_prepare (validation into a plan) -> the caller's
 * own checks of its key source (fasa__predict_outputs_overlap) ->
 * fasa__predict_carve (workspace) -> per (query i, set s):
 * fasa__predict_weights, scoring, fasa__predict_select.
 * Include after internal.h.
 */
#ifndef FASA_PREDICT_H
#define FASA_PREDICT_H

/* Everything a validated predict call needs to know about its shapes. */
typedef struct fasa__predict_plan {
    const fasa_profile *profile;
    size_t layer;
    int mode;          /* fasa_gqa_mode                                    */
    size_t n_q;        /* query tokens                                     */
    size_t n_q_heads;  /* Hq                                               */
    size_t n_kv_heads; /* Hkv                                              */
    size_t group;      /* G = Hq / Hkv                                     */
    size_t head_dim;
    size_t t;          /* cached tokens                                    */
    size_t n_sets;     /* index sets per query: Hq (PER_HEAD) or Hkv       */
    double budget;     /* validated                                        */
    size_t max_selected; /* fasa_predict_max_selected(budget, t)           */
    size_t index_stride;
    size_t workers;    /* scratch slots carved from the workspace          */
} fasa__predict_plan;

/* Scratch of one worker, every array 64-byte aligned. */
typedef struct fasa__predict_scratch {
    float *weights;    /* [G][head_dim]: weights of up to G sets at a time  */
    uint32_t *dims;    /* [G][head_dim]: their key dims                     */
    float *scores;     /* [Hq][score_stride]: score rows of t, SHARED by all
                          slots (row s = set s of the query in progress)    */
    size_t score_stride; /* floats between score rows, >= t, multiple of 16 */
    void *topk;        /* fasa__topk_scratch_size(t, t) bytes               */
} fasa__predict_scratch;

/* Visible keys of query i: t - n_q + i + 1 (bottom-right causal alignment). */
static inline size_t fasa__predict_t_i(const fasa__predict_plan *plan, size_t i)
{
    return plan->t - plan->n_q + i + 1;
}

/* Scratch slots a call with ctx uses (one per thread). The only place where
 * threading enlarges the predict workspace. */
size_t fasa__predict_workers(const fasa_ctx *ctx);

/* Bytes of one worker's own scratch (a multiple of 64) for G = group,
 * head_dim d and t tokens; 0 on overflow. */
size_t fasa__predict_worker_bytes(size_t group, size_t head_dim, size_t t);

/* Workspace bytes for `workers` slots plus the shared score rows
 * [n_rows = Hq][t] (scoring is split over token chunks, so rows outlive the
 * item that writes them), including the slack that aligns an unaligned
 * workspace pointer; FASA_ERR_OVERFLOW through ctx on overflow. */
fasa_status fasa__predict_workspace_bytes(fasa_ctx *ctx, size_t group, size_t head_dim,
                                          size_t n_rows, size_t t, size_t workers, size_t *bytes);

/* Validate everything that does not depend on where the keys come from and
 * fill *plan. The caller has already validated its key source and passes its
 * token count t and KV head count; q is validated here (view, shape against
 * t / n_kv_heads, finiteness), as are profile/layer/mode, budget,
 * index_stride, the output pointers (scores may be NULL), overlaps among the
 * outputs, the workspace and q, and the workspace size (for
 * fasa__predict_workers(ctx) slots). ctx receives the message on failure. */
fasa_status fasa__predict_prepare(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                  int mode, const fasa_view *q, size_t t, size_t n_kv_heads,
                                  double budget, const uint32_t *indices, size_t index_stride,
                                  const uint32_t *counts, const float *scores,
                                  const void *workspace, size_t workspace_size,
                                  fasa__predict_plan *plan);

/* 1 when indices, counts, scores (may be NULL) or the workspace overlap the
 * byte range [p, p + bytes): the caller checks its key source with this. */
int fasa__predict_outputs_overlap(const fasa__predict_plan *plan, const uint32_t *indices,
                                  const uint32_t *counts, const float *scores,
                                  const void *workspace, size_t workspace_size, const void *p,
                                  size_t bytes);

/* Scratch slot `worker` (< plan->workers) of a workspace that passed
 * fasa__predict_prepare. */
void fasa__predict_carve(const fasa__predict_plan *plan, void *workspace, size_t worker,
                         fasa__predict_scratch *scratch);

/* Scoring weights of set s of query i: writes n key dims into dims[] and
 * their weights into w[] (n <= head_dim, returned), two per dominant FC in
 * the profile's FC order, dims from fasa__fc_dims with the profile's pair
 * layout. PER_HEAD: set s is query head s and w = q[i][s][dims].
 * GROUP_SHARED: set s is KV head s, FCs of the group, and w is the sum of
 * q[i][h][dims] over the group's query heads h = s*G .. s*G+G-1, added in
 * ascending h in fp32. */
size_t fasa__predict_weights(const fasa__predict_plan *plan, const fasa_view *q, size_t i,
                             size_t s, uint32_t *dims, float *w);

/* Finish set (i, s) from its scores row[0 .. t_i): select the top
 * fasa__budget_count(budget, t_i) with kern->topk into
 * indices[(i*n_sets + s)*index_stride ...] (ascending), write the count, and,
 * when scores_out is non-NULL, copy the row into
 * scores_out[((i*n_sets + s)*t) ...] with -INFINITY for positions >= t_i.
 * topk_scratch: fasa__topk_scratch_size(t, t) bytes, 64-byte aligned. */
void fasa__predict_select(const fasa__predict_plan *plan, const fasa__kernels *kern, size_t i,
                          size_t s, const float *row, uint32_t *indices, uint32_t *counts,
                          float *scores_out, void *topk_scratch);

#endif
