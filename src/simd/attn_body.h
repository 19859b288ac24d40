/*
 * attn_body.h - the body of one SIMD online-softmax attention kernel
 * (fasa__attn_fn, see kernels.h), written once against a few vector macros
 * and instantiated per ISA and per (K dtype, V dtype) by attn_instances.h.
 *
 * Shape of the computation, per block of FA_B = 16 tokens (blocks start at
 * the job's first token; the arithmetic of a block depends only on its
 * tokens and the state before it, so a job split at a multiple of 16
 * tokens gives the same bits as one job):
 *  1. logits: every loaded K row is used by all rows of the job (the GQA
 *     group), and a tile of T tokens x RB rows keeps T*RB independent dot
 *     accumulators (FMA latency is hidden even with one row); the W-lane
 *     partial sums of W tokens are reduced together by one transposing
 *     reduction (FA_REDUCE), not one horizontal sum per token; then the
 *     logit transform (mask / ALiBi, vectorized; softcap in scalar code);
 *  2. one max, one rescale factor and one vectorized exp per row per block
 *     (the rescale factors of all rows in one vector exp);
 *  3. values: acc rows stay in registers for a slice of dims while all
 *     tokens of the block are added (acc read and written once per block).
 * The blocks are software-pipelined: block b's softmax (a chain of
 * dependent reductions and exps, latency-bound) is issued before block
 * b+1's logits (independent FMAs) and block b's values come after them, so
 * the out-of-order core overlaps the chain with FMA work instead of
 * waiting on it (measured: 65 -> see docs/performance.md).
 * The rows of the next block are prefetched while this one is computed,
 * which matters for gathered index lists (the hardware prefetcher cannot
 * guess those), into L2 only: in the llama.cpp layout one head's rows are
 * 2 KiB apart, so a block's rows share a few L1 sets and prefetching the
 * next block into L1 evicts the current one (measured ~25% slower). Tail
 * dims (head_dim % W; never for block formats) are done in scalar code.
 *
 * Needs from the includer: FA_W, FA_VEC, FA_ATTR, FA_ZERO, FA_SET1, FA_LOADU,
 * FA_STOREU, FA_FMA(a,b,c)=a*b+c, FA_MUL, FA_ADD, FA_SUB, FA_MAX, FA_HMAX,
 * FA_HSUM, FA_LANE0 (lane 0 as float), FA_EXP, FA_REDUCE(const FA_VEC *v): W vectors -> vector of their
 * W lane sums in order, FA_KT1 (tokens per logit tile with one row),
 * FA_VCG1..4 (dim chunks per value tile for 1..4 rows), optionally
 * FA_SOFTMAX4(s, m, l, alpha) (the softmax step of 4 rows at once, same
 * arithmetic; AVX-512 has it), and per instance
 * FA_SUFFIX, FA_KLOAD(row, c, kdt)/FA_VLOAD(row, c, vdt) (W elements from
 * element c, a multiple of W, of the row at byte pointer row -> FA_VEC,
 * dequantized for block formats) and FA_KDT(job)/FA_VDT(job) (the
 * fasa_dtype: a constant in specialized instances, read from the job in
 * the generic one).
 */

#define FA_B 16    /* tokens per block                              */
#define FA_RMAX 16 /* rows per pass; more rows re-run the pass      */
#define FA_CAT2(a, b) a##_##b
#define FA_CAT(a, b) FA_CAT2(a, b)
#define FA_FN(name) FA_CAT(name, FA_SUFFIX)
#define FA_INL FA_ATTR static inline __attribute__((always_inline))

/* Every 64-byte line of [p, p + bytes) into L2, once. */
FA_INL void FA_FN(pfspan)(const char *p, size_t bytes)
{
    const uintptr_t end = (uintptr_t)p + bytes;
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)63; a < end; a += 64)
        __builtin_prefetch((const void *)a, 0, 2);
}

/* Partial dot products of RB rows x T tokens over the full W-chunks of the
 * head dim; part[r*FA_B + t] receives the W-lane partial sums. */
