/*
 * label_cache.h - the layout of struct fasa_label_cache, shared by
 * label_cache.c (the public label-cache calls) and predict_cached.c.
 *
 * The whole object is one block in caller memory: this header at a 64-byte
 * aligned address, then arrays addressed by byte offsets from the header
 * (no pointers), so a memcpy of the block moves it. Layout details and the
 * tile format: docs/kernels.md.
 */
#ifndef FASA_LABEL_CACHE_H
#define FASA_LABEL_CACHE_H

#define FASA__LABEL_MAGIC 0x3242414c41534146ull /* "FASALAB2" */

struct fasa_label_cache {
    uint64_t magic;
    uint64_t fingerprint; /* of shape, layer, mode and the FC sets used     */
    uint64_t total_bytes; /* from the header to the end of the last array   */
    uint64_t layer;
    uint64_t n_q_heads, n_kv_heads, head_dim;
    uint64_t capacity;    /* tokens (storage rounded up to whole tiles)     */
    uint64_t n_tokens;
    uint64_t n_sets;      /* Hq (PER_HEAD) or Hkv (GROUP_SHARED)            */
    uint64_t max_fc;      /* row length of the FC lists                     */
    int32_t mode, dtype, pair_layout, reserved;
    uint64_t off_n_fc;    /* uint32_t [Hkv]: FCs stored for each KV head    */
    uint64_t off_fcs;     /* uint32_t [Hkv][max_fc]: ascending FC indices   */
    uint64_t off_head;    /* uint64_t [Hkv]: byte offset of the head's tiles */
    uint64_t off_memo;    /* float [n_sets]: previous selection threshold   */
    uint64_t off_dims;    /* uint32_t [Hkv][2*max_fc]: key dim of channel c */
    uint64_t stage_ld;    /* elements per staging row (>= 2*max_fc, 64 B)  */
    uint64_t off_perm;    /* uint16_t [Hkv][stage_ld]: dims as gather index */
    uint64_t off_stage;   /* [Hkv][FASA_TILE][stage_ld] elements: the open
                             tile, token-major (docs/kernels.md)           */
};

static inline const uint32_t *fasa__lc_n_fc(const fasa_label_cache *c)
{
    return (const uint32_t *)((const char *)c + c->off_n_fc);
}
static inline const uint32_t *fasa__lc_fcs(const fasa_label_cache *c, size_t h)
{
    return (const uint32_t *)((const char *)c + c->off_fcs) + h * c->max_fc;
}
/* Tiles of KV head h: tile b at byte b * 2*n_fc*FASA_TILE*elem_size. */
static inline void *fasa__lc_tiles(fasa_label_cache *c, size_t h)
{
    const uint64_t *off = (const uint64_t *)((const char *)c + c->off_head);
    return (char *)c + off[h];
}
/* Key dims of KV head h's channels: channel 2u / 2u+1 = the two dims of
 * its u-th FC. */
static inline const uint32_t *fasa__lc_dims(const fasa_label_cache *c, size_t h)
{
    return (const uint32_t *)((const char *)c + c->off_dims) + h * 2 * c->max_fc;
}
static inline const uint16_t *fasa__lc_perm(const fasa_label_cache *c, size_t h)
{
    return (const uint16_t *)((const char *)c + c->off_perm) + h * c->stage_ld;
}
/* Staging rows of KV head h: row j holds channel c of token j at c. */
static inline void *fasa__lc_stage(fasa_label_cache *c, size_t h)
{
    size_t es = c->dtype == FASA_DTYPE_F32 ? 4 : 2;
    return (char *)c + c->off_stage + h * FASA_TILE * c->stage_ld * es;
}
static inline float *fasa__lc_memo(fasa_label_cache *c)
{
    return (float *)((char *)c + c->off_memo);
}

/* Fingerprint of what a cache for (profile, layer, mode) stores: shape,
 * layer, mode and the FC sets of every head involved. Arguments valid. */
uint64_t fasa__lc_fingerprint(const fasa_profile *p, size_t layer, int mode);

/* Write the staged tokens of the open tile (if any) into it, zeros after
 * them, so every tile up to n_tokens can be scored. */
void fasa__lc_flush(fasa_label_cache *c, const fasa__kernels *k);

/* Scores of cells j0 .. j0+n-1 (j0 a multiple of FASA_TILE) of KV head g
 * for n_rows weight rows over the head's channels (channel 2u, 2u+1 = the
 * dims of its u-th FC): out[r*out_stride + i] = sum_ch w[r*2*n_u + ch] *
 * label(ch, j0 + i), i < n. */
void fasa__lc_score(const fasa_label_cache *c, const fasa__kernels *k, size_t g, size_t j0,
                    size_t n, const float *w, size_t n_rows, float *out, size_t out_stride);

/* 1 when c looks like an initialized cache (magic and sane fields). */
int fasa__lc_valid(const fasa_label_cache *c);

#endif
