/*
 * kernels.h - the compute kernels behind the public calls, and their dispatch.
 *
 * Every operation has a scalar reference in src/ref/ (the specification) and
 * optional SIMD versions in src/x86/ and src/arm/, all with the same
 * signature. src/kernels.def lists every (op, level, function) triple; the
 * dispatcher (dispatch.c), the kernel tests and the benchmarks all read that
 * one list. Kernels assume validated arguments and never allocate.
 */
#ifndef FASA_KERNELS_H
#define FASA_KERNELS_H

/* TIP from a strided key view: for j < n,
 *   out[j] = sum_{c < n_dims} w[c] * k[j*token_stride + dims[c]]
 * k points at token 0 of one KV head; fp32 accumulation. Strides are in
 * elements (block formats: multiples of FASA_QBLOCK, see fasa__bytes). */
typedef void (*fasa__score_dims_fn)(const void *k, size_t token_stride, size_t n,
                                    const uint32_t *dims, size_t n_dims, const float *w,
                                    float *out);

/* One online-softmax pass of n_rows query rows that share the same tokens
 * (GQA group rows, or one row). For each listed token j (idx ? idx[i] :
 * first + i, i < n) and row r:
 *   s = q[r] . k_j  (q already multiplied by the softmax scale)
 *   m'[r] = max(m[r], s); acc[r] = acc[r]*exp(m[r]-m'[r]) + exp(s-m'[r]) v_j;
 *   l[r]  = l[r]*exp(m[r]-m'[r]) + exp(s-m'[r])
 * Callers start with m = -INFINITY, l = 0, acc = 0 and finish with
 * out = acc / l, lse = m + log(l). k / v point at token 0 of the KV head.
 * K and V may be any fasa_dtype, block formats included (then head_dim,
 * head_dim_v and the strides are multiples of FASA_QBLOCK; token j's row
 * is at fasa__bytes(dtype, j * stride)): values are dequantized exactly. */
typedef struct fasa__attn_job {
    const float *q;      /* [n_rows][q_stride], f32, pre-scaled */
    size_t n_rows;
    size_t q_stride;
    const void *k;
    size_t k_stride;     /* elements between tokens */
    int32_t k_dtype;
    const void *v;
    size_t v_stride;
    int32_t v_dtype;
    size_t head_dim;
    size_t head_dim_v;
    const uint32_t *idx; /* token list, or NULL for the range [first, first + n) */
    size_t first;
    size_t n;
    float *m;            /* [n_rows] running max   */
    float *l;            /* [n_rows] running sum   */
    float *acc;          /* [n_rows][acc_stride]   */
    size_t acc_stride;
    /* Optional prefetch hint, so that the work that runs next does not start
     * on cold memory: during its last block the job prefetches pf_n (<= 16)
     * spans, span j at pf_k + j * pf_kst (pf_kspan bytes) and at
     * pf_v + j * pf_vst (pf_vspan bytes), spread over the block. A stride
     * or span of 0 means the job's own (token stride, row size): then the
     * spans are the first pf_n rows of a job with the same strides. pf_n = 0:
     * none. Results never depend on the hint. */
    const void *pf_k;
    const void *pf_v;
    size_t pf_n;
    size_t pf_kst, pf_vst;     /* bytes */
    size_t pf_kspan, pf_vspan; /* bytes */
    /* Logit transform (all zero: none). For token j and row r, after the
     * dot product s (fasa__attn_logit):
     *   softcap > 0:  s = softcap * tanh(s / softcap)
     *   s += (slope ? slope[r] : 1) * b_j,
     *   b_j = mask ? mask[j] : slope ? j - qpos : 0,
     * mask being one row of f32 or f16 (mask_dtype) indexed by token, whose
     * -INFINITY entries hide the token. Kernels may compute tanh to within
     * a few ulp. */
    const void *mask;
    int32_t mask_dtype;
    float softcap;
    const float *slope;
    int64_t qpos;
} fasa__attn_job;

