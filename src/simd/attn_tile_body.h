/*
 * attn_tile_body.h - the body of one SIMD tiled attention kernel
 * (fasa__attn_tile_fn, see kernels.h), written once against a few vector
 * macros and instantiated per ISA.
 *
 * Rows sit in vector lanes: q is transposed once per call into qt and acc
 * into ot, each a [dim][FT_SL] block per group of FT_SL lanes (a row pass),
 * so that
 *  - logits S[key][row] = sum_c K[key][c] * qt[c][row] are broadcast-K FMAs
 *    over row vectors (a register tile of KB keys x RV row vectors, every
 *    K element loaded once per KB x RV FMAs, no horizontal sums);
 *  - the online softmax is vertical: per-row max, rescale and sum are
 *    element-wise over key rows of S, the causal diagonal a compare of the
 *    key offset against per-lane bounds (no branch per element);
 *  - ot[c][row] += V[key][c] * P[key][row] is again broadcast-V FMAs over
 *    a register tile of CB dims x RV row vectors.
 * Each FASA_TILE-cell tile (aligned to the absolute cell index) of K and V
 * is converted to f32 once and used by every row of the call; a tile no
 * query sees is neither converted nor computed, and only the row vectors
 * between the first and last query that sees it are. A lane's arithmetic
 * never involves another lane, so a row's result does not depend on the
 * other rows of the call. Odd head dims cost nothing special (dims are a
 * loop count); rows are padded to whole vectors with lanes that see
 * nothing.
 *
 * Needs from the includer: FT_ISA (name suffix), FT_ATTR, FT_W, FT_VEC,
 * FT_ZERO, FT_SET1, FT_LOAD / FT_STORE (aligned), FT_BCAST(const float *),
 * FT_FMA(a,b,c) = a*b+c, FT_MUL, FT_ADD, FT_SUB, FT_MAX, FT_DIV, FT_ABS,
 * FT_COPYSIGN(mag, sgn), FT_EXP, FT_SEL_EQ(a,b,x,y) = a == b ? x : y,
 * FT_SEL_LT(a,b,x,y) = a < b ? x : y, FT_VIS(x, j, lb, le) = lb <= j < le
 * ? x : -inf, FT_CVT_F16 / FT_CVT_BF16 (W elements at a byte pointer ->
 * FT_VEC), FT_RVMAX (row vectors per pass, <= 4), FT_KB1..4 (keys per
 * logit tile for 1..4 row vectors, dividing 16), FT_CB1..4 (value dims per
 * value tile), FT_KERNEL_NAME.
 */

#define FT_SL (FT_RVMAX * FT_W) /* lanes per row pass, per row of S */
/* Offset of (lane r, dim c) in qt / ot: a pass's [dim][FT_SL] block is
 * contiguous, so the logits sweep it like S (measured faster than rows
 * of all lanes, whose strided 256-byte pieces the logit tiles re-read). */
#define FT_QI(r, c, dim) (((r) / FT_SL * (dim) + (c)) * FT_SL + (r) % FT_SL)
#define FT_CAT2(a, b) a##_##b
#define FT_CAT(a, b) FT_CAT2(a, b)
#define FT_FN(name) FT_CAT(ft_##name, FT_ISA)
#define FT_INL FT_ATTR static inline __attribute__((always_inline))

_Static_assert(FT_SL <= 64 && FT_W <= 16, "S rows and lane padding hold at most 64 / 16 lanes");

typedef struct FT_FN(ctx) {
    const fasa__attn_tile_job *job;
    size_t lanes, ks, vs;
    float *qt, *ot, *m, *l, *lb, *le, *sl, *dq, *kf, *vf, *s;
    uint8_t *qf; /* per query: 0 sees nothing of the tile, 1 plain, 2 mask to add */
    /* the next tile's K and V rows, prefetched during this tile's logits */
    const char *pfk, *pfv;
    size_t npf, pdone, kst, vst, krow, vrow; /* bytes */
} FT_FN(ctx);

