/*
 * lc_pack.c - scalar references of the label-cache staging ops (the
 * specification of lc_gather and lc_transpose, kernels.h).
 */
#include "internal.h"

void fasa__lc_gather_ref(const void *row, size_t d, const uint16_t *idx, size_t n, size_t es,
                         void *dst)
{
    (void)d;
    if (es == 2) {
        const uint16_t *s = row;
        uint16_t *o = dst;
        for (size_t i = 0; i < n; i++)
            o[i] = s[idx[i]];
    } else {
        const uint32_t *s = row;
        uint32_t *o = dst;
        for (size_t i = 0; i < n; i++)
            o[i] = s[idx[i]];
    }
}

void fasa__lc_transpose_ref(const void *stage, size_t ld, size_t rows, size_t m, size_t es,
                            void *tile)
{
    for (size_t c = 0; c < m; c++)
        for (size_t j = 0; j < FASA_TILE; j++) {
            if (es == 2)
                ((uint16_t *)tile)[c * FASA_TILE + j] =
                    j < rows ? ((const uint16_t *)stage)[j * ld + c] : 0;
            else
                ((uint32_t *)tile)[c * FASA_TILE + j] =
                    j < rows ? ((const uint32_t *)stage)[j * ld + c] : 0;
        }
}
