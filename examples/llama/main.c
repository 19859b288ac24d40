/*
 * main.c - the llama CLI: generate, ppl, calibrate, dump, logits, speed,
 * agreement. Run `llama help` for the options.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "baselines.h"
#include "cli.h"
#include "matmul.h"
#include "npy.h"
#include "tokenizer.h"

static const char *usage =
    "usage: llama MODE [options]\n"
    "modes:\n"
    "  generate   --window W --prompt-len N | --tokens-file F; --n N [--temp T --seed S]\n"
    "             [--method full|fasa --budget B --profile P] [--out FILE (uint16 tokens)]\n"
    "             [--bos ID: first token when there is no prompt, default 0]\n"
    "  ppl        --windows LIST --prefill P [--decode N] --methods LIST [--profile P]\n"
    "             [--profile-adj P] [--seed S] [--selfcal-steps 64]\n"
    "             methods: full, oracle:B, oracle-l0:B, fasa:B, fasa-gs:B, fasa-adj:B,\n"
    "             random:B, stream:B, quest:B, selfcal:B, selfcal-gs:B\n"
    "             (oracle: exact top-B of the logits in every layer; oracle-l0: dense in\n"
    "             the --profile's dense layers, else layer 0, as FASA)\n"
    "  calibrate  --windows 0-3 [--start 2048 --stride 16] --out P [--adjacent-out P]\n"
    "             [--tokens N: only the first N tokens of each window (tests)]\n"
    "             [--layout half|adjacent|interleaved (default: the model's)]\n"
    "             [--split-out A,B] [--n-fc N] [--budget-hint B]\n"
    "  dump       --window W --out DIR [--layers all|0,3] [--tokens N (prefix, tests)]\n"
    "  logits     --window W --tokens N --out FILE.npy\n"
    "  agreement  --profile P --windows LIST [--start --stride] [--profile-a A --profile-b B]\n"
    "  speed      --window W --steps S --budget B --profile P\n"
    "common: --model DIR|FILE (default ../shared/models/llama-28m), --data FILE\n"
    "        (default MODEL/val_tokens.bin, uint16 windows), --window-len N, --threads N,\n"
    "        --kv f32|f16, --tokenizer FILE\n";

static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s || a < 0)
            return -1;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1 || b < a)
                return -1;
            s = end;
        }
        for (long i = a; i <= b; i++) {
            if (n == cap)
                return -1;
            out[n++] = (int)i;
        }
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int progress_tty = -1;
void progress(const char *fmt, ...)
{
    if (progress_tty < 0)
        progress_tty = isatty(2);
    if (!progress_tty)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputc('\r', stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\033[K", stderr);
    va_end(ap);
    fflush(stderr);
}

void progress_done(void)
{
    if (progress_tty == 1)
        fputs("\r\033[K", stderr);
}

int data_load(token_data *d, const opts *o, const llama_model *m)
{
    memset(d, 0, sizeof *d);
    char def[1200];
    const char *path = o->tokens_file ? o->tokens_file : o->data;
    if (!path) {
        snprintf(def, sizeof def, "%s/val_tokens.bin", o->model);
        path = def;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "llama: %s: cannot open token data\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t n = sz > 0 ? (size_t)sz / 2 : 0;
    d->window_len = o->window_len ? o->window_len
                                  : (o->tokens_file ? n : (size_t)m->c.max_seq);
    if (!n || sz % 2 || !d->window_len || n % d->window_len) {
        fclose(f);
        fprintf(stderr, "llama: %s: %ld bytes is not whole windows of %zu uint16 tokens\n", path,
                sz, d->window_len);
        return -1;
    }
    d->n_windows = n / d->window_len;
    d->tok = malloc(n * sizeof(uint16_t));
    unsigned char *raw = malloc(n * 2);
    int ok = d->tok && raw && fread(raw, 2, n, f) == n;
    fclose(f);
    for (size_t i = 0; ok && i < n; i++) {
        d->tok[i] = (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
        if (d->tok[i] >= (unsigned)m->c.vocab) {
            fprintf(stderr, "llama: %s: token %u >= vocab %d\n", path, d->tok[i], m->c.vocab);
            ok = 0;
        }
    }
    free(raw);
    if (!ok) {
        data_free(d);
        return -1;
    }
    return 0;
}

void data_free(token_data *d)
{
    free(d->tok);
    memset(d, 0, sizeof *d);
}

void select_defaults(const opts *o, const llama_model *m, unsigned budget_hint,
                     fasa_select_options *so)
{
    fasa_select_options_default(so);
    unsigned nfc = o->n_fc ? o->n_fc : (unsigned)(m->c.head_dim / 8);
    so->n_fc = nfc ? nfc : 1;
    so->min_fc = so->max_fc = so->n_fc;
    if (budget_hint)
        so->budget_hint = budget_hint;
}

static const uint16_t *window_tokens(const token_data *d, int w)
{
    if (w < 0 || (size_t)w >= d->n_windows) {
        fprintf(stderr, "llama: window %d out of range (%zu windows)\n", w, d->n_windows);
        return NULL;
    }
    return d->tok + (size_t)w * d->window_len;
}

/* ------------------------------------------------------------------ dump */

