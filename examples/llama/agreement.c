/*
 * agreement.c - contextual-agreement analysis in the form of the paper's
 * Table 1, on held-out windows: how well the top-K tokens of the summed
 * scores of the best F FCs (ranked by calibrated mean agreement at that K)
 * match the full top-K, next to StreamingLLM's fixed selection and random
 * FCs; plus where the dominant FCs sit in frequency, and how stable the
 * dominant sets are between two disjoint calibration sets.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "cli.h"

#define N_ROWS 4 /* top-8, top-16, random-16, stream */

typedef struct {
    size_t start, stride, n_steps, row;
    float *q; /* [layers][steps][row] */
} acap;

static void acap_observe(void *user, int layer, const float *q, size_t pos0, size_t n)
{
    acap *c = user;
    for (size_t s = 0; s < c->n_steps; s++) {
        size_t p = c->start + s * c->stride;
        if (p >= pos0 && p < pos0 + n)
            memcpy(c->q + ((size_t)layer * c->n_steps + s) * c->row, q + (p - pos0) * c->row,
                   c->row * sizeof(float));
    }
}

static void fc_dims(int layout, size_t hd, size_t f, size_t *a, size_t *b)
{
    if (layout == FASA_PAIRS_HALF) {
        *a = f;
        *b = f + hd / 2;
    } else { /* INTERLEAVED and ADJACENT both take dims 2f, 2f+1 */
        *a = 2 * f;
        *b = 2 * f + 1;
    }
}

