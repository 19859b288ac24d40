/* npy.h - write float32 C-order arrays in NumPy .npy format (v1.0). */
#ifndef LLAMA_NPY_H
#define LLAMA_NPY_H

#include <stddef.h>

/* 0 on success, -1 on I/O error. shape has ndim entries. */
int npy_write_f32(const char *path, const float *data, const size_t *shape, int ndim);

#endif