typedef struct {
    float **q;          /* per layer [n][Hq][hd] or NULL */
    size_t row;
} dump_obs;

static void dump_observe(void *user, int layer, const float *q, size_t pos0, size_t n)
{
    dump_obs *d = user;
    if (d->q[layer])
        memcpy(d->q[layer] + pos0 * d->row, q, n * d->row * sizeof(float));
}

static int mode_dump(const opts *o, const llama_model *m)
{
    token_data d;
    if (!o->out || data_load(&d, o, m))
        return o->out ? 1 : (fprintf(stderr, "llama dump: --out DIR required\n"), 2);
    const uint16_t *tok = window_tokens(&d, o->window);
    if (!tok) {
        data_free(&d);
        return 1;
    }
    const llama_config *c = &m->c;
    int sel[MAX_LIST], n_sel = 0;
    if (!o->layers || !strcmp(o->layers, "all")) {
        for (int l = 0; l < c->n_layers && l < MAX_LIST; l++)
            sel[n_sel++] = l;
    } else if ((n_sel = parse_list(o->layers, sel, MAX_LIST)) <= 0) {
        fprintf(stderr, "llama dump: bad --layers\n");
        data_free(&d);
        return 2;
    }
    /* The calibration tool expects whole windows; --tokens is for tests. */
    size_t T = o->n_tokens && o->n_tokens < d.window_len ? o->n_tokens : d.window_len;
    size_t Hq = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads, hd = (size_t)c->head_dim;
    dump_obs ob = {calloc((size_t)c->n_layers, sizeof(float *)), Hq * hd};
    for (int i = 0; i < n_sel; i++) {
        if (sel[i] >= c->n_layers) {
            fprintf(stderr, "llama dump: layer %d out of range\n", sel[i]);
            return 2;
        }
        ob.q[sel[i]] = malloc(T * Hq * hd * sizeof(float));
    }
    llama_runtime rt;
    llama_kv kv;
    mkdir(o->out, 0777);
    int rc = llama_runtime_init(&rt, o->threads) ||
             llama_kv_init(&kv, c, T, FASA_DTYPE_F32) ||
             llama_prefill(m, &rt, &kv, tok, T, NULL, 0, dump_observe, &ob);
    for (int i = 0; i < n_sel && !rc; i++) {
        char path[1300];
        int l = sel[i];
        size_t qs[3] = {T, Hq, hd}, ks[3] = {T, Hkv, hd};
        snprintf(path, sizeof path, "%s/q_layer%d.npy", o->out, l);
        rc |= npy_write_f32(path, ob.q[l], qs, 3);
        snprintf(path, sizeof path, "%s/k_layer%d.npy", o->out, l);
        rc |= npy_write_f32(path, kv.k[l], ks, 3);
        snprintf(path, sizeof path, "%s/v_layer%d.npy", o->out, l);
        rc |= npy_write_f32(path, kv.v[l], ks, 3);
        if (rc)
            fprintf(stderr, "llama dump: cannot write %s\n", path);
    }
    if (!rc) {
        char path[1300];
        snprintf(path, sizeof path, "%s/meta.txt", o->out);
        FILE *f = fopen(path, "w");
        rc = !f;
        if (f) {
            fprintf(f, "layers %d\nq_heads %zu\nkv_heads %zu\nhead_dim %zu\npair_layout %s\n"
                       "tokens %zu\n",
                    c->n_layers, Hq, Hkv, hd,
                    c->pair_layout == FASA_PAIRS_HALF ? "half" : "interleaved", T);
            rc = fclose(f) != 0;
        }
        if (!rc)
            printf("dump: window %d, %zu tokens, %d layers -> %s\n", o->window, T, n_sel, o->out);
    }
    for (int l = 0; l < c->n_layers; l++)
        free(ob.q[l]);
    free(ob.q);
    llama_kv_free(&kv);
    llama_runtime_free(&rt);
    data_free(&d);
    return rc ? 1 : 0;
}