/* Whether a job transforms its logits at all. */
static inline int fasa__attn_has_logit_fn(const fasa__attn_job *job)
{
    return job->mask != NULL || job->slope != NULL || job->softcap > 0.0f;
}

/* The logit transform of row r and token tok (see fasa__attn_job). */
static inline float fasa__attn_logit(const fasa__attn_job *job, size_t r, size_t tok, float s)
{
    if (job->softcap > 0.0f)
        s = job->softcap * tanhf(s / job->softcap);
    float b = 0.0f;
    if (job->mask != NULL)
        b = job->mask_dtype == FASA_DTYPE_F16 ? fasa__f16_to_f32(((const uint16_t *)job->mask)[tok])
                                              : ((const float *)job->mask)[tok];
    else if (job->slope != NULL)
        b = (float)((int64_t)tok - job->qpos);
    if (b == -INFINITY)
        return -INFINITY; /* hidden, whatever the slope */
    return s + (job->slope != NULL ? job->slope[r] : 1.0f) * b;
}
typedef void (*fasa__attn_fn)(const fasa__attn_job *job);

/* Tiled attention of a block of queries (prefill). Rows r < n_q * group:
 * row r is head r % group (of the KV head's GQA group) of query r / group.
 * For each query b and each cell j of [first, first + n) that b sees
 * (begin[b] <= j < end[b], either array NULL = no bound) the rows of b get
 * the online-softmax update of fasa__attn_job with the logit transform of
 * fasa__attn_tile_logit (mask row b, slope[r % group], position qpos + b);
 * a -INFINITY logit hides the cell. State (m, l, acc) as in
 * fasa__attn_job: continued, not reset.
 * Kernels cut the cells into FASA_TILE-aligned tiles (absolute cell
 * index), convert each K/V tile to f32 once for all rows, and skip the
 * tiles a query does not see at all. Each row's arithmetic depends only on
 * its own visible cells and tile boundaries, never on the other rows, on
 * first / n beyond what the row sees, or on how the cells are split into
 * calls at tile boundaries: a row gives the same bits alone or in a block.
 * Hidden cells inside a processed tile weigh exactly 0 (their V rows are
 * multiplied by 0, as in fasa__attn_job's SIMD kernels). */
typedef struct fasa__attn_tile_job {
    const float *q;          /* [n_q * group][q_stride], f32, pre-scaled  */
    size_t n_q, group, q_stride;
    const void *k;           /* token 0 of the KV head                    */
    size_t k_stride;         /* elements between tokens                   */
    int32_t k_dtype;
    const void *v;
    size_t v_stride;
    int32_t v_dtype;
    size_t head_dim, head_dim_v;
    size_t first, n;         /* cells [first, first + n)                  */
    const uint32_t *begin;   /* [n_q] first cell query b sees, or NULL    */
    const uint32_t *end;     /* [n_q] one past its last, or NULL          */
    float *m, *l, *acc;      /* [rows], [rows], [rows][acc_stride]        */
    size_t acc_stride;
    /* logit transform (all zero: none) */
    const void *mask;        /* row b at mask + b * mask_stride elements,
                              * element j - first for cell j             */
    size_t mask_stride;
    int32_t mask_dtype;      /* FASA_DTYPE_F32 or FASA_DTYPE_F16          */
    float softcap;
    const float *slope;      /* [group] or NULL                           */
    int64_t qpos;            /* position of query 0 (ALiBi without mask)  */
    void *scratch;           /* 64-byte aligned, fasa__attn_tile_scratch_size */
} fasa__attn_tile_job;
typedef void (*fasa__attn_tile_fn)(const fasa__attn_tile_job *job);

/* Logit of row (b, g) for cell j after the dot product s: softcap, then
 * the bias slope_g * b_j (b_j = mask value, or j - (qpos + b) with slopes
 * and no mask); -INFINITY when the mask hides j. */
