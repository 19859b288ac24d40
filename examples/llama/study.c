/*
 * study.c - the quality-study modes: ppl (paper protocol, many methods
 * decoded side by side from one shared prefill), calibrate (the standard
 * calibration protocol) and agreement (contextual agreement tables).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "cli.h"

/* ------------------------------------------------------ q capture (shared) */

/* Keeps post-RoPE q of chosen positions: every stride-th position from start
 * (calibration) or the last `last` positions of a prefill (self-calibration). */
typedef struct {
    size_t start, stride, end, n_steps, row;
    int n_layers;
    float *q; /* [n_layers][n_steps][row] */
} q_capture;

static int capture_init(q_capture *c, int n_layers, size_t row, size_t start, size_t stride,
                        size_t end)
{
    memset(c, 0, sizeof *c);
    c->start = start;
    c->stride = stride;
    c->end = end;
    c->row = row;
    c->n_layers = n_layers;
    c->n_steps = end > start ? (end - start + stride - 1) / stride : 0;
    c->q = malloc((size_t)n_layers * (c->n_steps ? c->n_steps : 1) * row * sizeof(float));
    return c->q ? 0 : -1;
}

static size_t capture_pos(const q_capture *c, size_t s) { return c->start + s * c->stride; }

static void capture_observe(void *user, int layer, const float *q, size_t pos0, size_t n)
{
    q_capture *c = user;
    for (size_t s = 0; s < c->n_steps; s++) {
        size_t p = capture_pos(c, s);
        if (p >= pos0 && p < pos0 + n)
            memcpy(c->q + ((size_t)layer * c->n_steps + s) * c->row, q + (p - pos0) * c->row,
                   c->row * sizeof(float));
    }
}

static const float *capture_q(const q_capture *c, int layer, size_t s)
{
    return c->q + ((size_t)layer * c->n_steps + s) * c->row;
}

static fasa_calibrator *calibrator_for(const llama_model *m, int layout)
{
    fasa_calib_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    cfg.shape.struct_size = sizeof cfg.shape;
    cfg.shape.n_layers = (size_t)m->c.n_layers;
    cfg.shape.n_q_heads = (size_t)m->c.n_heads;
    cfg.shape.n_kv_heads = (size_t)m->c.n_kv_heads;
    cfg.shape.head_dim = (size_t)m->c.head_dim;
    cfg.shape.pair_layout = layout;
    fasa_calibrator *cal = NULL;
    fasa_status st = fasa_calibrator_create(&cfg, &cal);
    if (st != FASA_OK) {
        fprintf(stderr, "llama: fasa_calibrator_create: %s\n", fasa_status_name(st));
        return NULL;
    }
    return cal;
}

/* Feed every captured step of every layer: q at p, keys 0..p. */
static int feed_calibrator(fasa_calibrator *cal, llama_runtime *rt, const llama_model *m,
                           const q_capture *c, const llama_kv *kv)
{
    size_t Hq = (size_t)m->c.n_heads, hd = (size_t)m->c.head_dim;
    for (size_t s = 0; s < c->n_steps; s++) {
        size_t p = capture_pos(c, s);
        for (int l = 0; l < m->c.n_layers; l++) {
            fasa_view qv, kv_view;
            fasa_view_make(&qv, capture_q(c, l, s), FASA_DTYPE_F32, 1, Hq, hd, Hq * hd, hd);
            llama_kv_view(kv, l, 0, p + 1, &kv_view);
            fasa_status st = fasa_calibrator_add_step(cal, rt->ctx, (size_t)l, &qv, &kv_view);
            if (st != FASA_OK) {
                fprintf(stderr, "llama: fasa_calibrator_add_step: %s (%s)\n",
                        fasa_status_name(st), fasa_ctx_last_error(rt->ctx));
                return -1;
            }
        }
    }
    return 0;
}

static int finish_and_save(fasa_calibrator *cal, const opts *o, const llama_model *m,
                           const char *path)
{
    fasa_select_options so;
    select_defaults(o, m, o->budget_hint, &so);
    fasa_profile *p = NULL;
    fasa_status st = fasa_calibrator_finish(cal, &so, &p);
    if (st == FASA_OK)
        st = fasa_profile_save(p, path);
    fasa_profile_destroy(p);
    if (st != FASA_OK) {
        fprintf(stderr, "llama: profile %s: %s\n", path, fasa_status_name(st));
        return -1;
    }
    printf("calibrate: wrote %s\n", path);
    return 0;
}

/* -------------------------------------------------------------- calibrate */

