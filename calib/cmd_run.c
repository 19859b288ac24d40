/*
 * cmd_run.c - `fasa-calib run`: q/k dumps -> calibrated profile.
 */
#include "calib.h"
#include "dumps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_DUMPS 256

static const char run_usage[] =
    "usage: fasa-calib run DUMP_DIR... -o OUT.fasa [--layout half|interleaved|adjacent]\n"
    "           [--positions A:B[:S]] [--k 64,128,...] [--nfc N] [--budget B]\n"
    "           [--threshold-ratio R --min-k A --max-k B] [--dense-layers 0,...|none]\n"
    "           [--threads N]\n"
    "defaults: positions 2048:4096:16, K values 64,128,256,512,1024, nfc 16,\n"
    "          budget 256 (selects the K=256 slice), dense layers 0\n";

typedef struct run_state {
    fasa_calibrator *cal;
    fasa_ctx *ctx;
    size_t done, total;
    int progress;
    double t0, last_print;
} run_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_progress(run_state *s, int final)
{
    double t = now_s(), el = t - s->t0;
    if (!final && t - s->last_print < 0.25)
        return;
    s->last_print = t;
    double rate = el > 0 ? (double)s->done / el : 0;
    double eta = rate > 0 ? (double)(s->total - s->done) / rate : 0;
    fprintf(stderr, "\rfasa-calib: %zu/%zu layer-steps  %.1f/s  ETA %.0fs   %s", s->done,
            s->total, rate, eta, final ? "\n" : "");
    fflush(stderr);
}

static int add_step(void *user, size_t layer, const fasa_view *q, const fasa_view *k,
                    const char *where)
{
    run_state *s = user;
    fasa_status st = fasa_calibrator_add_step(s->cal, s->ctx, layer, q, k);
    if (st != FASA_OK) {
        if (s->progress)
            fputc('\n', stderr);
        return calib_error("%s: %s (%s) %s", where, fasa_status_string(st), fasa_status_name(st),
                           fasa_ctx_last_error(s->ctx));
    }
    s->done++;
    if (s->progress)
        print_progress(s, 0);
    return 0;
}

static int parse_positions(const char *s, calib_positions *p)
{
    char buf[128];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *a = buf, *b = strchr(a, ':');
    if (!b)
        return -1;
    *b++ = '\0';
    char *c = strchr(b, ':');
    if (c)
        *c++ = '\0';
    p->step = 1;
    if (calib_parse_size(a, &p->begin) != 0 || calib_parse_size(b, &p->end) != 0 ||
        (c && calib_parse_size(c, &p->step) != 0) || p->step == 0 || p->begin >= p->end)
        return -1;
    return 0;
}

/* Shape and layout every dump must share; the first dump decides. */
static int check_dumps(calib_dump *d, size_t n, int *layout)
{
    int meta_layout = -1;
    for (size_t i = 0; i < n; i++) {
        if (d[i].n_layers != d[0].n_layers || d[i].n_q_heads != d[0].n_q_heads ||
            d[i].n_kv_heads != d[0].n_kv_heads || d[i].head_dim != d[0].head_dim)
            return calib_error("%s: shape (layers %zu, q_heads %zu, kv_heads %zu, head_dim %zu) "
                               "differs from %s (layers %zu, q_heads %zu, kv_heads %zu, "
                               "head_dim %zu)",
                               d[i].dir, d[i].n_layers, d[i].n_q_heads, d[i].n_kv_heads,
                               d[i].head_dim, d[0].dir, d[0].n_layers, d[0].n_q_heads,
                               d[0].n_kv_heads, d[0].head_dim);
        if (d[i].meta_layout >= 0) {
            if (meta_layout >= 0 && d[i].meta_layout != meta_layout)
                return calib_error("%s/meta.txt: pair_layout %s differs from another dump's %s",
                                   d[i].dir, calib_layout_name(d[i].meta_layout),
                                   calib_layout_name(meta_layout));
            meta_layout = d[i].meta_layout;
        }
    }
    if (*layout < 0) {
        if (meta_layout < 0)
            return calib_error("pair layout unknown: no meta.txt gives 'pair_layout'; "
                               "pass --layout half|interleaved|adjacent");
        *layout = meta_layout;
    } else if (meta_layout >= 0 && *layout != meta_layout) {
        /* The documented case is ADJACENT over rotate-half tensors (the
         * official FASA grouping); say so, since a typo would go unnoticed. */
        fprintf(stderr, "fasa-calib: note: grouping %s tensors (meta.txt) as %s FCs (--layout)\n",
                calib_layout_name(meta_layout), calib_layout_name(*layout));
    }
    return 0;
}

typedef struct run_args {
    const char *dirs[MAX_DUMPS];
    size_t n_dirs;
    const char *out;
    int layout;
    calib_positions pos;
    int have_positions;
    fasa_calib_config cfg;
    size_t threads;
    calib_select_args sel;
} run_args;