FA_INL void FA_FN(ktile)(const float *q, size_t qs, const char *const *kp, const int T,
                         const int RB, size_t dfull, FA_VEC *part, const int kdt)
{
    FA_VEC acc[16];
    (void)kdt; /* a constant of the specialized loads */
#pragma GCC unroll 16
    for (int a = 0; a < T * RB; a++)
        acc[a] = FA_ZERO();
    for (size_t c = 0; c < dfull; c += FA_W) {
        FA_VEC kv[8];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++)
            kv[t] = FA_KLOAD(kp[t], c, kdt);
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
    (void)vdt;
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) {
        FA_VEC al = FA_SET1(alpha[r]);
#pragma GCC unroll 8
        for (int g = 0; g < CG; g++)
            a[r * CG + g] = FA_MUL(FA_LOADU(acc + r * accs + c0 + (size_t)g * FA_W), al);
    }
    /* V rows of the next block, one per token of this one; those beyond a
     * short (tail) block first */
#define FA_PFV(j) FA_FN(pfspan)(pfv[j], pfbytes)
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
            FA_VEC vv = FA_VLOAD(vp[j], c0 + (size_t)g * FA_W, vdt);
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

/* What one pass of rows needs, fixed for the job. */
typedef struct FA_FN(pass) {
    const fasa__attn_job *job;
    size_t r0, nr;           /* rows [r0, r0 + nr) of the job            */
    size_t d, dv, dfull, dvfull;
    size_t qs, accs;
    size_t kst, vst, krow, vrow; /* bytes                                */
    const float *q;
    float *m, *l, *acc;
    int kdt, vdt, logit;
} FA_FN(pass);

/* Token pointers of the block at i0 (nb tokens; padding slots point at a
 * real row, their logits are discarded). */
FA_INL void FA_FN(ptrs)(const FA_FN(pass) *P, size_t i0, size_t nb, const char **kp,
                        const char **vp)
{
    const uint32_t *idx = P->job->idx;
    const char *kb = (const char *)P->job->k, *vb = (const char *)P->job->v;
    if (idx == NULL && nb == FA_B) { /* the common case: straight-line code */
        const char *k0 = kb + (P->job->first + i0) * P->kst, *v0 = vb + (P->job->first + i0) * P->vst;
#pragma GCC unroll 16
        for (size_t j = 0; j < FA_B; j++) {
            kp[j] = k0 + j * P->kst;
            vp[j] = v0 + j * P->vst;
        }
        return;
    }
    for (size_t j = 0; j < FA_B; j++) {
        size_t i = i0 + (j < nb ? j : 0);
        size_t tok = idx ? idx[i] : P->job->first + i;
        kp[j] = kb + tok * P->kst;
        vp[j] = vb + tok * P->vst;
    }
}

/* Logits of the block at i0 into s[r][j] (-INFINITY for j >= nb),
 * transform included. During it the spans nkp[0..nn) (pkrow bytes each)
 * are prefetched, a few per logit tile, spread over the block instead of
 * one burst that would overflow the miss queues (measured ~8% faster from
 * DRAM). */
