/*
 * decode_step.c - libfasa end to end on synthetic RoPE data.
 *
 * One attention layer with Llama-3's GQA ratio (Hq = 8 query heads sharing
 * Hkv = 2 KV heads), head_dim 128, rotate-half RoPE (FASA_PAIRS_HALF) and
 * t = 8192 cached tokens. Keys and queries are built so that a few
 * low-frequency FCs per head carry most of the q.k signal, as the FASA paper
 * observes in real models. The program
 *   1. calibrates a profile with fasa_calibrate over 8 decode steps,
 *   2. runs one decode step (fasa_predict + fasa_attend, budget 256) in both
 *      GQA modes,
 *   3. prints how many of each head's exact top-256 tokens (by full q.k)
 *      were selected and the largest output difference to dense attention,
 *      next to the same difference for the exact top-256 (the oracle).
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

/* ------------------------------------------------------------ steps */

/* 1. Calibration over CAL_STEPS decode steps at positions p (keys 0..p). */
static fasa_profile *calibrate(const float *k, float direction[HQ][D])
{
    float *cal_q = xmalloc((size_t)CAL_STEPS * HQ * D * sizeof *cal_q);
    fasa_view qv[CAL_STEPS], kv[CAL_STEPS];
    fasa_calib_step steps[CAL_STEPS];
    for (int s = 0; s < CAL_STEPS; s++) {
        size_t p = 2048 + 512 * (size_t)s;
        float *q = cal_q + (size_t)s * HQ * D;
        for (int h = 0; h < HQ; h++)
            make_query(q + (size_t)h * D, h, p, direction[h]);
        check(fasa_view_make(&qv[s], q, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D), "fasa_view_make");
        check(fasa_view_make(&kv[s], k, FASA_DTYPE_F32, p + 1, HKV, D, HKV * D, D),
              "fasa_view_make");
        steps[s].layer = 0;
        steps[s].q = &qv[s];
        steps[s].k = &kv[s];
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
    free(cal_q);

    uint32_t fcs[NFC];
    size_t n_fc = 0;
    check(fasa_profile_get_fcs(profile, 0, FASA_GQA_PER_HEAD, 0, fcs, NFC, &n_fc),
          "fasa_profile_get_fcs");
    int hits = 0;
    for (size_t u = 0; u < n_fc; u++)
        hits += head_uses(0, (int)fcs[u]);
    printf("calibrated %d steps: head 0 keeps %zu FCs, %d of its 4 signal FCs among them\n",
           CAL_STEPS, n_fc, hits);
    return profile;
}

/* Views of the decode step (one query token at position T-1). */
typedef struct step_views {
    fasa_view q, k, v, out;
} step_views;

/* fasa_attend over the given sets into views->out. */
static void attend(const step_views *sv, fasa_gqa_mode mode, const uint32_t *indices,
                   size_t stride, const uint32_t *counts)
{
    size_t bytes;
    check(fasa_attend_workspace_size(ctx, &sv->q, &sv->k, &sv->v, mode, stride, &bytes),
          "fasa_attend_workspace_size");
    void *ws = xmalloc(bytes);
    check(fasa_attend(ctx, mode, &sv->q, &sv->k, &sv->v, indices, stride, counts, 0.0f,
                      &sv->out, NULL, ws, bytes),
          "fasa_attend");
    free(ws);
}

/* 2. One FASA step in `mode`: fasa_predict + fasa_attend into sv->out.
 * Returns the recall of the heads' exact top-k (in_top[h][T] flags). */
static double fasa_step(const step_views *sv, const fasa_profile *profile, fasa_gqa_mode mode,
                        const unsigned char *in_top)
{
    size_t max_sel, bytes;
    check(fasa_predict_max_selected(BUDGET, T, &max_sel), "fasa_predict_max_selected");
    size_t n_sets = mode == FASA_GQA_PER_HEAD ? HQ : HKV;
    uint32_t *indices = xmalloc(n_sets * max_sel * sizeof *indices);
    uint32_t counts[HQ];
    check(fasa_predict_workspace_size(ctx, profile, &sv->q, T, mode, &bytes),
          "fasa_predict_workspace_size");
    void *ws = xmalloc(bytes);
    check(fasa_predict(ctx, profile, 0, mode, &sv->q, &sv->k, BUDGET, indices, max_sel, counts,
                       NULL, ws, bytes),
          "fasa_predict");
    free(ws);
    attend(sv, mode, indices, max_sel, counts);

    size_t found = 0, wanted = 0;
    for (int h = 0; h < HQ; h++) {
        size_t set = mode == FASA_GQA_PER_HEAD ? (size_t)h : (size_t)(h / G);
        for (uint32_t i = 0; i < counts[set]; i++)
            found += in_top[(size_t)h * T + indices[set * max_sel + i]];
        wanted += (size_t)BUDGET;
    }
    free(indices);
    return (double)found / (double)wanted;
}

/* The oracle: attention over each head's exact top-k, for scale. */
static void oracle_step(const step_views *sv, const unsigned char *in_top)
{
    size_t stride = (size_t)BUDGET;
    uint32_t *sets = xmalloc((size_t)HQ * stride * sizeof *sets);
    uint32_t counts[HQ];
    for (int h = 0; h < HQ; h++) {
        counts[h] = 0;
        for (uint32_t j = 0; j < T; j++)
            if (in_top[(size_t)h * T + j])
                sets[(size_t)h * stride + counts[h]++] = j;
    }
    attend(sv, FASA_GQA_PER_HEAD, sets, stride, counts);
    free(sets);
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

    fasa_profile *profile = calibrate(k, direction);

    float *q = xmalloc((size_t)HQ * D * sizeof *q);
    float *out = xmalloc((size_t)HQ * D * sizeof *out);
    float *dense = xmalloc((size_t)HQ * D * sizeof *dense);
    for (int h = 0; h < HQ; h++)
        make_query(q + (size_t)h * D, h, T - 1, direction[h]);
    step_views sv;
    fasa_view dense_view;
    check(fasa_view_make(&sv.q, q, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D), "fasa_view_make");
    check(fasa_view_make(&sv.k, k, FASA_DTYPE_F32, T, HKV, D, HKV * D, D), "fasa_view_make");
    check(fasa_view_make(&sv.v, v, FASA_DTYPE_F32, T, HKV, D, HKV * D, D), "fasa_view_make");
    check(fasa_view_make(&sv.out, out, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D), "fasa_view_make");
    check(fasa_view_make(&dense_view, dense, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D),
          "fasa_view_make");

    size_t bytes;
    check(fasa_attend_dense_workspace_size(ctx, &sv.q, &sv.k, &sv.v, &bytes),
          "fasa_attend_dense_workspace_size");
    void *ws = xmalloc(bytes);
    check(fasa_attend_dense(ctx, &sv.q, &sv.k, &sv.v, 0.0f, &dense_view, NULL, ws, bytes),
          "fasa_attend_dense");
    free(ws);

    unsigned char *in_top = xmalloc((size_t)HQ * T);
    for (int h = 0; h < HQ; h++)
        exact_topk(q, k, h, (size_t)BUDGET, in_top + (size_t)h * T);

    oracle_step(&sv, in_top);
    printf("oracle      : the exact top-%d of every head,             max |out - dense| %.2e\n",
           (int)BUDGET, max_abs_diff(out, dense, HQ * D));
    static const char *const mode_name[2] = {"per-head    ", "group-shared"};
    for (int m = 0; m < 2; m++) {
        fasa_gqa_mode mode = m == 0 ? FASA_GQA_PER_HEAD : FASA_GQA_GROUP_SHARED;
        double recall = fasa_step(&sv, profile, mode, in_top);
        printf("%s: top-%d agreement with the exact top-k %5.1f %%, max |out - dense| %.2e\n",
               mode_name[m], (int)BUDGET, 100.0 * recall, max_abs_diff(out, dense, HQ * D));
    }
    double max_dense = 0.0;
    for (int i = 0; i < HQ * D; i++)
        max_dense = fabs(dense[i]) > max_dense ? fabs(dense[i]) : max_dense;
    printf("(max |dense| %.3f; a random choice of %d of %d tokens would agree %.1f %%)\n",
           max_dense, (int)BUDGET, T, 100.0 * BUDGET / T);

    free(in_top);
    free(out);
    free(dense);
    free(q);
    free(k);
    free(v);
    fasa_profile_destroy(profile);
    fasa_ctx_destroy(ctx);
    return 0;
}
