/*
 * dumps.c - q/k dump directories: meta.txt, header validation, traversal.
 */
#include "dumps.h"

#include "npy.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_CAP 2048

static const char *const layout_names[] = {"interleaved", "half", "adjacent"};

int calib_layout_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, layout_names[i]) == 0)
            return i;
    return -1;
}

const char *calib_layout_name(int layout)
{
    return layout >= 0 && layout < 3 ? layout_names[layout] : "unknown";
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

typedef struct meta {
    size_t layers, q_heads, kv_heads, head_dim, tokens; /* 0 = not given */
    int layout;
} meta;

/* meta.txt: "key value" lines; unknown keys are ignored so dumpers may add
 * their own (model name, window, ...). */
static int read_meta(const char *dir, meta *m, char *err, size_t err_size)
{
    memset(m, 0, sizeof *m);
    m->layout = -1;
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char key[64], val[128];
        if (line[0] == '#' || sscanf(line, "%63s %127s", key, val) != 2)
            continue;
        size_t *slot = strcmp(key, "layers") == 0     ? &m->layers
                       : strcmp(key, "q_heads") == 0  ? &m->q_heads
                       : strcmp(key, "kv_heads") == 0 ? &m->kv_heads
                       : strcmp(key, "head_dim") == 0 ? &m->head_dim
                       : strcmp(key, "tokens") == 0   ? &m->tokens
                                                      : NULL;
        if (slot) {
            char *end;
            unsigned long long v = strtoull(val, &end, 10);
            if (*end != '\0' || v == 0 || val[0] == '-') {
                snprintf(err, err_size,
                         "%s:%d: field '%s': expected a positive integer, found '%s'",
                         path, lineno, key, val);
                rc = -1;
            }
            *slot = (size_t)v;
        } else if (strcmp(key, "pair_layout") == 0) {
            m->layout = calib_layout_parse(val);
            if (m->layout < 0) {
                snprintf(err, err_size,
                         "%s:%d: field 'pair_layout': expected half, interleaved or adjacent, "
                         "found '%s'",
                         path, lineno, val);
                rc = -1;
            }
        }
    }
    fclose(f);
    return rc;
}

static int check_meta(const calib_dump *d, const meta *m, char *err, size_t err_size)
{
    const struct {
        const char *name;
        size_t want, have;
    } f[] = {{"layers", m->layers, d->n_layers},       {"q_heads", m->q_heads, d->n_q_heads},
             {"kv_heads", m->kv_heads, d->n_kv_heads}, {"head_dim", m->head_dim, d->head_dim},
             {"tokens", m->tokens, d->per_step ? 0 : d->n_tokens}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].want && f[i].have && f[i].want != f[i].have) {
            snprintf(err, err_size, "%s/meta.txt: field '%s' is %zu but the .npy files have %zu",
                     d->dir, f[i].name, f[i].want, f[i].have);
            return -1;
        }
    }
    return 0;
}

/* Record (or compare with the first file's) head counts and head_dim. */
static int check_heads(calib_dump *d, const char *path, const calib_npy *a, int is_q, char *err,
                       size_t err_size)
{
    size_t heads = a->shape[a->ndim - 2], dim = a->shape[a->ndim - 1];
    size_t *slot = is_q ? &d->n_q_heads : &d->n_kv_heads;
    char s[128];
    if (heads == 0 || dim == 0) {
        snprintf(err, err_size, "%s: shape %s has a zero dimension", path,
                 calib_npy_shape_str(a, s, sizeof s));
        return -1;
    }
    if (*slot == 0)
        *slot = heads;
    if (d->head_dim == 0)
        d->head_dim = dim;
    if (heads != *slot || dim != d->head_dim) {
        snprintf(err, err_size, "%s: shape %s, expected [..., %zu, %zu] like the other files", path,
                 calib_npy_shape_str(a, s, sizeof s), *slot, d->head_dim);
        return -1;
    }
    return 0;
}

