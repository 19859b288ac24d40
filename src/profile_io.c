/*
 * profile_io.c - the binary profile format of docs/profile-format.md.
 *
 * Every field is written and read byte by byte in little-endian order, so
 * the format does not depend on the host's endianness, padding or struct
 * layout. The loader trusts nothing: it derives the exact file size from the
 * fixed header and compares it with the real size before it allocates
 * anything, so a small corrupt file cannot request a large allocation.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#define MAGIC "FASAPRF" /* plus its terminating NUL: 8 bytes */
#define MAGIC_SIZE 8
#define FORMAT_VERSION 1u
#define HEADER_SIZE 72u
#define FLAG_AGREEMENT 1u

/* ----------------------------------------------------------- CRC-32 */

/* IEEE 802.3 CRC-32 (reflected 0xEDB88320, as zlib), a nibble at a time:
 * a 16-entry constant table keeps it small and free of runtime init. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    static const uint32_t tab[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        c = (c >> 4) ^ tab[c & 15u];
        c = (c >> 4) ^ tab[c & 15u];
    }
    return c ^ 0xffffffffu;
}

/* -------------------------------------------------------------- sizes */

/* Byte counts of the sections after the header, from header fields only. */
typedef struct {
    size_t n_layers, n_q_heads, n_kv_heads, head_dim, n_k, max_fc;
    int has_agreement;
} layout_info;

/* Total file size for a layout; 0 on overflow. */
static size_t file_size_for(const layout_info *li)
{
    size_t rows, grows, agree = 0, fcs, gfcs, total = HEADER_SIZE, part;
    if (!fasa__mul_ok(li->n_layers, li->n_q_heads, &rows) ||
        !fasa__mul_ok(li->n_layers, li->n_kv_heads, &grows))
        return 0;
    if (li->has_agreement &&
        (!fasa__mul_ok(rows, li->n_k, &agree) || !fasa__mul_ok(agree, li->head_dim / 2, &agree) ||
         !fasa__mul_ok(agree, 4, &agree)))
        return 0;
    if (!fasa__mul_ok(rows, li->max_fc + 1, &fcs) || !fasa__mul_ok(fcs, 2, &fcs) ||
        !fasa__mul_ok(grows, li->max_fc + 1, &gfcs) || !fasa__mul_ok(gfcs, 2, &gfcs))
        return 0;
    if (!fasa__add_ok(total, 4 * li->n_k, &total) ||
        !fasa__mul_ok(li->n_layers, 9, &part) || /* u64 steps + u8 dense flag */
        !fasa__add_ok(total, part, &total) || !fasa__add_ok(total, agree, &total) ||
        !fasa__add_ok(total, fcs, &total) || !fasa__add_ok(total, gfcs, &total) ||
        !fasa__add_ok(total, 4, &total))
        return 0;
    return total;
}

/* ------------------------------------------------------------ writer */

typedef struct {
    uint8_t *p;
    size_t pos;
} writer;

static void put_u8(writer *w, unsigned v) { w->p[w->pos++] = (uint8_t)v; }
static void put_u16(writer *w, uint32_t v)
{
    put_u8(w, v & 0xffu);
    put_u8(w, (v >> 8) & 0xffu);
}
static void put_u32(writer *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        put_u8(w, (v >> (8 * i)) & 0xffu);
}
static void put_u64(writer *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        put_u8(w, (unsigned)((v >> (8 * i)) & 0xffu));
}

static layout_info layout_of(const fasa_profile *p)
{
    layout_info li = {p->shape.n_layers, p->shape.n_q_heads, p->shape.n_kv_heads,
                      p->shape.head_dim, p->n_k, p->max_fc, p->agreement != NULL};
    return li;
}

static void write_rows(writer *w, const uint32_t *count, const uint32_t *fcs, size_t rows,
                       size_t max_fc)
{
    for (size_t r = 0; r < rows; r++)
        put_u16(w, count[r]);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < max_fc; i++) /* padding past count is kept zero */
            put_u16(w, i < count[r] ? fcs[r * max_fc + i] : 0);
}