/* FC indices of one head sorted by agreement, best first (ties: lower f). */
static void rank_fcs(const float *ca, size_t nf, uint32_t *order)
{
    for (size_t i = 0; i < nf; i++)
        order[i] = (uint32_t)i;
    for (size_t i = 1; i < nf; i++) {
        uint32_t x = order[i];
        size_t j = i;
        while (j > 0 && ca[order[j - 1]] < ca[x]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
}

static int stability(const opts *o, const llama_model *m)
{
    fasa_profile *a = NULL, *b = NULL;
    if (load_profile_for(o->profile_a, o->budget_hint ? o->budget_hint : 256, o, m, &a) ||
        load_profile_for(o->profile_b, o->budget_hint ? o->budget_hint : 256, o, m, &b)) {
        fasa_profile_destroy(a);
        return -1;
    }
    double sum = 0, sum_gs = 0;
    size_t n = 0, n_gs = 0;
    uint32_t fa[128], fb[128];
    for (size_t l = 0; l < (size_t)m->c.n_layers; l++)
        for (int gs = 0; gs < 2; gs++) {
            size_t heads = gs ? (size_t)m->c.n_kv_heads : (size_t)m->c.n_heads;
            for (size_t h = 0; h < heads; h++) {
                size_t na = 0, nb = 0, common = 0;
                fasa_gqa_mode md = gs ? FASA_GQA_GROUP_SHARED : FASA_GQA_PER_HEAD;
                if (fasa_profile_get_fcs(a, l, md, h, fa, 128, &na) != FASA_OK ||
                    fasa_profile_get_fcs(b, l, md, h, fb, 128, &nb) != FASA_OK || !na)
                    continue;
                for (size_t i = 0; i < na; i++)
                    for (size_t j = 0; j < nb; j++)
                        common += fa[i] == fb[j];
                if (gs) {
                    sum_gs += (double)common / (double)na;
                    n_gs++;
                } else {
                    sum += (double)common / (double)na;
                    n++;
                }
            }
        }
    printf("stability: dominant-set overlap %s vs %s: per-head %.1f %% (%zu heads), "
           "group-shared %.1f %% (%zu groups)\n",
           o->profile_a, o->profile_b, 100.0 * sum / (double)(n ? n : 1), n,
           100.0 * sum_gs / (double)(n_gs ? n_gs : 1), n_gs);
    fasa_profile_destroy(a);
    fasa_profile_destroy(b);
    return 0;
}

int mode_agreement(const opts *o, const llama_model *m)
{
    if (o->profile_a && o->profile_b && !o->profile)
        return stability(o, m) ? 1 : 0;
    if (!o->profile || !o->n_windows) {
        fprintf(stderr, "llama agreement: --profile and --windows required\n");
        return 2;
    }
    const llama_config *c = &m->c;
    size_t L = (size_t)c->n_layers, Hq = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads,
           hd = (size_t)c->head_dim, nf = hd / 2, G = Hq / Hkv;
    fasa_profile *prof = NULL;
    if (load_profile_for(o->profile, o->budget_hint ? o->budget_hint : 256, o, m, &prof))
        return 1;
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    fasa_profile_get_info(prof, &info);
    if (!info.has_agreement || !info.n_k || info.n_k > FASA_MAX_K_VALUES) {
        fprintf(stderr, "llama agreement: the profile has no agreement data\n");
        fasa_profile_destroy(prof);
        return 1;
    }
    int layout = info.shape.pair_layout;
    size_t nk = info.n_k;
    uint32_t kvals[FASA_MAX_K_VALUES];
    fasa_profile_get_k_values(prof, kvals, FASA_MAX_K_VALUES);
    /* FC order per (K, layer, head) and random sets per (layer, head). */
    uint32_t *order = malloc(nk * L * Hq * nf * sizeof(uint32_t));
    uint32_t *rnd = malloc(L * Hq * 16 * sizeof(uint32_t));
    float *ca = malloc(Hq * nf * sizeof(float));
    unsigned long long r = o->seed ? o->seed : 12345;
    for (size_t i = 0; i < L * Hq; i++) {
        uint32_t perm[256];
        for (size_t f = 0; f < nf; f++)
            perm[f] = (uint32_t)f;
        for (size_t f = 0; f < 16 && f < nf; f++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = f + (size_t)((r >> 33) % (nf - f));
            uint32_t x = perm[f];
            perm[f] = perm[j];
            perm[j] = x;
            rnd[i * 16 + f] = perm[f];
        }
    }
    for (size_t ki = 0; ki < nk; ki++)
        for (size_t l = 0; l < L; l++) {
            fasa_profile_get_agreement(prof, l, ki, ca, Hq * nf);
            for (size_t h = 0; h < Hq; h++)
                rank_fcs(ca + h * nf, nf, order + ((ki * L + l) * Hq + h) * nf);
        }
    /* Where the selected (default selection) FCs sit, by frequency quartile
     * of the FC index (low index = high frequency in both true layouts). */
    size_t quart[4] = {0}, quart_tot = 0;
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < Hq; h++) {
            uint32_t fcs[256];
            size_t n = 0;
            if (fasa_profile_get_fcs(prof, l, FASA_GQA_PER_HEAD, h, fcs, 256, &n) != FASA_OK)
                continue;
            for (size_t i = 0; i < n; i++) {
                quart[fcs[i] * 4 / nf]++;
                quart_tot++;
            }
        }

    token_data d;
    if (data_load(&d, o, m)) {
        fasa_profile_destroy(prof);
        return 1;
    }
    size_t T = d.window_len;
    acap cap = {o->start, o->stride, o->start < T ? (T - o->start + o->stride - 1) / o->stride : 0,
                Hq * hd, NULL};
    cap.q = malloc(L * (cap.n_steps ? cap.n_steps : 1) * cap.row * sizeof(float));
    float *fcs_s = malloc(nf * T * sizeof(float)), *full = malloc(T * sizeof(float)),
          *comp = malloc(T * sizeof(float)), *tmp = malloc(T * sizeof(float));
    uint32_t *idx = malloc(T * sizeof(uint32_t));
    unsigned char *mark = malloc(T);
    double sums[N_ROWS][FASA_MAX_K_VALUES] = {{0}};
    size_t n_obs = 0;
    llama_runtime rt;
    llama_kv kv;
    int rc = !cap.q || !fcs_s || !full || !comp || !tmp || !idx || !mark || !cap.n_steps ||
             llama_runtime_init(&rt, o->threads) || llama_kv_init(&kv, c, T, FASA_DTYPE_F32);
    for (int wi = 0; wi < o->n_windows && !rc; wi++) {
        int w = o->windows[wi];
        if (w < 0 || (size_t)w >= d.n_windows) {
            rc = 1;
            break;
        }
        kv.n = 0;
        progress("agreement: window %d prefill", w);
        rc = llama_prefill(m, &rt, &kv, d.tok + (size_t)w * T, T, NULL, 0, acap_observe, &cap);
        for (size_t s = 0; s < cap.n_steps && !rc; s++) {
            size_t t = cap.start + s * cap.stride + 1;
            progress("agreement: window %d step %zu/%zu", w, s, cap.n_steps);
            for (size_t l = 0; l < L; l++)
                for (size_t h = 0; h < Hq; h++) {
                    const float *q = cap.q + (l * cap.n_steps + s) * cap.row + h * hd;
                    const float *kb = (const float *)kv.k[l] + (h / G) * hd;
                    for (size_t f = 0; f < nf; f++) {
                        size_t a, b;
                        fc_dims(layout, hd, f, &a, &b);
                        float *row = fcs_s + f * t;
                        for (size_t j = 0; j < t; j++)
                            row[j] = q[a] * kb[j * Hkv * hd + a] + q[b] * kb[j * Hkv * hd + b];
                    }
                    for (size_t j = 0; j < t; j++) {
                        double acc = 0;
                        for (size_t f = 0; f < nf; f++)
                            acc += fcs_s[f * t + j];
                        full[j] = (float)acc;
                    }
                    for (size_t ki = 0; ki < nk; ki++) {
                        size_t K = kvals[ki] < t ? kvals[ki] : t;
                        memset(mark, 0, t);
                        topk_ascending(full, t, K, idx, tmp);
                        for (size_t i = 0; i < K; i++)
                            mark[idx[i]] = 1;
                        const uint32_t *ord = order + ((ki * L + l) * Hq + h) * nf;
                        for (int row = 0; row < 3; row++) {
                            size_t F = row == 0 ? 8 : 16;
                            const uint32_t *set = row == 2 ? rnd + (l * Hq + h) * 16 : ord;
                            if (F > nf)
                                F = nf;
                            for (size_t j = 0; j < t; j++) {
                                float acc = 0;
                                for (size_t i = 0; i < F; i++)
                                    acc += fcs_s[set[i] * t + j];
                                comp[j] = acc;
                            }
                            topk_ascending(comp, t, K, idx, tmp);
                            size_t hit = 0;
                            for (size_t i = 0; i < K; i++)
                                hit += mark[idx[i]];
                            sums[row][ki] += (double)hit / (double)K;
                        }
                        size_t sinks = K < 8 ? K : 8, hit = 0;
                        for (size_t j = 0; j < sinks; j++)
                            hit += mark[j];
                        for (size_t j = t - (K - sinks); j < t; j++)
                            hit += mark[j];
                        sums[3][ki] += (double)hit / (double)K;
                    }
                }
            n_obs += L * Hq;
        }
    }
    progress_done();
    if (!rc) {
        printf("agreement: %d held-out windows, positions %zu..%zu stride %zu, %zu (step, layer,"
               " head) observations, FCs ranked by calibrated mean CA at each K\n",
               o->n_windows, o->start, o->start + (cap.n_steps - 1) * o->stride, o->stride, n_obs);
        printf("%-22s", "compound CA (%)");
        for (size_t ki = 0; ki < nk; ki++)
            printf(" K=%-6u", kvals[ki]);
        printf("\n");
        const char *names[N_ROWS] = {"top-8 FCs", "top-16 FCs", "random 16 FCs",
                                     "StreamingLLM (8+K-8)"};
        for (int row = 0; row < N_ROWS; row++) {
            printf("%-22s", names[row]);
            for (size_t ki = 0; ki < nk; ki++)
                printf(" %-8.1f", 100.0 * sums[row][ki] / (double)n_obs);
            printf("\n");
        }
        printf("dominant FCs by frequency quartile (FC index 0-%zu = highest frequency): "
               "%.1f %% | %.1f %% | %.1f %% | %.1f %% (%zu FCs)\n",
               nf / 4 - 1, 100.0 * quart[0] / (double)quart_tot, 100.0 * quart[1] / (double)quart_tot,
               100.0 * quart[2] / (double)quart_tot, 100.0 * quart[3] / (double)quart_tot, quart_tot);
    }
    if (!rc && o->profile_a && o->profile_b)
        rc = stability(o, m);
    free(order); free(rnd); free(ca); free(cap.q); free(fcs_s); free(full); free(comp);
    free(tmp); free(idx); free(mark);
    llama_kv_free(&kv);
    llama_runtime_free(&rt);
    data_free(&d);
    fasa_profile_destroy(prof);
    return rc ? 1 : 0;
}