/* Prefetch the share num / den of the next tile's rows into L2 (those not
 * yet prefetched; num = den: all). Spread over every logit tile of every
 * row pass of the tile: issued in one burst the prefetches stalled on full
 * miss queues (most of the conversion's time), and issued by the first
 * pass alone they still stalled 9% of its time. Rows a head apart in the
 * llama.cpp layout are a stride the hardware prefetcher follows only
 * slowly. */
FT_INL void FT_FN(prefetch)(FT_FN(ctx) *x, size_t num, size_t den)
{
    const size_t n1 = (x->npf * num + den - 1) / den;
    for (size_t n = x->pdone; n < n1; n++) {
        const char *k = x->pfk + n * x->kst, *v = x->pfv + n * x->vst;
        for (size_t o = 0; o < x->krow; o += 64)
            __builtin_prefetch(k + o, 0, 2);
        __builtin_prefetch(k + x->krow - 1, 0, 2);
        for (size_t o = 0; o < x->vrow; o += 64)
            __builtin_prefetch(v + o, 0, 2);
        __builtin_prefetch(v + x->vrow - 1, 0, 2);
    }
    x->pdone = n1 > x->pdone ? n1 : x->pdone;
}

/* tanh to a few ulp (Cephes' tanhf): odd polynomial below 0.625, else
 * 1 - 2 / (exp(2|x|) + 1); NaN propagates. */
FT_INL FT_VEC FT_FN(tanh)(FT_VEC x)
{
    const FT_VEC one = FT_SET1(1.0f);
    FT_VEC ax = FT_ABS(x);
    FT_VEC big = FT_SUB(one, FT_DIV(FT_SET1(2.0f), FT_ADD(FT_EXP(FT_ADD(ax, ax)), one)));
    FT_VEC z = FT_MUL(ax, ax);
    FT_VEC p = FT_SET1(-5.70498872745e-3f);
    p = FT_FMA(p, z, FT_SET1(2.06390887954e-2f));
    p = FT_FMA(p, z, FT_SET1(-5.37397155531e-2f));
    p = FT_FMA(p, z, FT_SET1(1.33314422036e-1f));
    p = FT_FMA(p, z, FT_SET1(-3.33332819422e-1f));
    FT_VEC small = FT_FMA(FT_MUL(p, z), ax, ax);
    return FT_COPYSIGN(FT_SEL_LT(ax, FT_SET1(0.625f), small, big), x);
}

/* S[n][v*W ..] = K[n] . qt[..][v*W ..] for n < nbp (a multiple of KB);
 * pass gi of ng prefetches its share of the next tile meanwhile. */
FT_INL void FT_FN(qk)(FT_FN(ctx) *x, const float *qt, size_t nbp, size_t gi, size_t ng, const int KB,
                      const int RV)
{
    const size_t ks = x->ks, d = x->job->head_dim;
    const float *kf = x->kf;
    float *s = x->s;
    for (size_t n0 = 0; n0 < nbp; n0 += (size_t)KB) {
        FT_FN(prefetch)(x, gi * nbp + n0 + (size_t)KB, ng * nbp);
        FT_VEC acc[32];
#pragma GCC unroll 32
        for (int a = 0; a < KB * RV; a++)
            acc[a] = FT_ZERO();
        const float *kr = kf + n0 * ks, *qc = qt;
        for (size_t c = 0; c < d; c++, qc += FT_SL) {
            FT_VEC qv[4];
#pragma GCC unroll 4
            for (int v = 0; v < RV; v++)
                qv[v] = FT_LOAD(qc + v * FT_W);
#pragma GCC unroll 16
            for (int kb = 0; kb < KB; kb++) {
                FT_VEC b = FT_BCAST(kr + (size_t)kb * ks + c);
#pragma GCC unroll 4
                for (int v = 0; v < RV; v++)
                    acc[kb * RV + v] = FT_FMA(b, qv[v], acc[kb * RV + v]);
            }
        }
#pragma GCC unroll 16
        for (int kb = 0; kb < KB; kb++)
#pragma GCC unroll 4
            for (int v = 0; v < RV; v++)
                FT_STORE(s + (n0 + (size_t)kb) * FT_SL + v * FT_W, acc[kb * RV + v]);
    }
}

