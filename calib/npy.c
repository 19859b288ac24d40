/*
 * npy.c - .npy header parser and file mapping for fasa-calib.
 *
 * The header is a Python dict literal; only the three keys NumPy itself
 * writes are accepted, so a file that parses here means what it says.
 */
#include "npy.h"

#include "fasa.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes (none of the valid values has any). */
static int parse_str(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap)
            return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    out[n] = '\0';
    return 0;
}

static int parse_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

static int parse_size(cursor *c, size_t *out)
{
    skip_ws(c);
    size_t v = 0;
    int any = 0;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
        size_t digit = (size_t)(*c->p - '0');
        if (v > (SIZE_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
        c->p++;
        any = 1;
    }
    if (c->p < c->end && *c->p == 'L') /* Python 2 longs in old files */
        c->p++;
    if (!any)
        return -1;
    *out = v;
    return 0;
}

static int parse_shape(cursor *c, calib_npy *a, char *err, size_t err_size)
{
    if (!accept(c, '(')) {
        snprintf(err, err_size, "header field 'shape': expected a tuple");
        return -1;
    }
    a->ndim = 0;
    if (accept(c, ')'))
        return 0;
    for (;;) {
        size_t v;
        if (parse_size(c, &v) != 0) {
            snprintf(err, err_size, "header field 'shape': expected a non-negative integer");
            return -1;
        }
        if (a->ndim == CALIB_NPY_MAX_DIMS) {
            snprintf(err, err_size, "header field 'shape': more than %d dimensions",
                     CALIB_NPY_MAX_DIMS);
            return -1;
        }
        a->shape[a->ndim++] = v;
        if (accept(c, ')'))
            return 0;
        if (!accept(c, ',')) {
            snprintf(err, err_size, "header field 'shape': expected ',' or ')'");
            return -1;
        }
        if (accept(c, ')'))
            return 0;
    }
}

static int dtype_from_descr(const char *d, calib_npy *a)
{
    if (strcmp(d, "<f4") == 0) {
        a->dtype = FASA_DTYPE_F32;
        a->elem_size = 4;
    } else if (strcmp(d, "<f2") == 0) {
        a->dtype = FASA_DTYPE_F16;
        a->elem_size = 2;
    } else if (strcmp(d, "<V2") == 0 || strcmp(d, "|V2") == 0 || strcmp(d, "bfloat16") == 0 ||
               strcmp(d, "<bfloat16") == 0) {
        a->dtype = FASA_DTYPE_BF16;
        a->elem_size = 2;
    } else {
        return -1;
    }
    return 0;
}

int calib_npy_parse(const unsigned char *buf, size_t size, calib_npy *a, size_t *data_offset,
                    char *err, size_t err_size)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < 10 || memcmp(buf, magic, 6) != 0) {
        snprintf(err, err_size, "bad magic: not a .npy file (expected \\x93NUMPY, %zu bytes)",
                 size);
        return -1;
    }
    unsigned major = buf[6], minor = buf[7];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) {
            snprintf(err, err_size, "truncated header (%zu bytes)", size);
            return -1;
        }
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
               (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        snprintf(err, err_size, "unsupported .npy format version %u.%u (expected 1.0, 2.0 or 3.0)",
                 major, minor);
        return -1;
    }
    if (hlen > size - hstart) {
        snprintf(err, err_size, "truncated header: header length %zu but only %zu bytes follow",
                 hlen, size - hstart);
        return -1;
    }

    cursor c = {(const char *)buf + hstart, (const char *)buf + hstart + hlen};
    char descr[32] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    if (!accept(&c, '{')) {
        snprintf(err, err_size, "bad header: expected a '{' dict literal");
        return -1;
    }
    while (!accept(&c, '}')) {
        char key[32];
        if (parse_str(&c, key, sizeof key) != 0 || !accept(&c, ':')) {
            snprintf(err, err_size, "bad header: expected 'key': value");
            return -1;
        }
        if (strcmp(key, "descr") == 0) {
            if (parse_str(&c, descr, sizeof descr) != 0) {
                snprintf(err, err_size, "header field 'descr': expected a simple dtype string "
                                        "(structured dtypes are not supported)");
                return -1;
            }
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "True"))
                fortran = 1;
            else if (!parse_word(&c, "False")) {
                snprintf(err, err_size, "header field 'fortran_order': expected True or False");
                return -1;
            }
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&c, a, err, err_size) != 0)
                return -1;
            have_shape = 1;
        } else {
            snprintf(err, err_size, "bad header: unexpected key '%s'", key);
            return -1;
        }
        if (!accept(&c, ',')) {
            if (!accept(&c, '}')) {
                snprintf(err, err_size, "bad header: expected ',' or '}'");
                return -1;
            }
            break;
        }
    }
    if (!have_descr || !have_fortran || !have_shape) {
        snprintf(err, err_size, "bad header: missing field '%s'",
                 !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
        return -1;
    }
    if (dtype_from_descr(descr, a) != 0) {
        snprintf(err, err_size,
                 "unsupported dtype '%s' (expected '<f4' float32, '<f2' float16, "
                 "or bfloat16 as '<V2'/'|V2'/'bfloat16')",
                 descr);
        return -1;
    }
    if (fortran) {
        snprintf(err, err_size, "fortran_order is True (expected C order; save with "
                                "np.ascontiguousarray)");
        return -1;
    }

    size_t n = 1;
    for (size_t i = 0; i < a->ndim; i++) {
        if (a->shape[i] != 0 && n > SIZE_MAX / a->shape[i]) {
            snprintf(err, err_size, "shape too large");
            return -1;
        }
        n *= a->shape[i];
    }
    if (n > SIZE_MAX / a->elem_size) {
        snprintf(err, err_size, "shape too large");
        return -1;
    }
    size_t off = hstart + hlen, have = size - off, want = n * a->elem_size;
    if (have < want) {
        snprintf(err, err_size, "truncated data: shape and dtype need %zu bytes, file has %zu",
                 want, have);
        return -1;
    }
    if (have > want) {
        snprintf(err, err_size, "%zu unexpected trailing bytes after %zu bytes of data",
                 have - want, want);
        return -1;
    }
    a->n_elems = n;
    *data_offset = off;
    return 0;
}

