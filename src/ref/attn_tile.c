/*
 * attn_tile.c - scalar reference of the tiled attention op (see
 * fasa__attn_tile_job in kernels.h): query by query, cell by cell, row by
 * row, fp32 and expf, the arithmetic of fasa__attn_ref.
 */
#include "internal.h"

void fasa__attn_tile_ref(const fasa__attn_tile_job *job)
{
    const size_t G = job->group, d = job->head_dim, dv = job->head_dim_v;
    const size_t ksz = fasa__dtype_size(job->k_dtype), vsz = fasa__dtype_size(job->v_dtype);
    const int logit = job->mask != NULL || job->slope != NULL || job->softcap > 0.0f;
    for (size_t b = 0; b < job->n_q; b++) {
        size_t lo = job->first, hi = job->first + job->n;
        if (job->begin != NULL && job->begin[b] > lo)
            lo = job->begin[b];
        if (job->end != NULL && job->end[b] < hi)
            hi = job->end[b];
        for (size_t j = lo; j < hi; j++) {
            const void *kj = (const char *)job->k + j * job->k_stride * ksz;
            const void *vj = (const char *)job->v + j * job->v_stride * vsz;
            for (size_t g = 0; g < G; g++) {
                const size_t r = b * G + g;
                const float *q = job->q + r * job->q_stride;
                float s = 0.0f;
                for (size_t c = 0; c < d; c++)
                    s += q[c] * fasa__load(kj, job->k_dtype, c);
                if (logit) {
                    s = fasa__attn_tile_logit(job, b, g, j, s);
                    if (s == -INFINITY)
                        continue; /* hidden: no weight */
                }
                float m_old = job->m[r];
                float m_new = s > m_old ? s : m_old;
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
}
