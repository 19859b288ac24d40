/*
 * calib.h - pieces shared by the fasa-calib sub-commands (one file each:
 * cmd_run.c, cmd_show.c, cmd_plot.c, cmd_diff.c, cmd_select.c).
 * Every command returns the process exit status: 0 ok, 1 failure (message
 * already printed to stderr), 2 usage error.
 */
#ifndef CALIB_CALIB_H
#define CALIB_CALIB_H

#include "fasa.h"

#include <stddef.h>
#include <stdint.h>

/* Largest FC count (head_dim / 2) the commands handle with fixed buffers. */
#define CALIB_MAX_FC 2048

int calib_cmd_run(int argc, char **argv);
int calib_cmd_show(int argc, char **argv);
int calib_cmd_plot(int argc, char **argv);
int calib_cmd_diff(int argc, char **argv);
int calib_cmd_select(int argc, char **argv);

/* "fasa-calib: " + message + newline on stderr; returns 1. */
int calib_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Strict unsigned parsing (no sign, no junk); 0 on success. */
int calib_parse_size(const char *s, size_t *out);
int calib_parse_double(const char *s, double *out);

/* Comma-separated unsigned list into out[cap]; sets *n. 0 on success. */
int calib_parse_list(const char *s, uint32_t *out, size_t cap, size_t *n);

/* Value of option argv[*i] (which must have one): advances *i, or prints a
 * usage error and returns NULL when missing. */
const char *calib_opt_value(int argc, char **argv, int *i);

/* Options shared by `run` and `select` that feed fasa_select_options and the
 * dense-layer list. Returns 1 if argv[*i] was one of them (consumed, with
 * *i advanced past its value), 0 if not, -1 on a bad value (printed). */
typedef struct calib_select_args {
    fasa_select_options sel;
    int n_sel_opts;            /* selection options given        */
    int have_dense;            /* --dense-layers given           */
    size_t n_dense;
    uint32_t dense[1024];
} calib_select_args;
void calib_select_args_init(calib_select_args *a);
int calib_select_args_parse(calib_select_args *a, int argc, char **argv, int *i);

/* Apply the dense-layer list (if given) to a profile: listed layers dense,
 * all others sparse. Returns 0 or 1 (message printed). */
int calib_apply_dense(fasa_profile *p, const calib_select_args *a);

/* Load a profile, printing "file: status" on failure. */
int calib_load(const char *path, fasa_profile **out, fasa_profile_info *info);

/* Agreement of every layer at K index k_index: [n_layers][Hq][nfc]
 * (malloc'd; NULL with a message when unavailable). */
float *calib_agreement_at(const fasa_profile *p, const fasa_profile_info *info, size_t k_index);

/* Index of value K among the profile's K values, or -1 (message printed). */
int calib_k_index(const fasa_profile *p, const fasa_profile_info *info, uint32_t k);

#endif
