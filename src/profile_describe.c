/*
 * profile_describe.c - fasa_profile_describe: the human-readable dump of a
 * profile (shape, K values, dense layers, every head's dominant FCs with
 * their agreement).
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* --------------------------------------------------------- describe */

typedef struct {
    char *buf;
    size_t cap;
    size_t len; /* full length, even past cap */
} text_out;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put(text_out *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = NULL;
    size_t room = 0;
    if (t->buf && t->len < t->cap) {
        dst = t->buf + t->len;
        room = t->cap - t->len;
    }
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

static const char *layout_name(int32_t layout)
{
    switch (layout) {
    case FASA_PAIRS_INTERLEAVED: return "INTERLEAVED";
    case FASA_PAIRS_HALF: return "HALF";
    default: return "ADJACENT";
    }
}

static void put_row(text_out *t, const uint32_t *row, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(t, " %u", (unsigned)row[i]);
    put(t, "\n");
}

fasa_status fasa_profile_describe(const fasa_profile *p, char *text, size_t capacity,
                                  size_t *length)
{
    if (!p || !length)
        return FASA_ERR_NULL_POINTER;
    const fasa_model_shape *s = &p->shape;
    size_t L = s->n_layers, Hq = s->n_q_heads, Hkv = s->n_kv_heads, nfc = p->n_fc_total;
    text_out t = {text, text ? capacity : 0, 0};
    put(&t, "fasa profile: %zu layers, %zu query heads, %zu KV heads, head_dim %zu (%zu FCs), "
            "pairs %s\n",
        L, Hq, Hkv, s->head_dim, nfc, layout_name(s->pair_layout));
    size_t ki = p->n_k;
    if (p->n_k) {
        put(&t, "K values:");
        for (size_t i = 0; i < p->n_k; i++) {
            put(&t, " %u", (unsigned)p->k_values[i]);
            if (p->k_values[i] == p->selection_k)
                ki = i;
        }
        put(&t, "\nselection K: %u\n", (unsigned)p->selection_k);
        put(&t, "steps per layer:");
        for (size_t l = 0; l < L; l++)
            put(&t, " %llu", (unsigned long long)p->layer_steps[l]);
        put(&t, "\n");
    } else {
        put(&t, "K values: none (sets given as lists)\n");
    }
    put(&t, "dense layers:");
    size_t n_dense = 0;
    for (size_t l = 0; l < L; l++)
        if (p->dense[l]) {
            put(&t, " %zu", l);
            n_dense++;
        }
    put(&t, n_dense ? "\n" : " none\n");
    put(&t, "max FCs per set: %zu\n", p->max_fc);
    for (size_t l = 0; l < L; l++) {
        put(&t, "layer %zu%s\n", l, p->dense[l] ? " (dense)" : "");
        for (size_t h = 0; h < Hq; h++) {
            size_t n;
            const uint32_t *row = fasa__profile_fcs(p, l, FASA_GQA_PER_HEAD, h, &n);
            put(&t, "  head %zu (kv %zu) fcs:", h, h * Hkv / Hq);
            put_row(&t, row, n);
            if (p->agreement && ki < p->n_k) {
                const float *a = p->agreement + ((l * p->n_k + ki) * Hq + h) * nfc;
                put(&t, "  head %zu (kv %zu) ca@%u:", h, h * Hkv / Hq, (unsigned)p->selection_k);
                for (size_t i = 0; i < n; i++)
                    put(&t, " %.4f", (double)a[row[i]]);
                put(&t, "\n");
            }
        }
        for (size_t g = 0; g < Hkv; g++) {
            size_t n;
            const uint32_t *row = fasa__profile_fcs(p, l, FASA_GQA_GROUP_SHARED, g, &n);
            put(&t, "  group %zu fcs:", g);
            put_row(&t, row, n);
        }
    }
    if (text && capacity > 0 && t.len >= capacity)
        text[capacity - 1] = '\0'; /* vsnprintf already did; keep it explicit */
    *length = t.len;
    return FASA_OK;
}
