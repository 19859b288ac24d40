/*
 * profile.c - fasa_profile construction and accessors. Selection of the
 * dominant FCs from agreement is in profile_select.c, the text dump in
 * profile_describe.c, the binary format in profile_io.c, the agreement
 * accumulator in calibrate.c.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ shape */

fasa_status fasa__shape_check(fasa_ctx *ctx, const fasa_model_shape *s)
{
    if (!s)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "shape is NULL");
    fasa_status st0 = fasa__struct_ok(ctx, s, s->struct_size, sizeof *s, "shape");
    if (st0 != FASA_OK)
        return st0;
    if (s->n_layers == 0 || s->n_q_heads == 0 || s->n_kv_heads == 0 || s->head_dim == 0)
        return fasa__fail(ctx, FASA_ERR_ZERO_SIZE,
                          "shape: n_layers %zu, n_q_heads %zu, n_kv_heads %zu, head_dim %zu "
                          "must all be > 0",
                          s->n_layers, s->n_q_heads, s->n_kv_heads, s->head_dim);
    if (s->n_q_heads % s->n_kv_heads != 0)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE,
                          "shape: n_kv_heads %zu does not divide n_q_heads %zu", s->n_kv_heads,
                          s->n_q_heads);
    if (s->head_dim % 2 != 0)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "shape: head_dim %zu is odd", s->head_dim);
    if (s->head_dim / 2 > FASA__MAX_FC)
        return fasa__fail(ctx, FASA_ERR_BAD_SHAPE, "shape: head_dim %zu exceeds %d", s->head_dim,
                          2 * FASA__MAX_FC);
    if (s->pair_layout != FASA_PAIRS_INTERLEAVED && s->pair_layout != FASA_PAIRS_HALF &&
        s->pair_layout != FASA_PAIRS_ADJACENT)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "shape: unknown pair_layout %d",
                          (int)s->pair_layout);
    if (s->reserved != 0)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "shape: reserved must be 0");
    /* The largest array ever derived from a shape is the calibrator's double
     * accumulator [n_layers][FASA_MAX_K_VALUES][n_q_heads][head_dim/2]. */
    size_t n;
    if (!fasa__mul_ok(s->n_layers, s->n_q_heads, &n) || !fasa__mul_ok(n, s->head_dim / 2, &n) ||
        !fasa__mul_ok(n, FASA_MAX_K_VALUES * sizeof(double), &n))
        return fasa__fail(ctx, FASA_ERR_OVERFLOW, "shape: sizes overflow");
    return FASA_OK;
}

/* --------------------------------------------------------- lifetime */

void fasa__profile_free_sets(fasa_profile *p)
{
    free(p->fc_count);
    free(p->fcs);
    free(p->group_fc_count);
    free(p->group_fcs);
}

void fasa_profile_destroy(fasa_profile *p)
{
    if (!p)
        return;
    fasa__profile_free_sets(p);
    free(p->layer_steps);
    free(p->agreement);
    free(p->dense);
    free(p);
}

/* The four set arrays for rows of max_fc entries (zero-filled so that
 * padding is deterministic, which the file format relies on). */
int fasa__profile_alloc_sets(const fasa_model_shape *s, size_t max_fc, uint32_t **fc_count,
                      uint32_t **fcs, uint32_t **gcount, uint32_t **gfcs)
{
    size_t rows = s->n_layers * s->n_q_heads, grows = s->n_layers * s->n_kv_heads;
    *fc_count = calloc(rows, sizeof(uint32_t));
    *fcs = calloc(rows * max_fc, sizeof(uint32_t));
    *gcount = calloc(grows, sizeof(uint32_t));
    *gfcs = calloc(grows * max_fc, sizeof(uint32_t));
    if (*fc_count && *fcs && *gcount && *gfcs)
        return 1;
    free(*fc_count);
    free(*fcs);
    free(*gcount);
    free(*gfcs);
    return 0;
}

