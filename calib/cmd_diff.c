/*
 * cmd_diff.c - `fasa-calib diff A B`: how far two profiles of one model pick
 * the same dominant FCs (the paper's cross-dataset stability measure):
 * per layer, the mean over heads of |A ∩ B| / |A|, for both GQA modes.
 * When B carries agreement data, it also scores A's sets with B's
 * agreement, relative to B's own sets (1.000 = as good as B's choice).
 */
#include "calib.h"
#include "dumps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pair {
    const fasa_profile *a, *b;
    const fasa_profile_info *ia, *ib;
} pair;

/* Mean over the heads of one layer of |A ∩ B| / |A| (sets are ascending). */
static double layer_overlap(const pair *pr, size_t l, fasa_gqa_mode mode)
{
    size_t heads = mode == FASA_GQA_PER_HEAD ? pr->ia->shape.n_q_heads : pr->ia->shape.n_kv_heads;
    uint32_t fa[CALIB_MAX_FC], fb[CALIB_MAX_FC];
    double sum = 0;
    size_t counted = 0;
    for (size_t h = 0; h < heads; h++) {
        size_t na = 0, nb = 0, common = 0;
        if (fasa_profile_get_fcs(pr->a, l, mode, h, fa, CALIB_MAX_FC, &na) != FASA_OK ||
            fasa_profile_get_fcs(pr->b, l, mode, h, fb, CALIB_MAX_FC, &nb) != FASA_OK || na == 0)
            continue;
        for (size_t i = 0, j = 0; i < na && j < nb;) {
            if (fa[i] == fb[j]) {
                common++;
                i++;
                j++;
            } else if (fa[i] < fb[j]) {
                i++;
            } else {
                j++;
            }
        }
        sum += (double)common / (double)na;
        counted++;
    }
    return counted ? sum / (double)counted : 0.0;
}

/* Sum over heads of B's agreement over the FCs of `who`'s sets. */
static double set_agreement(const fasa_profile *who, const float *agree_b, size_t l,
                            const fasa_profile_info *ib)
{
    size_t nfc = ib->shape.head_dim / 2;
    uint32_t f[CALIB_MAX_FC];
    double sum = 0;
    for (size_t h = 0; h < ib->shape.n_q_heads; h++) {
        size_t n = 0;
        if (fasa_profile_get_fcs(who, l, FASA_GQA_PER_HEAD, h, f, CALIB_MAX_FC, &n) != FASA_OK)
            continue;
        for (size_t i = 0; i < n; i++)
            sum += agree_b[(l * ib->shape.n_q_heads + h) * nfc + f[i]];
    }
    return sum;
}

static int same_shape(const char *pa, const char *pb, const fasa_model_shape *a,
                      const fasa_model_shape *b)
{
    if (a->n_layers != b->n_layers || a->n_q_heads != b->n_q_heads ||
        a->n_kv_heads != b->n_kv_heads || a->head_dim != b->head_dim)
        return calib_error("shape mismatch: %s has %zu layers x %zu/%zu heads x head_dim %zu, "
                           "%s has %zu x %zu/%zu x %zu",
                           pa, a->n_layers, a->n_q_heads, a->n_kv_heads, a->head_dim, pb,
                           b->n_layers, b->n_q_heads, b->n_kv_heads, b->head_dim);
    if (a->pair_layout != b->pair_layout)
        return calib_error("pair layout mismatch: %s is %s, %s is %s (FC indices are not "
                           "comparable)",
                           pa, calib_layout_name(a->pair_layout), pb,
                           calib_layout_name(b->pair_layout));
    return 0;
}

static int report(const pair *pr, const char *pa, const char *pb)
{
    const fasa_model_shape *s = &pr->ia->shape;
    float *agree_b = NULL;
    if (pr->ib->has_agreement && pr->ib->selection_k) {
        int ki = calib_k_index(pr->b, pr->ib, pr->ib->selection_k);
        if (ki >= 0)
            agree_b = calib_agreement_at(pr->b, pr->ib, (size_t)ki);
    }
    printf("A  %s (%zu steps/layer, up to %zu FCs per head)\n", pa, pr->ia->n_steps,
           pr->ia->max_fc);
    printf("B  %s (%zu steps/layer, up to %zu FCs per head)\n", pb, pr->ib->n_steps,
           pr->ib->max_fc);
    printf("layer  per-head |A&B|/|A|  group-shared |A&B|/|A|%s\n",
           agree_b ? "  B-agreement of A's sets / of B's sets" : "");
    double tot[2] = {0, 0}, sparse[2] = {0, 0}, qa = 0, qb = 0;
    size_t n_sparse = 0;
    for (size_t l = 0; l < s->n_layers; l++) {
        double ph = layer_overlap(pr, l, FASA_GQA_PER_HEAD);
        double gs = layer_overlap(pr, l, FASA_GQA_GROUP_SHARED);
        int dense = 0;
        fasa_profile_get_dense_layer(pr->a, l, &dense);
        tot[0] += ph;
        tot[1] += gs;
        if (!dense) {
            sparse[0] += ph;
            sparse[1] += gs;
            n_sparse++;
        }
        printf("%5zu  %17.1f%%  %21.1f%%", l, 100 * ph, 100 * gs);
        if (agree_b) {
            double a = set_agreement(pr->a, agree_b, l, pr->ib);
            double b = set_agreement(pr->b, agree_b, l, pr->ib);
            qa += a;
            qb += b;
            printf("  %.3f", b > 0 ? a / b : 0.0);
        }
        printf("%s\n", dense ? "  (dense in A)" : "");
    }
    printf("overall per-head overlap %.2f%%\n", 100 * tot[0] / (double)s->n_layers);
    printf("overall group-shared overlap %.2f%%\n", 100 * tot[1] / (double)s->n_layers);
    if (n_sparse)
        printf("sparse layers of A: per-head %.2f%%, group-shared %.2f%%\n",
               100 * sparse[0] / (double)n_sparse, 100 * sparse[1] / (double)n_sparse);
    if (agree_b)
        printf("overall B-agreement of A's sets relative to B's own: %.4f\n",
               qb > 0 ? qa / qb : 0.0);
    free(agree_b);
    return 0;
}

int calib_cmd_diff(int argc, char **argv)
{
    if (argc != 2 || argv[0][0] == '-' || argv[1][0] == '-') {
        fputs("usage: fasa-calib diff A.fasa B.fasa\n", stderr);
        return 2;
    }
    fasa_profile *a = NULL, *b = NULL;
    fasa_profile_info ia, ib;
    int rc = calib_load(argv[0], &a, &ia);
    if (rc == 0)
        rc = calib_load(argv[1], &b, &ib);
    if (rc == 0)
        rc = same_shape(argv[0], argv[1], &ia.shape, &ib.shape);
    if (rc == 0) {
        pair pr = {a, b, &ia, &ib};
        rc = report(&pr, argv[0], argv[1]);
    }
    fasa_profile_destroy(a);
    fasa_profile_destroy(b);
    return rc;
}
