/*
 * levels.h - the CPU kernel levels of levels.def: count, parents, whether
 * this CPU can run one, and which one a request resolves to.
 */
#ifndef FASA_LEVELS_H
#define FASA_LEVELS_H

enum {
#define FASA_LEVEL(id, name, parent, arch, needs, keeps) +1
    FASA__N_LEVELS = 0
#include "levels.def"
#undef FASA_LEVEL
};

/* Parent of a level in its fallback chain; -1 for the root (SCALAR). */
int fasa__level_parent(int level);

/* 1 when the CPU (after the FASA_CPU cap) has every feature of level. */
int fasa__level_usable(int level);

/* The level actually used for a request: FASA_CPU_AUTO or an out-of-range
 * value gives the best level; an unusable level falls down its chain. */
int fasa__level_resolve(int level);

#endif
