/*
 * profile.h - the layout of struct fasa_profile, shared by profile.c (create,
 * select, accessors), profile_io.c (file format), calibrate.c, predict.c and
 * label_cache.c. Other files read it through the accessors at the bottom.
 */
#ifndef FASA_PROFILE_H
#define FASA_PROFILE_H

struct fasa_profile {
    fasa_model_shape shape;  /* validated */
    size_t n_fc_total;       /* head_dim / 2                                   */
    size_t n_k;              /* calibrated K values (0 when built from lists)  */
    uint32_t k_values[FASA_MAX_K_VALUES];
    uint64_t *layer_steps;   /* [n_layers] decode steps accumulated, or NULL   */
    float *agreement;        /* [n_layers][n_k][n_q_heads][n_fc_total] or NULL */
    uint32_t selection_k;    /* K slice the sets came from; 0 = given lists    */
    size_t max_fc;           /* row length of fcs / group_fcs                  */
    uint32_t *fc_count;      /* [n_layers][n_q_heads]                          */
    uint32_t *fcs;           /* [n_layers][n_q_heads][max_fc], ascending       */
    uint32_t *group_fc_count;/* [n_layers][n_kv_heads]                         */
    uint32_t *group_fcs;     /* [n_layers][n_kv_heads][max_fc], ascending      */
    uint8_t *dense;          /* [n_layers] 1 = layer runs dense                */
};

/* Dominant FCs (ascending) of query head `head` (PER_HEAD) or KV head `head`
 * (GROUP_SHARED) of `layer`; arguments must be in range. */
static inline const uint32_t *fasa__profile_fcs(const fasa_profile *p, size_t layer, int mode,
                                                size_t head, size_t *n_fc)
{
    if (mode == FASA_GQA_GROUP_SHARED) {
        size_t row = layer * p->shape.n_kv_heads + head;
        *n_fc = p->group_fc_count[row];
        return p->group_fcs + row * p->max_fc;
    }
    size_t row = layer * p->shape.n_q_heads + head;
    *n_fc = p->fc_count[row];
    return p->fcs + row * p->max_fc;
}

static inline int fasa__profile_is_dense(const fasa_profile *p, size_t layer)
{
    return p->dense[layer] != 0;
}

/* Check that a profile fits q/k views and a layer: head counts, head_dim,
 * layer < n_layers, mode valid. Sets a message through ctx. */
fasa_status fasa__profile_check(fasa_ctx *ctx, const fasa_profile *p, size_t layer, int mode,
                                size_t n_q_heads, size_t n_kv_heads, size_t head_dim);

/* Validate a model shape (struct_size, sizes, GQA divisibility, even
 * head_dim, head_dim/2 <= FASA__MAX_FC, layout, reserved, no overflow). */
#define FASA__MAX_FC 4096
fasa_status fasa__shape_check(fasa_ctx *ctx, const fasa_model_shape *shape);

/* Allocate a zeroed profile for a validated shape: n_k K slots, agreement
 * storage when with_agreement, FC rows of max_fc entries, dense = {0}.
 * Used by profile.c, profile_io.c and calibrate.c. */
fasa_status fasa__profile_alloc(fasa_ctx *ctx, const fasa_model_shape *shape, size_t n_k,
                                int with_agreement, size_t max_fc, fasa_profile **out);

/* Shared by profile.c and profile_select.c: free / allocate the four set
 * arrays (rows of max_fc entries, zero-filled so padding is deterministic,
 * which the file format relies on; 0 on allocation failure), and a
 * qsort comparator of uint32_t. */
void fasa__profile_free_sets(fasa_profile *p);
int fasa__profile_alloc_sets(const fasa_model_shape *s, size_t max_fc, uint32_t **fc_count,
                             uint32_t **fcs, uint32_t **gcount, uint32_t **gfcs);
int fasa__cmp_u32(const void *a, const void *b);

#endif
