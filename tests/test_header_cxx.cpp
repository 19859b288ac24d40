/*
 * test_header_cxx.cpp - fasa.h must compile as C++11 and as pedantic C11
 * (this file is built both ways by `make check-cxx`); the C++ build is
 * linked against the C library and run, which proves extern "C" linkage.
 */
#include "fasa.h"
#include "fasa.h" /* include guard */

#include <stdio.h>
#include <string.h>

int main(void)
{
    fasa_view v;
    fasa_ctx *ctx = NULL;
    fasa_status st;
    memset(&v, 0, sizeof v);
    v.struct_size = sizeof v;
    v.dtype = FASA_DTYPE_F16;
    if (fasa_version_number() != (unsigned)FASA_VERSION_NUMBER) {
        printf("header/library version skew: %u vs %u\n", fasa_version_number(),
               (unsigned)FASA_VERSION_NUMBER);
        return 1;
    }
    st = fasa_ctx_create(NULL, &ctx);
    if (st != FASA_OK) {
        printf("fasa_ctx_create: %s\n", fasa_status_name(st));
        return 1;
    }
    fasa_ctx_destroy(ctx);
    if (strcmp(fasa_status_name(FASA_ERR_BAD_STRIDE), "FASA_ERR_BAD_STRIDE") != 0)
        return 1;
    return 0;
}