/* ---------------------------------------------------------------- logits */

static int mode_logits(const opts *o, const llama_model *m)
{
    token_data d;
    if (!o->out) {
        fprintf(stderr, "llama logits: --out FILE.npy required\n");
        return 2;
    }
    if (data_load(&d, o, m))
        return 1;
    const uint16_t *tok = window_tokens(&d, o->window);
    size_t n = o->n_tokens ? o->n_tokens : 256;
    if (!tok || n > d.window_len) {
        data_free(&d);
        return 1;
    }
    llama_runtime rt;
    llama_kv kv;
    float *lg = malloc(n * (size_t)m->c.vocab * sizeof(float));
    int rc = !lg || llama_runtime_init(&rt, o->threads) ||
             llama_kv_init(&kv, &m->c, n, o->kv_dtype) ||
             llama_prefill(m, &rt, &kv, tok, n, lg, n, NULL, NULL);
    size_t shape[2] = {n, (size_t)m->c.vocab};
    if (!rc)
        rc = npy_write_f32(o->out, lg, shape, 2);
    if (!rc)
        printf("logits: window %d, %zu tokens -> %s\n", o->window, n, o->out);
    free(lg);
    llama_kv_free(&kv);
    llama_runtime_free(&rt);
    data_free(&d);
    return rc ? 1 : 0;
}

/* -------------------------------------------------------- generate, speed */

static int sample(const float *logits, int vocab, double temp, unsigned long long *rng)
{
    int best = 0;
    for (int i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temp <= 0)
        return best;
    double s = 0;
    for (int i = 0; i < vocab; i++)
        s += exp(((double)logits[i] - logits[best]) / temp);
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    double r = (double)(*rng >> 11) / 9007199254740992.0 * s, acc = 0;
    for (int i = 0; i < vocab; i++) {
        acc += exp(((double)logits[i] - logits[best]) / temp);
        if (acc > r)
            return i;
    }
    return best;
}

int load_profile_for(const char *path, unsigned budget, const opts *o,
                            const llama_model *m, fasa_profile **p)
{
    fasa_status st = fasa_profile_load(path, p);
    if (st != FASA_OK) {
        fprintf(stderr, "llama: profile %s: %s\n", path, fasa_status_string(st));
        return -1;
    }
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    fasa_profile_get_info(*p, &info);
    if (info.shape.n_layers != (size_t)m->c.n_layers || info.shape.n_q_heads != (size_t)m->c.n_heads ||
        info.shape.n_kv_heads != (size_t)m->c.n_kv_heads ||
        info.shape.head_dim != (size_t)m->c.head_dim) {
        fprintf(stderr, "llama: profile %s does not match the model shape\n", path);
        return -1;
    }
    if (info.has_agreement) {
        fasa_select_options so;
        select_defaults(o, m, budget, &so);
        st = fasa_profile_select(*p, &so);
        if (st != FASA_OK) {
            fprintf(stderr, "llama: profile select: %s\n", fasa_status_string(st));
            return -1;
        }
    }
    return 0;
}

