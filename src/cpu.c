/*
 * cpu.c - CPU feature detection (placeholder: reports the scalar level only;
 * replaced by real CPUID/XGETBV and getauxval detection).
 */
#include "internal.h"

FASA_API uint32_t fasa_cpu_features(void) { return 0; }

FASA_API int fasa_cpu_best_level(void) { return FASA_CPU_SCALAR; }

FASA_API const char *fasa_kernel_name(const char *op, int cpu_level)
{
    (void)cpu_level;
    if (op == NULL)
        return NULL;
    if (strcmp(op, "attn") == 0)
        return "attn_ref";
    if (strcmp(op, "topk") == 0)
        return "topk_ref";
    if (strcmp(op, "score_dims") == 0)
        return "score_dims_ref";
    return NULL;
}