static inline float fasa__attn_tile_logit(const fasa__attn_tile_job *job, size_t b, size_t g,
                                          size_t j, float s)
{
    if (job->softcap > 0.0f)
        s = job->softcap * tanhf(s / job->softcap);
    float bias = 0.0f;
    if (job->mask != NULL) {
        size_t e = b * job->mask_stride + (j - job->first);
        bias = job->mask_dtype == FASA_DTYPE_F16
                   ? fasa__f16_to_f32(((const uint16_t *)job->mask)[e])
                   : ((const float *)job->mask)[e];
    } else if (job->slope != NULL) {
        bias = (float)((int64_t)j - (job->qpos + (int64_t)b));
    }
    if (bias == -INFINITY)
        return -INFINITY;
    return s + (job->slope != NULL ? job->slope[g] : 1.0f) * bias;
}

/* Scratch of an attn_tile job: regions in bytes from its start, each
 * 64-byte aligned; the same layout for every ISA (lanes padded to 16). */
enum {
    FASA__AT_QT,   /* float [lanes]x[head_dim]: q transposed by lane group */
    FASA__AT_OT,   /* float [lanes]x[head_dim_v]: acc, the same           */
    FASA__AT_LANE, /* float [8][lanes]: per-row state and tile bounds    */
    FASA__AT_KF,   /* float [FASA_TILE + 16][kstride]: K tile as f32     */
    FASA__AT_VF,   /* float [FASA_TILE][vstride]: V tile as f32          */
    FASA__AT_S,    /* float [FASA_TILE + 16][64]: logits / weights       */
    FASA__AT_QF,   /* uint8_t [n_q]: per-query tile class                */
    FASA__AT_N
};
/* Lanes of an attn_tile job: rows padded to whole groups of 64 (a SIMD
 * kernel's row pass takes up to 64 lanes, a divisor of 64). */
static inline size_t fasa__attn_tile_lanes(size_t rows) { return fasa__align_up(rows, 64); }
static inline size_t fasa__attn_tile_layout(size_t rows, size_t head_dim, size_t head_dim_v,
                                            size_t off[FASA__AT_N])
{
    const size_t lanes = fasa__attn_tile_lanes(rows), f = sizeof(float);
    const size_t ks = fasa__align_up(head_dim, 16), vs = fasa__align_up(head_dim_v, 16);
    const size_t bytes[FASA__AT_N] = {head_dim * lanes * f, head_dim_v * lanes * f, 8 * lanes * f,
                                      (FASA_TILE + 16) * ks * f, FASA_TILE * vs * f,
                                      (FASA_TILE + 16) * 64 * f, rows};
    size_t o = 0;
    for (int i = 0; i < FASA__AT_N; i++) {
        off[i] = o;
        o += fasa__align_up(bytes[i], 64);
    }
    return o;
}
static inline size_t fasa__attn_tile_scratch_size(size_t rows, size_t head_dim, size_t head_dim_v)
{
    size_t off[FASA__AT_N];
    return fasa__attn_tile_layout(rows, head_dim, head_dim_v, off);
}

/* Exact top-k of s[0..n): writes the k (<= n) selected indices to out in
 * ascending order. Larger score wins; equal scores: lower index wins; NaN
 * ranks below every number (-INFINITY included). scratch holds
 * fasa__topk_scratch_size(n, k) bytes, 64-byte aligned. */
typedef void (*fasa__topk_fn)(const float *s, size_t n, size_t k, uint32_t *out, void *scratch);
size_t fasa__topk_scratch_size(size_t n, size_t k);

/* Label-cache scoring (docs/kernels.md). tiles: the label tiles of one KV
 * head, tile b = tokens 64b .. 64b+63, 2*n_fc channels (channel 2u and 2u+1
 * are the two dims of the cache's u-th FC). Inside a tile: f32 and f16
 * channel-major [2*n_fc][64]; bf16 pair-interleaved [n_fc][64][2]. For
 * r < n_rows, j < n:
 *   out[r*out_stride + j] = sum_{c < 2*n_fc} w[r*2*n_fc + c] * label(c, j)
 * fp32 accumulation; only out[.. j < n] is written. Any alignment. */
