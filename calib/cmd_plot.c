/*
 * cmd_plot.c - `fasa-calib plot`: a self-contained SVG heatmap of the
 * contextual agreement of every FC (x) for every (layer, query head) (y) at
 * one K, with the dominant FCs marked. No fonts, images or scripts are
 * referenced, so the file renders anywhere (checked with rsvg-convert).
 */
#include "calib.h"
#include "dumps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CELL_W 10
#define CELL_H 14
#define LEFT 110
#define TOP 64
#define RIGHT 110
#define BOTTOM 64

/* Viridis sampled at 0, 1/4, 1/2, 3/4, 1: perceptually even and readable
 * in grey scale, so agreement differences are not exaggerated. */
static const unsigned char ramp[5][3] = {
    {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};

static void colour(double x, char out[8])
{
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    double pos = x * 4;
    int i = (int)pos;
    if (i > 3)
        i = 3;
    double t = pos - i;
    unsigned c[3];
    for (int j = 0; j < 3; j++)
        c[j] = (unsigned)lround(ramp[i][j] + t * (ramp[i + 1][j] - ramp[i][j]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static void xml_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, f);
        }
    }
}

typedef struct plot {
    const fasa_profile *p;
    const fasa_profile_info *in;
    const float *agree; /* [L][Hq][nfc] */
    uint32_t k;
    double vmax;
    const char *name;
} plot;

static void write_cells(FILE *f, const plot *pl)
{
    const fasa_model_shape *s = &pl->in->shape;
    size_t nfc = s->head_dim / 2, rows = s->n_layers * s->n_q_heads;
    char c[8];
    for (size_t r = 0; r < rows; r++) {
        for (size_t fc = 0; fc < nfc; fc++) {
            colour(pl->agree[r * nfc + fc] / pl->vmax, c);
            fprintf(f, "<rect x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"%d\" fill=\"%s\"/>\n",
                    LEFT + fc * CELL_W, TOP + r * CELL_H, CELL_W, CELL_H, c);
        }
    }
    /* Dominant FCs: a dot readable on both ends of the colour ramp. */
    fputs("<g fill=\"#ffffff\" stroke=\"#000000\" stroke-width=\"0.8\">\n", f);
    uint32_t fcs[CALIB_MAX_FC];
    for (size_t l = 0; l < s->n_layers; l++)
        for (size_t h = 0; h < s->n_q_heads; h++) {
            size_t n = 0;
            if (fasa_profile_get_fcs(pl->p, l, FASA_GQA_PER_HEAD, h, fcs, CALIB_MAX_FC, &n) !=
                FASA_OK)
                continue;
            for (size_t i = 0; i < n; i++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.4\"/>\n",
                        LEFT + fcs[i] * CELL_W + CELL_W / 2.0,
                        TOP + (l * s->n_q_heads + h) * CELL_H + CELL_H / 2.0);
        }
    fputs("</g>\n", f);
}

static void write_axes(FILE *f, const plot *pl)
{
    const fasa_model_shape *s = &pl->in->shape;
    size_t nfc = s->head_dim / 2, rows = s->n_layers * s->n_q_heads;
    size_t w = nfc * CELL_W, h = rows * CELL_H;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%zu\" height=\"%zu\" fill=\"none\" "
               "stroke=\"#000000\"/>\n",
            LEFT, TOP, w, h);
    fputs("<g font-family=\"sans-serif\" font-size=\"10\" fill=\"#000000\">\n", f);
    for (size_t l = 0; l < s->n_layers; l++) {
        int dense = 0;
        fasa_profile_get_dense_layer(pl->p, l, &dense);
        size_t y0 = TOP + l * s->n_q_heads * CELL_H;
        if (l > 0)
            fprintf(f, "<line x1=\"%d\" y1=\"%zu\" x2=\"%zu\" y2=\"%zu\" stroke=\"#ffffff\" "
                       "stroke-width=\"2\"/>\n",
                    LEFT, y0, LEFT + w, y0);
        for (size_t hh = 0; hh < s->n_q_heads; hh++)
            fprintf(f, "<text x=\"%d\" y=\"%zu\" text-anchor=\"end\">L%zu h%zu%s</text>\n",
                    LEFT - 6, y0 + hh * CELL_H + CELL_H - 3, l, hh,
                    dense && hh == 0 ? " dense" : "");
    }
    size_t step = nfc >= 32 ? 8 : nfc >= 8 ? 2 : 1;
    for (size_t fc = 0; fc <= nfc; fc += step) {
        size_t x = LEFT + fc * CELL_W;
        fprintf(f, "<line x1=\"%zu\" y1=\"%zu\" x2=\"%zu\" y2=\"%zu\" stroke=\"#000000\"/>\n", x,
                TOP + h, x, TOP + h + 4);
        if (fc < nfc)
            fprintf(f, "<text x=\"%zu\" y=\"%zu\" text-anchor=\"middle\">%zu</text>\n",
                    x + CELL_W / 2, TOP + h + 16, fc);
    }
    const char *xlabel =
        s->pair_layout == FASA_PAIRS_ADJACENT
            ? "FC index f (ADJACENT: dims 2f, 2f+1 of rotate-half tensors)"
            : "FC index f = RoPE frequency index (0 = highest frequency, right = lowest)";
    fprintf(f, "<text x=\"%zu\" y=\"%zu\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
            LEFT + w / 2, TOP + h + 36, xlabel);
    fprintf(f, "<text transform=\"translate(14,%zu) rotate(-90)\" text-anchor=\"middle\" "
               "font-size=\"12\">layer, query head</text>\n",
            TOP + h / 2);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"14\" font-weight=\"bold\">Contextual "
               "agreement at K=%u: ",
            LEFT, (unsigned)pl->k);
    xml_escaped(f, pl->name);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"42\" font-size=\"11\">%zu decode steps per layer, "
               "%s pairs; white dots: dominant FCs (selection K=%u, up to %zu per head)</text>\n",
            LEFT, pl->in->n_steps, calib_layout_name(s->pair_layout),
            (unsigned)pl->in->selection_k, pl->in->max_fc);
    fputs("</g>\n", f);
}