fasa_status fasa__profile_alloc(fasa_ctx *ctx, const fasa_model_shape *shape, size_t n_k,
                                int with_agreement, size_t max_fc, fasa_profile **out)
{
    fasa_profile *p = calloc(1, sizeof *p);
    if (!p)
        return fasa__fail(ctx, FASA_ERR_OUT_OF_MEMORY, "profile: out of memory");
    p->shape = *shape;
    p->n_fc_total = shape->head_dim / 2;
    p->n_k = n_k;
    p->max_fc = max_fc;
    int ok = fasa__profile_alloc_sets(shape, max_fc, &p->fc_count, &p->fcs, &p->group_fc_count, &p->group_fcs);
    p->layer_steps = calloc(shape->n_layers, sizeof(uint64_t));
    p->dense = calloc(shape->n_layers, 1);
    if (with_agreement)
        p->agreement =
            calloc(shape->n_layers * (n_k ? n_k : 1) * shape->n_q_heads * p->n_fc_total,
                   sizeof(float));
    if (!ok) {
        p->fc_count = NULL;
        p->fcs = NULL;
        p->group_fc_count = NULL;
        p->group_fcs = NULL;
    }
    if (!ok || !p->layer_steps || !p->dense || (with_agreement && !p->agreement)) {
        fasa_profile_destroy(p);
        return fasa__fail(ctx, FASA_ERR_OUT_OF_MEMORY, "profile: out of memory");
    }
    p->dense[0] = 1; /* the paper and the official code keep layer 0 dense */
    *out = p;
    return FASA_OK;
}

fasa_status fasa_profile_clone(const fasa_profile *src, fasa_profile **out)
{
    if (!src || !out)
        return FASA_ERR_NULL_POINTER;
    fasa_profile *p;
    fasa_status st =
        fasa__profile_alloc(NULL, &src->shape, src->n_k, src->agreement != NULL, src->max_fc, &p);
    if (st != FASA_OK)
        return st;
    const fasa_model_shape *s = &src->shape;
    size_t rows = s->n_layers * s->n_q_heads, grows = s->n_layers * s->n_kv_heads;
    memcpy(p->k_values, src->k_values, sizeof p->k_values);
    p->selection_k = src->selection_k;
    if (src->layer_steps)
        memcpy(p->layer_steps, src->layer_steps, s->n_layers * sizeof(uint64_t));
    if (src->agreement)
        memcpy(p->agreement, src->agreement,
               s->n_layers * src->n_k * s->n_q_heads * src->n_fc_total * sizeof(float));
    memcpy(p->fc_count, src->fc_count, rows * sizeof(uint32_t));
    memcpy(p->fcs, src->fcs, rows * src->max_fc * sizeof(uint32_t));
    memcpy(p->group_fc_count, src->group_fc_count, grows * sizeof(uint32_t));
    memcpy(p->group_fcs, src->group_fcs, grows * src->max_fc * sizeof(uint32_t));
    memcpy(p->dense, src->dense, s->n_layers);
    *out = p;
    return FASA_OK;
}

/* ------------------------------------------------- create from lists */

int fasa__cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Copy one row, sorted; fails when an FC is out of range or repeated. */
static fasa_status copy_row(const uint32_t *src, size_t n_fc, size_t n_fc_total, uint32_t *dst,
                            const char *what, size_t layer, size_t head)
{
    memcpy(dst, src, n_fc * sizeof(uint32_t));
    qsort(dst, n_fc, sizeof(uint32_t), fasa__cmp_u32);
    for (size_t i = 0; i < n_fc; i++) {
        if (dst[i] >= n_fc_total)
            return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT,
                              "%s: layer %zu head %zu: FC %u >= head_dim/2 = %zu", what, layer,
                              head, (unsigned)dst[i], n_fc_total);
        if (i > 0 && dst[i] == dst[i - 1])
            return fasa__fail(NULL, FASA_ERR_INVALID_ARGUMENT,
                              "%s: layer %zu head %zu: FC %u repeated", what, layer, head,
                              (unsigned)dst[i]);
    }
    return FASA_OK;
}

