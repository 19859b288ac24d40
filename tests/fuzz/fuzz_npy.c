/*
 * fuzz_npy.c - fuzz entry point for the .npy header parser of fasa-calib
 * (calib_npy_parse in calib/npy.c, compiled into this program unchanged).
 *
 * Accepted input must mean what calib/npy.h promises: a known dtype, at most
 * CALIB_NPY_MAX_DIMS dims whose product is n_elems, and exactly n_elems
 * elements after *data_offset, which is inside the buffer. Rejections must
 * come with a message. Violations abort().
 */
#include "npy.h"

#include "fasa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                            \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_npy: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    calib_npy a;
    memset(&a, 0, sizeof a);
    size_t off = 0;
    char err[256];
    err[0] = 0;
    if (calib_npy_parse(data, size, &a, &off, err, sizeof err) != 0) {
        REQUIRE(err[0] != 0 && memchr(err, 0, sizeof err) != NULL);
        return 0;
    }
    REQUIRE(a.dtype == FASA_DTYPE_F32 || a.dtype == FASA_DTYPE_F16 || a.dtype == FASA_DTYPE_BF16);
    REQUIRE(a.elem_size == (a.dtype == FASA_DTYPE_F32 ? 4u : 2u));
    REQUIRE(a.ndim <= CALIB_NPY_MAX_DIMS);
    size_t n = 1;
    for (size_t i = 0; i < a.ndim; i++) {
        REQUIRE(a.shape[i] == 0 || n <= SIZE_MAX / a.shape[i]);
        n *= a.shape[i];
    }
    REQUIRE(n == a.n_elems);
    REQUIRE(off <= size && a.n_elems <= (size - off) / a.elem_size);
    REQUIRE(off + a.n_elems * a.elem_size == size);

    /* Touch every element byte the caller would read. */
    unsigned acc = 0;
    for (size_t i = off; i < size; i++)
        acc += data[i];
    char shape[256];
    calib_npy_shape_str(&a, shape, sizeof shape);
    REQUIRE(memchr(shape, 0, sizeof shape) != NULL);
    return (int)(acc & 0);
}