FA_INL void FA_FN(logits)(const FA_FN(pass) *P, size_t i0, size_t nb, const char *const *kp,
                          float *s, const char *const *nkp, size_t nn, size_t pkrow)
{
    const size_t nr = P->nr, qs = P->qs, d = P->d, dfull = P->dfull;
    const int kdt = P->kdt;
    FA_VEC part[4 * FA_B];
#define FA_PF(j0, cnt)                                                           \
    if (rr == 0)                                                                 \
        for (size_t j = (size_t)(j0); j < (size_t)(j0) + (cnt) && j < nn; j++) { \
            FA_FN(pfspan)(nkp[j], pkrow);                                        \
        }
    /* rows in passes of up to 4 (the K block stays in L1 between passes) */
    for (size_t rr = 0; rr < nr; rr += 4) {
        const size_t rb = nr - rr < 4 ? nr - rr : 4;
        const float *qr = P->q + rr * qs;
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
#undef FA_PF
    if (P->logit) {
        /* s = softcap(s) (scalar tanhf), then s + slope[r]*bias[j] + hide[j]:
         * bias finite (mask value or j - qpos), hide 0 or -inf (a hidden
         * token stays hidden whatever the slope) */
        const fasa__attn_job *job = P->job;
        float bias[FA_B], hide[FA_B];
        for (size_t j = 0; j < FA_B; j++) {
            size_t tok = j < nb ? (job->idx ? job->idx[i0 + j] : job->first + i0 + j) : 0;
            float b = 0.0f;
            if (j < nb && job->mask != NULL)
                b = job->mask_dtype == FASA_DTYPE_F16
                        ? fasa__f16_to_f32(((const uint16_t *)job->mask)[tok])
                        : ((const float *)job->mask)[tok];
            else if (j < nb && job->slope != NULL)
                b = (float)((int64_t)tok - job->qpos);
            hide[j] = b == -INFINITY ? -INFINITY : 0.0f;
            bias[j] = b == -INFINITY ? 0.0f : b;
        }
        for (size_t r = 0; r < nr; r++) {
            float *sr = s + r * FA_B;
            if (job->softcap > 0.0f)
                for (size_t j = 0; j < nb; j++)
                    sr[j] = job->softcap * tanhf(sr[j] / job->softcap);
            const FA_VEC sl = FA_SET1(job->slope != NULL ? job->slope[P->r0 + r] : 1.0f);
            for (int g = 0; g < FA_B; g += FA_W)
                FA_STOREU(sr + g, FA_ADD(FA_FMA(sl, FA_LOADU(bias + g), FA_LOADU(sr + g)),
                                         FA_LOADU(hide + g)));
        }
    }
    if (nb < FA_B)
        for (size_t r = 0; r < nr; r++)
            for (size_t j = nb; j < FA_B; j++)
                s[r * FA_B + j] = -INFINITY;
}

/* One max / rescale / exp per row: s becomes p, alpha[r] the factor of the
 * old state; m and l advance. Everything stays per row in registers (a
 * vector load of scalars stored one by one cannot be store-forwarded and
 * would wait for the stores to retire); the rescale factor is one lane of
 * the vector exp (no libm call, which would spill every vector register).
 * Rows without a finite logit yet keep their (zero) state. */
FA_INL void FA_FN(softmax)(const FA_FN(pass) *P, float *s, float *alpha)
{
    const size_t nr = P->nr;
    float *m = P->m, *l = P->l;
    size_t r = 0;
#ifdef FA_SOFTMAX4
    for (; r + 4 <= nr; r += 4)
        FA_SOFTMAX4(s + r * FA_B, m + r, l + r, alpha + r);
#endif
    for (; r < nr; r++) {
        float *sr = s + r * FA_B;
        FA_VEC mx = FA_LOADU(sr);
        for (int g = FA_W; g < FA_B; g += FA_W)
            mx = FA_MAX(mx, FA_LOADU(sr + g));
        const float bm = FA_HMAX(mx), mo = m[r];
        const float mn = bm > mo ? bm : mo;
        /* Branch-free (a mispredicted branch here resolves late, after the
         * max reduction, and flushes the FMA work issued behind it): no
         * finite logit yet (mn = -inf) subtracts 0 instead, so p = 0 and
         * alpha = exp(-inf) = 0 on a zero state; mo == mn gives exp(0) = 1
         * exactly; mo = -inf gives 0 on a zero state. */
        const float me = mn == -INFINITY ? 0.0f : mn;
        const float a = FA_LANE0(FA_EXP(FA_SET1(mo - me)));
        const FA_VEC mv = FA_SET1(me);
        FA_VEC sum = FA_ZERO();
        for (int g = 0; g < FA_B; g += FA_W) {
            FA_VEC pv = FA_EXP(FA_SUB(FA_LOADU(sr + g), mv));
            FA_STOREU(sr + g, pv);
            sum = FA_ADD(sum, pv);
        }
        alpha[r] = a;
        l[r] = l[r] * a + FA_HSUM(sum);
        m[r] = mn;
    }
}

/* acc = acc * alpha + p . V for the block (nb tokens at vp); the spans
 * nvp[0..nn) (pvrow bytes) are prefetched one per token. */
FA_INL void FA_FN(values)(const FA_FN(pass) *P, size_t nb, const char *const *vp, const float *p,
                          const float *alpha, const char *const *nvp, size_t nn, size_t pvrow)
{
    const size_t nr = P->nr, accs = P->accs, dv = P->dv, dvfull = P->dvfull;
    const int vdt = P->vdt;
    for (size_t rr = 0; rr < nr; rr += 4) {
        const size_t rb = nr - rr < 4 ? nr - rr : 4;
        const float *pr = p + rr * FA_B;
        float *ar = P->acc + rr * accs;
        const size_t npf = rr == 0 ? nn : 0;
        switch (rb) {
        case 1: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 1, FA_VCG1, vdt, nvp, npf, pvrow); break;
        case 2: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 2, FA_VCG2, vdt, nvp, npf, pvrow); break;
        case 3: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 3, FA_VCG3, vdt, nvp, npf, pvrow); break;
        default: FA_FN(vrows)(vp, nb, pr, alpha + rr, ar, accs, dvfull, 4, FA_VCG4, vdt, nvp, npf, pvrow); break;
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

/* The prefetch spans of the work after the job (its hint), for the last
 * block: K spans into nkp, V spans into nvp; returns their count. */
FA_INL size_t FA_FN(hint)(const FA_FN(pass) *P, const char **nkp, const char **nvp, size_t *pkrow,
                          size_t *pvrow)
{
    const fasa__attn_job *job = P->job;
    if (job->pf_n == 0)
        return 0;
    const size_t nn = job->pf_n < FA_B ? job->pf_n : FA_B;
    const size_t pks = job->pf_kst ? job->pf_kst : P->kst, pvs = job->pf_vst ? job->pf_vst : P->vst;
    *pkrow = job->pf_kspan ? job->pf_kspan : P->krow;
    *pvrow = job->pf_vspan ? job->pf_vspan : P->vrow;
    for (size_t j = 0; j < nn; j++) {
        nkp[j] = (const char *)job->pf_k + j * pks;
        nvp[j] = (const char *)job->pf_v + j * pvs;
    }
    return nn;
}

FA_ATTR static void FA_FN(rows)(const fasa__attn_job *job, size_t r0, size_t nr)
{
    FA_FN(pass) P;
    P.job = job;
    P.r0 = r0;
    P.nr = nr;
    P.kdt = FA_KDT(job);
    P.vdt = FA_VDT(job);
    P.d = job->head_dim;
    P.dv = job->head_dim_v;
    P.dfull = P.d - P.d % FA_W;
    P.dvfull = P.dv - P.dv % FA_W;
    P.qs = job->q_stride;
    P.accs = job->acc_stride;
    P.kst = fasa__bytes(P.kdt, job->k_stride);
    P.vst = fasa__bytes(P.vdt, job->v_stride);
    P.krow = fasa__bytes(P.kdt, P.d);
    P.vrow = fasa__bytes(P.vdt, P.dv);
    P.q = job->q + r0 * P.qs;
    P.m = job->m + r0;
    P.l = job->l + r0;
    P.acc = job->acc + r0 * P.accs;
    P.logit = fasa__attn_has_logit_fn(job);
    const size_t n = job->n;
    if (n == 0)
        return;

    float s[FA_RMAX * FA_B];
    float alpha[FA_RMAX];
    const char *kp[FA_B], *vp[FA_B], *hk[FA_B], *hv[FA_B];
    size_t hkrow = P.krow, hvrow = P.vrow;
    const size_t nh = FA_FN(hint)(&P, hk, hv, &hkrow, &hvrow);

    /* Per block: logits (prefetching the next block's K rows, or the
     * hint's at the last block), softmax, values (prefetching the next
     * block's V rows, or the hint's). */
    const char *nk[FA_B], *nv[FA_B];
    for (size_t i0 = 0; i0 < n; i0 += FA_B) {
        const size_t nb = n - i0 < FA_B ? n - i0 : FA_B;
        size_t nn = nh, pk = hkrow, pv = hvrow;
        const char *const *pks = hk, *const *pvs = hv;
        FA_FN(ptrs)(&P, i0, nb, kp, vp);
        if (i0 + FA_B < n) {
            nn = n - i0 - FA_B < FA_B ? n - i0 - FA_B : FA_B;
            FA_FN(ptrs)(&P, i0 + FA_B, nn, nk, nv);
            pk = P.krow;
            pv = P.vrow;
            pks = nk;
            pvs = nv;
        }
        FA_FN(logits)(&P, i0, nb, kp, s, pks, nn, pk);
        FA_FN(softmax)(&P, s, alpha);
        FA_FN(values)(&P, nb, vp, s, alpha, pvs, nn, pv);
    }
}

#undef FA_INL
#undef FA_PFV
