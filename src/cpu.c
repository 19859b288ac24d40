/*
 * cpu.c - CPU feature detection, the FASA_CPU cap and kernel names.
 *
 * Features are detected once into an atomic word whose KNOWN bit tells a
 * finished detection from "not yet"; detection is idempotent, so racing
 * first callers just store the same value (no lock).
 * x86: CPUID for the instruction sets and XGETBV for the OS having enabled
 * the registers (YMM: XCR0 & 6; ZMM and opmask: XCR0 & 0xE6).
 * AArch64: Advanced SIMD is architectural; fp16 / bf16 from getauxval.
 */
#include "internal.h"
#include "dispatch.h"

#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#define FEATURE_KNOWN (1u << 31)

static atomic_uint cpu_features_word;

#if defined(__x86_64__) || defined(__i386__)
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    /* Inline asm rather than _xgetbv(), which would need target("xsave");
     * only called after CPUID reported OSXSAVE. */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect(void)
{
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return 0;
    uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6)
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    unsigned max_sub = a;
    if (avx2 && fma && f16c)
        f |= FASA_CPU_FEATURE_AVX2;
    if ((f & FASA_CPU_FEATURE_AVX2) && avx512f && avx512bw && avx512vl &&
        (xcr0 & 0xE6) == 0xE6) {
        f |= FASA_CPU_FEATURE_AVX512;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if ((a >> 5) & 1)
                f |= FASA_CPU_FEATURE_AVX512BF16;
        }
    }
    return f;
}
#elif defined(__aarch64__)
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1ul << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1ul << 10)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1ul << 14)
#endif
static uint32_t detect(void)
{
    uint32_t f = FASA_CPU_FEATURE_NEON;
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if ((hw & HWCAP_FPHP) && (hw & HWCAP_ASIMDHP))
        f |= FASA_CPU_FEATURE_NEON_FP16;
    if (hw2 & HWCAP2_BF16)
        f |= FASA_CPU_FEATURE_NEON_BF16;
#endif
    return f;
}
#else
static uint32_t detect(void) { return 0; }
#endif

/* FASA_CPU=scalar|avx2|avx512|avx512bf16|neon keeps only the features of
 * that level and below; an unknown value caps nothing. */
static uint32_t env_mask(void)
{
    const char *e = getenv("FASA_CPU");
    if (e == NULL || *e == '\0')
        return ~0u;
    if (strcmp(e, "scalar") == 0)
        return 0;
    if (strcmp(e, "avx2") == 0)
        return FASA_CPU_FEATURE_AVX2;
    if (strcmp(e, "avx512") == 0)
        return FASA_CPU_FEATURE_AVX2 | FASA_CPU_FEATURE_AVX512;
    if (strcmp(e, "avx512bf16") == 0)
        return FASA_CPU_FEATURE_AVX2 | FASA_CPU_FEATURE_AVX512 | FASA_CPU_FEATURE_AVX512BF16;
    if (strcmp(e, "neon") == 0)
        return FASA_CPU_FEATURE_NEON | FASA_CPU_FEATURE_NEON_FP16 | FASA_CPU_FEATURE_NEON_BF16;
    return ~0u;
}

FASA_API uint32_t fasa_cpu_features(void)
{
    uint32_t f = atomic_load_explicit(&cpu_features_word, memory_order_relaxed);
    if (!(f & FEATURE_KNOWN)) {
        f = (detect() & env_mask()) | FEATURE_KNOWN;
        atomic_store_explicit(&cpu_features_word, f, memory_order_relaxed);
    }
    return f & ~FEATURE_KNOWN;
}

int fasa__level_usable(int level)
{
    uint32_t f = fasa_cpu_features();
    switch (level) {
    case FASA_CPU_SCALAR: return 1;
    case FASA_CPU_AVX2: return (f & FASA_CPU_FEATURE_AVX2) != 0;
    case FASA_CPU_AVX512: return (f & FASA_CPU_FEATURE_AVX512) != 0;
    case FASA_CPU_AVX512_BF16:
        return (f & FASA_CPU_FEATURE_AVX512) && (f & FASA_CPU_FEATURE_AVX512BF16);
    case FASA_CPU_NEON: return (f & FASA_CPU_FEATURE_NEON) != 0;
    default: return 0;
    }
}

FASA_API int fasa_cpu_best_level(void)
{
    static const int best_first[] = {FASA_CPU_AVX512_BF16, FASA_CPU_AVX512, FASA_CPU_AVX2,
                                     FASA_CPU_NEON};
    for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++)
        if (fasa__level_usable(best_first[i]))
            return best_first[i];
    return FASA_CPU_SCALAR;
}

/* Registry names: the function name without the "fasa__" prefix. */
typedef struct kernel_entry {
    const char *op;
    int level;
    const char *name;
} kernel_entry;

static const kernel_entry registry[] = {
#define FASA_KERNEL(op, level, fn, slot, type) {#op, level, &#fn[6]},
#include "kernels.def"
#undef FASA_KERNEL
};

/* Op names without a dtype suffix mean the f32 variant. */
static const char *canonical_op(const char *op)
{
    if (strcmp(op, "score_dims") == 0)
        return "score_dims_f32";
    if (strcmp(op, "score_labels") == 0)
        return "score_labels_f32";
    return op;
}

FASA_API const char *fasa_kernel_name(const char *op, int cpu_level)
{
    if (op == NULL)
        return NULL;
    op = canonical_op(op);
    for (int lv = fasa__level_resolve(cpu_level); lv >= 0; lv = fasa__level_parent(lv))
        for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
            if (registry[i].level == lv && strcmp(registry[i].op, op) == 0)
                return registry[i].name;
    return NULL;
}