fasa_status fasa_profile_save_buffer(const fasa_profile *p, void *buf, size_t capacity,
                                     size_t *size)
{
    if (!p || !size)
        return FASA_ERR_NULL_POINTER;
    layout_info li = layout_of(p);
    size_t total = file_size_for(&li);
    if (total == 0)
        return FASA_ERR_OVERFLOW;
    if (!buf) {
        *size = total;
        return FASA_OK;
    }
    if (capacity < total)
        return FASA_ERR_BUFFER_TOO_SMALL;
    const fasa_model_shape *s = &p->shape;
    size_t L = s->n_layers, Hq = s->n_q_heads, Hkv = s->n_kv_heads;
    writer w = {buf, 0};
    for (size_t i = 0; i < MAGIC_SIZE; i++)
        put_u8(&w, (uint8_t)MAGIC[i]); /* MAGIC[7] is the NUL */
    put_u32(&w, FORMAT_VERSION);
    put_u32(&w, HEADER_SIZE);
    put_u64(&w, L);
    put_u64(&w, Hq);
    put_u64(&w, Hkv);
    put_u64(&w, s->head_dim);
    put_u32(&w, (uint32_t)s->pair_layout);
    put_u32(&w, p->agreement ? FLAG_AGREEMENT : 0);
    put_u32(&w, (uint32_t)p->n_k);
    put_u32(&w, p->selection_k);
    put_u32(&w, (uint32_t)p->max_fc);
    put_u32(&w, 0);
    for (size_t i = 0; i < p->n_k; i++)
        put_u32(&w, p->k_values[i]);
    for (size_t l = 0; l < L; l++)
        put_u64(&w, p->layer_steps ? p->layer_steps[l] : 0);
    if (p->agreement) {
        size_t n = L * p->n_k * Hq * p->n_fc_total;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &p->agreement[i], sizeof bits);
            put_u32(&w, bits);
        }
    }
    for (size_t l = 0; l < L; l++)
        put_u8(&w, p->dense[l] != 0);
    write_rows(&w, p->fc_count, p->fcs, L * Hq, p->max_fc);
    write_rows(&w, p->group_fc_count, p->group_fcs, L * Hkv, p->max_fc);
    put_u32(&w, crc32_ieee(buf, w.pos));
    *size = w.pos;
    return FASA_OK;
}

fasa_status fasa_profile_save(const fasa_profile *p, const char *path)
{
    if (!p || !path)
        return FASA_ERR_NULL_POINTER;
    size_t size;
    fasa_status st = fasa_profile_save_buffer(p, NULL, 0, &size);
    if (st != FASA_OK)
        return st;
    uint8_t *buf = malloc(size);
    if (!buf)
        return FASA_ERR_OUT_OF_MEMORY;
    st = fasa_profile_save_buffer(p, buf, size, &size);
    if (st == FASA_OK) {
        FILE *f = fopen(path, "wb");
        if (!f) {
            st = FASA_ERR_IO;
        } else {
            int ok = fwrite(buf, 1, size, f) == size;
            ok &= fclose(f) == 0;
            if (!ok)
                st = FASA_ERR_IO;
        }
    }
    free(buf);
    return st;
}

/* ------------------------------------------------------------ reader */

typedef struct {
    const uint8_t *p;
    size_t size;
    size_t pos;
    int bad; /* a read ran past the end: every later read returns 0 */
} reader;

static int need(reader *r, size_t n)
{
    if (r->bad || n > r->size - r->pos) {
        r->bad = 1;
        return 0;
    }
    return 1;
}
static uint32_t get_u8(reader *r) { return need(r, 1) ? r->p[r->pos++] : 0; }
static uint32_t get_u16(reader *r)
{
    if (!need(r, 2))
        return 0;
    uint32_t v = (uint32_t)r->p[r->pos] | (uint32_t)r->p[r->pos + 1] << 8;
    r->pos += 2;
    return v;
}
static uint32_t get_u32(reader *r)
{
    if (!need(r, 4))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[r->pos + (size_t)i] << (8 * i);
    r->pos += 4;
    return v;
}
static uint64_t get_u64(reader *r)
{
    if (!need(r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->pos + (size_t)i] << (8 * i);
    r->pos += 8;
    return v;
}

/* One table of rows: counts in 1..max_fc, FCs strictly ascending and
 * < n_fc_total, zero padding; *largest gets the largest count. */
static fasa_status read_rows(reader *r, size_t rows, size_t max_fc, size_t n_fc_total,
                             uint32_t *count, uint32_t *fcs, size_t *largest)
{
    for (size_t i = 0; i < rows; i++) {
        count[i] = get_u16(r);
        if (count[i] < 1 || count[i] > max_fc)
            return FASA_ERR_BAD_FILE;
        if (count[i] > *largest)
            *largest = count[i];
    }
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < max_fc; j++) {
            uint32_t v = get_u16(r);
            if (j >= count[i]) {
                if (v != 0)
                    return FASA_ERR_BAD_FILE;
            } else if (v >= n_fc_total || (j > 0 && v <= fcs[i * max_fc + j - 1])) {
                return FASA_ERR_BAD_FILE;
            }
            fcs[i * max_fc + j] = v;
        }
    return r->bad ? FASA_ERR_BAD_FILE : FASA_OK;
}

