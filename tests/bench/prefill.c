/*
 * prefill.c - `make bench`, prefill table: one causal chunk of n_q queries
 * appended to a cache of t cells (the chunk's own cells included: query i
 * sees t - n_q + i + 1 cells), on the Llama-3-8B-shaped layer of bench.c
 * (32 query heads, 8 KV heads, head_dim 128, K/V in the llama.cpp layout),
 * through fasa_execute of a DENSE plan.
 *
 * Each configuration is timed on the tiled path (attn_tile, what
 * fasa_attend_dense runs now) and on the previous prefill path (the
 * one-query kernel per query, 16 queries per item), interleaved round by
 * round, so both see the same machine; the table gives medians, GFLOP/s
 * (4 * head_dim flop per visible (query head, cell) pair) against the fp32
 * FMA peak of one core measured just before each (t, dtype) group (times
 * the thread count), and the median of the per-round ratios old / new.
 * One-thread rows are also timed by the thread's CPU time (the peak too):
 * on a shared machine it leaves out the time the thread waits for a core,
 * so its GFLOP/s and ratios are the steadier figures there.
 * The previous path is reached by turning the plan's tiled flag off
 * (internal: plan.h), which is exactly the code fasa_attend_dense ran
 * before the tiled kernel.
 *
 * Environment (all optional):
 *   BENCH_PREFILL=0             skip the table
 *   BENCH_QUICK=1               t = 4k, 16k; chunks 64, 512; f16; 1 thread
 *   BENCH_PREFILL_T=4k,16k,64k  cache cells t
 *   BENCH_PREFILL_Q=64,512,2048 chunk sizes n_q
 *   BENCH_PREFILL_DTYPES=f16,bf16
 *   BENCH_THREADS=1             thread counts (as bench.c)
 *   BENCH_PREFILL_ROUNDS=3      rounds of (new, old) where the chunk costs
 *                               at most 200 GFLOP; 1 round above
 *   BENCH_PREFILL_OLD_MAX=600   old path only up to this many GFLOP (it is
 *                               ~3x slower; 0 = never, large = always)
 *   BENCH_OUT=dir               prefill.csv goes there (default .)
 */
#include "internal.h"
#include "plan.h"
#include "threading.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define HQ 32
#define HKV 8
#define HD 128
#define MAX_LIST 16

static size_t parse_list(const char *env, const char *def, size_t *out, size_t cap)
{
    const char *s = getenv(env);
    if (s == NULL || *s == 0)
        s = def;
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s)
            break;
        if (*end == 'k' || *end == 'K') {
            v *= 1024;
            end++;
        }
        out[n++] = (size_t)v;
        if (*end != ',')
            break;
        s = end + 1;
    }
    return n;
}

static double env_num(const char *env, double def)
{
    const char *s = getenv(env);
    return s && *s ? strtod(s, NULL) : def;
}

static void check(fasa_status st, const char *what, const fasa_ctx *ctx)
{
    if (st != FASA_OK) {
        fprintf(stderr, "prefill bench: %s: %s %s\n", what, fasa_status_name(st),
                ctx ? fasa_ctx_last_error(ctx) : "");
        exit(1);
    }
}

