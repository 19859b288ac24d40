/*
 * threading.c - the split-KV merge shared by the threaded execution paths.
 */
#include "internal.h"
#include "threading.h"

void fasa__softmax_merge(float *m, float *l, float *acc, size_t acc_stride, const float *mc,
                         const float *lc, const float *accc, size_t accc_stride, size_t rows,
                         size_t dv)
{
    for (size_t r = 0; r < rows; r++) {
        float mo = m[r], mp = mc[r];
        float mn = mp > mo ? mp : mo;
        /* Equal maxima (the empty state meeting an empty partial included)
         * take factor 1 exactly; -inf - -inf would be NaN. */
        float a = mo == mn ? 1.0f : expf(mo - mn);
        float b = mp == mn ? 1.0f : expf(mp - mn);
        float *dst = acc + r * acc_stride;
        const float *src = accc + r * accc_stride;
        for (size_t c = 0; c < dv; c++)
            dst[c] = dst[c] * a + src[c] * b;
        l[r] = l[r] * a + lc[r] * b;
        m[r] = mn;
    }
}