int mode_calibrate(const opts *o, const llama_model *m)
{
    if (!o->out || !o->n_windows) {
        fprintf(stderr, "llama calibrate: --windows and --out required\n");
        return 2;
    }
    int layout = o->layout >= 0 ? o->layout : m->c.pair_layout;
    if ((o->out_adj || layout == FASA_PAIRS_ADJACENT) && m->c.pair_layout != FASA_PAIRS_HALF) {
        fprintf(stderr, "llama calibrate: --adjacent-out needs a rotate-half model\n");
        return 2;
    }
    char split_a[1024] = "", split_b[1024] = "";
    if (o->out_split) {
        const char *comma = strchr(o->out_split, ',');
        if (!comma || o->n_windows < 2) {
            fprintf(stderr, "llama calibrate: --split-out A,B needs >= 2 windows\n");
            return 2;
        }
        snprintf(split_a, sizeof split_a, "%.*s", (int)(comma - o->out_split), o->out_split);
        snprintf(split_b, sizeof split_b, "%s", comma + 1);
    }
    token_data d;
    if (data_load(&d, o, m))
        return 1;
    /* --tokens limits the prefix of each window (quick tests). */
    size_t T = o->n_tokens && o->n_tokens < d.window_len ? o->n_tokens : d.window_len;
    llama_runtime rt;
    llama_kv kv;
    q_capture cap;
    fasa_calibrator *cal = NULL, *cal_adj = NULL, *cal_a = NULL, *cal_b = NULL;
    int rc = llama_runtime_init(&rt, o->threads) || llama_kv_init(&kv, &m->c, T, FASA_DTYPE_F32) ||
             capture_init(&cap, m->c.n_layers, (size_t)(m->c.n_heads * m->c.head_dim), o->start,
                          o->stride, T);
    if (!rc && !cap.n_steps) {
        fprintf(stderr, "llama calibrate: no decode positions (start %zu >= %zu tokens)\n",
                o->start, T);
        rc = 1;
    }
    if (!rc)
        rc = !(cal = calibrator_for(m, layout)) ||
             (o->out_adj && !(cal_adj = calibrator_for(m, FASA_PAIRS_ADJACENT))) ||
             (o->out_split && (!(cal_a = calibrator_for(m, layout)) ||
                               !(cal_b = calibrator_for(m, layout))));
    double t0 = now_seconds();
    for (int wi = 0; wi < o->n_windows && !rc; wi++) {
        int w = o->windows[wi];
        if (w < 0 || (size_t)w >= d.n_windows) {
            fprintf(stderr, "llama calibrate: window %d out of range\n", w);
            rc = 1;
            break;
        }
        progress("calibrate: window %d (%d/%d), prefill", w, wi + 1, o->n_windows);
        kv.n = 0;
        rc = llama_prefill(m, &rt, &kv, d.tok + (size_t)w * d.window_len, T, NULL, 0, capture_observe,
                           &cap);
        progress("calibrate: window %d (%d/%d), %zu steps x %d layers", w, wi + 1, o->n_windows,
                 cap.n_steps, m->c.n_layers);
        if (!rc)
            rc = feed_calibrator(cal, &rt, m, &cap, &kv);
        if (!rc && cal_adj)
            rc = feed_calibrator(cal_adj, &rt, m, &cap, &kv);
        if (!rc && cal_a)
            rc = feed_calibrator(wi < o->n_windows / 2 ? cal_a : cal_b, &rt, m, &cap, &kv);
    }
    progress_done();
    if (!rc) {
        printf("calibrate: %d windows, positions %zu..%zu stride %zu (%zu steps/window), "
               "%.1f s\n",
               o->n_windows, o->start, capture_pos(&cap, cap.n_steps - 1), o->stride,
               cap.n_steps, now_seconds() - t0);
        rc = finish_and_save(cal, o, m, o->out);
    }
    if (!rc && cal_adj)
        rc = finish_and_save(cal_adj, o, m, o->out_adj);
    if (!rc && cal_a)
        rc = finish_and_save(cal_a, o, m, split_a) || finish_and_save(cal_b, o, m, split_b);
    fasa_calibrator_destroy(cal);
    fasa_calibrator_destroy(cal_adj);
    fasa_calibrator_destroy(cal_a);
    fasa_calibrator_destroy(cal_b);
    free(cap.q);
    llama_kv_free(&kv);
    llama_runtime_free(&rt);
    data_free(&d);
    return rc ? 1 : 0;
}

/* -------------------------------------------------------------------- ppl */

typedef enum { S_FULL, S_ORACLE, S_ORACLE_L0, S_FASA, S_FASA_GS, S_FASA_ADJ, S_RANDOM,
               S_STREAM, S_QUEST, S_SELFCAL, S_SELFCAL_GS } spec_kind;