typedef void (*fasa__score_labels_fn)(const void *tiles, size_t n_fc, size_t n, const float *w,
                                      size_t n_rows, float *out, size_t out_stride);

/* dst[i] = src[i] rounded to nearest even in the dtype of the kernel (f16 or
 * bf16; NaN stays NaN), i < n. Any alignment. */
typedef void (*fasa__convert_fn)(const float *src, size_t n, void *dst);

/* fasa__topk_fn with a threshold hint: *tau is a guess of the selection
 * threshold (NaN = none) and receives one for the next call on similar
 * data. The result never depends on *tau. */
typedef void (*fasa__topk_hint_fn)(const float *s, size_t n, size_t k, uint32_t *out,
                                   void *scratch, float *tau);

/* Label-cache staging (docs/kernels.md), elements of es = 2 or 4 bytes,
 * strides in elements.
 * gather:    for h < n_heads, i < 2*n_fc[h]: dst[h*dst_stride + i] =
 *            row[h*row_stride + idx[h*idx_stride + i]] (d elements a row).
 * transpose: tile[c*FASA_TILE + j] = j < rows ? stage[j*ld + c] : 0 for
 *            c < m, j < FASA_TILE; ld (elements) is a multiple of 64/es and
 *            >= m, and stage has FASA_TILE rows of ld elements. It may use
 *            non-temporal stores: on x86-64 the caller issues an sfence
 *            before other threads may read the tile. */
typedef void (*fasa__lc_gather_fn)(const void *row, size_t row_stride, size_t d,
                                   const uint16_t *idx, size_t idx_stride, const uint32_t *n_fc,
                                   size_t n_heads, size_t es, void *dst, size_t dst_stride);
typedef void (*fasa__lc_transpose_fn)(const void *stage, size_t ld, size_t rows, size_t m,
                                      size_t es, void *tile);

/* The dispatch table of one CPU level. Arrays indexed by fasa_dtype
 * (score_dims: every dtype a key view may have; the label-cache slots:
 * the label dtypes F32/F16/BF16). */
typedef struct fasa__kernels {
    fasa__score_dims_fn score_dims[FASA__N_DTYPES];
    fasa__attn_fn attn;
    fasa__attn_tile_fn attn_tile;
    fasa__topk_fn topk;
    fasa__score_labels_fn score_labels[3];
    fasa__convert_fn convert[3]; /* [FASA_DTYPE_F32] unused (NULL) */
    fasa__topk_hint_fn topk_hint;
    fasa__lc_gather_fn lc_gather;
    fasa__lc_transpose_fn lc_transpose;
} fasa__kernels;

/* Table for a CPU level (FASA_CPU_AUTO = best detected); resolved once. */
const fasa__kernels *fasa__kernels_get(int level);

/* Scalar references (src/ref/). */
void fasa__score_dims_f32_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                              size_t n_dims, const float *w, float *out);
void fasa__score_dims_f16_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                              size_t n_dims, const float *w, float *out);
void fasa__score_dims_bf16_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                               size_t n_dims, const float *w, float *out);
void fasa__score_dims_q8_0_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                               size_t n_dims, const float *w, float *out);
void fasa__score_dims_q4_0_ref(const void *k, size_t token_stride, size_t n, const uint32_t *dims,
                               size_t n_dims, const float *w, float *out);
void fasa__attn_ref(const fasa__attn_job *job);
void fasa__attn_tile_ref(const fasa__attn_tile_job *job);
void fasa__topk_ref(const float *s, size_t n, size_t k, uint32_t *out, void *scratch);

/* Every kernel of src/kernels.def, declared from its registry line. */
#define FASA_KERNEL(op, level, fn, slot, type) extern __typeof__(*(type)0) fn;
#include "kernels.def"
#undef FASA_KERNEL

#endif