static int parse_args(run_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->layout = -1;
    a->pos = (calib_positions){2048, 4096, 16};
    a->threads = 1;
    a->cfg.struct_size = sizeof a->cfg;
    calib_select_args_init(&a->sel);
    a->sel.have_dense = 1;
    a->sel.n_dense = 1;
    a->sel.dense[0] = 0;
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i], *v;
        int r = calib_select_args_parse(&a->sel, argc, argv, &i);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            fputs(run_usage, stdout);
            exit(0);
        }
        if (opt[0] != '-') {
            if (a->n_dirs == MAX_DUMPS)
                return calib_error("at most %d dump directories", MAX_DUMPS) + 1;
            a->dirs[a->n_dirs++] = opt;
            continue;
        }
        if (!(v = calib_opt_value(argc, argv, &i)))
            return 2;
        if (strcmp(opt, "-o") == 0) {
            a->out = v;
        } else if (strcmp(opt, "--layout") == 0) {
            if ((a->layout = calib_layout_parse(v)) < 0)
                return calib_error("--layout: '%s' is not half, interleaved or adjacent", v) + 1;
        } else if (strcmp(opt, "--positions") == 0) {
            if (parse_positions(v, &a->pos) != 0)
                return calib_error("--positions: '%s' is not A:B[:S] with A < B, S >= 1", v) + 1;
            a->have_positions = 1;
        } else if (strcmp(opt, "--k") == 0) {
            if (calib_parse_list(v, a->cfg.k_values, FASA_MAX_K_VALUES, &a->cfg.n_k) != 0 ||
                a->cfg.n_k == 0)
                return calib_error("--k: '%s' is not a list of 1..%d K values", v,
                                   FASA_MAX_K_VALUES) +
                       1;
        } else if (strcmp(opt, "--threads") == 0) {
            if (calib_parse_size(v, &a->threads) != 0 || a->threads == 0 || a->threads > 1024)
                return calib_error("--threads: bad value '%s'", v) + 1;
        } else {
            fputs(run_usage, stderr);
            return calib_error("run: unknown option %s", opt) + 1;
        }
    }
    if (a->n_dirs == 0 || !a->out) {
        fputs(run_usage, stderr);
        return 2;
    }
    return 0;
}

static int calibrate(const run_args *a, calib_dump *dumps, int layout)
{
    fasa_calib_config cfg = a->cfg;
    cfg.shape = (fasa_model_shape){.struct_size = sizeof(fasa_model_shape),
                                   .n_layers = dumps[0].n_layers,
                                   .n_q_heads = dumps[0].n_q_heads,
                                   .n_kv_heads = dumps[0].n_kv_heads,
                                   .head_dim = dumps[0].head_dim,
                                   .pair_layout = layout};
    run_state s = {0};
    char err[2048];
    for (size_t i = 0; i < a->n_dirs; i++) {
        size_t n;
        if (calib_dump_count(&dumps[i], &a->pos, &n, err, sizeof err) != 0)
            return calib_error("%s", err);
        if (dumps[i].per_step && a->have_positions)
            fprintf(stderr, "fasa-calib: note: %s holds per-step files; --positions ignored\n",
                    dumps[i].dir);
        s.total += n;
    }
    fasa_ctx_options co;
    fasa_ctx_options_default(&co);
    co.n_threads = (int32_t)a->threads;
    fasa_status st = fasa_ctx_create(&co, &s.ctx);
    if (st != FASA_OK)
        return calib_error("context: %s", fasa_status_string(st));
    st = fasa_calibrator_create(&cfg, &s.cal);
    if (st != FASA_OK) {
        fasa_ctx_destroy(s.ctx);
        return calib_error("calibrator: %s (%s)", fasa_status_string(st), fasa_status_name(st));
    }
    s.progress = isatty(STDERR_FILENO);
    s.t0 = s.last_print = now_s();
    int rc = 0;
    for (size_t i = 0; i < a->n_dirs && rc == 0; i++) {
        rc = calib_dump_walk(&dumps[i], &a->pos, add_step, &s, err, sizeof err);
        if (rc < 0)
            rc = calib_error("%s", err);
    }
    if (s.progress && rc == 0)
        print_progress(&s, 1);
    fasa_profile *prof = NULL;
    if (rc == 0) {
        st = fasa_calibrator_finish(s.cal, &a->sel.sel, &prof);
        if (st != FASA_OK)
            rc = calib_error("finish: %s (%s)", fasa_status_string(st), fasa_status_name(st));
    }
    if (rc == 0)
        rc = calib_apply_dense(prof, &a->sel);
    if (rc == 0) {
        st = fasa_profile_save(prof, a->out);
        if (st != FASA_OK)
            rc = calib_error("%s: cannot save: %s", a->out, fasa_status_string(st));
    }
    if (rc == 0)
        printf("wrote %s: %zu layers x %zu query heads, head_dim %zu, %s pairs, %zu layer-steps\n",
               a->out, cfg.shape.n_layers, cfg.shape.n_q_heads, cfg.shape.head_dim,
               calib_layout_name(layout), s.done);
    fasa_profile_destroy(prof);
    fasa_calibrator_destroy(s.cal);
    fasa_ctx_destroy(s.ctx);
    return rc;
}

int calib_cmd_run(int argc, char **argv)
{
    static run_args a; /* large (select args hold a layer list) */
    int rc = parse_args(&a, argc, argv);
    if (rc != 0)
        return rc;
    calib_dump *dumps = calloc(a.n_dirs, sizeof *dumps);
    if (!dumps)
        return calib_error("out of memory");
    char err[2048];
    size_t opened = 0;
    for (; opened < a.n_dirs && rc == 0; opened++)
        if (calib_dump_open(&dumps[opened], a.dirs[opened], err, sizeof err) != 0) {
            rc = calib_error("%s", err);
            break;
        }
    int layout = a.layout;
    if (rc == 0)
        rc = check_dumps(dumps, a.n_dirs, &layout);
    if (rc == 0)
        rc = calibrate(&a, dumps, layout);
    for (size_t i = 0; i < opened; i++)
        calib_dump_close(&dumps[i]);
    free(dumps);
    return rc;
}
