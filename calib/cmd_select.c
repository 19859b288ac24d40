/*
 * cmd_select.c - `fasa-calib select`: re-derive the dominant FC sets of a
 * calibrated profile (another N_tip, K slice or the official threshold rule)
 * and/or change its dense layers, without recalibrating.
 */
#include "calib.h"

#include <stdio.h>
#include <string.h>

static const char select_usage[] =
    "usage: fasa-calib select PROFILE -o OUT.fasa [--nfc N] [--k K] [--budget B]\n"
    "           [--threshold-ratio R --min-k A --max-k B] [--dense-layers 0,3|none]\n"
    "  --k K picks the agreement slice (default: the calibrated K closest to --budget,\n"
    "  256); --threshold-ratio/--min-k/--max-k switch to the official quantile rule.\n"
    "  Without --dense-layers the profile's dense layers are kept.\n";

int calib_cmd_select(int argc, char **argv)
{
    static calib_select_args sa;
    calib_select_args_init(&sa);
    const char *path = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        int r = calib_select_args_parse(&sa, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        const char *opt = argv[i], *v;
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            fputs(select_usage, stdout);
            return 0;
        }
        if (opt[0] != '-' && !path) {
            path = opt;
            continue;
        }
        if (strcmp(opt, "-o") != 0 && strcmp(opt, "--k") != 0) {
            fputs(select_usage, stderr);
            return 2;
        }
        if (!(v = calib_opt_value(argc, argv, &i)))
            return 2;
        size_t k;
        if (opt[1] == 'o')
            out = v;
        else if (calib_parse_size(v, &k) != 0 || k == 0 || k > UINT32_MAX)
            return calib_error("--k: bad value '%s'", v) + 1;
        else {
            sa.sel.k = (uint32_t)k;
            sa.n_sel_opts++;
        }
    }
    if (!path || !out) {
        fputs(select_usage, stderr);
        return 2;
    }
    fasa_profile *p;
    fasa_profile_info in;
    if (calib_load(path, &p, &in) != 0)
        return 1;
    int rc = 0;
    if (sa.sel.k && calib_k_index(p, &in, sa.sel.k) < 0)
        rc = 1;
    /* A profile built from FC lists can still get new dense layers. */
    if (rc == 0 && (in.has_agreement || sa.n_sel_opts)) {
        fasa_status st = fasa_profile_select(p, &sa.sel);
        if (st != FASA_OK)
            rc = calib_error("%s: select: %s (%s)%s", path, fasa_status_string(st),
                             fasa_status_name(st),
                             st == FASA_ERR_BAD_STATE ? ": the profile has no agreement data" : "");
    }
    if (rc == 0)
        rc = calib_apply_dense(p, &sa);
    if (rc == 0) {
        fasa_status st = fasa_profile_save(p, out);
        if (st != FASA_OK)
            rc = calib_error("%s: cannot save: %s", out, fasa_status_string(st));
    }
    fasa_profile_destroy(p);
    return rc;
}
