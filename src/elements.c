/*
 * elements.c - whole rows of any element format to f32 (fasa__row_to_f32,
 * internal.h): the per-row path for readers of K that want every element,
 * block formats decoded a block at a time instead of element by element.
 */
#include "internal.h"

void fasa__row_to_f32(const void *row, int32_t dtype, size_t n, float *dst)
{
    const unsigned char *b = row;
    switch (dtype) {
    case FASA_DTYPE_Q8_0:
        for (size_t i0 = 0; i0 < n; i0 += FASA_QBLOCK, b += 34) {
            const float d = fasa__qscale(b);
            for (size_t j = 0; j < FASA_QBLOCK; j++)
                dst[i0 + j] = d * (float)(int8_t)b[2 + j];
        }
        break;
    case FASA_DTYPE_Q4_0:
        for (size_t i0 = 0; i0 < n; i0 += FASA_QBLOCK, b += 18) {
            const float d = fasa__qscale(b);
            for (size_t j = 0; j < 16; j++) {
                dst[i0 + j] = d * (float)((int)(b[2 + j] & 15u) - 8);
                dst[i0 + j + 16] = d * (float)((int)(b[2 + j] >> 4) - 8);
            }
        }
        break;
    case FASA_DTYPE_F32: memcpy(dst, row, n * sizeof(float)); break;
    default:
        for (size_t i = 0; i < n; i++)
            dst[i] = fasa__load(row, dtype, i);
        break;
    }
}