static int open_checked(calib_npy *a, const char *path, size_t ndim_lo, size_t ndim_hi, char *err,
                        size_t err_size)
{
    if (calib_npy_open(a, path, err, err_size) != 0)
        return -1;
    if (a->ndim < ndim_lo || a->ndim > ndim_hi) {
        char s[128];
        snprintf(err, err_size, "%s: shape %s has %zu dimensions, expected %zu%s", path,
                 calib_npy_shape_str(a, s, sizeof s), a->ndim, ndim_hi,
                 ndim_lo == ndim_hi ? " ([tokens, heads, head_dim])" : " or 2 ([heads, head_dim])");
        calib_npy_close(a);
        return -1;
    }
    return 0;
}

static int open_full(calib_dump *d, const meta *m, char *err, size_t err_size)
{
    size_t n = m->layers;
    char qp[PATH_CAP], kp[PATH_CAP], s1[128], s2[128];
    if (n == 0) /* no meta: count consecutive layers */
        for (;; n++) {
            snprintf(qp, sizeof qp, "%s/q_layer%zu.npy", d->dir, n);
            if (!file_exists(qp))
                break;
        }
    for (size_t l = 0; l < n; l++) {
        calib_npy q, k;
        snprintf(qp, sizeof qp, "%s/q_layer%zu.npy", d->dir, l);
        snprintf(kp, sizeof kp, "%s/k_layer%zu.npy", d->dir, l);
        if (open_checked(&q, qp, 3, 3, err, err_size) != 0)
            return -1;
        if (open_checked(&k, kp, 3, 3, err, err_size) != 0) {
            calib_npy_close(&q);
            return -1;
        }
        int rc = 0;
        if (q.shape[0] != k.shape[0]) {
            snprintf(err, err_size, "%s: shape %s has %zu tokens but %s has %zu (shape %s)", kp,
                     calib_npy_shape_str(&k, s1, sizeof s1), k.shape[0], qp, q.shape[0],
                     calib_npy_shape_str(&q, s2, sizeof s2));
            rc = -1;
        } else if (l > 0 && q.shape[0] != d->n_tokens) {
            snprintf(err, err_size, "%s: %zu tokens, but layer 0 has %zu", qp, q.shape[0],
                     d->n_tokens);
            rc = -1;
        } else {
            d->n_tokens = q.shape[0];
            rc = check_heads(d, qp, &q, 1, err, err_size);
            if (rc == 0)
                rc = check_heads(d, kp, &k, 0, err, err_size);
        }
        calib_npy_close(&q);
        calib_npy_close(&k);
        if (rc != 0)
            return -1;
    }
    d->n_layers = n;
    return 0;
}

static int parse_step_name(const char *name, unsigned long *step, size_t *layer)
{
    char tail[8];
    int used = 0;
    if (sscanf(name, "step%lu_layer%zu_%3[qk].npy%n", step, layer, tail, &used) != 3)
        return 0;
    return name[used] == '\0' && strcmp(tail, "q") == 0 && strncmp(name, "step", 4) == 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const calib_step_entry *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->layer < y->layer ? -1 : x->layer > y->layer;
}