fasa_status fasa_profile_create(const fasa_model_shape *shape, const uint32_t *fcs, size_t n_fc,
                                const uint32_t *group_fcs, fasa_profile **out)
{
    if (!shape || !fcs || !out)
        return FASA_ERR_NULL_POINTER;
    fasa_status st = fasa__shape_check(NULL, shape);
    if (st != FASA_OK)
        return st;
    size_t nfc_total = shape->head_dim / 2;
    if (n_fc == 0)
        return FASA_ERR_ZERO_SIZE;
    if (n_fc > nfc_total)
        return FASA_ERR_INVALID_ARGUMENT;
    fasa_profile *p;
    st = fasa__profile_alloc(NULL, shape, 0, 0, n_fc, &p);
    if (st != FASA_OK)
        return st;
    size_t L = shape->n_layers, Hq = shape->n_q_heads, Hkv = shape->n_kv_heads, G = Hq / Hkv;
    for (size_t l = 0; l < L && st == FASA_OK; l++)
        for (size_t h = 0; h < Hq && st == FASA_OK; h++) {
            size_t row = l * Hq + h;
            p->fc_count[row] = (uint32_t)n_fc;
            st = copy_row(fcs + row * n_fc, n_fc, nfc_total, p->fcs + row * n_fc, "fcs", l, h);
        }
    uint32_t *votes = NULL;
    if (st == FASA_OK && !group_fcs) {
        votes = calloc(nfc_total, sizeof(uint32_t));
        if (!votes)
            st = FASA_ERR_OUT_OF_MEMORY;
    }
    for (size_t l = 0; l < L && st == FASA_OK; l++)
        for (size_t g = 0; g < Hkv && st == FASA_OK; g++) {
            size_t row = l * Hkv + g;
            uint32_t *dst = p->group_fcs + row * n_fc;
            p->group_fc_count[row] = (uint32_t)n_fc;
            if (group_fcs) {
                st = copy_row(group_fcs + row * n_fc, n_fc, nfc_total, dst, "group_fcs", l, g);
                continue;
            }
            memset(votes, 0, nfc_total * sizeof(uint32_t));
            for (size_t h = g * G; h < (g + 1) * G; h++)
                for (size_t i = 0; i < n_fc; i++)
                    votes[p->fcs[(l * Hq + h) * n_fc + i]]++;
            /* n_fc rounds of "most votes, lowest FC wins ties"; a taken FC
             * is marked with UINT32_MAX so it is never picked twice. */
            for (size_t i = 0; i < n_fc; i++) {
                size_t best = nfc_total;
                for (size_t f = 0; f < nfc_total; f++)
                    if (votes[f] != UINT32_MAX && (best == nfc_total || votes[f] > votes[best]))
                        best = f;
                dst[i] = (uint32_t)best;
                votes[best] = UINT32_MAX;
            }
            qsort(dst, n_fc, sizeof(uint32_t), fasa__cmp_u32);
        }
    free(votes);
    if (st != FASA_OK) {
        fasa_profile_destroy(p);
        return st;
    }
    *out = p;
    return FASA_OK;
}

/* ------------------------------------------------------- accessors */

fasa_status fasa__profile_check(fasa_ctx *ctx, const fasa_profile *p, size_t layer, int mode,
                                size_t n_q_heads, size_t n_kv_heads, size_t head_dim)
{
    if (!p)
        return fasa__fail(ctx, FASA_ERR_NULL_POINTER, "profile is NULL");
    if (mode != FASA_GQA_PER_HEAD && mode != FASA_GQA_GROUP_SHARED)
        return fasa__fail(ctx, FASA_ERR_INVALID_ARGUMENT, "unknown fasa_gqa_mode %d", mode);
    const fasa_model_shape *s = &p->shape;
    if (layer >= s->n_layers)
        return fasa__fail(ctx, FASA_ERR_PROFILE_MISMATCH, "layer %zu >= profile n_layers %zu",
                          layer, s->n_layers);
    if (n_q_heads != s->n_q_heads || n_kv_heads != s->n_kv_heads || head_dim != s->head_dim)
        return fasa__fail(ctx, FASA_ERR_PROFILE_MISMATCH,
                          "tensors have Hq %zu, Hkv %zu, head_dim %zu; profile has %zu, %zu, %zu",
                          n_q_heads, n_kv_heads, head_dim, s->n_q_heads, s->n_kv_heads,
                          s->head_dim);
    return FASA_OK;
}

