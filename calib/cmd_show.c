/*
 * cmd_show.c - `fasa-calib show`: a readable summary of a profile, or with
 * --csv every stored agreement value (layer,head,K,fc,agreement).
 */
#include "calib.h"
#include "dumps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frequency index (0 = highest frequency) of the first dim pair FC f covers:
 * identity for true rotation pairs; for ADJACENT (dims 2f, 2f+1 of a
 * rotate-half tensor) FC f holds half of frequencies 2f, 2f+1 when
 * f < d/4, else of 2f-d/2, 2f+1-d/2. Both land in the same quartile. */
static size_t fc_frequency(int layout, size_t head_dim, size_t f)
{
    if (layout != FASA_PAIRS_ADJACENT)
        return f;
    return f < head_dim / 4 ? 2 * f : 2 * f - head_dim / 2;
}

static size_t fc_quartile(int layout, size_t head_dim, size_t f)
{
    return fc_frequency(layout, head_dim, f) * 4 / (head_dim / 2);
}

static void print_header(const char *path, const fasa_profile *p, const fasa_profile_info *in)
{
    const fasa_model_shape *s = &in->shape;
    size_t nfc = s->head_dim / 2, q = nfc / 4;
    printf("profile      %s\n", path);
    printf("shape        %zu layers, %zu query heads, %zu KV heads (group %zu), head_dim %zu "
           "(%zu FCs)\n",
           s->n_layers, s->n_q_heads, s->n_kv_heads, s->n_q_heads / s->n_kv_heads, s->head_dim,
           nfc);
    printf("pair layout  %s: ", calib_layout_name(s->pair_layout));
    if (s->pair_layout == FASA_PAIRS_HALF)
        printf("FC f = dims (f, f+%zu), a rotate-half pair, frequency index f\n", nfc);
    else if (s->pair_layout == FASA_PAIRS_INTERLEAVED)
        printf("FC f = dims (2f, 2f+1), an interleaved pair, frequency index f\n");
    else
        printf("FC f = dims (2f, 2f+1) of rotate-half tensors (official FASA grouping);\n"
               "             it holds halves of frequencies 2f, 2f+1 for f < %zu, else of "
               "2f-%zu, 2f+1-%zu\n",
               s->head_dim / 4, nfc, nfc);
    uint32_t ks[FASA_MAX_K_VALUES];
    printf("K values    ");
    if (in->n_k && fasa_profile_get_k_values(p, ks, FASA_MAX_K_VALUES) == FASA_OK)
        for (size_t i = 0; i < in->n_k; i++)
            printf(" %u", (unsigned)ks[i]);
    else
        printf(" none (built from FC lists, no agreement data)");
    printf("\nsteps        %zu per layer\n", in->n_steps);
    if (in->selection_k)
        printf("selection    up to %zu FCs per head, ranked by agreement at K=%u\n", in->max_fc,
               (unsigned)in->selection_k);
    else
        printf("selection    %zu FCs per head, given as lists\n", in->max_fc);
    printf("dense layers");
    int any = 0;
    for (size_t l = 0; l < s->n_layers; l++) {
        int dense = 0;
        if (fasa_profile_get_dense_layer(p, l, &dense) == FASA_OK && dense) {
            printf(" %zu", l);
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    printf("quartiles    Q1..Q4 = frequency index in [0,%zu) [%zu,%zu) [%zu,%zu) [%zu,%zu); "
           "Q1 = highest frequencies\n\n",
           q, q, 2 * q, 2 * q, 3 * q, 3 * q, nfc);
}

typedef struct fc_score {
    uint32_t fc;
    float ca;
} fc_score;

static int by_ca_desc(const void *a, const void *b)
{
    const fc_score *x = a, *y = b;
    if (x->ca != y->ca)
        return x->ca > y->ca ? -1 : 1;
    return x->fc < y->fc ? -1 : x->fc > y->fc;
}

/* agree: this layer's [Hq][nfc] agreement at the selection K, or NULL. */
static void print_layer(const fasa_profile *p, const fasa_profile_info *in, size_t l,
                        const float *agree)
{
    const fasa_model_shape *s = &in->shape;
    size_t nfc = s->head_dim / 2, hist[4] = {0}, n_dom = 0;
    double sum_ca = 0;
    uint32_t fcs[CALIB_MAX_FC];
    fc_score sc[CALIB_MAX_FC];
    int dense = 0;
    fasa_profile_get_dense_layer(p, l, &dense);
    for (size_t h = 0; h < s->n_q_heads; h++) {
        size_t n = 0;
        if (fasa_profile_get_fcs(p, l, FASA_GQA_PER_HEAD, h, fcs, CALIB_MAX_FC, &n) != FASA_OK)
            n = 0;
        for (size_t i = 0; i < n; i++) {
            hist[fc_quartile(s->pair_layout, s->head_dim, fcs[i])]++;
            if (agree)
                sum_ca += agree[h * nfc + fcs[i]];
        }
        n_dom += n;
    }
    printf("layer %zu%s: dominant FCs by quartile Q1..Q4: %zu %zu %zu %zu", l,
           dense ? " (dense)" : "", hist[0], hist[1], hist[2], hist[3]);
    if (agree && n_dom)
        printf("; mean agreement of dominant FCs %.3f", sum_ca / (double)n_dom);
    printf("\n");
    for (size_t h = 0; h < s->n_q_heads; h++) {
        size_t n = 0;
        if (fasa_profile_get_fcs(p, l, FASA_GQA_PER_HEAD, h, fcs, CALIB_MAX_FC, &n) != FASA_OK)
            n = 0;
        for (size_t i = 0; i < n; i++) {
            sc[i].fc = fcs[i];
            sc[i].ca = agree ? agree[h * nfc + fcs[i]] : 0.0f;
        }
        if (agree)
            qsort(sc, n, sizeof sc[0], by_ca_desc);
        printf("  head %zu:", h);
        for (size_t i = 0; i < n; i++) {
            if (agree)
                printf(" %u:%.3f", (unsigned)sc[i].fc, (double)sc[i].ca);
            else
                printf(" %u", (unsigned)sc[i].fc);
        }
        printf("\n");
    }
    printf("  group sets (GROUP_SHARED):");
    for (size_t g = 0; g < s->n_kv_heads; g++) {
        size_t n = 0;
        if (fasa_profile_get_fcs(p, l, FASA_GQA_GROUP_SHARED, g, fcs, CALIB_MAX_FC, &n) != FASA_OK)
            n = 0;
        printf(" kv%zu {", g);
        for (size_t i = 0; i < n; i++)
            printf(i ? " %u" : "%u", (unsigned)fcs[i]);
        printf("}");
    }
    printf("\n");
}

static int show_csv(const fasa_profile *p, const fasa_profile_info *in)
{
    uint32_t ks[FASA_MAX_K_VALUES];
    if (in->n_k == 0 || !in->has_agreement)
        return calib_error("the profile has no agreement data to export");
    if (fasa_profile_get_k_values(p, ks, FASA_MAX_K_VALUES) != FASA_OK)
        return calib_error("cannot read K values");
    size_t nfc = in->shape.head_dim / 2;
    printf("layer,head,K,fc,agreement\n");
    for (size_t ki = 0; ki < in->n_k; ki++) {
        float *a = calib_agreement_at(p, in, ki);
        if (!a)
            return 1;
        for (size_t l = 0; l < in->shape.n_layers; l++)
            for (size_t h = 0; h < in->shape.n_q_heads; h++)
                for (size_t f = 0; f < nfc; f++)
                    printf("%zu,%zu,%u,%zu,%.9g\n", l, h, (unsigned)ks[ki], f,
                           (double)a[(l * in->shape.n_q_heads + h) * nfc + f]);
        free(a);
    }
    return 0;
}

int calib_cmd_show(int argc, char **argv)
{
    const char *path = NULL;
    int csv = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--csv") == 0)
            csv = 1;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fputs("usage: fasa-calib show PROFILE [--csv]\n", stderr);
            return 2;
        }
    }
    if (!path) {
        fputs("usage: fasa-calib show PROFILE [--csv]\n", stderr);
        return 2;
    }
    fasa_profile *p;
    fasa_profile_info in;
    if (calib_load(path, &p, &in) != 0)
        return 1;
    int rc = 0;
    if (csv) {
        rc = show_csv(p, &in);
    } else {
        float *agree = NULL;
        if (in.has_agreement && in.selection_k) {
            int ki = calib_k_index(p, &in, in.selection_k);
            if (ki >= 0)
                agree = calib_agreement_at(p, &in, (size_t)ki);
        }
        print_header(path, p, &in);
        size_t row = in.shape.n_q_heads * (in.shape.head_dim / 2);
        for (size_t l = 0; l < in.shape.n_layers; l++)
            print_layer(p, &in, l, agree ? agree + l * row : NULL);
        free(agree);
    }
    fasa_profile_destroy(p);
    return rc;
}