static int open_per_step(calib_dump *d, const meta *m, char *err, size_t err_size)
{
    DIR *dh = opendir(d->dir);
    if (!dh) {
        snprintf(err, err_size, "%s: cannot open directory", d->dir);
        return -1;
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        calib_step_entry en;
        if (!parse_step_name(e->d_name, &en.step, &en.layer))
            continue;
        if (d->n_entries == cap) {
            cap = cap ? 2 * cap : 64;
            calib_step_entry *grown = realloc(d->entries, cap * sizeof *grown);
            if (!grown) {
                closedir(dh);
                snprintf(err, err_size, "out of memory");
                return -1;
            }
            d->entries = grown;
        }
        d->entries[d->n_entries++] = en;
    }
    closedir(dh);
    if (d->n_entries == 0) {
        snprintf(err, err_size,
                 "%s: no dump found (expected q_layer0.npy + k_layer0.npy, or "
                 "step{N}_layer{L}_q.npy + step{N}_layer{L}_k.npy files)",
                 d->dir);
        return -1;
    }
    qsort(d->entries, d->n_entries, sizeof *d->entries, cmp_entry);

    size_t n_layers = 0;
    for (size_t i = 0; i < d->n_entries; i++)
        if (d->entries[i].layer + 1 > n_layers)
            n_layers = d->entries[i].layer + 1;
    unsigned char *seen = calloc(n_layers, 1);
    if (!seen) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < d->n_entries && rc == 0; i++) {
        char qp[PATH_CAP], kp[PATH_CAP], s1[128];
        const calib_step_entry *en = &d->entries[i];
        seen[en->layer] = 1;
        snprintf(qp, sizeof qp, "%s/step%lu_layer%zu_q.npy", d->dir, en->step, en->layer);
        snprintf(kp, sizeof kp, "%s/step%lu_layer%zu_k.npy", d->dir, en->step, en->layer);
        calib_npy q, k;
        if (open_checked(&q, qp, 2, 3, err, err_size) != 0) {
            rc = -1;
            break;
        }
        if (open_checked(&k, kp, 3, 3, err, err_size) != 0) {
            calib_npy_close(&q);
            rc = -1;
            break;
        }
        if (q.ndim == 3 && q.shape[0] != 1) {
            snprintf(err, err_size, "%s: shape %s, expected one query token ([1, heads, head_dim])",
                     qp, calib_npy_shape_str(&q, s1, sizeof s1));
            rc = -1;
        } else if (k.shape[0] == 0) {
            snprintf(err, err_size, "%s: no keys (shape %s)", kp,
                     calib_npy_shape_str(&k, s1, sizeof s1));
            rc = -1;
        } else {
            rc = check_heads(d, qp, &q, 1, err, err_size);
            if (rc == 0)
                rc = check_heads(d, kp, &k, 0, err, err_size);
        }
        calib_npy_close(&q);
        calib_npy_close(&k);
    }
    for (size_t l = 0; l < n_layers && rc == 0; l++) {
        if (!seen[l]) {
            snprintf(err, err_size, "%s: layer %zu has no step files but layer %zu has", d->dir, l,
                     n_layers - 1);
            rc = -1;
        }
    }
    free(seen);
    if (rc == 0 && m->layers && m->layers != n_layers) {
        snprintf(err, err_size,
                 "%s/meta.txt: field 'layers' is %zu but step files cover %zu layers",
                 d->dir, m->layers, n_layers);
        rc = -1;
    }
    d->n_layers = n_layers;
    return rc;
}

int calib_dump_open(calib_dump *d, const char *dir, char *err, size_t err_size)
{
    memset(d, 0, sizeof *d);
    if (strlen(dir) >= sizeof d->dir) {
        snprintf(err, err_size, "directory name too long");
        return -1;
    }
    strcpy(d->dir, dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_size, "%s: not a directory", dir);
        return -1;
    }
    meta m;
    if (read_meta(dir, &m, err, err_size) != 0)
        return -1;
    d->meta_layout = m.layout;
    char qp[PATH_CAP];
    snprintf(qp, sizeof qp, "%s/q_layer0.npy", dir);
    d->per_step = !file_exists(qp);
    int rc = d->per_step ? open_per_step(d, &m, err, err_size) : open_full(d, &m, err, err_size);
    if (rc == 0)
        rc = check_meta(d, &m, err, err_size);
    if (rc == 0 && d->n_q_heads % d->n_kv_heads != 0) {
        snprintf(err, err_size,
                 "%s: %zu query heads are not a multiple of %zu KV heads (GQA needs Hkv | Hq)", dir,
                 d->n_q_heads, d->n_kv_heads);
        rc = -1;
    }
    if (rc == 0 && d->head_dim % 2 != 0) {
        snprintf(err, err_size, "%s: head_dim %zu is odd (RoPE pairs need an even head_dim)", dir,
                 d->head_dim);
        rc = -1;
    }
    if (rc != 0)
        calib_dump_close(d);
    return rc;
}

void calib_dump_close(calib_dump *d)
{
    free(d->entries);
    d->entries = NULL;
    d->n_entries = 0;
}