typedef struct {
    spec_kind kind;
    double budget;
    char name[96];
    fasa_profile *profile; /* offline or random: per spec, owned */
    double nll;
    size_t count;
    method me;
    llama_kv kv;
} spec;

static const struct {
    const char *name;
    spec_kind kind;
} spec_names[] = {{"full", S_FULL},         {"oracle", S_ORACLE},       {"oracle-l0", S_ORACLE_L0},
                  {"fasa", S_FASA},         {"fasa-gs", S_FASA_GS},     {"fasa-adj", S_FASA_ADJ},
                  {"random", S_RANDOM},     {"stream", S_STREAM},       {"quest", S_QUEST},
                  {"selfcal", S_SELFCAL},   {"selfcal-gs", S_SELFCAL_GS}};

static int parse_methods(const char *s, spec *out, int cap)
{
    int n = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char item[64];
        if (len == 0 || len >= sizeof item || n == cap)
            return -1;
        memcpy(item, s, len);
        item[len] = 0;
        char *colon = strchr(item, ':');
        double b = 0;
        if (colon) {
            *colon = 0;
            b = atof(colon + 1);
        }
        int found = 0;
        for (size_t i = 0; i < sizeof spec_names / sizeof spec_names[0]; i++)
            if (!strcmp(item, spec_names[i].name)) {
                memset(&out[n], 0, sizeof out[n]);
                out[n].kind = spec_names[i].kind;
                out[n].budget = b;
                found = 1;
            }
        if (!found || (out[n].kind != S_FULL && b <= 0)) {
            fprintf(stderr, "llama ppl: bad method '%s' (name:budget)\n", item);
            return -1;
        }
        if (colon)
            snprintf(out[n].name, sizeof out[n].name, "%s:%g", item, b);
        else
            snprintf(out[n].name, sizeof out[n].name, "%s", item);
        n++;
        s += len;
        if (*s == ',')
            s++;
    }
    return n;
}

/* 16-of-64 style random FC sets (n_fc per head), fixed seed. */
static fasa_profile *random_profile(const llama_model *m, unsigned n_fc, unsigned long long seed)
{
    size_t L = (size_t)m->c.n_layers, Hq = (size_t)m->c.n_heads, nf = (size_t)m->c.head_dim / 2;
    uint32_t *fcs = malloc(L * Hq * n_fc * sizeof(uint32_t));
    uint32_t *perm = malloc(nf * sizeof(uint32_t));
    unsigned long long r = seed ? seed : 12345;
    for (size_t i = 0; i < L * Hq; i++) {
        for (size_t f = 0; f < nf; f++)
            perm[f] = (uint32_t)f;
        for (size_t f = 0; f < n_fc; f++) { /* partial Fisher-Yates */
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = f + (size_t)((r >> 33) % (nf - f));
            uint32_t x = perm[f];
            perm[f] = perm[j];
            perm[j] = x;
            fcs[i * n_fc + f] = perm[f];
        }
    }
    fasa_model_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.struct_size = sizeof sh;
    sh.n_layers = L;
    sh.n_q_heads = Hq;
    sh.n_kv_heads = (size_t)m->c.n_kv_heads;
    sh.head_dim = (size_t)m->c.head_dim;
    sh.pair_layout = m->c.pair_layout;
    fasa_profile *p = NULL;
    fasa_status st = fasa_profile_create(&sh, fcs, n_fc, NULL, &p);
    free(fcs);
    free(perm);
    if (st != FASA_OK) {
        fprintf(stderr, "llama: fasa_profile_create: %s\n", fasa_status_name(st));
        return NULL;
    }
    return p;
}

/* Self-calibration: the last `steps` prefill positions as decode steps,
 * accumulated once per window; each budget then selects from it. */
static fasa_profile *self_profile(const llama_model *m, llama_runtime *rt, const q_capture *cap,
                                  const llama_kv *kv)
{
    fasa_calibrator *cal = calibrator_for(m, m->c.pair_layout);
    fasa_profile *p = NULL;
    if (cal && !feed_calibrator(cal, rt, m, cap, kv)) {
        fasa_status st = fasa_calibrator_finish(cal, NULL, &p);
        if (st != FASA_OK)
            fprintf(stderr, "llama: self-calibration: %s\n", fasa_status_name(st));
    }
    fasa_calibrator_destroy(cal);
    return p;
}

