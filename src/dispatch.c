/*
 * dispatch.c - the kernel table of every CPU level, built once from the
 * registry (kernels.def) over the levels of levels.def, then read-only; and
 * the kernel names fasa_kernel_name reports from the same registry.
 *
 * A level's table is its parent's with the level's own registry lines laid
 * over it, so every slot is always filled (the root table holds the
 * references). The first caller builds all tables; concurrent first callers
 * wait on an atomic flag, so no table is ever read while being written.
 */
#include "internal.h"
#include "dispatch.h"

#include <stdatomic.h>

static fasa__kernels tables[FASA__N_LEVELS];
static atomic_int tables_state; /* 0 = not built, 1 = building, 2 = ready */

/* Parents come first in levels.def, so a child copies a finished table. */
static void build_tables(void)
{
    for (int lv = 0; lv < FASA__N_LEVELS; lv++) {
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
