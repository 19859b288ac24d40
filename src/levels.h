/*
 * levels.h - the CPU kernel levels of levels.def: count, names, parents,
 * whether this CPU can run one, and which one a request resolves to.
 */
#ifndef FASA_LEVELS_H
#define FASA_LEVELS_H

#include <stdint.h>

enum {
#define FASA_LEVEL(id, name, parent, arch, needs, keeps) +1
    FASA__N_LEVELS = 0
#include "levels.def"
#undef FASA_LEVEL
};

/* Name of a level ("scalar", "avx2", ...); NULL outside 0 .. N_LEVELS-1. */
const char *fasa__level_name(int level);

/* Parent of a level in its fallback chain; -1 for the root (SCALAR). */
int fasa__level_parent(int level);

/* Feature bits a level needs; 0 for an unknown level. */
uint32_t fasa__level_needs(int level);

/* 1 when the CPU (after the FASA_CPU cap) has every feature of level. */
int fasa__level_usable(int level);

/* The level actually used for a request: FASA_CPU_AUTO or an out-of-range
 * value gives the best level; an unusable level falls down its chain. */
int fasa__level_resolve(int level);

#endif
