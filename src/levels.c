/*
 * levels.c - the level table of levels.def as data: parents, required
 * features, and the resolution of a requested level to one this CPU runs.
 * Reads the detected features from cpu.c; knows nothing of kernels.
 */
#include "internal.h"
#include "levels.h"

typedef struct level_info {
    int parent;
    uint32_t needs;
} level_info;

/* Ids are the array index: levels.def lists them as 0, 1, 2, ... and each
 * parent before its children (dispatch.c copies parents first). */
enum {
#define FASA_LEVEL(id, name, parent, arch, needs, keeps) ordinal_##name,
#include "levels.def"
#undef FASA_LEVEL
};
#define FASA_LEVEL(id, name, parent, arch, needs, keeps)                                   \
    _Static_assert((int)(id) == (int)ordinal_##name, "levels.def: " #name " out of order"); \
    _Static_assert((int)(parent) < (int)(id), "levels.def: parent of " #name " comes later"); \
    _Static_assert((parent) >= 0 || (needs) == 0, "levels.def: the root " #name " needs something");
#include "levels.def"
#undef FASA_LEVEL

static const level_info levels[FASA__N_LEVELS] = {
#define FASA_LEVEL(id, name, parent, arch, needs, keeps) {parent, needs},
#include "levels.def"
#undef FASA_LEVEL
};

static int in_range(int level) { return level >= 0 && level < FASA__N_LEVELS; }

int fasa__level_parent(int level) { return in_range(level) ? levels[level].parent : -1; }

int fasa__level_usable(int level)
{
    if (!in_range(level))
        return 0;
    uint32_t needs = levels[level].needs;
    return (fasa_cpu_features() & needs) == needs;
}

FASA_API int fasa_cpu_best_level(void)
{
    for (int lv = FASA__N_LEVELS - 1; lv > 0; lv--)
        if (fasa__level_usable(lv))
            return lv;
    return 0;
}

int fasa__level_resolve(int level)
{
    if (!in_range(level))
        return fasa_cpu_best_level(); /* FASA_CPU_AUTO or out of range */
    /* Walk down the chain of the requested level until this CPU (after the
     * FASA_CPU cap) supports it; the root needs nothing. */
    while (!fasa__level_usable(level))
        level = levels[level].parent;
    return level;
}