fasa_status fasa_profile_get_info(const fasa_profile *p, fasa_profile_info *info)
{
    if (!p || !info)
        return FASA_ERR_NULL_POINTER;
    if (fasa__struct_out(info, info->struct_size, sizeof *info) != FASA_OK)
        return FASA_ERR_INVALID_ARGUMENT;
    size_t steps = 0;
    for (size_t l = 0; l < p->shape.n_layers; l++)
        if (p->layer_steps && p->layer_steps[l] > steps)
            steps = (size_t)p->layer_steps[l];
    info->shape = p->shape;
    info->n_k = p->n_k;
    info->n_steps = steps;
    info->max_fc = p->max_fc;
    info->has_agreement = p->agreement != NULL;
    info->selection_k = p->selection_k;
    return FASA_OK;
}

fasa_status fasa_profile_get_k_values(const fasa_profile *p, uint32_t *k_values, size_t capacity)
{
    if (!p || (!k_values && p->n_k > 0))
        return FASA_ERR_NULL_POINTER;
    if (capacity < p->n_k)
        return FASA_ERR_BUFFER_TOO_SMALL;
    if (p->n_k)
        memcpy(k_values, p->k_values, p->n_k * sizeof(uint32_t));
    return FASA_OK;
}

fasa_status fasa_profile_get_agreement(const fasa_profile *p, size_t layer, size_t k_index,
                                       float *out, size_t capacity)
{
    if (!p || !out)
        return FASA_ERR_NULL_POINTER;
    if (!p->agreement)
        return FASA_ERR_BAD_STATE;
    if (layer >= p->shape.n_layers || k_index >= p->n_k)
        return FASA_ERR_BAD_INDEX;
    size_t n = p->shape.n_q_heads * p->n_fc_total;
    if (capacity < n)
        return FASA_ERR_BUFFER_TOO_SMALL;
    memcpy(out, p->agreement + (layer * p->n_k + k_index) * n, n * sizeof(float));
    return FASA_OK;
}

fasa_status fasa_profile_get_fcs(const fasa_profile *p, size_t layer, fasa_gqa_mode mode,
                                 size_t head, uint32_t *fcs, size_t capacity, size_t *n_fc)
{
    if (!p || !fcs || !n_fc)
        return FASA_ERR_NULL_POINTER;
    if (mode != FASA_GQA_PER_HEAD && mode != FASA_GQA_GROUP_SHARED)
        return FASA_ERR_INVALID_ARGUMENT;
    size_t heads = mode == FASA_GQA_GROUP_SHARED ? p->shape.n_kv_heads : p->shape.n_q_heads;
    if (layer >= p->shape.n_layers || head >= heads)
        return FASA_ERR_BAD_INDEX;
    size_t n;
    const uint32_t *row = fasa__profile_fcs(p, layer, (int)mode, head, &n);
    if (capacity < n)
        return FASA_ERR_BUFFER_TOO_SMALL;
    memcpy(fcs, row, n * sizeof(uint32_t));
    *n_fc = n;
    return FASA_OK;
}

fasa_status fasa_profile_get_dense_layer(const fasa_profile *p, size_t layer, int *dense)
{
    if (!p || !dense)
        return FASA_ERR_NULL_POINTER;
    if (layer >= p->shape.n_layers)
        return FASA_ERR_BAD_INDEX;
    *dense = p->dense[layer] != 0;
    return FASA_OK;
}

fasa_status fasa_profile_set_dense_layer(fasa_profile *p, size_t layer, int dense)
{
    if (!p)
        return FASA_ERR_NULL_POINTER;
    if (layer >= p->shape.n_layers)
        return FASA_ERR_BAD_INDEX;
    p->dense[layer] = dense != 0;
    return FASA_OK;
}
