/*
 * gen_profile_seeds.c - write the seed inputs of the profile fuzz target
 * (tests/fuzz/corpus/profile/seed-*) with the library's own writer: a
 * profile made from FC lists, one calibrated with agreement data, and one
 * with a changed dense-layer set. Deterministic data, so the bytes only
 * change with the file format.
 *   cc -std=c11 -Iinclude tests/fuzz/gen_profile_seeds.c build/libfasa.a -lm -fopenmp \
 *       -o /tmp/gps && /tmp/gps tests/fuzz/corpus/profile
 */
#include "fasa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int save(const fasa_profile *p, const char *dir, const char *name)
{
    size_t n = 0;
    if (fasa_profile_save_buffer(p, NULL, 0, &n) != FASA_OK)
        return -1;
    unsigned char *b = malloc(n);
    char path[1024];
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = b && f && fasa_profile_save_buffer(p, b, n, &n) == FASA_OK &&
             fwrite(b, 1, n, f) == n;
    if (f)
        ok = fclose(f) == 0 && ok;
    free(b);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    int rc = 0;
    uint32_t fcs[2 * 4 * 3];
    for (size_t i = 0; i < sizeof fcs / sizeof fcs[0]; i++)
        fcs[i] = (uint32_t)((i * 5 + i / 3) % 8);
    for (size_t r = 0; r < 8; r++) /* distinct within each row of 3 */
        fcs[r * 3 + 1] = (fcs[r * 3] + 1) % 8, fcs[r * 3 + 2] = (fcs[r * 3] + 3) % 8;
    fasa_model_shape s = {sizeof s, 2, 4, 2, 16, FASA_PAIRS_INTERLEAVED, 0};
    fasa_profile *p = NULL;
    if (fasa_profile_create(&s, fcs, 3, NULL, &p) != FASA_OK)
        return 1;
    rc |= save(p, argv[1], "created");
    rc |= fasa_profile_set_dense_layer(p, 0, 0) != FASA_OK;
    rc |= fasa_profile_set_dense_layer(p, 1, 1) != FASA_OK;
    rc |= save(p, argv[1], "dense-1");
    fasa_profile_destroy(p);

    /* Calibrated: 1 layer, Hq 2, Hkv 1, head_dim 8, K {2, 4}, two steps. */
    fasa_calib_config cc;
    memset(&cc, 0, sizeof cc);
    cc.struct_size = sizeof cc;
    cc.shape = (fasa_model_shape){sizeof(fasa_model_shape), 1, 2, 1, 8, FASA_PAIRS_HALF, 0};
    cc.n_k = 2;
    cc.k_values[0] = 2;
    cc.k_values[1] = 4;
    float q[2 * 8], k[6 * 8];
    for (int i = 0; i < 16; i++)
        q[i] = (float)((i * 7) % 5) - 2.0f;
    for (int i = 0; i < 48; i++)
        k[i] = (float)((i * 3) % 7) - 3.0f;
    fasa_view qv, kv;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, 2, 8, 16, 8);
    fasa_view_make(&kv, k, FASA_DTYPE_F32, 6, 1, 8, 8, 8);
    fasa_calibrator *cal = NULL;
    fasa_select_options so;
    fasa_select_options_default(&so);
    so.n_fc = 2;
    so.budget_hint = 4;
    if (fasa_calibrator_create(&cc, &cal) != FASA_OK ||
        fasa_calibrator_add_step(cal, NULL, 0, &qv, &kv) != FASA_OK)
        return 1;
    kv.n_tokens = 4;
    if (fasa_calibrator_add_step(cal, NULL, 0, &qv, &kv) != FASA_OK ||
        fasa_calibrator_finish(cal, &so, &p) != FASA_OK)
        return 1;
    rc |= save(p, argv[1], "calibrated");
    fasa_profile_destroy(p);
    fasa_calibrator_destroy(cal);
    return rc ? 1 : 0;
}