/* Decode `steps` tokens of one sequence with method me (NULL: dense). */
static int run_decode(const llama_model *m, llama_runtime *rt, llama_kv *kv, method *me,
                      uint16_t first, size_t steps, const opts *o, uint16_t *out_tokens,
                      double *seconds)
{
    float *lg = malloc((size_t)m->c.vocab * sizeof(float));
    llama_attn_fn fn = me ? method_attend : NULL;
    void *user = me;
    unsigned long long rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ull;
    uint16_t tok = first;
    double t0 = now_seconds();
    int rc = !lg;
    for (size_t i = 0; i < steps && !rc; i++) {
        rc = llama_decode_batch(m, rt, 1, &tok, &kv, &fn, &user, lg);
        if (!rc) {
            tok = (uint16_t)sample(lg, m->c.vocab, o->temp, &rng);
            if (out_tokens)
                out_tokens[i] = tok;
        }
    }
    *seconds = now_seconds() - t0;
    free(lg);
    return rc;
}

static int mode_generate(const opts *o, const llama_model *m)
{
    const llama_config *c = &m->c;
    uint16_t *prompt = NULL;
    size_t n_prompt = 0;
    token_data d = {0};
    if (o->prefill) { /* a prompt taken from the data windows */
        if (data_load(&d, o, m))
            return 1;
        const uint16_t *w = window_tokens(&d, o->window);
        if (!w || o->prefill > d.window_len) {
            data_free(&d);
            return 1;
        }
        n_prompt = o->prefill;
        prompt = malloc(n_prompt * sizeof *prompt);
        memcpy(prompt, w, n_prompt * sizeof *prompt);
        data_free(&d);
    } else { /* no prompt: start from --bos (default 0, llama-28m's separator) */
        n_prompt = 1;
        prompt = calloc(1, sizeof *prompt);
        if (prompt)
            prompt[0] = (uint16_t)o->bos;
    }
    size_t n_gen = o->n_gen ? o->n_gen : 64;
    if (n_prompt + n_gen > (size_t)c->max_seq)
        n_gen = (size_t)c->max_seq - n_prompt;
    llama_runtime rt;
    llama_kv kv;
    float *lg = malloc((size_t)c->vocab * sizeof(float));
    uint16_t *gen = malloc((n_gen + 1) * sizeof *gen);
    fasa_profile *prof = NULL;
    method me;
    int use_fasa = o->methods && !strcmp(o->methods, "fasa");
    int rc = !lg || !gen || llama_runtime_init(&rt, o->threads) ||
             llama_kv_init(&kv, c, n_prompt + n_gen, o->kv_dtype);
    if (!rc && use_fasa) {
        rc = !o->profile || load_profile_for(o->profile, (unsigned)o->budget, o, m, &prof) ||
             method_init(&me, M_FASA, o->budget, FASA_GQA_PER_HEAD, prof, m, &rt,
                         n_prompt + n_gen);
        if (!o->profile)
            fprintf(stderr, "llama generate: --method fasa needs --profile\n");
    }
    double t0 = now_seconds();
    if (!rc)
        rc = llama_prefill(m, &rt, &kv, prompt, n_prompt, lg, 1, NULL, NULL);
    double t_prefill = now_seconds() - t0, t_dec = 0;
    unsigned long long rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ull;
    if (!rc && use_fasa)
        rc = method_after_prefill(&me, &kv);
    if (!rc) {
        gen[0] = (uint16_t)sample(lg, c->vocab, o->temp, &rng);
        if (n_gen > 1) {
            opts o2 = *o;
            o2.seed = rng;
            rc = run_decode(m, &rt, &kv, use_fasa ? &me : NULL, gen[0], n_gen - 1, &o2, gen + 1,
                            &t_dec);
        }
    }
    if (!rc) {
        llama_tokenizer tk;
        char tpath[1200], err[300];
        const char *tp = o->tokenizer;
        if (!tp) {
            snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->model);
            tp = tpath;
        }
        struct stat st;
        int have_tok = stat(tp, &st) == 0 && tokenizer_load(&tk, tp, c->vocab, err, sizeof err) == 0;
        for (size_t i = 0; i < n_gen; i++) {
            if (have_tok) {
                size_t len;
                const char *p = tokenizer_piece(&tk, gen[i], &len);
                fwrite(p, 1, len, stdout);
            } else {
                printf("%u ", gen[i]);
            }
        }
        printf("\n");
        if (have_tok)
            tokenizer_free(&tk);
        fprintf(stderr, "generate: %zu prompt tokens in %.3f s, %zu tokens, decode %.1f tokens/s (%s)\n",
                n_prompt, t_prefill, n_gen, n_gen > 1 ? (double)(n_gen - 1) / t_dec : 0.0,
                use_fasa ? "fasa" : "dense");
        if (o->out) {
            FILE *f = fopen(o->out, "wb");
            for (size_t i = 0; f && i < n_gen; i++) {
                unsigned char b[2] = {(unsigned char)(gen[i] & 0xFF), (unsigned char)(gen[i] >> 8)};
                fwrite(b, 1, 2, f);
            }
            rc = !f || fclose(f) != 0;
        }
    }
    if (use_fasa && prof)
        method_free(&me);
    fasa_profile_destroy(prof);
    free(lg);
    free(gen);
    free(prompt);
    llama_kv_free(&kv);
    llama_runtime_free(&rt);
    return rc ? 1 : 0;
}