static void *xalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        fprintf(stderr, "prefill bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* The previous prefill path on the same plan and workspace: fold items of
 * FASA_Q_BLOCK queries through the one-query kernel (the tiled plan's slot
 * holds at least that many rows). */
static void plan_untiled(fasa_plan *p)
{
    p->tiled = 0;
    p->fold_qb = FASA_Q_BLOCK;
    for (size_t s = 0; s < p->n_stages; s++)
        if (p->stages[s].kind == FASA__ST_ATTN_FOLD)
            p->stages[s].n_items = fasa__n_chunks(p->qb, FASA_Q_BLOCK) * p->attn_sets;
}

/* Wall ms of one execution; *cpu_ms its CPU ms on this thread. */
static double run_ms(fasa_ctx *ctx, const fasa_plan *p, void *ws, size_t wsb, double *cpu_ms)
{
    double t0 = now_s(), c0 = cpu_s();
    check(fasa_execute(ctx, p, NULL, ws, wsb), "fasa_execute", ctx);
    *cpu_ms = 1e3 * (cpu_s() - c0);
    return 1e3 * (now_s() - t0);
}

int main(void)
{
    const char *skip = getenv("BENCH_PREFILL");
    if (skip && atoi(skip) == 0)
        return 0;
    const int quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK")) != 0;
    size_t ts[MAX_LIST], qs[MAX_LIST], threads[MAX_LIST];
    size_t n_t = parse_list("BENCH_PREFILL_T", quick ? "4k,16k" : "4k,16k,64k", ts, MAX_LIST);
    size_t n_q = parse_list("BENCH_PREFILL_Q", quick ? "64,512" : "64,512,2048", qs, MAX_LIST);
    size_t n_th = parse_list("BENCH_THREADS", "1", threads, MAX_LIST);
    if (quick)
        n_th = 1, threads[0] = 1;
    const char *dts = getenv("BENCH_PREFILL_DTYPES");
    if (dts == NULL || *dts == 0)
        dts = quick ? "f16" : "f16,bf16";
    int dtypes[3], n_dt = 0;
    if (strstr(dts, "f16") && (strstr(dts, "f16") == dts || strstr(dts, ",f16")))
        dtypes[n_dt++] = FASA_DTYPE_F16;
    if (strstr(dts, "bf16"))
        dtypes[n_dt++] = FASA_DTYPE_BF16;
    if (strstr(dts, "f32"))
        dtypes[n_dt++] = FASA_DTYPE_F32;
    const size_t rounds = (size_t)env_num("BENCH_PREFILL_ROUNDS", 3);
    const double old_max = env_num("BENCH_PREFILL_OLD_MAX", 600);
    const char *outdir = getenv("BENCH_OUT") ? getenv("BENCH_OUT") : ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/prefill.csv", outdir);
    FILE *csv = fopen(path, "w");
    if (csv)
        fprintf(csv, "t,kv_dtype,threads,n_q,gflop,new_ms,old_ms,new_gflops,old_gflops,"
                     "peak_gflops,new_frac_of_peak,speedup,cpu_new_ms,cpu_old_ms,cpu_peak_gflops,"
                     "cpu_new_frac_of_peak,cpu_speedup,rounds\n");

    printf("\nprefill: causal chunk of n_q queries at t cells, Llama-3-8B layer (Hq %d, Hkv %d, "
           "d %d), fasa_execute of a DENSE plan; kernel attn_tile=%s; new = tiled path, old = "
           "previous path (one-query kernel), interleaved per round; medians; peak = fp32 FMA "
           "peak of one core (measured before each group) x threads; cpu_*: the same by the "
           "thread's CPU time (1 thread)\n",
           HQ, HKV, HD, fasa_kernel_name("attn_tile", FASA_CPU_AUTO));
    printf("%7s %-5s %3s %6s %8s %9s %9s %8s %8s %6s %6s %7s | %7s %6s %6s %7s\n", "t", "kv",
           "thr", "n_q", "GFLOP", "new_ms", "old_ms", "new_GF/s", "old_GF/s", "peak", "new/pk",
           "speedup", "cpu_GF/s", "cpu_pk", "cpu/pk", "cpu_x");
    for (int di = 0; di < n_dt; di++)
        for (size_t ti = 0; ti < n_t; ti++) {
            const int dt = dtypes[di];
            const size_t t = ts[ti], es = fasa__dtype_size(dt);
            size_t qmax = 0;
            for (size_t i = 0; i < n_q; i++)
                qmax = qs[i] > qmax && qs[i] <= t ? qs[i] : qmax;
            if (qmax == 0)
                continue;
            char *k = xalloc(t * HKV * HD * es), *v = xalloc(t * HKV * HD * es);
            for (size_t i = 0; i < t * HKV * HD; i++) {
                fasa__store(k, dt, i, rnd());
                fasa__store(v, dt, i, rnd());
            }
            float *q = xalloc(qmax * HQ * HD * sizeof(float));
            float *out = xalloc(qmax * HQ * HD * sizeof(float));
            for (size_t i = 0; i < qmax * HQ * HD; i++)
                q[i] = 2.0f * rnd();
            const double peak1 = fma_peak(), cpu_peak = fma_peak_clock(cpu_s);
            for (size_t th = 0; th < n_th; th++) {
                const int nt = (int)threads[th];
                fasa_ctx_options o;
                fasa_ctx_options_default(&o);
                o.n_threads = nt;
                fasa_ctx *ctx = NULL;
                check(fasa_ctx_create(&o, &ctx), "ctx_create", NULL);
                for (size_t qi = 0; qi < n_q; qi++) {
                    const size_t nq = qs[qi];
                    if (nq > t)
                        continue;
                    fasa_view qv, kv, vv, ov;
                    fasa_view_make(&qv, q, FASA_DTYPE_F32, nq, HQ, HD, HQ * HD, HD);
                    fasa_view_make(&kv, k, (fasa_dtype)dt, t, HKV, HD, HKV * HD, HD);
                    fasa_view_make(&vv, v, (fasa_dtype)dt, t, HKV, HD, HKV * HD, HD);
                    fasa_view_make(&ov, out, FASA_DTYPE_F32, nq, HQ, HD, HQ * HD, HD);
                    fasa_attention_desc d;
                    memset(&d, 0, sizeof d);
                    d.struct_size = sizeof d;
                    d.op = FASA_OP_DENSE;
                    d.q = &qv;
                    d.k = &kv;
                    d.v = &vv;
                    d.out = &ov;
                    d.n_threads = nt;
                    size_t pb = 0, wsb = 0;
                    check(fasa_plan_size(&pb), "plan_size", NULL);
                    void *pm_new = xalloc(pb), *pm_old = xalloc(pb);
                    fasa_plan *pn = NULL, *po = NULL;
                    check(fasa_plan_init(ctx, &d, pm_new, pb, &pn), "plan_init", ctx);
                    check(fasa_plan_init(ctx, &d, pm_old, pb, &po), "plan_init", ctx);
                    plan_untiled(po);
                    check(fasa_plan_workspace_size(pn, &wsb), "workspace", NULL);
                    void *ws = xalloc(wsb);
                    double pairs = 0.0;
                    for (size_t i = 0; i < nq; i++)
                        pairs += (double)(t - nq + i + 1);
                    const double gflop = pairs * HQ * 4.0 * HD / 1e9;
                    const size_t nr = gflop <= 200.0 ? (rounds ? rounds : 1) : 1;
                    const int do_old = gflop <= old_max;
                    double tn[64], to[64], ratio[64], cn[64], co[64], cratio[64], dummy;
                    run_ms(ctx, pn, ws, wsb, &dummy); /* warm-up: pages, threads */
                    for (size_t r = 0; r < nr && r < 64; r++) {
                        tn[r] = run_ms(ctx, pn, ws, wsb, &cn[r]);
                        to[r] = do_old ? run_ms(ctx, po, ws, wsb, &co[r]) : (co[r] = 0.0);
                        ratio[r] = do_old ? to[r] / tn[r] : 0.0;
                        cratio[r] = do_old ? co[r] / cn[r] : 0.0;
                    }
                    const double mn = median(tn, nr), mo = do_old ? median(to, nr) : 0.0;
                    const double sp = do_old ? median(ratio, nr) : 0.0;
                    const double cmn = median(cn, nr), cmo = do_old ? median(co, nr) : 0.0;
                    const double csp = do_old ? median(cratio, nr) : 0.0;
                    const double cgn = gflop / (cmn * 1e-3);
                    const double peak = peak1 * nt, gn = gflop / (mn * 1e-3);
                    const double go = do_old ? gflop / (mo * 1e-3) : 0.0;
                    char so[32] = "-", sgo[32] = "-", ssp[32] = "-", cx[80] = "";
                    if (do_old) {
                        snprintf(so, sizeof so, "%.1f", mo);
                        snprintf(sgo, sizeof sgo, "%.1f", go);
                        snprintf(ssp, sizeof ssp, "%.2fx", sp);
                    }
                    if (nt == 1)
                        snprintf(cx, sizeof cx, "| %7.1f %6.1f %5.0f%% %6.2fx", cgn, cpu_peak,
                                 cpu_peak > 0 ? 100.0 * cgn / cpu_peak : 0.0, csp);
                    printf("%7zu %-5s %3d %6zu %8.1f %9.1f %9s %8.1f %8s %6.1f %5.0f%% %7s %s\n", t,
                           dt == FASA_DTYPE_F16 ? "f16" : dt == FASA_DTYPE_BF16 ? "bf16" : "f32",
                           nt, nq, gflop, mn, so, gn, sgo, peak, peak > 0 ? 100.0 * gn / peak : 0.0,
                           ssp, cx);
                    fflush(stdout);
                    if (csv)
                        fprintf(csv,
                                "%zu,%s,%d,%zu,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.4f,%.3f,%.2f,%.2f,%.2f,"
                                "%.4f,%.3f,%zu\n",
                                t, dt == FASA_DTYPE_F16 ? "f16" : dt == FASA_DTYPE_BF16 ? "bf16" : "f32",
                                nt, nq, gflop, mn, mo, gn, go, peak, peak > 0 ? gn / peak : 0.0, sp,
                                cmn, cmo, cpu_peak, cpu_peak > 0 ? cgn / cpu_peak : 0.0, csp, nr);
                    free(ws);
                    free(pm_new);
                    free(pm_old);
                }
                fasa_ctx_destroy(ctx);
            }
            free(k);
            free(v);
            free(q);
            free(out);
        }
    if (csv) {
        fclose(csv);
        printf("wrote %s\n", path);
    }
    return 0;
}
