/*
 * fuzz_profile.c - fuzz entry point for the profile parser
 * (fasa_profile_load_buffer, src/profile_io.c).
 *
 * Every input must either be rejected with an error status or give a profile
 * that every reader accepts and that round-trips: save -> load -> save gives
 * the same bytes (docs/profile-format.md). Violations abort(), so libFuzzer
 * and the replay driver report them like a crash.
 */
#include "fasa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                               \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz_profile: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* Readers over the parsed profile; bounded so one input stays fast. */
static void exercise(fasa_profile *p)
{
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    REQUIRE(fasa_profile_get_info(p, &info) == FASA_OK);
    const fasa_model_shape *s = &info.shape;
    REQUIRE(s->n_layers > 0 && s->n_q_heads > 0 && s->n_kv_heads > 0);
    REQUIRE(s->n_q_heads % s->n_kv_heads == 0 && s->head_dim % 2 == 0 && s->head_dim > 0);

    size_t len = 0;
    REQUIRE(fasa_profile_describe(p, NULL, 0, &len) == FASA_OK);
    if (len < (1u << 20)) {
        char *text = malloc(len + 1);
        REQUIRE(text != NULL);
        size_t len2 = 0;
        REQUIRE(fasa_profile_describe(p, text, len + 1, &len2) == FASA_OK);
        REQUIRE(len2 == len && strlen(text) == len);
        free(text);
    }

    uint32_t kv[FASA_MAX_K_VALUES];
    if (info.n_k > 0)
        REQUIRE(info.n_k <= FASA_MAX_K_VALUES &&
                fasa_profile_get_k_values(p, kv, FASA_MAX_K_VALUES) == FASA_OK);

    const size_t n_half = s->head_dim / 2;
    uint32_t *fcs = malloc(n_half * sizeof *fcs);
    REQUIRE(fcs != NULL);
    const size_t layers = s->n_layers < 8 ? s->n_layers : 8;
    for (size_t l = 0; l < layers; l++) {
        int dense = -1;
        REQUIRE(fasa_profile_get_dense_layer(p, l, &dense) == FASA_OK);
        REQUIRE(dense == 0 || dense == 1);
        for (int mode = 0; mode < 2; mode++) {
            size_t heads = mode ? s->n_kv_heads : s->n_q_heads;
            if (heads > 16)
                heads = 16;
            for (size_t h = 0; h < heads; h++) {
                size_t n = 0;
                REQUIRE(fasa_profile_get_fcs(p, l, (fasa_gqa_mode)mode, h, fcs, n_half, &n) ==
                        FASA_OK);
                REQUIRE(n <= n_half);
                for (size_t i = 0; i < n; i++)
                    REQUIRE(fcs[i] < n_half && (i == 0 || fcs[i - 1] < fcs[i]));
            }
            size_t bytes = 0;
            (void)fasa_label_cache_size(p, l, (fasa_gqa_mode)mode, FASA_DTYPE_F16, 64, &bytes);
        }
        if (info.has_agreement && info.n_k > 0 && s->n_q_heads <= 64 && n_half <= 256) {
            size_t cap = s->n_q_heads * n_half;
            float *ag = malloc(cap * sizeof *ag);
            REQUIRE(ag != NULL);
            REQUIRE(fasa_profile_get_agreement(p, l, info.n_k - 1, ag, cap) == FASA_OK);
            free(ag);
        }
    }
    free(fcs);
    REQUIRE(fasa_profile_get_dense_layer(p, s->n_layers, &(int){0}) != FASA_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fasa_profile *p = NULL;
    if (fasa_profile_load_buffer(data, size, &p) != FASA_OK) {
        REQUIRE(p == NULL);
        return 0;
    }
    REQUIRE(p != NULL);
    exercise(p);

    /* Round trip: the saved image must load and save to identical bytes. */
    size_t n1 = 0, n2 = 0;
    REQUIRE(fasa_profile_save_buffer(p, NULL, 0, &n1) == FASA_OK && n1 > 0);
    unsigned char *b1 = malloc(n1), *b2 = malloc(n1);
    REQUIRE(b1 != NULL && b2 != NULL);
    REQUIRE(fasa_profile_save_buffer(p, b1, n1, &n1) == FASA_OK);
    fasa_profile *p2 = NULL;
    REQUIRE(fasa_profile_load_buffer(b1, n1, &p2) == FASA_OK);
    REQUIRE(fasa_profile_save_buffer(p2, b2, n1, &n2) == FASA_OK);
    REQUIRE(n1 == n2 && memcmp(b1, b2, n1) == 0);

    fasa_profile *c = NULL;
    REQUIRE(fasa_profile_clone(p, &c) == FASA_OK);
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    REQUIRE(fasa_profile_get_info(c, &info) == FASA_OK);
    if (info.has_agreement && info.shape.n_layers * info.shape.n_q_heads <= 4096) {
        fasa_select_options so;
        fasa_select_options_default(&so);
        fasa_status st = fasa_profile_select(c, &so);
        REQUIRE(st == FASA_OK || st == FASA_ERR_INVALID_ARGUMENT || st == FASA_ERR_BAD_STATE);
        if (st == FASA_OK)
            exercise(c);
    }
    fasa_profile_destroy(c);
    fasa_profile_destroy(p2);
    fasa_profile_destroy(p);
    free(b1);
    free(b2);
    return 0;
}
