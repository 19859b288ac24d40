/*
 * topk_hint.c - the scalar level's topk_hint: the exact reference, which has
 * no use for a threshold guess (so *tau is left as it is).
 */
#include "internal.h"

void fasa__topk_hint_ref(const float *s, size_t n, size_t k, uint32_t *out, void *scratch,
                         float *tau)
{
    (void)tau;
    fasa__topk_ref(s, n, k, out, scratch);
}