/* ot[c0 .. c0 + CB)[v*W ..] = ot * alpha[v] + sum_{n < nb} V[n][c] P[n][v*W ..]. */
FT_INL void FT_FN(pv)(const float *vf, size_t vs, const float *s, const FT_VEC *al, float *ot,
                      size_t lanes, size_t c0, size_t nb, const int CB, const int RV)
{
    FT_VEC acc[32];
    /* One base pointer, constant offsets: GCC otherwise keeps 16 store
     * addresses across the loop, spills them into vector registers and the
     * P vectors to the stack (measured 1.45x slower). */
    float *o = ot + c0 * lanes;
#pragma GCC unroll 16
    for (int cb = 0; cb < CB; cb++)
#pragma GCC unroll 4
        for (int v = 0; v < RV; v++)
            acc[cb * RV + v] = FT_MUL(FT_LOAD(o + (size_t)cb * lanes + v * FT_W), al[v]);
    const float *vr = vf + c0, *sn = s;
    for (size_t n = 0; n < nb; n++, vr += vs, sn += FT_SL) {
        FT_VEC pv[4];
#pragma GCC unroll 4
        for (int v = 0; v < RV; v++)
            pv[v] = FT_LOAD(sn + v * FT_W);
#pragma GCC unroll 16
        for (int cb = 0; cb < CB; cb++) {
            FT_VEC b = FT_BCAST(vr + cb);
#pragma GCC unroll 4
            for (int v = 0; v < RV; v++)
                acc[cb * RV + v] = FT_FMA(b, pv[v], acc[cb * RV + v]);
        }
    }
    __asm__("" : "+r"(o));
#pragma GCC unroll 16
    for (int cb = 0; cb < CB; cb++)
#pragma GCC unroll 4
        for (int v = 0; v < RV; v++)
            FT_STORE(o + (size_t)cb * lanes + v * FT_W, acc[cb * RV + v]);
}

/* All value dims for RV row vectors: tiles of CB dims, then single dims. */
FT_INL void FT_FN(pv_all)(const FT_FN(ctx) *x, const FT_VEC *al, float *ot, size_t nb,
                          const int CB, const int RV)
{
    const size_t dv = x->job->head_dim_v;
    size_t c0 = 0;
    for (; c0 + (size_t)CB <= dv; c0 += (size_t)CB)
        FT_FN(pv)(x->vf, x->vs, x->s, al, ot, FT_SL, c0, nb, CB, RV);
    for (; c0 < dv; c0++)
        FT_FN(pv)(x->vf, x->vs, x->s, al, ot, FT_SL, c0, nb, 1, RV);
}

/* nrows rows of dim elements of dtype dt at src (byte stride sst) -> f32
 * rows of dst (stride dst_st floats, 64-byte aligned rows). */
static FT_ATTR void FT_FN(convert)(const char *src, size_t sst, int dt, size_t nrows, size_t dim,
                                   float *dst, size_t dst_st)
{
    const size_t full = dim - dim % FT_W;
    for (size_t n = 0; n < nrows; n++, src += sst, dst += dst_st) {
        size_t c = 0;
        if (dt == FASA_DTYPE_F16)
            for (; c < full; c += FT_W)
                FT_STORE(dst + c, FT_CVT_F16(src + 2 * c));
        else if (dt == FASA_DTYPE_BF16)
            for (; c < full; c += FT_W)
                FT_STORE(dst + c, FT_CVT_BF16(src + 2 * c));
        else
            for (; c < full; c += FT_W)
                FT_STORE(dst + c, FT_LOADU((const float *)(const void *)src + c));
        for (; c < dim; c++)
            dst[c] = fasa__load(src, dt, c);
    }
}

/* Class of query b's mask over cells [lo, hi): 0 all hidden, 1 all zero
 * (nothing to add), 2 some bias or some hidden cell. */
static int FT_FN(mask_class)(const fasa__attn_tile_job *job, size_t b, size_t lo, size_t hi)
{
    const size_t cnt = hi - lo, e0 = b * job->mask_stride + (lo - job->first);
    size_t hid = 0, zero = 0;
    if (job->mask_dtype == FASA_DTYPE_F16) {
        const uint16_t *mk = (const uint16_t *)job->mask + e0;
        for (size_t i = 0; i < cnt; i++) {
            hid += mk[i] == 0xfc00u;
            zero += (mk[i] & 0x7fffu) == 0;
        }
    } else {
        const float *mk = (const float *)job->mask + e0;
        for (size_t i = 0; i < cnt; i++) {
            hid += mk[i] == -INFINITY;
            zero += mk[i] == 0.0f;
        }
    }
    return hid == cnt ? 0 : zero == cnt ? 1 : 2;
}

