/* cli.h - options and helpers shared by the llama modes (main.c, study.c). */
#ifndef LLAMA_CLI_H
#define LLAMA_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define MAX_LIST 64

typedef struct opts {
    const char *mode;
    const char *model, *data, *out, *profile, *profile_adj, *methods, *out_adj, *out_split,
        *tokens_file, *layers, *tokenizer, *profile_a, *profile_b;
    int threads, kv_dtype;
    int windows[MAX_LIST], n_windows;
    size_t window_len;   /* tokens per window of the data file (0: model context) */
    size_t prefill, decode, start, stride, steps, n_gen, n_tokens;
    int window;          /* single window (dump, logits, speed, generate)        */
    double temp, budget;
    unsigned long long seed;
    unsigned n_fc, budget_hint;
    size_t selfcal_steps;
    int quiet;
    int bos;
    int layout;          /* calibrate: -1 = the model's own pair layout          */
} opts;

/* Token windows of the data file. */
typedef struct token_data {
    uint16_t *tok;
    size_t n_windows, window_len;
} token_data;

int data_load(token_data *d, const opts *o, const llama_model *m);
void data_free(token_data *d);

/* Progress line on stderr, only when it is a terminal. */
void progress(const char *fmt, ...);
void progress_done(void);
double now_seconds(void);

/* Modes implemented in study.c */
int mode_ppl(const opts *o, const llama_model *m);
int mode_calibrate(const opts *o, const llama_model *m);
int mode_agreement(const opts *o, const llama_model *m);

/* Default select options for a model (n_fc = head_dim/8 unless given). */
void select_defaults(const opts *o, const llama_model *m, unsigned budget_hint,
                     fasa_select_options *so);

/* Load a profile, check it fits the model, and re-select its dominant FCs
 * for this budget when it carries agreement data. */
int load_profile_for(const char *path, unsigned budget, const opts *o, const llama_model *m,
                     fasa_profile **p);

#endif