static fasa_profile *selected_clone(const opts *o, const llama_model *m, const fasa_profile *src,
                                    unsigned budget)
{
    fasa_profile *p = NULL;
    fasa_select_options so;
    select_defaults(o, m, budget, &so);
    if (fasa_profile_clone(src, &p) != FASA_OK || fasa_profile_select(p, &so) != FASA_OK) {
        fprintf(stderr, "llama: self-calibration: select failed\n");
        fasa_profile_destroy(p);
        return NULL;
    }
    return p;
}

int mode_ppl(const opts *o, const llama_model *m)
{
    spec sp[MAX_LIST];
    int n_sp = o->methods ? parse_methods(o->methods, sp, MAX_LIST) : -1;
    if (n_sp <= 0 || !o->n_windows || !o->prefill) {
        fprintf(stderr, "llama ppl: --methods, --windows and --prefill required\n");
        return 2;
    }
    token_data d;
    if (data_load(&d, o, m))
        return 1;
    size_t P = o->prefill, N = o->decode ? o->decode : d.window_len - P, cap_tok = P + N;
    if (P + N > d.window_len || N < 1 || cap_tok > (size_t)m->c.max_seq) {
        fprintf(stderr, "llama ppl: prefill %zu + decode %zu does not fit a window of %zu\n", P,
                N, d.window_len);
        data_free(&d);
        return 2;
    }
    unsigned nfc = o->n_fc ? o->n_fc : (unsigned)(m->c.head_dim / 8);
    if (!nfc)
        nfc = 1;
    int rc = 0;
    fasa_profile *rnd = NULL;
    for (int i = 0; i < n_sp && !rc; i++) {
        spec *s = &sp[i];
        if (s->kind == S_FASA || s->kind == S_FASA_GS || s->kind == S_FASA_ADJ) {
            const char *path = s->kind == S_FASA_ADJ ? o->profile_adj : o->profile;
            if (!path) {
                fprintf(stderr, "llama ppl: %s needs --profile%s\n", s->name,
                        s->kind == S_FASA_ADJ ? "-adj" : "");
                rc = 2;
            } else {
                rc = load_profile_for(path, (unsigned)s->budget, o, m, &s->profile);
            }
        }
        /* oracle-l0 takes its dense layers from the FASA profile when there
         * is one (method_init falls back to layer 0). */
        if (s->kind == S_ORACLE_L0 && o->profile && !rc)
            rc = load_profile_for(o->profile, (unsigned)s->budget, o, m, &s->profile);
        if (s->kind == S_RANDOM && !rc) {
            if (!rnd)
                rnd = random_profile(m, nfc, o->seed);
            rc = !rnd || fasa_profile_clone(rnd, &s->profile) != FASA_OK;
        }
    }
    llama_runtime rt;
    llama_kv base;
    q_capture cap;
    size_t S = o->selfcal_steps < P ? o->selfcal_steps : P - 1;
    float *lg0 = malloc((size_t)m->c.vocab * sizeof(float));
    float *lg = malloc((size_t)n_sp * (size_t)m->c.vocab * sizeof(float));
    llama_kv **kvs = calloc((size_t)n_sp, sizeof *kvs);
    llama_attn_fn *fns = calloc((size_t)n_sp, sizeof *fns);
    void **users = calloc((size_t)n_sp, sizeof *users);
    uint16_t *toks = calloc((size_t)n_sp, sizeof *toks);
    fasa_profile **selfp = calloc((size_t)n_sp, sizeof *selfp);
    if (!rc)
        rc = !lg0 || !lg || !kvs || !fns || !users || !toks || !selfp ||
             llama_runtime_init(&rt, o->threads) ||
             llama_kv_init(&base, &m->c, cap_tok, o->kv_dtype) ||
             capture_init(&cap, m->c.n_layers, (size_t)(m->c.n_heads * m->c.head_dim), P - S, 1, P);
    for (int i = 0; i < n_sp && !rc; i++) {
        rc = llama_kv_init(&sp[i].kv, &m->c, cap_tok, o->kv_dtype);
        kvs[i] = &sp[i].kv;
        fns[i] = method_attend;
        users[i] = &sp[i].me;
    }
    double nll0 = 0, t_start = now_seconds();
    size_t count0 = 0;
    for (int wi = 0; wi < o->n_windows && !rc; wi++) {
        int w = o->windows[wi];
        if (w < 0 || (size_t)w >= d.n_windows) {
            fprintf(stderr, "llama ppl: window %d out of range\n", w);
            rc = 1;
            break;
        }
        const uint16_t *tok = d.tok + (size_t)w * d.window_len;
        progress("ppl: window %d (%d/%d): prefill %zu", w, wi + 1, o->n_windows, P);
        base.n = 0;
        rc = llama_prefill(m, &rt, &base, tok, P, lg0, 1, capture_observe, &cap);
        if (rc)
            break;
        /* The prefill's own prediction is dense for every method. */
        double lp0 = llama_logprob(lg0, m->c.vocab, tok[P]);
        nll0 -= lp0;
        count0++;
        fasa_profile *self_all = NULL;
        for (int i = 0; i < n_sp && !rc; i++)
            if ((sp[i].kind == S_SELFCAL || sp[i].kind == S_SELFCAL_GS) && !self_all) {
                progress("ppl: window %d (%d/%d): self-calibration on %zu positions", w, wi + 1,
                         o->n_windows, S);
                rc = !(self_all = self_profile(m, &rt, &cap, &base));
            }
        for (int i = 0; i < n_sp && !rc; i++) {
            spec *s = &sp[i];
            s->nll -= lp0;
            s->count++;
            const fasa_profile *prof = s->profile;
            fasa_gqa_mode mode = (s->kind == S_FASA_GS || s->kind == S_SELFCAL_GS)
                                     ? FASA_GQA_GROUP_SHARED : FASA_GQA_PER_HEAD;
            if (s->kind == S_SELFCAL || s->kind == S_SELFCAL_GS) {
                fasa_profile_destroy(selfp[i]);
                selfp[i] = selected_clone(o, m, self_all, (unsigned)s->budget);
                prof = selfp[i];
                rc = !prof;
            }
            method_kind mk = M_FULL;
            switch (s->kind) {
            case S_FULL: mk = M_FULL; break;
            case S_ORACLE: mk = M_ORACLE; break;
            case S_ORACLE_L0: mk = M_ORACLE_L0; break;
            case S_STREAM: mk = M_STREAM; break;
            case S_QUEST: mk = M_QUEST; break;
            default: mk = M_FASA; break;
            }
            llama_kv_copy(&s->kv, &base);
            if (!rc)
                rc = method_init(&s->me, mk, s->budget > 0 ? s->budget : 1, mode, prof, m, &rt,
                                 cap_tok) ||
                     method_after_prefill(&s->me, &s->kv);
        }
        fasa_profile_destroy(self_all);
        for (size_t step = 0; step + 1 < N && !rc; step++) {
            if (step % 16 == 0)
                progress("ppl: window %d (%d/%d): decode %zu/%zu, %d methods, %.0f s", w, wi + 1,
                         o->n_windows, step, N - 1, n_sp, now_seconds() - t_start);
            for (int i = 0; i < n_sp; i++)
                toks[i] = tok[P + step];
            rc = llama_decode_batch(m, &rt, (size_t)n_sp, toks, kvs, fns, users, lg);
            for (int i = 0; i < n_sp && !rc; i++) {
                sp[i].nll -= llama_logprob(lg + (size_t)i * m->c.vocab, m->c.vocab,
                                           tok[P + step + 1]);
                sp[i].count++;
            }
        }
        for (int i = 0; i < n_sp; i++)
            method_free(&sp[i].me);
    }
    progress_done();
    if (!rc) {
        double full = NAN;
        for (int i = 0; i < n_sp; i++)
            if (sp[i].kind == S_FULL)
                full = exp(sp[i].nll / (double)sp[i].count);
        printf("ppl: %d windows, prefill %zu, decoded positions %zu..%zu (%zu predictions per "
               "window incl. the prefill's), %.0f s\n",
               o->n_windows, P, P, P + N - 1, N, now_seconds() - t_start);
        printf("%-16s %8s %12s %10s %10s\n", "method", "budget", "ppl", "vs_full%", "nll_sum");
        for (int i = 0; i < n_sp; i++) {
            double ppl = exp(sp[i].nll / (double)sp[i].count);
            printf("%-16s %8g %12.6f %10.3f %10.4f\n", sp[i].name, sp[i].budget, ppl,
                   100.0 * (ppl / full - 1.0), sp[i].nll);
        }
        /* Bit-exact form for tests comparing two methods. */
        for (int i = 0; i < n_sp; i++)
            printf("exact %s %a\n", sp[i].name, sp[i].nll);
    }
    for (int i = 0; i < n_sp; i++) {
        llama_kv_free(&sp[i].kv);
        fasa_profile_destroy(sp[i].profile);
        if (selfp)
            fasa_profile_destroy(selfp[i]);
    }
    fasa_profile_destroy(rnd);
    free(selfp);
    free(cap.q);
    free(lg0);
    free(lg);
    free(kvs);
    free(fns);
    free(users);
    free(toks);
    llama_kv_free(&base);
    llama_runtime_free(&rt);
    data_free(&d);
    (void)nll0;
    return rc ? 1 : 0;
}
