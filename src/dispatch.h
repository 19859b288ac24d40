/*
 * dispatch.h - CPU level helpers shared by cpu.c and dispatch.c.
 */
#ifndef FASA_DISPATCH_H
#define FASA_DISPATCH_H

/* Parent of a level in the fallback chain (SCALAR <- AVX2 <- AVX512 <-
 * AVX512_BF16, SCALAR <- NEON); -1 for SCALAR. */
int fasa__level_parent(int level);

/* 1 when the CPU (after the FASA_CPU cap) has every feature of level. */
int fasa__level_usable(int level);

/* The level actually used for a request: FASA_CPU_AUTO or an out-of-range
 * value gives the best level; an unusable level falls down its chain. */
int fasa__level_resolve(int level);

#endif
