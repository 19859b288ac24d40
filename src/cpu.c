/*
 * cpu.c - CPU feature detection and the FASA_CPU cap. Knows the levels only
 * through the data of levels.def (the cap masks), nothing of kernels.
 *
 * Features are detected once into an atomic word whose KNOWN bit tells a
 * finished detection from "not yet"; detection is idempotent, so racing
 * first callers just store the same value (no lock).
 * x86: CPUID for the instruction sets and XGETBV for the OS having enabled
 * the registers (YMM: XCR0 & 6; ZMM and opmask: XCR0 & 0xE6).
 * AArch64: Advanced SIMD is architectural; fp16 / bf16 from getauxval.
 */
#include "internal.h"

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

/* FASA_CPU=<level name> keeps only the feature bits of that level
 * (levels.def); an unknown value caps nothing. */
static uint32_t env_mask(void)
{
    const char *e = getenv("FASA_CPU");
    if (e == NULL || *e == '\0')
        return ~0u;
#define FASA_LEVEL(id, name, parent, arch, needs, keeps) \
    if (strcmp(e, #name) == 0)                           \
        return (keeps);
#include "levels.def"
#undef FASA_LEVEL
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
