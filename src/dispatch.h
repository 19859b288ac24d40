/*
 * dispatch.h - the per-level kernel tables of dispatch.c (fasa__kernels_get,
 * declared in kernels.h) sit on the levels of levels.h; includers of this
 * header get both.
 */
#ifndef FASA_DISPATCH_H
#define FASA_DISPATCH_H

#include "levels.h"

#endif