/* Header checks and the exact file size they imply (*expected), before
 * anything is allocated; needs only the first HEADER_SIZE bytes. */
static fasa_status parse_header(reader *r, fasa_model_shape *shape, layout_info *li,
                                uint32_t *selection_k, size_t *expected)
{
    if (r->size < MAGIC_SIZE || memcmp(r->p, MAGIC, MAGIC_SIZE) != 0)
        return FASA_ERR_BAD_FILE;
    r->pos = MAGIC_SIZE;
    uint32_t version = get_u32(r);
    if (r->bad)
        return FASA_ERR_BAD_FILE;
    if (version != FORMAT_VERSION)
        return FASA_ERR_BAD_VERSION;
    if (r->size < HEADER_SIZE || get_u32(r) != HEADER_SIZE)
        return FASA_ERR_BAD_FILE;
    uint64_t dims[4];
    for (int i = 0; i < 4; i++) {
        dims[i] = get_u64(r);
        if (dims[i] > SIZE_MAX)
            return FASA_ERR_BAD_FILE;
    }
    uint32_t layout = get_u32(r), flags = get_u32(r), n_k = get_u32(r);
    *selection_k = get_u32(r);
    uint32_t max_fc = get_u32(r), reserved = get_u32(r);
    if (r->bad || reserved != 0 || (flags & ~FLAG_AGREEMENT) != 0 || layout > INT32_MAX)
        return FASA_ERR_BAD_FILE;
    memset(shape, 0, sizeof *shape);
    shape->struct_size = sizeof *shape;
    shape->n_layers = (size_t)dims[0];
    shape->n_q_heads = (size_t)dims[1];
    shape->n_kv_heads = (size_t)dims[2];
    shape->head_dim = (size_t)dims[3];
    shape->pair_layout = (int32_t)layout;
    if (fasa__shape_check(NULL, shape) != FASA_OK)
        return FASA_ERR_BAD_FILE;
    int has_agreement = (flags & FLAG_AGREEMENT) != 0;
    /* Agreement data and K values come together (calibrated profiles);
     * profiles built from lists have neither and selection_k 0. */
    if (n_k > FASA_MAX_K_VALUES || (n_k > 0) != has_agreement ||
        (!has_agreement && *selection_k != 0))
        return FASA_ERR_BAD_FILE;
    if (max_fc < 1 || max_fc > shape->head_dim / 2)
        return FASA_ERR_BAD_FILE;
    layout_info l = {shape->n_layers, shape->n_q_heads, shape->n_kv_heads, shape->head_dim,
                     n_k, max_fc, has_agreement};
    *expected = file_size_for(&l);
    if (*expected == 0)
        return FASA_ERR_BAD_FILE;
    *li = l;
    return FASA_OK;
}

