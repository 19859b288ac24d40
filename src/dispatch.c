/*
 * dispatch.c - the kernel table of every CPU level, built once from the
 * registry (kernels.def) and then read-only.
 *
 * A level's table is its parent's with the level's own registry lines laid
 * over it, so every slot is always filled (the SCALAR table holds the
 * references). The first caller builds all tables; concurrent first callers
 * wait on an atomic flag, so no table is ever read while being written.
 */
#include "internal.h"
#include "dispatch.h"

#include <stdatomic.h>

#define N_LEVELS 5 /* FASA_CPU_SCALAR .. FASA_CPU_NEON */

static fasa__kernels tables[N_LEVELS];
static atomic_int tables_state; /* 0 = not built, 1 = building, 2 = ready */

int fasa__level_parent(int level)
{
    switch (level) {
    case FASA_CPU_AVX2: return FASA_CPU_SCALAR;
    case FASA_CPU_AVX512: return FASA_CPU_AVX2;
    case FASA_CPU_AVX512_BF16: return FASA_CPU_AVX512;
    case FASA_CPU_NEON: return FASA_CPU_SCALAR;
    default: return -1;
    }
}

/* Parents before children, so a child copies a finished table. */
static void build_tables(void)
{
    static const int order[N_LEVELS] = {FASA_CPU_SCALAR, FASA_CPU_AVX2, FASA_CPU_AVX512,
                                        FASA_CPU_AVX512_BF16, FASA_CPU_NEON};
    for (int i = 0; i < N_LEVELS; i++) {
        int lv = order[i];
        fasa__kernels *t = &tables[lv];
        int parent = fasa__level_parent(lv);
        if (parent >= 0)
            *t = tables[parent];
        else
            memset(t, 0, sizeof *t);
#define FASA_KERNEL(op, level, fn, slot, type) \
    if ((level) == lv)                         \
        t->slot = fn;
#include "kernels.def"
#undef FASA_KERNEL
    }
}

int fasa__level_resolve(int level)
{
    int best = fasa_cpu_best_level();
    if (level == FASA_CPU_AUTO || level < FASA_CPU_AUTO || level >= N_LEVELS)
        return best;
    /* Walk down the chain of the requested level until this CPU (after the
     * FASA_CPU cap) supports it; SCALAR always qualifies. */
    while (level > FASA_CPU_SCALAR && !fasa__level_usable(level))
        level = fasa__level_parent(level);
    return level;
}

const fasa__kernels *fasa__kernels_get(int level)
{
    if (atomic_load_explicit(&tables_state, memory_order_acquire) != 2) {
        int expected = 0;
        if (atomic_compare_exchange_strong_explicit(&tables_state, &expected, 1,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            build_tables();
            atomic_store_explicit(&tables_state, 2, memory_order_release);
        } else {
            while (atomic_load_explicit(&tables_state, memory_order_acquire) != 2) {
            }
        }
    }
    return &tables[fasa__level_resolve(level)];
}
