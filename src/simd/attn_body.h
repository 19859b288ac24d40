/*
 * attn_body.h - the body of one SIMD online-softmax attention kernel
 * (fasa__attn_fn, see kernels.h), written once against a few vector macros
 * and instantiated per ISA and per (K dtype, V dtype) by attn_instances.h.
 *
 * Shape of the computation, per block of FA_B = 16 tokens:
 *  1. logits: every loaded K row is used by all rows of the job (the GQA
 *     group), and a tile of T tokens x RB rows keeps T*RB independent dot
 *     accumulators (FMA latency is hidden even with one row); the W-lane
 *     partial sums of W tokens are reduced together by one transposing
 *     reduction (FA_REDUCE), not one horizontal sum per token;
 *  2. one max, one rescale factor and one vectorized exp per row per block;
 *  3. values: acc rows stay in registers for a slice of dims while all
 *     tokens of the block are added (acc read and written once per block).
 * The rows of the next block are prefetched while this one is computed,
 * which matters for gathered index lists (the hardware prefetcher cannot
 * guess those), into L2 only: in the llama.cpp layout one head's rows are
 * 2 KiB apart, so a block's rows share a few L1 sets and prefetching the
 * next block into L1 evicts the current one (measured ~25% slower). Tail
 * dims (head_dim % W) are done in scalar code.
 *
 * Needs from the includer: FA_W, FA_VEC, FA_ATTR, FA_ZERO, FA_SET1, FA_LOADU,
 * FA_STOREU, FA_FMA(a,b,c)=a*b+c, FA_MUL, FA_ADD, FA_SUB, FA_MAX, FA_HMAX,
 * FA_HSUM, FA_EXP, FA_REDUCE(const FA_VEC *v): W vectors -> vector of their
 * W lane sums in order, FA_KT1 (tokens per logit tile with one row),
 * FA_VCG1..4 (dim chunks per value tile for 1..4 rows), and per instance
 * FA_SUFFIX, FA_KLOAD(p, kdt)/FA_VLOAD(p, vdt) (W elements at a byte
 * pointer -> FA_VEC) and FA_KDT(job)/FA_VDT(job) (the fasa_dtype: a
 * constant in specialized instances, read from the job in the generic one).
 */

#define FA_B 16    /* tokens per block                              */
#define FA_RMAX 16 /* rows per pass; more rows re-run the pass      */
#define FA_CAT2(a, b) a##_##b
#define FA_CAT(a, b) FA_CAT2(a, b)
#define FA_FN(name) FA_CAT(name, FA_SUFFIX)
#define FA_INL FA_ATTR static inline __attribute__((always_inline))

/* Partial dot products of RB rows x T tokens over the full W-chunks of the
 * head dim; part[r*FA_B + t] receives the W-lane partial sums. */