static void write_legend(FILE *f, const plot *pl)
{
    const fasa_model_shape *s = &pl->in->shape;
    size_t x = LEFT + (s->head_dim / 2) * CELL_W + 30, bar_h = 200;
    char c[8];
    fputs("<defs><linearGradient id=\"ca\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n", f);
    for (int i = 0; i <= 10; i++) {
        colour(i / 10.0, c);
        fprintf(f, "<stop offset=\"%.1f\" stop-color=\"%s\"/>\n", i / 10.0, c);
    }
    fputs("</linearGradient></defs>\n", f);
    fprintf(f, "<rect x=\"%zu\" y=\"%d\" width=\"16\" height=\"%zu\" fill=\"url(#ca)\" "
               "stroke=\"#000000\"/>\n",
            x, TOP, bar_h);
    fputs("<g font-family=\"sans-serif\" font-size=\"10\" fill=\"#000000\">\n", f);
    for (int i = 0; i <= 4; i++) {
        double y = TOP + bar_h - bar_h * i / 4.0;
        fprintf(f, "<line x1=\"%zu\" y1=\"%.1f\" x2=\"%zu\" y2=\"%.1f\" stroke=\"#000000\"/>\n",
                x + 16, y, x + 20, y);
        fprintf(f, "<text x=\"%zu\" y=\"%.1f\">%.3g</text>\n", x + 23, y + 3.5,
                pl->vmax * i / 4.0);
    }
    fprintf(f, "<text x=\"%zu\" y=\"%d\">agreement</text>\n", x - 6, TOP - 8);
    fputs("</g>\n", f);
}

static int write_svg(const char *path, const plot *pl)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return calib_error("%s: cannot create", path);
    const fasa_model_shape *s = &pl->in->shape;
    size_t w = LEFT + (s->head_dim / 2) * CELL_W + RIGHT;
    size_t h = TOP + s->n_layers * s->n_q_heads * CELL_H + BOTTOM;
    if (h < TOP + 200 + BOTTOM)
        h = TOP + 200 + BOTTOM; /* room for the legend bar */
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%zu\" "
               "height=\"%zu\" viewBox=\"0 0 %zu %zu\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            w, h, w, h);
    write_cells(f, pl);
    write_axes(f, pl);
    write_legend(f, pl);
    fputs("</svg>\n", f);
    if (fclose(f) != 0)
        return calib_error("%s: write failed", path);
    return 0;
}

static const char plot_usage[] = "usage: fasa-calib plot PROFILE -o MAP.svg [--k K]\n"
                                 "  K defaults to the K slice the dominant sets came from\n";

int calib_cmd_plot(int argc, char **argv)
{
    const char *path = NULL, *out = NULL;
    size_t k = 0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (argv[i][0] != '-' && !path) {
            path = argv[i];
            continue;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(plot_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "-o") != 0 && strcmp(argv[i], "--k") != 0) {
            fputs(plot_usage, stderr);
            return 2;
        }
        if (!(v = calib_opt_value(argc, argv, &i)))
            return 2;
        if (argv[i - 1][1] == 'o')
            out = v;
        else if (calib_parse_size(v, &k) != 0 || k == 0 || k > UINT32_MAX)
            return calib_error("--k: bad value '%s'", v) + 1;
    }
    if (!path || !out) {
        fputs(plot_usage, stderr);
        return 2;
    }
    fasa_profile *p;
    fasa_profile_info in;
    if (calib_load(path, &p, &in) != 0)
        return 1;
    int rc = 1;
    if (!in.has_agreement) {
        calib_error("%s: no agreement data to plot (profile built from FC lists)", path);
    } else {
        if (k == 0)
            k = in.selection_k;
        int ki = k ? calib_k_index(p, &in, (uint32_t)k) : -1;
        if (k == 0)
            calib_error("%s: no selection K recorded; pass --k", path);
        float *agree = ki >= 0 ? calib_agreement_at(p, &in, (size_t)ki) : NULL;
        if (agree) {
            size_t n = in.shape.n_layers * in.shape.n_q_heads * (in.shape.head_dim / 2);
            float mx = 0;
            for (size_t i = 0; i < n; i++)
                if (agree[i] > mx)
                    mx = agree[i];
            /* Scale to the data (rounded up to 0.1) so weak maps keep contrast;
             * the legend states the range. */
            double vmax = ceil(mx * 10.0 - 1e-9) / 10.0;
            const char *base = strrchr(path, '/');
            plot pl = {p, &in, agree, (uint32_t)k, vmax < 0.1 ? 0.1 : vmax, base ? base + 1 : path};
            rc = write_svg(out, &pl);
            free(agree);
        }
    }
    fasa_profile_destroy(p);
    return rc;
}
