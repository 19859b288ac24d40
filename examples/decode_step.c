/*
 * decode_step.c - libfasa end to end on synthetic RoPE data.
 *
 * One attention layer shaped like Llama-3-8B's (Hq = 8 query heads sharing
 * Hkv = 2 KV heads, head_dim 128, rotate-half RoPE = FASA_PAIRS_HALF) with
 * t = 8192 cached tokens. Keys and queries are built so that a few
 * low-frequency FCs per head carry most of the q.k signal, as the FASA paper
 * observes in real models. The program
 *   1. calibrates a profile with fasa_calibrate over 8 decode steps,
 *   2. runs one decode step (fasa_predict + fasa_attend, budget 256) in both
 *      GQA modes,
 *   3. prints how many of the exact top-256 tokens (by full q.k) were selected
 *      and the largest output difference to dense attention.
 * Uses only the public header. Build: see examples/examples.mk (make demo).
 */
#include <fasa.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HQ = 8, HKV = 2, G = HQ / HKV, D = 128, NFC = D / 2, T = 8192, CAL_STEPS = 8 };
#define BUDGET 256.0
#define ROPE_BASE 500000.0
#define N_SIGNAL 6 /* signal FCs per KV head; each query head uses 4 of them */

/* ------------------------------------------------------------ data */

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double gaussian(void)
{
    return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* Low-frequency FCs (large index = slow rotation) that carry the signal. */
static const int signal_fc[HKV][N_SIGNAL] = {{44, 49, 53, 57, 60, 62}, {41, 46, 51, 55, 59, 63}};

static int head_uses(int h, int fc)
{
    int g = h / G, r = h % G;
    for (int u = 0; u < 4; u++)
        if (signal_fc[g][(r + u) % N_SIGNAL] == fc)
            return 1;
    return 0;
}

static int is_signal(int g, int fc)
{
    for (int u = 0; u < N_SIGNAL; u++)
        if (signal_fc[g][u] == fc)
            return 1;
    return 0;
}

/* Rotate-half RoPE at position pos: dims (j, j + D/2) form FC j. */
static void rope_half(float *x, size_t pos)
{
    for (int j = 0; j < NFC; j++) {
        double angle = (double)pos * pow(ROPE_BASE, -2.0 * j / D);
        double c = cos(angle), s = sin(angle), a = x[j], b = x[j + NFC];
        x[j] = (float)(a * c - b * s);
        x[j + NFC] = (float)(a * s + b * c);
    }
}

/* Key of token pos, KV head g: random amplitudes on the signal FCs, partly
 * shared by all FCs of the token (tokens every head finds important) and
 * partly per FC (so heads using different FCs rank tokens differently);
 * small noise elsewhere. */
static void make_key(float *k, int g, size_t pos)
{
    double shared = gaussian();
    for (int j = 0; j < NFC; j++) {
        double amp = is_signal(g, j) ? exp(0.9 * (0.7 * shared + 0.7 * gaussian())) : 0.35;
        k[j] = (float)(amp * gaussian());
        k[j + NFC] = (float)(amp * gaussian());
    }
    rope_half(k, pos);
}

/* Query of head h at position pos: a fixed direction per head on its four
 * signal FCs, small noise elsewhere. */
static void make_query(float *q, int h, size_t pos, const float *direction)
{
    for (int j = 0; j < NFC; j++) {
        double amp = head_uses(h, j) ? 4.0 : 0.35;
        q[j] = (float)(amp * (direction[j] + 0.2 * gaussian()));
        q[j + NFC] = (float)(amp * (direction[j + NFC] + 0.2 * gaussian()));
    }
    rope_half(q, pos);
}

/* ------------------------------------------------------- helpers */

static fasa_ctx *ctx;

static void check(fasa_status st, const char *what)
{
    if (st != FASA_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, fasa_status_name(st),
                fasa_ctx_last_error(ctx));
        exit(1);
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

typedef struct scored {
    double s;
    unsigned idx;
} scored;

static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Exact top-n token set of query head h (full q.k in double) as flags. */
static void exact_topk(const float *q, const float *k, int h, size_t n, unsigned char *in_top)
{
    scored *s = xmalloc(T * sizeof *s);
    int g = h / G;
    for (size_t j = 0; j < T; j++) {
        double acc = 0.0;
        for (int c = 0; c < D; c++)
            acc += (double)q[h * D + c] * k[(j * HKV + g) * D + c];
        s[j].s = acc;
        s[j].idx = (unsigned)j;
    }
    qsort(s, T, sizeof *s, by_score_desc);
    memset(in_top, 0, T);
    for (size_t i = 0; i < n; i++)
        in_top[s[i].idx] = 1;
    free(s);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        m = e > m ? e : m;
    }
    return m;
}

/* ------------------------------------------------------------ main */

int main(void)
{
    check(fasa_ctx_create(NULL, &ctx), "fasa_ctx_create");
    printf("libfasa %s, %d query heads / %d KV heads, head_dim %d, t = %d, budget %g\n",
           fasa_version_string(), HQ, HKV, D, T, BUDGET);

    /* KV cache in the llama.cpp layout: [token][kv head][dim]. */
    float *k = xmalloc((size_t)T * HKV * D * sizeof *k);
    float *v = xmalloc((size_t)T * HKV * D * sizeof *v);
    for (size_t j = 0; j < T; j++)
        for (int g = 0; g < HKV; g++) {
            make_key(k + (j * HKV + g) * D, g, j);
            for (int c = 0; c < D; c++)
                v[(j * HKV + g) * D + c] = (float)gaussian();
        }
    /* Query directions: the heads of a group are related (a shared part)
     * but not equal, which is what GROUP_SHARED mode relies on. */
    float group_dir[HKV][D], direction[HQ][D];
    for (int g = 0; g < HKV; g++)
        for (int c = 0; c < D; c++)
            group_dir[g][c] = (float)gaussian();
    for (int h = 0; h < HQ; h++)
        for (int c = 0; c < D; c++)
            direction[h][c] = (float)(group_dir[h / G][c] + 0.5 * gaussian());

    /* 1. Calibration: decode steps at positions p with keys 0..p. */
    float *cal_q = xmalloc((size_t)CAL_STEPS * HQ * D * sizeof *cal_q);
    fasa_view cal_qv[CAL_STEPS], cal_kv[CAL_STEPS];
    fasa_calib_step steps[CAL_STEPS];
    for (int s = 0; s < CAL_STEPS; s++) {
        size_t p = 2048 + 512 * (size_t)s;
        for (int h = 0; h < HQ; h++)
            make_query(cal_q + ((size_t)s * HQ + h) * D, h, p, direction[h]);
        check(fasa_view_make(&cal_qv[s], cal_q + (size_t)s * HQ * D, FASA_DTYPE_F32, 1, HQ, D,
                             HQ * D, D),
              "fasa_view_make");
        check(fasa_view_make(&cal_kv[s], k, FASA_DTYPE_F32, p + 1, HKV, D, HKV * D, D),
              "fasa_view_make");
        steps[s].layer = 0;
        steps[s].q = &cal_qv[s];
        steps[s].k = &cal_kv[s];
    }
    fasa_calib_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    cfg.shape.struct_size = sizeof cfg.shape;
    cfg.shape.n_layers = 1;
    cfg.shape.n_q_heads = HQ;
    cfg.shape.n_kv_heads = HKV;
    cfg.shape.head_dim = D;
    cfg.shape.pair_layout = FASA_PAIRS_HALF;
    cfg.n_k = 0; /* default K values */
    fasa_profile *profile = NULL;
    check(fasa_calibrate(&cfg, steps, CAL_STEPS, NULL, &profile), "fasa_calibrate");
    uint32_t fcs[NFC];
    size_t n_fc = 0;
    check(fasa_profile_get_fcs(profile, 0, FASA_GQA_PER_HEAD, 0, fcs, NFC, &n_fc),
          "fasa_profile_get_fcs");
    int hits = 0;
    for (size_t u = 0; u < n_fc; u++)
        hits += head_uses(0, (int)fcs[u]);
    printf("calibrated %d steps: head 0 keeps %zu FCs, %d of its 4 signal FCs among them\n",
           CAL_STEPS, n_fc, hits);

    /* 2. The decode step: the query of the newest token, position T-1. */
    float *q = xmalloc((size_t)HQ * D * sizeof *q);
    for (int h = 0; h < HQ; h++)
        make_query(q + (size_t)h * D, h, T - 1, direction[h]);
    fasa_view qv, kv, vv, outv, densev;
    float *out = xmalloc((size_t)HQ * D * sizeof *out);
    float *dense = xmalloc((size_t)HQ * D * sizeof *dense);
    check(fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D), "fasa_view_make");
    check(fasa_view_make(&kv, k, FASA_DTYPE_F32, T, HKV, D, HKV * D, D), "fasa_view_make");
    check(fasa_view_make(&vv, v, FASA_DTYPE_F32, T, HKV, D, HKV * D, D), "fasa_view_make");
    check(fasa_view_make(&outv, out, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D), "fasa_view_make");
    check(fasa_view_make(&densev, dense, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D), "fasa_view_make");

    size_t ws_size;
    check(fasa_attend_dense_workspace_size(ctx, &qv, &kv, &vv, &ws_size), "workspace size");
    void *ws = xmalloc(ws_size);
    check(fasa_attend_dense(ctx, &qv, &kv, &vv, 0.0f, &densev, NULL, ws, ws_size),
          "fasa_attend_dense");
    free(ws);

    unsigned char *in_top = xmalloc((size_t)HQ * T);
    for (int h = 0; h < HQ; h++)
        exact_topk(q, k, h, (size_t)BUDGET, in_top + (size_t)h * T);

    size_t max_sel;
    check(fasa_predict_max_selected(BUDGET, T, &max_sel), "fasa_predict_max_selected");

    /* The oracle: attention over each head's exact top-k, for scale. */
    {
        uint32_t *oracle = xmalloc((size_t)HQ * max_sel * sizeof *oracle);
        uint32_t counts[HQ];
        for (int h = 0; h < HQ; h++) {
            counts[h] = 0;
            for (uint32_t j = 0; j < T; j++)
                if (in_top[(size_t)h * T + j])
                    oracle[(size_t)h * max_sel + counts[h]++] = j;
        }
        check(fasa_attend_workspace_size(ctx, &qv, &kv, &vv, FASA_GQA_PER_HEAD, max_sel,
                                         &ws_size),
              "workspace size");
        ws = xmalloc(ws_size);
        check(fasa_attend(ctx, FASA_GQA_PER_HEAD, &qv, &kv, &vv, oracle, max_sel, counts, 0.0f,
                          &outv, NULL, ws, ws_size),
              "fasa_attend");
        printf("oracle      : exact top-%d of every head,               max |out - dense| %.4f\n",
               (int)BUDGET, max_abs_diff(out, dense, HQ * D));
        free(ws);
        free(oracle);
    }
    static const char *const mode_name[2] = {"per-head    ", "group-shared"};
    for (int m = 0; m < 2; m++) {
        fasa_gqa_mode mode = m == 0 ? FASA_GQA_PER_HEAD : FASA_GQA_GROUP_SHARED;
        size_t n_sets = mode == FASA_GQA_PER_HEAD ? HQ : HKV;
        uint32_t *indices = xmalloc(n_sets * max_sel * sizeof *indices);
        uint32_t counts[HQ];
        size_t p_ws, a_ws;
        check(fasa_predict_workspace_size(ctx, profile, &qv, T, mode, &p_ws), "workspace size");
        check(fasa_attend_workspace_size(ctx, &qv, &kv, &vv, mode, max_sel, &a_ws),
              "workspace size");
        ws_size = p_ws > a_ws ? p_ws : a_ws;
        ws = xmalloc(ws_size);
        check(fasa_predict(ctx, profile, 0, mode, &qv, &kv, BUDGET, indices, max_sel, counts,
                           NULL, ws, ws_size),
              "fasa_predict");
        check(fasa_attend(ctx, mode, &qv, &kv, &vv, indices, max_sel, counts, 0.0f, &outv, NULL,
                          ws, ws_size),
              "fasa_attend");

        /* Recall of each query head's exact top-256 by its token set. */
        size_t found = 0, wanted = 0;
        for (int h = 0; h < HQ; h++) {
            size_t set = mode == FASA_GQA_PER_HEAD ? (size_t)h : (size_t)(h / G);
            for (uint32_t i = 0; i < counts[set]; i++)
                found += in_top[(size_t)h * T + indices[set * max_sel + i]];
            wanted += (size_t)BUDGET;
        }
        printf("%s: top-%d agreement with the exact top-k %5.1f %%, max |out - dense| %.4f\n",
               mode_name[m], (int)BUDGET, 100.0 * (double)found / (double)wanted,
               max_abs_diff(out, dense, HQ * D));
        free(ws);
        free(indices);
    }
    double max_dense = 0.0;
    for (int i = 0; i < HQ * D; i++)
        max_dense = fabs(dense[i]) > max_dense ? fabs(dense[i]) : max_dense;
    printf("(max |dense| %.4f; a random choice of %d of %d tokens would agree %.1f %%)\n",
           max_dense, (int)BUDGET, T, 100.0 * BUDGET / T);

    free(in_top);
    free(out);
    free(dense);
    free(q);
    free(cal_q);
    free(k);
    free(v);
    fasa_profile_destroy(profile);
    fasa_ctx_destroy(ctx);
    return 0;
}