/* Mask values of the class-2 queries onto their lanes [r0, r1) of S (cells
 * already hidden by the bounds stay hidden). */
static void FT_FN(mask_add)(const FT_FN(ctx) *x, size_t js, size_t nb, size_t r0, size_t r1)
{
    const fasa__attn_tile_job *job = x->job;
    const size_t G = job->group;
    for (size_t b = r0 / G; b * G < r1 && b < job->n_q; b++) {
        if (x->qf[b] != 2)
            continue;
        for (size_t g = 0; g < G; g++) {
            size_t r = b * G + g;
            if (r < r0 || r >= r1)
                continue;
            const float sg = job->slope != NULL ? job->slope[g] : 1.0f;
            const size_t e0 = b * job->mask_stride + (js - job->first);
            for (size_t n = 0; n < nb; n++) {
                float *sp = x->s + n * FT_SL + (r - r0);
                if (*sp == -INFINITY)
                    continue;
                float mv = job->mask_dtype == FASA_DTYPE_F16
                               ? fasa__f16_to_f32(((const uint16_t *)job->mask)[e0 + n])
                               : ((const float *)job->mask)[e0 + n];
                *sp = mv == -INFINITY ? -INFINITY : *sp + sg * mv;
            }
        }
    }
}

/* One pass of RV row vectors from lane r0 over the converted tile of nb
 * cells: logits, transform, online softmax, values. */
static FT_ATTR void FT_FN(pass)(FT_FN(ctx) *x, size_t js, size_t nb, size_t r0, int RV,
                                int add, size_t gi, size_t ng)
{
    const fasa__attn_tile_job *job = x->job;
    float *s = x->s;
    const float *qt = x->qt + FT_QI(r0, 0, job->head_dim); /* r0: a multiple of FT_SL */
    switch (RV) {
    case 1: FT_FN(qk)(x, qt, fasa__align_up(nb, FT_KB1), gi, ng, FT_KB1, 1); break;
    case 2: FT_FN(qk)(x, qt, fasa__align_up(nb, FT_KB2), gi, ng, FT_KB2, 2); break;
    case 3: FT_FN(qk)(x, qt, fasa__align_up(nb, FT_KB3), gi, ng, FT_KB3, 3); break;
    default: FT_FN(qk)(x, qt, fasa__align_up(nb, FT_KB4), gi, ng, FT_KB4, 4); break;
    }

    /* logit transform and visibility; the running max */
    const FT_VEC ninf = FT_SET1(-INFINITY), zero = FT_ZERO();
    const float cap = job->softcap;
    const int alibi = job->slope != NULL && job->mask == NULL;
    FT_VEC mx[4], lbv[4], lev[4], slv[4], dqv[4];
    for (int v = 0; v < RV; v++) {
        const size_t o = r0 + (size_t)v * FT_W;
        mx[v] = FT_LOAD(x->m + o);
        lbv[v] = FT_LOAD(x->lb + o);
        lev[v] = FT_LOAD(x->le + o);
        slv[v] = FT_LOAD(x->sl + o);
        dqv[v] = FT_LOAD(x->dq + o);
    }
    const FT_VEC capv = FT_SET1(cap), icap = FT_SET1(cap > 0.0f ? 1.0f / cap : 0.0f);
    for (size_t n = 0; n < nb; n++) {
        const FT_VEC jn = FT_SET1((float)n);
        float *sn = s + n * FT_SL;
        for (int v = 0; v < RV; v++) {
            FT_VEC t = FT_LOAD(sn + v * FT_W);
            if (cap > 0.0f)
                t = FT_MUL(capv, FT_FN(tanh)(FT_MUL(t, icap)));
            if (alibi)
                t = FT_FMA(slv[v], FT_ADD(dqv[v], jn), t);
            t = FT_VIS(t, jn, lbv[v], lev[v]);
            FT_STORE(sn + v * FT_W, t);
            mx[v] = FT_MAX(mx[v], t);
        }
    }
    if (add) {
        FT_FN(mask_add)(x, js, nb, r0, r0 + (size_t)RV * FT_W);
        for (int v = 0; v < RV; v++) {
            mx[v] = FT_LOAD(x->m + r0 + (size_t)v * FT_W);
            for (size_t n = 0; n < nb; n++)
                mx[v] = FT_MAX(mx[v], FT_LOAD(s + n * FT_SL + v * FT_W));
        }
    }

    /* online softmax, element-wise over the lanes; a lane that has seen
     * nothing yet keeps m = -inf, l = 0 (its weights exp(-inf) = 0) */
    FT_VEC mu[4], al[4], sum[4];
    for (int v = 0; v < RV; v++) {
        float *mp = x->m + r0 + (size_t)v * FT_W;
        mu[v] = FT_SEL_EQ(mx[v], ninf, zero, mx[v]);
        al[v] = FT_EXP(FT_SUB(FT_LOAD(mp), mu[v]));
        FT_STORE(mp, mx[v]);
        sum[v] = zero;
    }
    for (size_t n = 0; n < nb; n++) {
        float *sn = s + n * FT_SL;
        for (int v = 0; v < RV; v++) {
            FT_VEC p = FT_EXP(FT_SUB(FT_LOAD(sn + v * FT_W), mu[v]));
            FT_STORE(sn + v * FT_W, p);
            sum[v] = FT_ADD(sum[v], p);
        }
    }
    for (int v = 0; v < RV; v++) {
        float *lp = x->l + r0 + (size_t)v * FT_W;
        FT_STORE(lp, FT_FMA(FT_LOAD(lp), al[v], sum[v]));
    }

    float *ot = x->ot + FT_QI(r0, 0, job->head_dim_v);
    switch (RV) {
    case 1: FT_FN(pv_all)(x, al, ot, nb, FT_CB1, 1); break;
    case 2: FT_FN(pv_all)(x, al, ot, nb, FT_CB2, 2); break;
    case 3: FT_FN(pv_all)(x, al, ot, nb, FT_CB3, 3); break;
    default: FT_FN(pv_all)(x, al, ot, nb, FT_CB4, 4); break;
    }
}

