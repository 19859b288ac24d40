/*
 * smoke.c - the install test's own client of an installed libfasa: built
 * only from <fasa.h> and `pkg-config fasa` (see tests/install.mk). It checks
 * header/library version agreement and runs one small predict + dense
 * attention through the installed library.
 */
#include <fasa.h>

#include <stdio.h>

#define T 16
#define HQ 2
#define HKV 1
#define D 8

static int fail(const char *what, fasa_status s, const fasa_ctx *ctx)
{
    fprintf(stderr, "smoke: %s: %s (%s)\n", what, fasa_status_name(s), fasa_ctx_last_error(ctx));
    return 1;
}

int main(void)
{
    static float q[HQ * D], k[T * HKV * D], v[T * HKV * D], out[HQ * D];
    static const uint32_t fcs[HQ * 2] = {0, 1, 2, 3};
    _Alignas(64) unsigned char ws[1 << 16];
    uint32_t idx[HQ * T], counts[HQ];
    fasa_model_shape shape = {sizeof shape, 1, HQ, HKV, D, FASA_PAIRS_INTERLEAVED, 0};
    fasa_view qv, kv, vv, ov;
    fasa_profile *prof = NULL;
    fasa_ctx *ctx = NULL;
    size_t need = 0;
    fasa_status s;
    int i;

    if (fasa_version_number() != FASA_VERSION_NUMBER) {
        fprintf(stderr, "smoke: header %u, library %u\n", (unsigned)FASA_VERSION_NUMBER,
                fasa_version_number());
        return 1;
    }
    for (i = 0; i < T * HKV * D; i++) {
        k[i] = (float)((i * 7) % 11) - 5.0f;
        v[i] = (float)((i * 5) % 13) / 13.0f;
    }
    for (i = 0; i < HQ * D; i++)
        q[i] = (float)((i * 3) % 5) - 2.0f;
    if ((s = fasa_ctx_create(NULL, &ctx)) != FASA_OK)
        return fail("ctx", s, NULL);
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D);
    fasa_view_make(&kv, k, FASA_DTYPE_F32, T, HKV, D, HKV * D, D);
    fasa_view_make(&vv, v, FASA_DTYPE_F32, T, HKV, D, HKV * D, D);
    fasa_view_make(&ov, out, FASA_DTYPE_F32, 1, HQ, D, HQ * D, D);
    if ((s = fasa_profile_create(&shape, fcs, 2, NULL, &prof)) != FASA_OK)
        return fail("profile", s, ctx);
    if ((s = fasa_predict_workspace_size(ctx, prof, &qv, T, FASA_GQA_PER_HEAD, &need)) != FASA_OK)
        return fail("predict workspace", s, ctx);
    if (need > sizeof ws)
        return fail("predict workspace size", FASA_ERR_WORKSPACE_TOO_SMALL, ctx);
    s = fasa_predict(ctx, prof, 0, FASA_GQA_PER_HEAD, &qv, &kv, 4.0, idx, T, counts, NULL, ws,
                     sizeof ws);
    if (s != FASA_OK)
        return fail("predict", s, ctx);
    if (counts[0] != 4 || counts[1] != 4)
        return fail("predict counts", FASA_ERR_BAD_STATE, ctx);
    if ((s = fasa_attend_dense_workspace_size(ctx, &qv, &kv, &vv, &need)) != FASA_OK)
        return fail("dense workspace", s, ctx);
    if (need > sizeof ws)
        return fail("dense workspace size", FASA_ERR_WORKSPACE_TOO_SMALL, ctx);
    if ((s = fasa_attend_dense(ctx, &qv, &kv, &vv, 0.0f, &ov, NULL, ws, sizeof ws)) != FASA_OK)
        return fail("attend_dense", s, ctx);
    for (i = 0; i < HQ * D; i++) {
        if (!(out[i] >= 0.0f && out[i] <= 1.0f)) /* a convex mix of v in [0, 1) */
            return fail("attend_dense output", FASA_ERR_NONFINITE, ctx);
    }
    printf("smoke: libfasa %s: predict and attend_dense ok\n", fasa_version_string());
    fasa_profile_destroy(prof);
    fasa_ctx_destroy(ctx);
    return 0;
}