int calib_npy_open(calib_npy *a, const char *path, char *err, size_t err_size)
{
    memset(a, 0, sizeof *a);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        snprintf(err, err_size, "%s: empty file (bad magic: not a .npy file)", path);
        close(fd);
        return -1;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(err, err_size, "%s: cannot map: %s", path, strerror(errno));
        return -1;
    }
    a->map = map;
    a->map_size = size;

    char why[256];
    size_t off;
    if (calib_npy_parse(map, size, a, &off, why, sizeof why) != 0) {
        snprintf(err, err_size, "%s: %s", path, why);
        calib_npy_close(a);
        return -1;
    }
    const unsigned char *data = (const unsigned char *)map + off;
    if (off % a->elem_size != 0) {
        /* Files NumPy writes pad the header to 64 bytes, so this copy only
         * happens for hand-made files; views need element alignment. */
        void *copy = malloc(a->n_elems * a->elem_size + 1);
        if (!copy) {
            snprintf(err, err_size, "%s: out of memory", path);
            calib_npy_close(a);
            return -1;
        }
        memcpy(copy, data, a->n_elems * a->elem_size);
        munmap(a->map, a->map_size);
        a->map = copy;
        a->map_is_heap = 1;
        data = copy;
    }
    a->data = data;
    return 0;
}

void calib_npy_close(calib_npy *a)
{
    if (a->map) {
        if (a->map_is_heap)
            free(a->map);
        else
            munmap(a->map, a->map_size);
    }
    memset(a, 0, sizeof *a);
}

const char *calib_npy_shape_str(const calib_npy *a, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "[");
    for (size_t i = 0; i < a->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%zu", i ? ", " : "", a->shape[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}