/* Decode speed near the end of the context: prefill context-steps tokens,
 * then time `steps` greedy steps dense and with FASA from the same state. */
static int mode_speed(const opts *o, const llama_model *m)
{
    const llama_config *c = &m->c;
    token_data d;
    if (!o->profile) {
        fprintf(stderr, "llama speed: --profile required\n");
        return 2;
    }
    if (data_load(&d, o, m))
        return 1;
    const uint16_t *w = window_tokens(&d, o->window);
    size_t steps = o->steps ? o->steps : 32, T = (size_t)c->max_seq;
    if (!w || steps >= T || d.window_len < T) {
        data_free(&d);
        return 1;
    }
    size_t P = T - steps;
    llama_runtime rt;
    llama_kv base, kv;
    fasa_profile *prof = NULL;
    method me;
    double budget = o->budget > 0 ? o->budget : 256;
    int rc = llama_runtime_init(&rt, o->threads) || llama_kv_init(&base, c, T, o->kv_dtype) ||
             llama_kv_init(&kv, c, T, o->kv_dtype) ||
             load_profile_for(o->profile, (unsigned)budget, o, m, &prof) ||
             method_init(&me, M_FASA, budget, FASA_GQA_PER_HEAD, prof, m, &rt, T) ||
             llama_prefill(m, &rt, &base, w, P, NULL, 0, NULL, NULL);
    double td = 0, tf = 0;
    opts og = *o;
    og.temp = 0;
    if (!rc) {
        llama_kv_copy(&kv, &base);
        rc = run_decode(m, &rt, &kv, NULL, w[P], steps, &og, NULL, &td);
    }
    if (!rc) {
        llama_kv_copy(&kv, &base);
        rc = method_after_prefill(&me, &kv) || run_decode(m, &rt, &kv, &me, w[P], steps, &og, NULL, &tf);
    }
    if (!rc) {
        printf("speed: t = %zu..%zu, %zu steps, threads %d, matmul %s\n", P + 1, T, steps,
               rt.n_threads, mm_kernel_name());
        printf("speed: dense %.2f tokens/s, fasa(budget %g, per-head) %.2f tokens/s, ratio %.2f\n",
               (double)steps / td, budget, (double)steps / tf, td / tf);
    }
    method_free(&me);
    fasa_profile_destroy(prof);
    llama_kv_free(&base);
    llama_kv_free(&kv);
    llama_runtime_free(&rt);
    data_free(&d);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    opts o;
    memset(&o, 0, sizeof o);
    o.mode = argv[1];
    o.model = "../shared/models/llama-28m";
    o.threads = 1;
    o.kv_dtype = FASA_DTYPE_F32;
    o.start = 2048;
    o.stride = 16;
    o.selfcal_steps = 64;
    o.budget = 256;
    o.layout = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(a, name) && v && (i++, 1))
        if (OPT("--model")) o.model = v;
        else if (OPT("--data")) o.data = v;
        else if (OPT("--tokens-file")) o.tokens_file = v;
        else if (OPT("--tokenizer")) o.tokenizer = v;
        else if (OPT("--out")) o.out = v;
        else if (OPT("--profile")) o.profile = v;
        else if (OPT("--profile-a")) o.profile_a = v;
        else if (OPT("--profile-b")) o.profile_b = v;
        else if (OPT("--profile-adj")) o.profile_adj = v;
        else if (OPT("--methods") || OPT("--method")) o.methods = v;
        else if (OPT("--adjacent-out")) o.out_adj = v;
        else if (OPT("--split-out")) o.out_split = v;
        else if (OPT("--layers")) o.layers = v;
        else if (OPT("--layout")) {
            o.layout = !strcmp(v, "half") ? FASA_PAIRS_HALF
                     : !strcmp(v, "adjacent") ? FASA_PAIRS_ADJACENT
                     : !strcmp(v, "interleaved") ? FASA_PAIRS_INTERLEAVED : -2;
            if (o.layout == -2) {
                fprintf(stderr, "llama: --layout half|adjacent|interleaved\n");
                return 2;
            }
        }
        else if (OPT("--threads")) o.threads = atoi(v);
        else if (OPT("--kv")) o.kv_dtype = !strcmp(v, "f16") ? FASA_DTYPE_F16 : FASA_DTYPE_F32;
        else if (OPT("--windows")) {
            if ((o.n_windows = parse_list(v, o.windows, MAX_LIST)) <= 0) {
                fprintf(stderr, "llama: bad --windows %s\n", v);
                return 2;
            }
        }
        else if (OPT("--window")) o.window = atoi(v);
        else if (OPT("--window-len")) o.window_len = (size_t)atol(v);
        else if (OPT("--prefill") || OPT("--prompt-len")) o.prefill = (size_t)atol(v);
        else if (OPT("--decode")) o.decode = (size_t)atol(v);
        else if (OPT("--start")) o.start = (size_t)atol(v);
        else if (OPT("--stride")) o.stride = (size_t)atol(v);
        else if (OPT("--steps")) o.steps = (size_t)atol(v);
        else if (OPT("--n")) o.n_gen = (size_t)atol(v);
        else if (OPT("--bos")) o.bos = atoi(v);
        else if (OPT("--tokens")) o.n_tokens = (size_t)atol(v);
        else if (OPT("--temp")) o.temp = atof(v);
        else if (OPT("--budget")) o.budget = atof(v);
        else if (OPT("--seed")) o.seed = strtoull(v, NULL, 10);
        else if (OPT("--n-fc")) o.n_fc = (unsigned)atoi(v);
        else if (OPT("--budget-hint")) o.budget_hint = (unsigned)atoi(v);
        else if (OPT("--selfcal-steps")) o.selfcal_steps = (size_t)atol(v);
        else {
            fprintf(stderr, "llama: unknown or incomplete option %s\n%s", a, usage);
            return 2;
        }
#undef OPT
    }
    if (o.threads < 1 || o.stride < 1) {
        fprintf(stderr, "llama: --threads and --stride must be >= 1\n");
        return 2;
    }
    llama_model m;
    char err[512];
    if (llama_load(&m, o.model, err, sizeof err)) {
        fprintf(stderr, "llama: %s\n", err);
        return 1;
    }
    int rc;
    if (!strcmp(o.mode, "generate")) rc = mode_generate(&o, &m);
    else if (!strcmp(o.mode, "ppl")) rc = mode_ppl(&o, &m);
    else if (!strcmp(o.mode, "calibrate")) rc = mode_calibrate(&o, &m);
    else if (!strcmp(o.mode, "dump")) rc = mode_dump(&o, &m);
    else if (!strcmp(o.mode, "logits")) rc = mode_logits(&o, &m);
    else if (!strcmp(o.mode, "speed")) rc = mode_speed(&o, &m);
    else if (!strcmp(o.mode, "agreement")) rc = mode_agreement(&o, &m);
    else {
        fprintf(stderr, "llama: unknown mode %s\n%s", o.mode, usage);
        rc = 2;
    }
    llama_free(&m);
    return rc;
}
