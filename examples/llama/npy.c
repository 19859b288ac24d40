/* npy.c - see npy.h. Header padded so the data starts 64-byte aligned. */
#include "npy.h"

#include <stdio.h>
#include <string.h>

int npy_write_f32(const char *path, const float *data, const size_t *shape, int ndim)
{
    char dict[256], sh[160] = "";
    size_t n = 1, used = 0;
    for (int i = 0; i < ndim; i++) {
        used += (size_t)snprintf(sh + used, sizeof sh - used, "%zu,%s", shape[i],
                                 (ndim > 1 && i + 1 < ndim) ? " " : "");
        n *= shape[i];
    }
    if (ndim > 1 && used > 0 && sh[used - 1] == ',')
        sh[--used] = 0; /* (a, b) has no trailing comma; (a,) keeps it */
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                      sh);
    size_t hlen = 10 + (size_t)dl + 1, pad = (64 - hlen % 64) % 64;
    size_t total = (size_t)dl + pad + 1;
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(total & 0xFF),
                             (unsigned char)(total >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)dl, f) == (size_t)dl;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    /* Little-endian hosts only (x86-64, AArch64): the bytes are already <f4. */
    ok = ok && fwrite(data, sizeof(float), n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}