FT_ATTR void FT_KERNEL_NAME(const fasa__attn_tile_job *job)
{
    const size_t G = job->group, nq = job->n_q, R = nq * G;
    const size_t d = job->head_dim, dv = job->head_dim_v;
    if (R == 0 || job->n == 0)
        return;
    size_t off[FASA__AT_N];
    fasa__attn_tile_layout(R, d, dv, off);
    char *base = (char *)job->scratch;
    FT_FN(ctx) x;
    x.job = job;
    x.lanes = fasa__attn_tile_lanes(R);
    x.ks = fasa__align_up(d, 16);
    x.vs = fasa__align_up(dv, 16);
    const size_t lanes = x.lanes;
    x.qt = (float *)(void *)(base + off[FASA__AT_QT]);
    x.ot = (float *)(void *)(base + off[FASA__AT_OT]);
    x.m = (float *)(void *)(base + off[FASA__AT_LANE]);
    x.l = x.m + lanes;
    x.lb = x.l + lanes;
    x.le = x.lb + lanes;
    x.sl = x.le + lanes;
    x.dq = x.sl + lanes;
    x.kf = (float *)(void *)(base + off[FASA__AT_KF]);
    x.vf = (float *)(void *)(base + off[FASA__AT_VF]);
    x.s = (float *)(void *)(base + off[FASA__AT_S]);
    x.qf = (uint8_t *)(base + off[FASA__AT_QF]);

    /* rows into lanes; padding lanes see nothing */
    for (size_t r = 0; r < lanes; r++) {
        for (size_t c = 0; c < d; c++)
            x.qt[FT_QI(r, c, d)] = r < R ? job->q[r * job->q_stride + c] : 0.0f;
        for (size_t c = 0; c < dv; c++)
            x.ot[FT_QI(r, c, dv)] = r < R ? job->acc[r * job->acc_stride + c] : 0.0f;
    }
    for (size_t r = 0; r < lanes; r++) {
        x.m[r] = r < R ? job->m[r] : -INFINITY;
        x.l[r] = r < R ? job->l[r] : 0.0f;
        x.lb[r] = x.le[r] = x.dq[r] = 0.0f;
        x.sl[r] = r < R && job->slope != NULL ? job->slope[r % G] : 0.0f;
    }

    const int kdt = job->k_dtype, vdt = job->v_dtype;
    const size_t kst = job->k_stride * fasa__dtype_size(kdt);
    const size_t vst = job->v_stride * fasa__dtype_size(vdt);
    const int alibi = job->slope != NULL && job->mask == NULL;
    const size_t stop = job->first + job->n;
    x.kst = kst;
    x.vst = vst;
    x.krow = d * fasa__dtype_size(kdt);
    x.vrow = dv * fasa__dtype_size(vdt);
    for (size_t js = job->first, je; js < stop; js = je) {
        je = (js / FASA_TILE + 1) * FASA_TILE;
        if (je > stop)
            je = stop;
        const size_t nb = je - js;
        size_t r_lo = SIZE_MAX, r_hi = 0;
        for (size_t b = 0; b < nq; b++) {
            size_t lo = js, hi = je;
            if (job->begin != NULL && job->begin[b] > lo)
                lo = job->begin[b];
            if (job->end != NULL && job->end[b] < hi)
                hi = job->end[b];
            int f = lo < hi;
            if (f && job->mask != NULL)
                f = FT_FN(mask_class)(job, b, lo, hi);
            x.qf[b] = (uint8_t)f;
            const float lbf = f ? (float)(lo - js) : 0.0f, lef = f ? (float)(hi - js) : 0.0f;
            const float dq = alibi ? (float)((int64_t)js - (job->qpos + (int64_t)b)) : 0.0f;
            for (size_t g = 0; g < G; g++) {
                x.lb[b * G + g] = lbf;
                x.le[b * G + g] = lef;
                x.dq[b * G + g] = dq;
            }
            if (f) {
                r_lo = r_lo < b * G ? r_lo : b * G;
                r_hi = b * G + G;
            }
        }
        if (r_lo == SIZE_MAX)
            continue; /* no query sees this tile */

        FT_FN(convert)((const char *)job->k + js * kst, kst, kdt, nb, d, x.kf, x.ks);
        for (size_t n = nb; n < fasa__align_up(nb, 16); n++) /* logit tiles may run past nb */
            memset(x.kf + n * x.ks, 0, d * sizeof(float));
        FT_FN(convert)((const char *)job->v + js * vst, vst, vdt, nb, dv, x.vf, x.vs);
        x.npf = stop - je < FASA_TILE ? stop - je : FASA_TILE;
        x.pfk = (const char *)job->k + je * kst;
        x.pfv = (const char *)job->v + je * vst;
        x.pdone = 0;

        /* passes start on whole groups of FT_SL lanes (the qt / ot blocks) */
        const size_t v_end = (r_hi + FT_W - 1) / FT_W, vb = r_lo / FT_SL * FT_RVMAX;
        const size_t ng = (v_end - vb + FT_RVMAX - 1) / FT_RVMAX;
        for (size_t v0 = vb; v0 < v_end; v0 += FT_RVMAX) {
            const int RV = v_end - v0 < FT_RVMAX ? (int)(v_end - v0) : FT_RVMAX;
            const size_t r0 = v0 * FT_W, r1 = r0 + (size_t)RV * FT_W;
            int add = 0;
            for (size_t b = r0 / G; b * G < r1 && b < nq && !add; b++)
                add = x.qf[b] == 2;
            FT_FN(pass)(&x, js, nb, r0, RV, add, (v0 - vb) / FT_RVMAX, ng);
        }
    }

    for (size_t r = 0; r < R; r++) {
        job->m[r] = x.m[r];
        job->l[r] = x.l[r];
    }
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < dv; c++)
            job->acc[r * job->acc_stride + c] = x.ot[FT_QI(r, c, dv)];
}

#undef FT_SL
#undef FT_QI
#undef FT_CAT2
#undef FT_CAT
#undef FT_FN
#undef FT_INL
