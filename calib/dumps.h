/*
 * dumps.h - discovery, validation and traversal of q/k dump directories
 * (the two input shapes of docs/calibration.md):
 *   full-sequence: q_layer{L}.npy [T, Hq, d], k_layer{L}.npy [T, Hkv, d],
 *                  optional meta.txt; decode steps are taken at positions p
 *                  (query q[p], keys k[0..p]).
 *   per-step:      step{N}_layer{L}_q.npy [Hq, d] (or [1, Hq, d]) and
 *                  step{N}_layer{L}_k.npy [t, Hkv, d].
 * Every file header is checked when the directory is opened, so a bad dump
 * fails before any calibration work is done.
 */
#ifndef CALIB_DUMPS_H
#define CALIB_DUMPS_H

#include "fasa.h"

#include <stddef.h>

typedef struct calib_positions {
    size_t begin, end, step; /* p = begin, begin+step, ... < end */
} calib_positions;

typedef struct calib_step_entry {
    unsigned long step;
    size_t layer;
} calib_step_entry;

typedef struct calib_dump {
    char dir[1024];
    int per_step;          /* 0: full-sequence, 1: per-step files          */
    size_t n_layers, n_q_heads, n_kv_heads, head_dim;
    size_t n_tokens;       /* full-sequence only                           */
    int meta_layout;       /* fasa_pair_layout from meta.txt, -1 if absent  */
    calib_step_entry *entries; /* per-step only, sorted by (step, layer)   */
    size_t n_entries;
} calib_dump;

/* Inspect `dir`. Returns 0, or -1 with a message naming the file, the field
 * and what was expected versus found. */
int calib_dump_open(calib_dump *d, const char *dir, char *err, size_t err_size);
void calib_dump_close(calib_dump *d);

/* Number of decode steps (all layers) that calib_dump_walk will produce. */
int calib_dump_count(const calib_dump *d, const calib_positions *pos, size_t *n_steps,
                     char *err, size_t err_size);

/* Called once per (decode step, layer) with zero-copy views; `where` names
 * the step for messages. A non-zero return stops the walk and is returned. */
typedef int (*calib_step_fn)(void *user, size_t layer, const fasa_view *q, const fasa_view *k,
                             const char *where);

/* Full-sequence dumps: layer-major, then ascending positions. Per-step dumps:
 * ascending (step, layer). Returns 0, the callback's non-zero value, or -1
 * with err set when a file cannot be read. */
int calib_dump_walk(const calib_dump *d, const calib_positions *pos, calib_step_fn fn,
                    void *user, char *err, size_t err_size);

/* "half" / "interleaved" / "adjacent" <-> fasa_pair_layout; -1 if unknown. */
int calib_layout_parse(const char *name);
const char *calib_layout_name(int layout);

#endif
