/*
 * npy.h - read-only access to NumPy .npy arrays (format versions 1.0, 2.0,
 * 3.0) for fasa-calib. The file is mapped, so the library sees the bytes on
 * disk through zero-copy fasa_views.
 *
 * Accepted element types (descr): '<f4' (float32), '<f2' (float16), and
 * bfloat16 written as '<V2' / '|V2' (ml_dtypes, torch via .view(int16) and
 * raw 2-byte void) or as the literal 'bfloat16'. C order only.
 */
#ifndef CALIB_NPY_H
#define CALIB_NPY_H

#include <stddef.h>

#define CALIB_NPY_MAX_DIMS 8

typedef struct calib_npy {
    void *map;         /* whole-file mapping (or malloc copy), NULL if empty */
    size_t map_size;
    int map_is_heap;   /* 1: map came from malloc (mmap unavailable/unaligned) */
    const void *data;  /* first element, aligned to the element size        */
    int dtype;         /* fasa_dtype                                         */
    size_t elem_size;
    size_t ndim;
    size_t shape[CALIB_NPY_MAX_DIMS];
    size_t n_elems;
} calib_npy;

/* Parse the header of an .npy image of `size` bytes. On success fills dtype,
 * elem_size, ndim, shape, n_elems and *data_offset, checks that exactly
 * n_elems elements follow and returns 0. On failure writes a one-line reason
 * (without the file name) into err and returns -1. */
int calib_npy_parse(const unsigned char *buf, size_t size, calib_npy *a, size_t *data_offset,
                    char *err, size_t err_size);

/* Open and map `path`. Returns 0, or -1 with "path: reason" in err. */
int calib_npy_open(calib_npy *a, const char *path, char *err, size_t err_size);

/* Unmap; safe on a zeroed or closed struct. */
void calib_npy_close(calib_npy *a);

/* "[4096, 4, 128]" into buf. */
const char *calib_npy_shape_str(const calib_npy *a, char *buf, size_t size);

#endif
