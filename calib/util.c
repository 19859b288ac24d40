/*
 * util.c - argument parsing and profile helpers shared by the commands.
 */
#include "calib.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int calib_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fasa-calib: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int calib_parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

int calib_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int calib_parse_list(const char *s, uint32_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (strcmp(s, "none") == 0 || *s == '\0')
        return 0;
    const char *p = s;
    for (;;) {
        if (*p < '0' || *p > '9' || *n == cap)
            return -1;
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno != 0 || v > UINT32_MAX)
            return -1;
        out[(*n)++] = (uint32_t)v;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

const char *calib_opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        calib_error("option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

void calib_select_args_init(calib_select_args *a)
{
    memset(a, 0, sizeof *a);
    a->sel.struct_size = sizeof a->sel;
    fasa_select_options_default(&a->sel);
}

static int bad_value(const char *opt, const char *v, const char *want)
{
    calib_error("%s: bad value '%s' (expected %s)", opt, v, want);
    return -1;
}

int calib_select_args_parse(calib_select_args *a, int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    size_t v;
    double r;
    const char *s;
    if (strcmp(opt, "--nfc") == 0 || strcmp(opt, "--min-k") == 0 || strcmp(opt, "--max-k") == 0 ||
        strcmp(opt, "--budget") == 0) {
        if (!(s = calib_opt_value(argc, argv, i)))
            return -1;
        if (calib_parse_size(s, &v) != 0 || v == 0 || v > UINT32_MAX)
            return bad_value(opt, s, "a positive integer");
        a->n_sel_opts += opt[2] != 'b';
        if (opt[2] == 'n')
            a->sel.n_fc = (uint32_t)v;
        else if (opt[2] == 'b')
            a->sel.budget_hint = (uint32_t)v;
        else {
            /* min/max only mean something for the threshold rule */
            a->sel.use_threshold = 1;
            if (opt[3] == 'i')
                a->sel.min_fc = (uint32_t)v;
            else
                a->sel.max_fc = (uint32_t)v;
        }
        return 1;
    }
    if (strcmp(opt, "--threshold-ratio") == 0) {
        if (!(s = calib_opt_value(argc, argv, i)))
            return -1;
        if (calib_parse_double(s, &r) != 0 || r < 0 || r > 1)
            return bad_value(opt, s, "a number in [0, 1]");
        a->sel.use_threshold = 1;
        a->sel.threshold_ratio = (float)r;
        a->n_sel_opts++;
        return 1;
    }
    if (strcmp(opt, "--dense-layers") == 0) {
        if (!(s = calib_opt_value(argc, argv, i)))
            return -1;
        if (calib_parse_list(s, a->dense, sizeof a->dense / sizeof a->dense[0], &a->n_dense) != 0)
            return bad_value(opt, s, "a comma-separated list of layers, or 'none'");
        a->have_dense = 1;
        return 1;
    }
    return 0;
}

int calib_apply_dense(fasa_profile *p, const calib_select_args *a)
{
    if (!a->have_dense)
        return 0;
    fasa_profile_info info = {.struct_size = sizeof info};
    fasa_status st = fasa_profile_get_info(p, &info);
    if (st != FASA_OK)
        return calib_error("profile info: %s", fasa_status_string(st));
    for (size_t i = 0; i < a->n_dense; i++)
        if (a->dense[i] >= info.shape.n_layers)
            return calib_error("--dense-layers: layer %u out of range (the model has %zu layers)",
                               (unsigned)a->dense[i], info.shape.n_layers);
    for (size_t l = 0; l < info.shape.n_layers; l++) {
        int dense = 0;
        for (size_t i = 0; i < a->n_dense; i++)
            dense |= a->dense[i] == l;
        st = fasa_profile_set_dense_layer(p, l, dense);
        if (st != FASA_OK)
            return calib_error("set dense layer %zu: %s", l, fasa_status_string(st));
    }
    return 0;
}

int calib_load(const char *path, fasa_profile **out, fasa_profile_info *info)
{
    fasa_status st = fasa_profile_load(path, out);
    if (st != FASA_OK)
        return calib_error("%s: cannot load profile: %s (%s)", path, fasa_status_string(st),
                           fasa_status_name(st));
    info->struct_size = sizeof *info;
    st = fasa_profile_get_info(*out, info);
    if (st != FASA_OK) {
        fasa_profile_destroy(*out);
        *out = NULL;
        return calib_error("%s: %s", path, fasa_status_string(st));
    }
    if (info->shape.head_dim / 2 > CALIB_MAX_FC) {
        fasa_profile_destroy(*out);
        *out = NULL;
        return calib_error("%s: head_dim %zu is larger than this tool handles (%d)", path,
                           info->shape.head_dim, 2 * CALIB_MAX_FC);
    }
    return 0;
}

float *calib_agreement_at(const fasa_profile *p, const fasa_profile_info *info, size_t k_index)
{
    size_t nfc = info->shape.head_dim / 2, row = info->shape.n_q_heads * nfc;
    float *a = malloc(info->shape.n_layers * row * sizeof *a);
    if (!a) {
        calib_error("out of memory");
        return NULL;
    }
    for (size_t l = 0; l < info->shape.n_layers; l++) {
        fasa_status st = fasa_profile_get_agreement(p, l, k_index, a + l * row, row);
        if (st != FASA_OK) {
            calib_error("agreement of layer %zu: %s", l, fasa_status_string(st));
            free(a);
            return NULL;
        }
    }
    return a;
}

int calib_k_index(const fasa_profile *p, const fasa_profile_info *info, uint32_t k)
{
    uint32_t ks[FASA_MAX_K_VALUES];
    if (info->n_k == 0 || fasa_profile_get_k_values(p, ks, FASA_MAX_K_VALUES) != FASA_OK) {
        calib_error("the profile has no calibrated K values (no agreement data)");
        return -1;
    }
    for (size_t i = 0; i < info->n_k; i++)
        if (ks[i] == k)
            return (int)i;
    char list[200] = "";
    size_t n = 0;
    for (size_t i = 0; i < info->n_k && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%u", i ? "," : "", (unsigned)ks[i]);
    calib_error("K=%u is not a calibrated K of this profile (have %s)", (unsigned)k, list);
    return -1;
}