FA_INL void FA_FN(ktile)(const float *q, size_t qs, const char *const *kp, const int T,
                         const int RB, size_t dfull, FA_VEC *part, const int kdt)
{
    FA_VEC acc[16];
#pragma GCC unroll 16
    for (int a = 0; a < T * RB; a++)
        acc[a] = FA_ZERO();
    for (size_t c = 0; c < dfull; c += FA_W) {
        FA_VEC kv[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            kv[t] = FA_KLOAD(kp[t] + c * fasa__dtype_size(kdt), kdt);
#pragma GCC unroll 8
        for (int r = 0; r < RB; r++) {
            FA_VEC qv = FA_LOADU(q + r * qs + c);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
                acc[r * T + t] = FA_FMA(qv, kv[t], acc[r * T + t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            part[r * FA_B + t] = acc[r * T + t];
}

/* acc[r][c0 .. c0 + CG*W) = acc * alpha[r] + sum_{j < nb} p[r][j] * v_j. */
FA_INL void FA_FN(vtile)(const char *const *vp, size_t nb, const float *p, const float *alpha,
                         float *acc, size_t accs, size_t c0, const int RB, const int CG,
                         const int vdt, const char *const *pfv, size_t npf, size_t pfbytes)
{
    FA_VEC a[16];
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) {
        FA_VEC al = FA_SET1(alpha[r]);
#pragma GCC unroll 8
        for (int g = 0; g < CG; g++)
            a[r * CG + g] = FA_MUL(FA_LOADU(acc + r * accs + c0 + (size_t)g * FA_W), al);
    }
    /* V rows of the next block, one per token of this one; those beyond a
     * short (tail) block first */
#define FA_PFV(j)                                                                \
    do {                                                                         \
        for (size_t o = 0; o < pfbytes; o += 64)                                 \
            __builtin_prefetch(pfv[j] + o, 0, 2);                                \
        __builtin_prefetch(pfv[j] + pfbytes - 1, 0, 2);                          \
    } while (0)
    for (size_t j = nb; j < npf; j++)
        FA_PFV(j);
    for (size_t j = 0; j < nb; j++) {
        if (j < npf)
            FA_PFV(j);
        FA_VEC pb[4];
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++)
            pb[r] = FA_SET1(p[r * FA_B + j]);
#pragma GCC unroll 8
        for (int g = 0; g < CG; g++) {
            FA_VEC vv = FA_VLOAD(vp[j] + (c0 + (size_t)g * FA_W) * fasa__dtype_size(vdt), vdt);
#pragma GCC unroll 4
            for (int r = 0; r < RB; r++)
                a[r * CG + g] = FA_FMA(pb[r], vv, a[r * CG + g]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++)
#pragma GCC unroll 8
        for (int g = 0; g < CG; g++)
            FA_STOREU(acc + r * accs + c0 + (size_t)g * FA_W, a[r * CG + g]);
}

/* All full W-chunks of the value dims for rb (1..4) rows. */
FA_INL void FA_FN(vrows)(const char *const *vp, size_t nb, const float *p, const float *alpha,
                         float *acc, size_t accs, size_t dvfull, const int RB, const int CG,
                         const int vdt, const char *const *pfv, size_t npf, size_t pfbytes)
{
    size_t c0 = 0;
    for (; c0 + (size_t)CG * FA_W <= dvfull; c0 += (size_t)CG * FA_W, npf = 0)
        FA_FN(vtile)(vp, nb, p, alpha, acc, accs, c0, RB, CG, vdt, pfv, npf, pfbytes);
    for (; c0 < dvfull; c0 += FA_W, npf = 0)
        FA_FN(vtile)(vp, nb, p, alpha, acc, accs, c0, RB, 1, vdt, pfv, npf, pfbytes);
}

FA_ATTR static void FA_FN(rows)(const fasa__attn_job *job, size_t r0, size_t nr)
{
    const int kdt = FA_KDT(job), vdt = FA_VDT(job);
    const size_t d = job->head_dim, dv = job->head_dim_v, n = job->n;
    const size_t dfull = d - d % FA_W, dvfull = dv - dv % FA_W;
    const size_t qs = job->q_stride, accs = job->acc_stride;
    const size_t kst = job->k_stride * fasa__dtype_size(kdt);
    const size_t vst = job->v_stride * fasa__dtype_size(vdt);
    const size_t krow = d * fasa__dtype_size(kdt), vrow = dv * fasa__dtype_size(vdt);
    const float *q = job->q + r0 * qs;
    float *m = job->m + r0, *l = job->l + r0, *acc = job->acc + r0 * accs;
    const char *kb = (const char *)job->k, *vb = (const char *)job->v;
    const uint32_t *idx = job->idx;
    const size_t first = job->first;

    FA_VEC part[4 * FA_B];
    float s[FA_RMAX * FA_B];
    float alpha[FA_RMAX];
    const char *kp[FA_B], *vp[FA_B];

    for (size_t i0 = 0; i0 < n; i0 += FA_B) {
        const size_t nb = n - i0 < FA_B ? n - i0 : FA_B;
        for (size_t j = 0; j < FA_B; j++) {
            /* Padding slots point at a real row; their logits are discarded. */
            size_t i = i0 + (j < nb ? j : 0);
            size_t tok = idx ? idx[i] : first + i;
            kp[j] = kb + tok * kst;
            vp[j] = vb + tok * vst;
        }
        /* The next block's rows are prefetched a few tokens per logit tile,
         * spread over the block instead of in one burst that would
         * overflow the miss queues (measured ~8% faster from DRAM). */
        const char *nkp[FA_B], *nvp[FA_B];
        size_t nn = 0, pkrow = krow, pvrow = vrow; /* span bytes of nkp / nvp */
        if (i0 + FA_B < n) {
            nn = n - i0 - FA_B < FA_B ? n - i0 - FA_B : FA_B;
            for (size_t j = 0; j < nn; j++) {
                size_t i = i0 + FA_B + j;
                size_t tok = idx ? idx[i] : first + i;
                nkp[j] = kb + tok * kst;
                nvp[j] = vb + tok * vst;
            }
        } else if (job->pf_n > 0) {
            nn = job->pf_n < FA_B ? job->pf_n : FA_B;
            const size_t pks = job->pf_kst ? job->pf_kst : kst, pvs = job->pf_vst ? job->pf_vst : vst;
            pkrow = job->pf_kspan ? job->pf_kspan : krow;
            pvrow = job->pf_vspan ? job->pf_vspan : vrow;
            for (size_t j = 0; j < nn; j++) {
                nkp[j] = (const char *)job->pf_k + j * pks;
                nvp[j] = (const char *)job->pf_v + j * pvs;
            }
        }
#define FA_PF(j0, cnt)                                                           \
    if (rr == 0)                                                                 \
        for (size_t j = (size_t)(j0); j < (size_t)(j0) + (cnt) && j < nn; j++) { \
            for (size_t o = 0; o < pkrow; o += 64)                               \
                __builtin_prefetch(nkp[j] + o, 0, 2);                            \
            __builtin_prefetch(nkp[j] + pkrow - 1, 0, 2);                        \
        }

        /* 1. logits s[r][j], rows in passes of up to 4 (the K block stays
         * in L1 between passes) */
        for (size_t rr = 0; rr < nr; rr += 4) {
            const size_t rb = nr - rr < 4 ? nr - rr : 4;
            const float *qr = q + rr * qs;
            switch (rb) {
            case 1:
                for (int j0 = 0; j0 < FA_B; j0 += FA_KT1) {
                    FA_PF(j0, FA_KT1);
                    FA_FN(ktile)(qr, qs, kp + j0, FA_KT1, 1, dfull, part + j0, kdt);
                }
                break;
            case 2:
                for (int j0 = 0; j0 < FA_B; j0 += 4) {
                    FA_PF(j0, 4);
                    FA_FN(ktile)(qr, qs, kp + j0, 4, 2, dfull, part + j0, kdt);
                }
                break;
            case 3:
                for (int j0 = 0; j0 < FA_B; j0 += 2) {
                    FA_PF(j0, 2);
                    FA_FN(ktile)(qr, qs, kp + j0, 2, 3, dfull, part + j0, kdt);
                }
                break;
            default:
                for (int j0 = 0; j0 < FA_B; j0 += FA_KT4) {
                    FA_PF(j0, FA_KT4);
                    FA_FN(ktile)(qr, qs, kp + j0, FA_KT4, 4, dfull, part + j0, kdt);
                }
                break;
            }
            for (size_t r = 0; r < rb; r++) {
                float *sr = s + (rr + r) * FA_B;
                for (int g = 0; g < FA_B; g += FA_W)
                    FA_STOREU(sr + g, FA_REDUCE(part + r * FA_B + g));
                if (dfull < d) {
                    const float *qrow = qr + r * qs;
                    for (size_t j = 0; j < nb; j++) {
                        float t = 0.0f;
                        for (size_t c = dfull; c < d; c++)
                            t += qrow[c] * fasa__load(kp[j], kdt, c);
                        sr[j] += t;
                    }
                }
            }
        }

        /* 2. one max / rescale / exp per row and block; s becomes p */
        if (fasa__attn_has_logit_fn(job))
            for (size_t r = 0; r < nr; r++)
                for (size_t j = 0; j < nb; j++)
                    s[r * FA_B + j] = fasa__attn_logit(job, r0 + r, idx ? idx[i0 + j] : first + i0 + j,
                                                       s[r * FA_B + j]);
        for (size_t r = 0; r < nr; r++) {
            float *sr = s + r * FA_B;
            for (size_t j = nb; j < FA_B; j++)
                sr[j] = -INFINITY;
            FA_VEC mx = FA_LOADU(sr);
            for (int g = FA_W; g < FA_B; g += FA_W)
                mx = FA_MAX(mx, FA_LOADU(sr + g));
            const float bm = FA_HMAX(mx), mo = m[r];
            const float mn = bm > mo ? bm : mo;
            if (mn == -INFINITY) { /* nothing finite yet: leave the state as is */
                alpha[r] = 1.0f;
                for (int g = 0; g < FA_B; g += FA_W)
                    FA_STOREU(sr + g, FA_ZERO());
                continue;
            }
            alpha[r] = mo == mn ? 1.0f : expf(mo - mn);
            const FA_VEC mv = FA_SET1(mn);
            FA_VEC sum = FA_ZERO();
            for (int g = 0; g < FA_B; g += FA_W) {
                FA_VEC pv = FA_EXP(FA_SUB(FA_LOADU(sr + g), mv));
                FA_STOREU(sr + g, pv);
                sum = FA_ADD(sum, pv);
            }
            l[r] = l[r] * alpha[r] + FA_HSUM(sum);
            m[r] = mn;
        }

        /* 3. acc = acc * alpha + p . V */
        for (size_t rr = 0; rr < nr; rr += 4) {
            const size_t rb = nr - rr < 4 ? nr - rr : 4;
            const float *pr = s + rr * FA_B;
            float *ar = acc + rr * accs;
            switch (rb) {
            case 1: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 1, FA_VCG1, vdt, nvp, rr == 0 ? nn : 0, pvrow); break;
            case 2: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 2, FA_VCG2, vdt, nvp, rr == 0 ? nn : 0, pvrow); break;
            case 3: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 3, FA_VCG3, vdt, nvp, rr == 0 ? nn : 0, pvrow); break;
            default: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 4, FA_VCG4, vdt, nvp, rr == 0 ? nn : 0, pvrow); break;
            }
            for (size_t r = 0; r < rb; r++) {
                float *arow = ar + r * accs;
                const float *prow = pr + r * FA_B;
                for (size_t c = dvfull; c < dv; c++) {
                    float t = arow[c] * alpha[rr + r];
                    for (size_t j = 0; j < nb; j++)
                        t += prow[j] * fasa__load(vp[j], vdt, c);
                    arow[c] = t;
                }
            }
        }
    }
}

#undef FA_INL
#undef FA_PF
#undef FA_PFV