static fasa_status parse_body(reader *r, const layout_info *li, uint32_t selection_k,
                              fasa_profile *p)
{
    size_t L = li->n_layers, Hq = li->n_q_heads, Hkv = li->n_kv_heads, nfc = li->head_dim / 2;
    int sel_found = !li->has_agreement;
    for (size_t i = 0; i < li->n_k; i++) {
        p->k_values[i] = get_u32(r);
        if (p->k_values[i] < 1 || (i > 0 && p->k_values[i] <= p->k_values[i - 1]))
            return FASA_ERR_BAD_FILE;
        sel_found |= p->k_values[i] == selection_k;
    }
    if (!sel_found)
        return FASA_ERR_BAD_FILE;
    p->selection_k = selection_k;
    for (size_t l = 0; l < L; l++) {
        p->layer_steps[l] = get_u64(r);
        /* a calibrated layer has at least one step, a list profile none */
        if ((p->layer_steps[l] != 0) != li->has_agreement)
            return FASA_ERR_BAD_FILE;
    }
    if (li->has_agreement) {
        size_t n = L * li->n_k * Hq * nfc;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = get_u32(r);
            float v;
            memcpy(&v, &bits, sizeof v);
            if (!(v >= 0.0f && v <= 1.0f)) /* also rejects NaN */
                return FASA_ERR_BAD_FILE;
            p->agreement[i] = v;
        }
    }
    for (size_t l = 0; l < L; l++) {
        uint32_t d = get_u8(r);
        if (d > 1)
            return FASA_ERR_BAD_FILE;
        p->dense[l] = (uint8_t)d;
    }
    size_t largest = 0;
    if (read_rows(r, L * Hq, li->max_fc, nfc, p->fc_count, p->fcs, &largest) != FASA_OK ||
        read_rows(r, L * Hkv, li->max_fc, nfc, p->group_fc_count, p->group_fcs, &largest) !=
            FASA_OK)
        return FASA_ERR_BAD_FILE;
    if (largest != li->max_fc) /* max_fc is defined as the largest set */
        return FASA_ERR_BAD_FILE;
    get_u32(r); /* the CRC, checked before parsing */
    return r->bad || r->pos != r->size ? FASA_ERR_BAD_FILE : FASA_OK;
}

fasa_status fasa_profile_load_buffer(const void *buf, size_t size, fasa_profile **out)
{
    if (!buf || !out)
        return FASA_ERR_NULL_POINTER;
    reader r = {buf, size, 0, 0};
    fasa_model_shape shape;
    layout_info li;
    uint32_t selection_k;
    size_t expected;
    fasa_status st = parse_header(&r, &shape, &li, &selection_k, &expected);
    if (st != FASA_OK)
        return st;
    if (expected != size) /* truncated or trailing bytes */
        return FASA_ERR_BAD_FILE;
    uint32_t stored = (uint32_t)r.p[size - 4] | (uint32_t)r.p[size - 3] << 8 |
                      (uint32_t)r.p[size - 2] << 16 | (uint32_t)r.p[size - 1] << 24;
    if (crc32_ieee(r.p, size - 4) != stored)
        return FASA_ERR_CHECKSUM;
    fasa_profile *p;
    st = fasa__profile_alloc(NULL, &shape, li.n_k, li.has_agreement, li.max_fc, &p);
    if (st != FASA_OK)
        return st;
    st = parse_body(&r, &li, selection_k, p);
    if (st != FASA_OK) {
        fasa_profile_destroy(p);
        return st;
    }
    *out = p;
    return FASA_OK;
}

fasa_status fasa_profile_load(const char *path, fasa_profile **out)
{
    if (!path || !out)
        return FASA_ERR_NULL_POINTER;
    FILE *f = fopen(path, "rb");
    if (!f)
        return FASA_ERR_IO;
    /* Read with a growing buffer (works for pipes; no size is trusted before
     * the data is there), but never more than the header allows plus one
     * byte, which is enough to report trailing data: a huge or endless
     * input (/dev/zero) stops after the header. */
    size_t cap = 4096, size = 0, limit = HEADER_SIZE;
    int header_done = 0;
    uint8_t *buf = malloc(cap);
    fasa_status st = buf ? FASA_OK : FASA_ERR_OUT_OF_MEMORY;
    while (st == FASA_OK && size < limit) {
        if (size == cap) {
            uint8_t *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                st = FASA_ERR_OUT_OF_MEMORY;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t want = cap - size < limit - size ? cap - size : limit - size;
        size_t n = fread(buf + size, 1, want, f);
        size += n;
        if (n == 0) {
            if (ferror(f))
                st = FASA_ERR_IO;
            break;
        }
        if (!header_done && size >= HEADER_SIZE) {
            reader r = {buf, size, 0, 0};
            fasa_model_shape shape;
            layout_info li;
            uint32_t sel;
            size_t expected;
            header_done = 1;
            if (parse_header(&r, &shape, &li, &sel, &expected) == FASA_OK &&
                expected < SIZE_MAX)
                limit = expected + 1;
        }
    }
    fclose(f);
    if (st == FASA_OK)
        st = fasa_profile_load_buffer(buf, size, out);
    free(buf);
    return st;
}
