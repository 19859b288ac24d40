/*
 * attn.c - scalar reference of one online-softmax pass (see fasa__attn_job
 * in kernels.h): token by token, row by row, fp32, expf.
 */
#include "internal.h"

void fasa__attn_ref(const fasa__attn_job *job)
{
    const size_t d = job->head_dim, dv = job->head_dim_v;
    for (size_t i = 0; i < job->n; i++) {
        size_t j = job->idx ? job->idx[i] : job->first + i;
        const void *kj = (const char *)job->k + fasa__bytes(job->k_dtype, j * job->k_stride);
        const void *vj = (const char *)job->v + fasa__bytes(job->v_dtype, j * job->v_stride);
        for (size_t r = 0; r < job->n_rows; r++) {
            const float *q = job->q + r * job->q_stride;
            float s = 0.0f;
            for (size_t c = 0; c < d; c++)
                s += q[c] * fasa__load(kj, job->k_dtype, c);
            if (fasa__attn_has_logit_fn(job)) {
                s = fasa__attn_logit(job, r, j, s);
                if (s == -INFINITY)
                    continue; /* hidden: no weight (and no -inf - -inf) */
            }
            float m_old = job->m[r];
            float m_new = s > m_old ? s : m_old;
            /* m_old == m_new covers the first token (-inf - -inf would be
             * NaN) and is exactly exp(0) = 1 otherwise. */
            float corr = m_old == m_new ? 1.0f : expf(m_old - m_new);
            float p = expf(s - m_new);
            float *acc = job->acc + r * job->acc_stride;
            for (size_t c = 0; c < dv; c++)
                acc[c] = acc[c] * corr + p * fasa__load(vj, job->v_dtype, c);
            job->l[r] = job->l[r] * corr + p;
            job->m[r] = m_new;
        }
    }
}