int calib_dump_count(const calib_dump *d, const calib_positions *pos, size_t *n_steps, char *err,
                     size_t err_size)
{
    if (d->per_step) {
        *n_steps = d->n_entries;
        return 0;
    }
    if (pos->begin >= pos->end) {
        *n_steps = 0;
        snprintf(err, err_size, "positions %zu:%zu:%zu select no step", pos->begin, pos->end,
                 pos->step);
        return -1;
    }
    size_t per_layer = (pos->end - pos->begin + pos->step - 1) / pos->step;
    size_t last = pos->begin + (per_layer - 1) * pos->step;
    if (last >= d->n_tokens) {
        snprintf(err, err_size,
                 "%s: position %zu (from --positions %zu:%zu:%zu) is beyond the dump's %zu tokens",
                 d->dir, last, pos->begin, pos->end, pos->step, d->n_tokens);
        return -1;
    }
    *n_steps = per_layer * d->n_layers;
    return 0;
}

static int make_views(const calib_npy *q, size_t q_row, const calib_npy *k, size_t t,
                      const calib_dump *d, fasa_view *qv, fasa_view *kv)
{
    size_t hd = d->head_dim;
    const char *qdata = (const char *)q->data + q_row * d->n_q_heads * hd * q->elem_size;
    if (fasa_view_make(qv, qdata, (fasa_dtype)q->dtype, 1, d->n_q_heads, hd, d->n_q_heads * hd,
                       hd) != FASA_OK)
        return -1;
    if (fasa_view_make(kv, k->data, (fasa_dtype)k->dtype, t, d->n_kv_heads, hd,
                       d->n_kv_heads * hd, hd) != FASA_OK)
        return -1;
    return 0;
}

static int walk_full(const calib_dump *d, const calib_positions *pos, calib_step_fn fn,
                     void *user, char *err, size_t err_size)
{
    char qp[PATH_CAP], kp[PATH_CAP], where[PATH_CAP + 64];
    for (size_t l = 0; l < d->n_layers; l++) {
        calib_npy q, k;
        snprintf(qp, sizeof qp, "%s/q_layer%zu.npy", d->dir, l);
        snprintf(kp, sizeof kp, "%s/k_layer%zu.npy", d->dir, l);
        if (calib_npy_open(&q, qp, err, err_size) != 0)
            return -1;
        if (calib_npy_open(&k, kp, err, err_size) != 0) {
            calib_npy_close(&q);
            return -1;
        }
        int rc = 0;
        for (size_t p = pos->begin; p < pos->end && rc == 0; p += pos->step) {
            fasa_view qv, kv;
            if (make_views(&q, p, &k, p + 1, d, &qv, &kv) != 0) {
                snprintf(err, err_size, "%s: cannot describe the arrays as views", d->dir);
                rc = -1;
                break;
            }
            snprintf(where, sizeof where, "%s layer %zu position %zu", d->dir, l, p);
            rc = fn(user, l, &qv, &kv, where);
        }
        calib_npy_close(&q);
        calib_npy_close(&k);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int walk_steps(const calib_dump *d, calib_step_fn fn, void *user, char *err,
                      size_t err_size)
{
    char qp[PATH_CAP], kp[PATH_CAP], where[PATH_CAP + 64];
    for (size_t i = 0; i < d->n_entries; i++) {
        const calib_step_entry *en = &d->entries[i];
        calib_npy q, k;
        snprintf(qp, sizeof qp, "%s/step%lu_layer%zu_q.npy", d->dir, en->step, en->layer);
        snprintf(kp, sizeof kp, "%s/step%lu_layer%zu_k.npy", d->dir, en->step, en->layer);
        if (calib_npy_open(&q, qp, err, err_size) != 0)
            return -1;
        if (calib_npy_open(&k, kp, err, err_size) != 0) {
            calib_npy_close(&q);
            return -1;
        }
        fasa_view qv, kv;
        int rc = make_views(&q, 0, &k, k.shape[0], d, &qv, &kv);
        if (rc != 0)
            snprintf(err, err_size, "%s: cannot describe the arrays as views", qp);
        else {
            snprintf(where, sizeof where, "%s step %lu layer %zu", d->dir, en->step, en->layer);
            rc = fn(user, en->layer, &qv, &kv, where);
        }
        calib_npy_close(&q);
        calib_npy_close(&k);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int calib_dump_walk(const calib_dump *d, const calib_positions *pos, calib_step_fn fn,
                    void *user, char *err, size_t err_size)
{
    return d->per_step ? walk_steps(d, fn, user, err, err_size)
                       : walk_full(d, pos, fn, user, err, err_size);
}
