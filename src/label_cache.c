/*
 * label_cache.c - the label cache: per KV head, the key dims of the FCs its
 * query heads need, in 64-token channel-major tiles (docs/kernels.md).
 */
#include "internal.h"
#include "label_cache.h"

#define MAX_FC_WORDS ((FASA__MAX_FC + 63) / 64)
#define CHUNK_FC 128 /* FCs converted per step through the stack buffers */


/* FNV-1a over 64-bit words. */
static uint64_t fnv_word(uint64_t h, uint64_t x)
{
    for (int i = 0; i < 8; i++) {
        h ^= (x >> (8 * i)) & 0xffu;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t fasa__lc_fingerprint(const fasa_profile *p, size_t layer, int mode)
{
    const fasa_model_shape *s = &p->shape;
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv_word(h, s->n_q_heads);
    h = fnv_word(h, s->n_kv_heads);
    h = fnv_word(h, s->head_dim);
    h = fnv_word(h, (uint64_t)(uint32_t)s->pair_layout);
    h = fnv_word(h, layer);
    h = fnv_word(h, (uint64_t)mode);
    size_t rows = mode == FASA_GQA_GROUP_SHARED ? s->n_kv_heads : s->n_q_heads;
    for (size_t r = 0; r < rows; r++) {
        size_t n;
        const uint32_t *f = fasa__profile_fcs(p, layer, mode, r, &n);
        h = fnv_word(h, n);
        for (size_t i = 0; i < n; i++)
            h = fnv_word(h, f[i]);
    }
    return h;
}

/* FCs stored for KV head g: PER_HEAD the union of its query heads' sets,
 * GROUP_SHARED the group set; written ascending into fcs (may be NULL),
 * count returned. */
static size_t head_fcs(const fasa_profile *p, size_t layer, int mode, size_t g, uint32_t *fcs)
{
    uint64_t bits[MAX_FC_WORDS] = {0};
    size_t G = p->shape.n_q_heads / p->shape.n_kv_heads;
    size_t first = mode == FASA_GQA_GROUP_SHARED ? g : g * G;
    size_t last = mode == FASA_GQA_GROUP_SHARED ? g + 1 : (g + 1) * G;
    for (size_t r = first; r < last; r++) {
        size_t n;
        const uint32_t *f = fasa__profile_fcs(p, layer, mode, r, &n);
        for (size_t i = 0; i < n; i++)
            bits[f[i] / 64] |= 1ull << (f[i] % 64);
    }
    size_t count = 0;
    for (size_t f = 0; f < p->n_fc_total; f++)
        if (bits[f / 64] >> (f % 64) & 1) {
            if (fcs)
                fcs[count] = (uint32_t)f;
            count++;
        }
    return count;
}

/* The header a cache for these arguments gets (offsets, sizes); the
 * per-head tile offsets follow from it (see head_offsets). */
static fasa_status plan_layout(const fasa_profile *p, size_t layer, fasa_gqa_mode mode,
                               fasa_dtype dtype, size_t capacity, fasa_label_cache *hdr)
{
    if (!p)
        return FASA_ERR_NULL_POINTER;
    fasa_status st = fasa__profile_check(NULL, p, layer, mode, p->shape.n_q_heads,
                                         p->shape.n_kv_heads, p->shape.head_dim);
    if (st != FASA_OK)
        return st;
    if (dtype != FASA_DTYPE_F32 && dtype != FASA_DTYPE_F16 && dtype != FASA_DTYPE_BF16)
        return FASA_ERR_BAD_DTYPE;
    if (capacity == 0)
        return FASA_ERR_ZERO_SIZE;
    if (capacity > UINT32_MAX - FASA_TILE)
        return FASA_ERR_OVERFLOW; /* token indices are uint32_t */
    memset(hdr, 0, sizeof *hdr);
    size_t hkv = p->shape.n_kv_heads;
    hdr->magic = FASA__LABEL_MAGIC;
    hdr->fingerprint = fasa__lc_fingerprint(p, layer, mode);
    hdr->layer = layer;
    hdr->n_q_heads = p->shape.n_q_heads;
    hdr->n_kv_heads = hkv;
    hdr->head_dim = p->shape.head_dim;
    hdr->capacity = capacity;
    hdr->n_sets = mode == FASA_GQA_GROUP_SHARED ? hkv : p->shape.n_q_heads;
    hdr->mode = mode;
    hdr->dtype = dtype;
    hdr->pair_layout = p->shape.pair_layout;
    size_t max_fc = 0, tiles_bytes = 0;
    size_t tile_tokens_bytes = fasa__align_up(capacity, FASA_TILE) * 2 * fasa__dtype_size(dtype);
    for (size_t g = 0; g < hkv; g++) {
        size_t n = head_fcs(p, layer, mode, g, NULL), b;
        if (n > max_fc)
            max_fc = n;
        if (!fasa__mul_ok(n, tile_tokens_bytes, &b) || !fasa__add_ok(tiles_bytes, b, &tiles_bytes))
            return FASA_ERR_OVERFLOW;
    }
    hdr->max_fc = max_fc;
    /* Small arrays: header sizes are bounded by the (already allocated)
     * profile, so only the tile region can overflow. */
    size_t off = fasa__align_up(sizeof *hdr, 64);
    hdr->off_n_fc = off;
    off += hkv * sizeof(uint32_t);
    hdr->off_fcs = off;
    off += hkv * max_fc * sizeof(uint32_t);
    off = fasa__align_up(off, 8);
    hdr->off_head = off;
    off += hkv * sizeof(uint64_t);
    hdr->off_memo = off;
    off += hdr->n_sets * sizeof(float);
    off = fasa__align_up(off, 4);
    hdr->off_dims = off;
    off += hkv * 2 * max_fc * sizeof(uint32_t);
    size_t es = fasa__dtype_size(dtype);
    hdr->stage_ld = fasa__align_up(2 * max_fc * es, 64) / es;
    hdr->off_perm = off;
    off += hkv * hdr->stage_ld * sizeof(uint16_t);
    off = fasa__align_up(off, 64);
    hdr->off_stage = off;
    size_t stage_bytes; /* up to 64 x 8192 x 4 bytes per head: checked */
    if (!fasa__mul_ok(hkv, FASA_TILE * (size_t)hdr->stage_ld * es, &stage_bytes) ||
        !fasa__add_ok(off, stage_bytes, &off))
        return FASA_ERR_OVERFLOW;
    size_t total;
    if (!fasa__add_ok(off, tiles_bytes, &total) || total > SIZE_MAX - 64)
        return FASA_ERR_OVERFLOW;
    hdr->total_bytes = total;
    return FASA_OK;
}

FASA_API fasa_status fasa_label_cache_size(const fasa_profile *profile, size_t layer,
                                           fasa_gqa_mode mode, fasa_dtype dtype,
                                           size_t capacity_tokens, size_t *bytes)
{
    if (!bytes)
        return FASA_ERR_NULL_POINTER;
    fasa_label_cache hdr;
    fasa_status st = plan_layout(profile, layer, mode, dtype, capacity_tokens, &hdr);
    if (st != FASA_OK)
        return st;
    *bytes = (size_t)hdr.total_bytes + 63; /* slack for aligning mem */
    return FASA_OK;
}

static void reset_memo(fasa_label_cache *c)
{
    float *memo = fasa__lc_memo(c);
    for (size_t s = 0; s < c->n_sets; s++)
        memo[s] = NAN;
}

FASA_API fasa_status fasa_label_cache_init(void *mem, size_t bytes, const fasa_profile *profile,
                                           size_t layer, fasa_gqa_mode mode, fasa_dtype dtype,
                                           size_t capacity_tokens, fasa_label_cache **out)
{
    if (!mem || !out)
        return FASA_ERR_NULL_POINTER;
    fasa_label_cache hdr;
    fasa_status st = plan_layout(profile, layer, mode, dtype, capacity_tokens, &hdr);
    if (st != FASA_OK)
        return st;
    size_t lead = (size_t)(-(uintptr_t)mem & 63);
    if (bytes < lead || bytes - lead < hdr.total_bytes)
        return FASA_ERR_BUFFER_TOO_SMALL;
    fasa_label_cache *c = (fasa_label_cache *)((char *)mem + lead);
    memcpy(c, &hdr, sizeof hdr);
    uint32_t *n_fc = (uint32_t *)((char *)c + c->off_n_fc);
    uint32_t *fcs = (uint32_t *)((char *)c + c->off_fcs);
    uint64_t *head_off = (uint64_t *)((char *)c + c->off_head);
    uint32_t *dims = (uint32_t *)((char *)c + c->off_dims);
    uint16_t *perm = (uint16_t *)((char *)c + c->off_perm);
    size_t es = fasa__dtype_size(dtype);
    uint64_t off = c->off_stage + c->n_kv_heads * FASA_TILE * c->stage_ld * es;
    /* Staging starts zeroed: its padding columns are never written, so the
     * block's bytes stay independent of what the memory held. */
    memset(perm, 0, (size_t)(off - c->off_perm));
    for (size_t g = 0; g < c->n_kv_heads; g++) {
        n_fc[g] = (uint32_t)head_fcs(profile, layer, mode, g, fcs + g * c->max_fc);
        for (size_t u = 0; u < n_fc[g]; u++)
            fasa__fc_dims(c->pair_layout, c->head_dim, fcs[g * c->max_fc + u],
                          &dims[(g * c->max_fc + u) * 2], &dims[(g * c->max_fc + u) * 2 + 1]);
        /* head_dim <= 2 * FASA__MAX_FC fits uint16_t. */
        for (size_t ch = 0; ch < 2 * (size_t)n_fc[g]; ch++)
            perm[g * c->stage_ld + ch] = (uint16_t)dims[g * 2 * c->max_fc + ch];
        head_off[g] = off;
        off += (uint64_t)n_fc[g] * fasa__align_up((size_t)c->capacity, FASA_TILE) * 2 *
               fasa__dtype_size(dtype);
    }
    reset_memo(c);
    *out = c;
    return FASA_OK;
}

int fasa__lc_valid(const fasa_label_cache *c)
{
    return c->magic == FASA__LABEL_MAGIC && c->n_kv_heads > 0 && c->n_tokens <= c->capacity &&
           (c->dtype == FASA_DTYPE_F32 || c->dtype == FASA_DTYPE_F16 ||
            c->dtype == FASA_DTYPE_BF16);
}

/* Stage the n_ch channel values of one key row of another dtype (row j of
 * the head's staging area, channel order) through f32 and the convert
 * kernel (round to nearest even); same dtypes use the gather kernel. */
static void stage_row(const fasa_label_cache *c, const fasa__kernels *kern, size_t h,
                      size_t n_ch, const void *row, int32_t src_dtype, void *dst)
{
    int32_t dt = c->dtype;
    const uint32_t *dims = fasa__lc_dims(c, h);
    float tmp[2 * CHUNK_FC];
    for (size_t c0 = 0; c0 < n_ch; c0 += 2 * CHUNK_FC) {
        size_t m = n_ch - c0 < 2 * CHUNK_FC ? n_ch - c0 : 2 * CHUNK_FC;
        if (dt == FASA_DTYPE_F32) {
            for (size_t i = 0; i < m; i++)
                ((float *)dst)[c0 + i] = fasa__load(row, src_dtype, dims[c0 + i]);
            continue;
        }
        for (size_t i = 0; i < m; i++)
            tmp[i] = fasa__load(row, src_dtype, dims[c0 + i]);
        kern->convert[dt](tmp, m, (uint16_t *)dst + c0);
    }
}

/* Transpose the first `rows` staged tokens of head h into tile `tile`
 * (zeros after them). f32/f16: [2*n_fc][64] elements; bf16 moves 32-bit
 * pairs, giving [n_fc][64][2]. */
static void stage_to_tile(fasa_label_cache *c, const fasa__kernels *kern, size_t h, size_t rows,
                          size_t tile)
{
    size_t n_fc = fasa__lc_n_fc(c)[h], es = fasa__dtype_size(c->dtype);
    size_t us = c->dtype == FASA_DTYPE_F16 ? 2 : 4;
    size_t m = c->dtype == FASA_DTYPE_BF16 ? n_fc : 2 * n_fc;
    char *dst = (char *)fasa__lc_tiles(c, h) + tile * 2 * n_fc * FASA_TILE * es;
    kern->lc_transpose(fasa__lc_stage(c, h), (size_t)c->stage_ld * es / us, rows, m, us, dst);
}

/* Orders the transpose kernels' non-temporal tile stores before later
 * stores, so other threads (predict_cached's workers, the next caller)
 * see the tiles (kernels.h). */
static void tile_fence(void)
{
#if defined(__x86_64__)
    __builtin_ia32_sfence();
#endif
}

void fasa__lc_flush(fasa_label_cache *c, const fasa__kernels *k)
{
    size_t open = (size_t)(c->n_tokens % FASA_TILE);
    if (open == 0)
        return;
    for (size_t h = 0; h < c->n_kv_heads; h++)
        stage_to_tile(c, k, h, open, (size_t)(c->n_tokens / FASA_TILE));
    tile_fence();
}

/* Append k after `base` tokens (base = 0 rebuilds). Validates everything
 * before the first write, so a failure leaves the cache as it was. */
static fasa_status add_tokens(fasa_label_cache *c, const fasa_view *k, int rebuild)
{
    if (!c || !k)
        return FASA_ERR_NULL_POINTER;
    if (!fasa__lc_valid(c))
        return FASA_ERR_BAD_STATE;
    fasa_status st = fasa__check_view(NULL, k, "k");
    if (st != FASA_OK)
        return st;
    if (k->n_heads != c->n_kv_heads || k->head_dim != c->head_dim)
        return FASA_ERR_BAD_SHAPE;
    size_t base = rebuild ? 0 : (size_t)c->n_tokens;
    size_t n = k->n_tokens;
    if (n > c->capacity - base)
        return FASA_ERR_BUFFER_TOO_SMALL;
    const char *kb, *ke;
    fasa__view_span(k, &kb, &ke);
    if (fasa__span_overlap(kb, (size_t)(ke - kb), c, (size_t)c->total_bytes))
        return FASA_ERR_ALIASING;

    const fasa__kernels *kern = fasa__kernels_get(FASA_CPU_AUTO);
    size_t es = fasa__dtype_size(c->dtype), row_bytes = (size_t)c->stage_ld * es;
    size_t d = (size_t)c->head_dim;
    int same = k->dtype == c->dtype;
    const uint32_t *n_fc = fasa__lc_n_fc(c);
    if (rebuild) {
        c->n_tokens = 0;
        reset_memo(c);
    }
    /* Tokens go token-major into the heads' staging rows (contiguous
     * stores, all heads of a token in one kernel call); a full tile is
     * transposed into place at once. The open tile's bytes are written
     * when it fills or by fasa__lc_flush. */
    size_t hkv = (size_t)c->n_kv_heads, stage_stride = FASA_TILE * (size_t)c->stage_ld;
    char *stage0 = fasa__lc_stage(c, 0);
    for (size_t t = 0; t < n; t++) {
        size_t pos = base + t, j = pos % FASA_TILE;
        if (same)
            kern->lc_gather(fasa__row(k, t, 0), k->head_stride, d, fasa__lc_perm(c, 0),
                            (size_t)c->stage_ld, n_fc, hkv, es, stage0 + j * row_bytes,
                            stage_stride);
        else
            for (size_t h = 0; h < hkv; h++)
                stage_row(c, kern, h, 2 * (size_t)n_fc[h], fasa__row(k, t, h), k->dtype,
                          (char *)fasa__lc_stage(c, h) + j * row_bytes);
        if (j == FASA_TILE - 1)
            for (size_t h = 0; h < hkv; h++)
                stage_to_tile(c, kern, h, FASA_TILE, pos / FASA_TILE);
    }
    if (base % FASA_TILE + n >= FASA_TILE)
        tile_fence(); /* a tile was completed */
    c->n_tokens = base + n;
    return FASA_OK;
}

FASA_API fasa_status fasa_label_cache_append(fasa_label_cache *cache, const fasa_view *k)
{
    return add_tokens(cache, k, 0);
}

FASA_API fasa_status fasa_label_cache_build(fasa_label_cache *cache, const fasa_view *k)
{
    return add_tokens(cache, k, 1);
}

FASA_API fasa_status fasa_label_cache_tokens(const fasa_label_cache *cache, size_t *n_tokens)
{
    if (!cache || !n_tokens)
        return FASA_ERR_NULL_POINTER;
    if (!fasa__lc_valid(cache))
        return FASA_ERR_BAD_STATE;
    *n_tokens = (size_t)cache->n_tokens;
    return FASA_OK;
}

FASA_API fasa_status fasa_label_cache_reset(fasa_label_cache *cache)
{
    if (!cache)
        return FASA_ERR_NULL_POINTER;
    if (!fasa__lc_valid(cache))
        return FASA_ERR_BAD_STATE;
    cache->n_tokens = 0;
    reset_memo(cache);
    return FASA_OK;
}

void fasa__lc_score(const fasa_label_cache *c, const fasa__kernels *k, size_t g, size_t j0,
                    size_t n, const float *w, size_t n_rows, float *out, size_t out_stride)
{
    size_t n_u = fasa__lc_n_fc(c)[g], es = fasa__dtype_size(c->dtype);
    const char *tiles = (const char *)fasa__lc_tiles((fasa_label_cache *)(uintptr_t)c, g) +
                        (j0 / FASA_TILE) * 2 * n_u * FASA_TILE * es;
    k->score_labels[c->dtype](tiles, n_u, n, w, n_rows, out, out_stride);
}
