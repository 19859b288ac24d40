/*
 * test_profile.c - profiles through the public API: creation from FC lists
 * (validation, vote rule), accessors, describe, and the binary format of
 * docs/profile-format.md (bit-identical round trips; truncated, flipped,
 * re-checksummed, oversized and misplaced input must fail cleanly).
 */
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* util.h's CHECK_STATUS evaluates its argument several times; calls that
 * allocate go through this single-evaluation form. */
static int check_st_(fasa_status got, fasa_status want, int line, const char *expr)
{
    return test_check_(got == want, __FILE__, line, expr, "got %s (%d), want %s",
                       fasa_status_name(got), (int)got, fasa_status_name(want));
}
#define CHECK_ST(call, want) check_st_((call), (want), __LINE__, #call)

static fasa_model_shape make_shape(size_t L, size_t Hq, size_t Hkv, size_t d, int layout)
{
    fasa_model_shape s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.n_layers = L;
    s.n_q_heads = Hq;
    s.n_kv_heads = Hkv;
    s.head_dim = d;
    s.pair_layout = layout;
    return s;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Serialize into a fresh buffer (NULL on failure). */
static uint8_t *save(const fasa_profile *p, size_t *n)
{
    size_t size = 0;
    if (fasa_profile_save_buffer(p, NULL, 0, &size) != FASA_OK || size == 0)
        return NULL;
    uint8_t *b = test_xmalloc(size);
    size_t got = 0;
    if (fasa_profile_save_buffer(p, b, size, &got) != FASA_OK || got != size) {
        free(b);
        return NULL;
    }
    *n = size;
    return b;
}

/* Independent bitwise CRC-32 (IEEE, reflected), to forge intact-CRC files. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}
static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void fix_crc(uint8_t *b, size_t n) { put_le(b + n - 4, crc32_bitwise(b, n - 4), 4); }

/* Section offsets as docs/profile-format.md defines them. */
typedef struct {
    size_t L, Hq, Hkv, d, n_k, max_fc, has_agreement;
    size_t k_values, steps, agreement, dense, fc_count, fcs, gcount, gfcs, crc, total;
} file_map;

static file_map map_file(const uint8_t *b)
{
    file_map m;
    m.L = (size_t)get_le(b + 16, 8);
    m.Hq = (size_t)get_le(b + 24, 8);
    m.Hkv = (size_t)get_le(b + 32, 8);
    m.d = (size_t)get_le(b + 40, 8);
    m.has_agreement = get_le(b + 52, 4) & 1u;
    m.n_k = (size_t)get_le(b + 56, 4);
    m.max_fc = (size_t)get_le(b + 64, 4);
    m.k_values = 72;
    m.steps = m.k_values + 4 * m.n_k;
    m.agreement = m.steps + 8 * m.L;
    m.dense = m.agreement + (m.has_agreement ? 4 * m.L * m.n_k * m.Hq * (m.d / 2) : 0);
    m.fc_count = m.dense + m.L;
    m.fcs = m.fc_count + 2 * m.L * m.Hq;
    m.gcount = m.fcs + 2 * m.L * m.Hq * m.max_fc;
    m.gfcs = m.gcount + 2 * m.L * m.Hkv;
    m.crc = m.gfcs + 2 * m.L * m.Hkv * m.max_fc;
    m.total = m.crc + 4;
    return m;
}

/* A small calibrated profile from random keys (through the public API). */
static fasa_profile *calibrated_profile(size_t L, size_t Hq, size_t Hkv, size_t d, int layout)
{
    fasa_calib_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    cfg.shape = make_shape(L, Hq, Hkv, d, layout);
    cfg.n_k = 2;
    cfg.k_values[0] = 4;
    cfg.k_values[1] = 12;
    fasa_calibrator *cal = NULL;
    if (fasa_calibrator_create(&cfg, &cal) != FASA_OK)
        return NULL;
    size_t t = 30;
    float *q = test_xmalloc(Hq * d * sizeof(float)), *k = test_xmalloc(t * Hkv * d * sizeof(float));
    fasa_view qv, kv;
    fasa_view_make(&qv, q, FASA_DTYPE_F32, 1, Hq, d, Hq * d, d);
    fasa_view_make(&kv, k, FASA_DTYPE_F32, t, Hkv, d, Hkv * d, d);
    fasa_status st = FASA_OK;
    for (size_t l = 0; l < L; l++)
        for (int step = 0; step < 2; step++) {
            for (size_t i = 0; i < Hq * d; i++)
                q[i] = (float)test_rand_normal();
            for (size_t i = 0; i < t * Hkv * d; i++)
                k[i] = (float)test_rand_normal();
            if (st == FASA_OK)
                st = fasa_calibrator_add_step(cal, NULL, l, &qv, &kv);
        }
    fasa_select_options o;
    fasa_select_options_default(&o);
    o.n_fc = 3;
    fasa_profile *p = NULL;
    if (st == FASA_OK)
        st = fasa_calibrator_finish(cal, &o, &p);
    CHECK_ST(st, FASA_OK);
    fasa_calibrator_destroy(cal);
    free(q);
    free(k);
    return st == FASA_OK ? p : NULL;
}

/* ------------------------------------------------- create + accessors */

static void test_create_and_accessors(void)
{
    size_t L = 3, Hq = 6, Hkv = 2, d = 16, nfc = 4;
    fasa_model_shape s = make_shape(L, Hq, Hkv, d, FASA_PAIRS_HALF);
    uint32_t *fcs = test_random_fcs(L, Hq, nfc, d);
    fasa_profile *p = NULL;
    fasa_status st = fasa_profile_create(&s, fcs, nfc, NULL, &p);
    if (!CHECK_ST(st, FASA_OK)) {
        free(fcs);
        return;
    }
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_ST(fasa_profile_get_info(p, &info), FASA_OK);
    CHECK(info.shape.n_layers == L && info.shape.n_q_heads == Hq && info.shape.n_kv_heads == Hkv &&
          info.shape.head_dim == d && info.shape.pair_layout == FASA_PAIRS_HALF);
    CHECK(info.n_k == 0 && info.n_steps == 0 && info.has_agreement == 0 && info.selection_k == 0);
    CHECKF(info.max_fc == nfc, "max_fc %zu", info.max_fc);
    info.struct_size = 3;
    CHECK_ST(fasa_profile_get_info(p, &info), FASA_ERR_INVALID_ARGUMENT);
    CHECK_ST(fasa_profile_get_info(NULL, &info), FASA_ERR_NULL_POINTER);

    uint32_t kv[4] = {7, 7, 7, 7};
    CHECK_ST(fasa_profile_get_k_values(p, kv, 4), FASA_OK);
    CHECK(kv[0] == 7); /* n_k = 0: nothing written */
    float agr[64];
    CHECK_ST(fasa_profile_get_agreement(p, 0, 0, agr, 64), FASA_ERR_BAD_STATE);

    uint32_t row[16], want[16];
    size_t n;
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < Hq; h++) {
            memcpy(want, fcs + (l * Hq + h) * nfc, nfc * sizeof(uint32_t));
            qsort(want, nfc, sizeof(uint32_t), cmp_u32);
            n = 0;
            st = fasa_profile_get_fcs(p, l, FASA_GQA_PER_HEAD, h, row, 16, &n);
            CHECK_ST(st, FASA_OK);
            CHECKF(n == nfc && memcmp(row, want, nfc * sizeof(uint32_t)) == 0,
                   "layer %zu head %zu: stored set differs from the sorted input", l, h);
        }
    /* vote rule: an independent O(n^2) count over the group's heads */
    size_t G = Hq / Hkv;
    for (size_t l = 0; l < L; l++)
        for (size_t g = 0; g < Hkv; g++) {
            unsigned votes[8] = {0};
            int taken[8] = {0};
            for (size_t h = g * G; h < (g + 1) * G; h++)
                for (size_t i = 0; i < nfc; i++)
                    votes[fcs[(l * Hq + h) * nfc + i]]++;
            for (size_t i = 0; i < nfc; i++) {
                int best = -1;
                for (int f = 0; f < 8; f++)
                    if (!taken[f] && (best < 0 || votes[f] > votes[best]))
                        best = f;
                taken[best] = 1;
            }
            size_t m = 0;
            for (int f = 0; f < 8; f++)
                if (taken[f])
                    want[m++] = (uint32_t)f;
            st = fasa_profile_get_fcs(p, l, FASA_GQA_GROUP_SHARED, g, row, 16, &n);
            CHECK_ST(st, FASA_OK);
            CHECKF(n == nfc && memcmp(row, want, nfc * sizeof(uint32_t)) == 0,
                   "layer %zu group %zu: vote result differs", l, g);
        }
    /* accessor argument errors; outputs untouched */
    n = 99;
    CHECK_ST(fasa_profile_get_fcs(p, L, FASA_GQA_PER_HEAD, 0, row, 16, &n), FASA_ERR_BAD_INDEX);
    CHECK_ST(fasa_profile_get_fcs(p, 0, FASA_GQA_PER_HEAD, Hq, row, 16, &n), FASA_ERR_BAD_INDEX);
    CHECK_ST(fasa_profile_get_fcs(p, 0, FASA_GQA_GROUP_SHARED, Hkv, row, 16, &n),
                 FASA_ERR_BAD_INDEX);
    CHECK_ST(fasa_profile_get_fcs(p, 0, (fasa_gqa_mode)5, 0, row, 16, &n),
                 FASA_ERR_INVALID_ARGUMENT);
    CHECK_ST(fasa_profile_get_fcs(p, 0, FASA_GQA_PER_HEAD, 0, row, nfc - 1, &n),
                 FASA_ERR_BUFFER_TOO_SMALL);
    CHECK_ST(fasa_profile_get_fcs(p, 0, FASA_GQA_PER_HEAD, 0, NULL, 16, &n),
                 FASA_ERR_NULL_POINTER);
    CHECK(n == 99);

    /* dense layers: {0} by default, settable */
    int dense = -1;
    for (size_t l = 0; l < L; l++) {
        CHECK_ST(fasa_profile_get_dense_layer(p, l, &dense), FASA_OK);
        CHECKF(dense == (l == 0), "layer %zu dense %d", l, dense);
    }
    CHECK_ST(fasa_profile_set_dense_layer(p, 0, 0), FASA_OK);
    CHECK_ST(fasa_profile_set_dense_layer(p, 2, 5), FASA_OK);
    CHECK_ST(fasa_profile_get_dense_layer(p, 0, &dense), FASA_OK);
    CHECK(dense == 0);
    CHECK_ST(fasa_profile_get_dense_layer(p, 2, &dense), FASA_OK);
    CHECK(dense == 1);
    CHECK_ST(fasa_profile_get_dense_layer(p, L, &dense), FASA_ERR_BAD_INDEX);
    CHECK_ST(fasa_profile_set_dense_layer(p, L, 1), FASA_ERR_BAD_INDEX);

    /* clone: equal bytes, independent object */
    fasa_profile *c = NULL;
    CHECK_ST(fasa_profile_clone(p, &c), FASA_OK);
    size_t n1 = 0, n2 = 0;
    uint8_t *b1 = save(p, &n1), *b2 = c ? save(c, &n2) : NULL;
    CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
    CHECK_ST(fasa_profile_set_dense_layer(c, 1, 1), FASA_OK);
    CHECK_ST(fasa_profile_get_dense_layer(p, 1, &dense), FASA_OK);
    CHECK(dense == 0);
    free(b1);
    free(b2);
    fasa_profile_destroy(c);
    fasa_profile_destroy(p);
    fasa_profile_destroy(NULL);

    /* explicit group lists are stored sorted */
    uint32_t hf[2 * 2 * 2] = {3, 1, 0, 2, 2, 3, 1, 0};
    uint32_t gf[2 * 1 * 2] = {2, 0, 3, 1};
    fasa_model_shape s2 = make_shape(2, 2, 1, 8, FASA_PAIRS_ADJACENT);
    CHECK_ST(fasa_profile_create(&s2, hf, 2, gf, &p), FASA_OK);
    if (p) {
        CHECK_ST(fasa_profile_get_fcs(p, 0, FASA_GQA_GROUP_SHARED, 0, row, 2, &n), FASA_OK);
        CHECK(n == 2 && row[0] == 0 && row[1] == 2);
        CHECK_ST(fasa_profile_get_fcs(p, 1, FASA_GQA_GROUP_SHARED, 0, row, 2, &n), FASA_OK);
        CHECK(n == 2 && row[0] == 1 && row[1] == 3);
        CHECK_ST(fasa_profile_get_fcs(p, 1, FASA_GQA_PER_HEAD, 1, row, 2, &n), FASA_OK);
        CHECK(n == 2 && row[0] == 0 && row[1] == 1);
        fasa_profile_destroy(p);
    }
    /* hand-made vote: heads {0,1},{1,2},{1,3},{2,3} of one group -> 1 (3
     * votes), then 2 and 3 tie with 2 votes -> 2 */
    uint32_t hv[4 * 2] = {0, 1, 1, 2, 3, 1, 2, 3};
    fasa_model_shape s3 = make_shape(1, 4, 1, 8, FASA_PAIRS_INTERLEAVED);
    CHECK_ST(fasa_profile_create(&s3, hv, 2, NULL, &p), FASA_OK);
    if (p) {
        CHECK_ST(fasa_profile_get_fcs(p, 0, FASA_GQA_GROUP_SHARED, 0, row, 2, &n), FASA_OK);
        CHECKF(n == 2 && row[0] == 1 && row[1] == 2, "vote gave %u %u", row[0], row[1]);
        fasa_profile_destroy(p);
    }
    free(fcs);
}

static void test_create_errors(void)
{
    uint32_t fcs[64];
    for (int i = 0; i < 64; i++)
        fcs[i] = (uint32_t)(i % 4);
    fasa_profile *sentinel = (fasa_profile *)&fcs[0], *p = sentinel;
    fasa_model_shape good = make_shape(2, 4, 2, 8, FASA_PAIRS_INTERLEAVED), s;
    CHECK_ST(fasa_profile_create(NULL, fcs, 4, NULL, &p), FASA_ERR_NULL_POINTER);
    CHECK_ST(fasa_profile_create(&good, NULL, 4, NULL, &p), FASA_ERR_NULL_POINTER);
    CHECK_ST(fasa_profile_create(&good, fcs, 4, NULL, NULL), FASA_ERR_NULL_POINTER);
    s = good;
    s.struct_size = 8;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    s = good;
    s.n_layers = 0;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_ZERO_SIZE);
    s = good;
    s.n_kv_heads = 0;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_ZERO_SIZE);
    s = good;
    s.n_kv_heads = 3;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_BAD_SHAPE);
    s = good;
    s.head_dim = 7;
    CHECK_ST(fasa_profile_create(&s, fcs, 3, NULL, &p), FASA_ERR_BAD_SHAPE);
    s = good;
    s.head_dim = 8194;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_BAD_SHAPE);
    s = good;
    s.pair_layout = 3;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    s = good;
    s.pair_layout = -1;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    s = good;
    s.reserved = 1;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    s = good;
    s.n_layers = SIZE_MAX / 2;
    CHECK_ST(fasa_profile_create(&s, fcs, 4, NULL, &p), FASA_ERR_OVERFLOW);
    CHECK_ST(fasa_profile_create(&good, fcs, 0, NULL, &p), FASA_ERR_ZERO_SIZE);
    CHECK_ST(fasa_profile_create(&good, fcs, 5, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    /* an FC out of range / repeated in one row (layer 1, head 2) */
    uint32_t bad[2 * 4 * 2];
    for (int i = 0; i < 16; i++)
        bad[i] = (uint32_t)(i % 2 ? 3 : 1);
    bad[(1 * 4 + 2) * 2 + 1] = 4;
    CHECK_ST(fasa_profile_create(&good, bad, 2, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    bad[(1 * 4 + 2) * 2 + 1] = 1;
    CHECK_ST(fasa_profile_create(&good, bad, 2, NULL, &p), FASA_ERR_INVALID_ARGUMENT);
    bad[(1 * 4 + 2) * 2 + 1] = 3;
    CHECK_ST(fasa_profile_create(&good, bad, 2, NULL, &p), FASA_OK);
    if (p != sentinel)
        fasa_profile_destroy(p);
    p = sentinel;
    uint32_t gbad[2 * 2 * 2] = {0, 1, 0, 1, 0, 1, 2, 2};
    CHECK_ST(fasa_profile_create(&good, bad, 2, gbad, &p), FASA_ERR_INVALID_ARGUMENT);
    gbad[7] = 9;
    CHECK_ST(fasa_profile_create(&good, bad, 2, gbad, &p), FASA_ERR_INVALID_ARGUMENT);
    CHECK(p == sentinel);
}

/* ---------------------------------------------------------- describe */

static int contains(const char *text, const char *needle) { return strstr(text, needle) != NULL; }

static void check_describe(const fasa_profile *p, int calibrated)
{
    size_t len = 0, len2 = 0;
    CHECK_ST(fasa_profile_describe(p, NULL, 0, &len), FASA_OK);
    CHECK(len > 0);
    char *text = test_xmalloc(len + 1);
    CHECK_ST(fasa_profile_describe(p, text, len + 1, &len2), FASA_OK);
    CHECK(len2 == len && strlen(text) == len);
    fasa_profile_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    fasa_profile_get_info(p, &info);
    const fasa_model_shape *s = &info.shape;
    char line[512];
    snprintf(line, sizeof line, "head_dim %zu", s->head_dim);
    CHECK(contains(text, line));
    const char *lay = s->pair_layout == FASA_PAIRS_HALF        ? "HALF"
                      : s->pair_layout == FASA_PAIRS_ADJACENT ? "ADJACENT"
                                                               : "INTERLEAVED";
    CHECK(contains(text, lay));
    for (size_t l = 0; l < s->n_layers; l++) {
        for (size_t h = 0; h < s->n_q_heads + s->n_kv_heads; h++) {
            int grp = h >= s->n_q_heads;
            size_t hh = grp ? h - s->n_q_heads : h, n;
            uint32_t row[64];
            fasa_profile_get_fcs(p, l, grp ? FASA_GQA_GROUP_SHARED : FASA_GQA_PER_HEAD, hh, row,
                                 64, &n);
            int k = grp ? snprintf(line, sizeof line, "  group %zu fcs:", hh)
                        : snprintf(line, sizeof line, "  head %zu (kv %zu) fcs:", hh,
                                   hh * s->n_kv_heads / s->n_q_heads);
            for (size_t i = 0; i < n; i++)
                k += snprintf(line + k, sizeof line - (size_t)k, " %u", (unsigned)row[i]);
            snprintf(line + k, sizeof line - (size_t)k, "\n");
            /* the layer header precedes its rows */
            char hdr[64];
            snprintf(hdr, sizeof hdr, "layer %zu", l);
            const char *at = strstr(text, hdr);
            CHECKF(at && strstr(at, line), "describe lacks '%s' after '%s'", line, hdr);
        }
    }
    if (calibrated) {
        uint32_t ks[16];
        fasa_profile_get_k_values(p, ks, 16);
        snprintf(line, sizeof line, "K values: %u %u", ks[0], ks[1]);
        CHECK(contains(text, line));
        CHECK(contains(text, " ca@"));
    }
    /* truncation: snprintf-like */
    char small[12];
    memset(small, 'x', sizeof small);
    CHECK_ST(fasa_profile_describe(p, small, 10, &len2), FASA_OK);
    CHECK(len2 == len && small[9] == '\0' && strlen(small) == 9 && small[10] == 'x');
    CHECK(memcmp(small, text, 9) == 0);
    CHECK_ST(fasa_profile_describe(p, NULL, 0, NULL), FASA_ERR_NULL_POINTER);
    free(text);
}

/* --------------------------------------------------------- round trip */

static void check_round_trip(const fasa_profile *p, const char *dir)
{
    size_t n = 0, n2 = 0;
    uint8_t *b = save(p, &n);
    if (!CHECK(b != NULL))
        return;
    CHECK(memcmp(b, "FASAPRF\0", 8) == 0);
    file_map m = map_file(b);
    CHECKF(m.total == n, "documented layout gives %zu bytes, file has %zu", m.total, n);
    CHECK(get_le(b + n - 4, 4) == crc32_bitwise(b, n - 4));
    uint8_t small[16];
    size_t untouched = 12345;
    CHECK_ST(fasa_profile_save_buffer(p, small, sizeof small, &untouched),
                 FASA_ERR_BUFFER_TOO_SMALL);
    CHECK(untouched == 12345);
    fasa_profile *q = NULL;
    CHECK_ST(fasa_profile_load_buffer(b, n, &q), FASA_OK);
    uint8_t *b2 = q ? save(q, &n2) : NULL;
    CHECK(b2 && n2 == n && memcmp(b, b2, n) == 0);
    /* load accessors agree with the original */
    fasa_profile_info i1, i2;
    memset(&i1, 0, sizeof i1);
    memset(&i2, 0, sizeof i2);
    i1.struct_size = i2.struct_size = sizeof i1;
    fasa_profile_get_info(p, &i1);
    if (q) {
        fasa_profile_get_info(q, &i2);
        CHECK(memcmp(&i1, &i2, sizeof i1) == 0);
        if (i1.has_agreement) {
            size_t cnt = i1.shape.n_q_heads * i1.shape.head_dim / 2;
            float *a1 = test_xmalloc(cnt * sizeof(float)), *a2 = test_xmalloc(cnt * sizeof(float));
            for (size_t l = 0; l < i1.shape.n_layers; l++)
                for (size_t k = 0; k < i1.n_k; k++) {
                    fasa_profile_get_agreement(p, l, k, a1, cnt);
                    CHECK_ST(fasa_profile_get_agreement(q, l, k, a2, cnt), FASA_OK);
                    CHECK(memcmp(a1, a2, cnt * sizeof(float)) == 0);
                }
            free(a1);
            free(a2);
        }
    }
    fasa_profile_destroy(q);
    q = NULL;
    /* through a file */
    char path[512];
    snprintf(path, sizeof path, "%s/p.fasaprof", dir);
    CHECK_ST(fasa_profile_save(p, path), FASA_OK);
    FILE *f = fopen(path, "rb");
    uint8_t *fb = test_xmalloc(n + 16);
    size_t got = f ? fread(fb, 1, n + 16, f) : 0;
    if (f)
        fclose(f);
    CHECK(got == n && memcmp(fb, b, n) == 0);
    CHECK_ST(fasa_profile_load(path, &q), FASA_OK);
    free(b2);
    b2 = q ? save(q, &n2) : NULL;
    CHECK(b2 && n2 == n && memcmp(b, b2, n) == 0);
    fasa_profile_destroy(q);
    remove(path);
    free(fb);
    free(b2);
    free(b);
}

/* ---------------------------------------------------------- corruption */

/* load must fail with `want` (or any error when want == FASA_OK) and leave
 * *out untouched. */
static fasa_status load_fails(const uint8_t *b, size_t n)
{
    fasa_profile *sentinel = (fasa_profile *)(uintptr_t)0x10, *q = sentinel;
    fasa_status st = fasa_profile_load_buffer(b, n, &q);
    if (st == FASA_OK && q != sentinel)
        fasa_profile_destroy(q);
    else
        CHECK(q == sentinel);
    return st;
}

static void check_corruption(const fasa_profile *p, int all_bits)
{
    size_t n = 0;
    uint8_t *b = save(p, &n);
    if (!CHECK(b != NULL))
        return;
    /* every truncation (an exact copy, so reads past the end are caught by
     * ASan when the tests run under it) */
    size_t accepted = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *t = test_xmalloc(len);
        memcpy(t, b, len);
        accepted += load_fails(t, len) == FASA_OK;
        free(t);
    }
    CHECKF(accepted == 0, "%zu truncated files accepted", accepted);
    /* every flipped byte / bit */
    size_t checksum = 0, total = 0;
    accepted = 0;
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < (all_bits ? 8 : 1); bit++) {
            uint8_t mask = all_bits ? (uint8_t)(1u << bit) : 0xff;
            b[i] ^= mask;
            fasa_status st = load_fails(b, n);
            b[i] ^= mask;
            accepted += st == FASA_OK;
            checksum += st == FASA_ERR_CHECKSUM;
            total++;
        }
    CHECKF(accepted == 0, "%zu flipped files accepted", accepted);
    CHECKF(checksum * 2 > total, "only %zu of %zu flips gave FASA_ERR_CHECKSUM", checksum, total);
    test_note("%zu-byte profile: %zu of %zu flips -> FASA_ERR_CHECKSUM, rest other errors", n,
              checksum, total);
    free(b);
}

/* Mutate one field, fix the CRC, expect `want`. */
#define FORGE(what, want, ...)                                                           \
    do {                                                                                 \
        memcpy(w, b, n);                                                                 \
        __VA_ARGS__;                                                                     \
        fix_crc(w, n);                                                                   \
        fasa_status st_ = load_fails(w, n);                                              \
        CHECKF(st_ == (want), "%s: got %s", what, fasa_status_name(st_));                \
    } while (0)

static void check_forged(const fasa_profile *p)
{
    size_t n = 0;
    uint8_t *b = save(p, &n);
    if (!CHECK(b != NULL))
        return;
    file_map m = map_file(b);
    uint8_t *w = test_xmalloc(n + 64);
    size_t nfc = m.d / 2;
    FORGE("control", FASA_OK, (void)0);
    FORGE("magic", FASA_ERR_BAD_FILE, w[3] = 'X');
    FORGE("version 2", FASA_ERR_BAD_VERSION, put_le(w + 8, 2, 4));
    FORGE("version 0", FASA_ERR_BAD_VERSION, put_le(w + 8, 0, 4));
    FORGE("header size", FASA_ERR_BAD_FILE, put_le(w + 12, 80, 4));
    FORGE("n_layers 0", FASA_ERR_BAD_FILE, put_le(w + 16, 0, 8));
    FORGE("n_layers huge", FASA_ERR_BAD_FILE, put_le(w + 16, (uint64_t)1 << 40, 8));
    FORGE("n_layers max", FASA_ERR_BAD_FILE, put_le(w + 16, UINT64_MAX, 8));
    FORGE("n_q_heads huge", FASA_ERR_BAD_FILE, put_le(w + 24, (uint64_t)1 << 33, 8));
    FORGE("kv heads not dividing", FASA_ERR_BAD_FILE, put_le(w + 32, 3, 8));
    FORGE("head_dim odd", FASA_ERR_BAD_FILE, put_le(w + 40, m.d + 1, 8));
    FORGE("head_dim huge", FASA_ERR_BAD_FILE, put_le(w + 40, 1u << 20, 8));
    FORGE("layout", FASA_ERR_BAD_FILE, put_le(w + 48, 3, 4));
    FORGE("flags", FASA_ERR_BAD_FILE, w[52] ^= 2);
    FORGE("agreement flag", FASA_ERR_BAD_FILE, w[52] ^= 1);
    FORGE("n_k 17", FASA_ERR_BAD_FILE, put_le(w + 56, 17, 4));
    FORGE("n_k huge", FASA_ERR_BAD_FILE, put_le(w + 56, 0xffffffffu, 4));
    FORGE("max_fc 0", FASA_ERR_BAD_FILE, put_le(w + 64, 0, 4));
    FORGE("max_fc huge", FASA_ERR_BAD_FILE, put_le(w + 64, 0xffffu, 4));
    FORGE("reserved", FASA_ERR_BAD_FILE, w[68] = 1);
    FORGE("dense flag 2", FASA_ERR_BAD_FILE, w[m.dense] = 2);
    FORGE("count 0", FASA_ERR_BAD_FILE, put_le(w + m.fc_count, 0, 2));
    FORGE("count > max_fc", FASA_ERR_BAD_FILE, put_le(w + m.fc_count, m.max_fc + 1, 2));
    FORGE("group count 0", FASA_ERR_BAD_FILE, put_le(w + m.gcount + 2, 0, 2));
    FORGE("FC >= head_dim/2", FASA_ERR_BAD_FILE, put_le(w + m.fcs + 2 * (m.max_fc - 1), nfc, 2));
    FORGE("group FC huge", FASA_ERR_BAD_FILE, put_le(w + m.gfcs, 0xffff, 2));
    FORGE("FCs not ascending", FASA_ERR_BAD_FILE, {
        uint64_t a = get_le(w + m.fcs, 2), c = get_le(w + m.fcs + 2, 2);
        put_le(w + m.fcs, c, 2);
        put_le(w + m.fcs + 2, a, 2);
    });
    FORGE("FC repeated", FASA_ERR_BAD_FILE, put_le(w + m.fcs + 2, get_le(w + m.fcs, 2), 2));
    if (m.max_fc >= 2) {
        /* a shorter row must keep zero padding */
        FORGE("padding", FASA_ERR_BAD_FILE, {
            put_le(w + m.fc_count, 1, 2);
            put_le(w + m.fcs + 2, 5, 2);
        });
    }
    /* trailing bytes, with and without a CRC that covers them */
    {
        memcpy(w, b, n);
        memset(w + n, 0, 8);
        put_le(w + n + 4, crc32_bitwise(w, n + 4), 4);
        CHECK_ST(load_fails(w, n + 8), FASA_ERR_BAD_FILE);
        memcpy(w, b, n);
        w[n] = 0;
        CHECK_ST(load_fails(w, n + 1), FASA_ERR_BAD_FILE);
    }
    if (m.has_agreement) {
        FORGE("K not ascending", FASA_ERR_BAD_FILE, put_le(w + m.k_values + 4, 1, 4));
        FORGE("K zero", FASA_ERR_BAD_FILE, put_le(w + m.k_values, 0, 4));
        FORGE("selection K not calibrated", FASA_ERR_BAD_FILE, put_le(w + 60, 999999, 4));
        FORGE("layer without steps", FASA_ERR_BAD_FILE, put_le(w + m.steps + 8, 0, 8));
        float bad_vals[4] = {NAN, INFINITY, 1.5f, -0.25f};
        for (int i = 0; i < 4; i++)
            FORGE("agreement value", FASA_ERR_BAD_FILE, {
                uint32_t bits;
                memcpy(&bits, &bad_vals[i], 4);
                put_le(w + m.agreement + 4 * 7, bits, 4);
            });
        FORGE("agreement 1.0 is valid", FASA_OK, put_le(w + m.agreement, 0x3f800000u, 4));
    } else {
        FORGE("selection K without agreement", FASA_ERR_BAD_FILE, put_le(w + 60, 4, 4));
        FORGE("steps without agreement", FASA_ERR_BAD_FILE, put_le(w + m.steps, 1, 8));
    }
    /* max_fc above every set size (rows re-padded), and as a control the
     * same layout made valid by growing row 0 by one FC */
    for (int valid = 0; valid < 2; valid++) {
        size_t rows = m.L * m.Hq, grows = m.L * m.Hkv, n2 = n + 2 * (rows + grows);
        uint8_t *x = test_xmalloc(n2);
        memcpy(x, b, m.fcs);
        put_le(x + 64, m.max_fc + 1, 4);
        size_t o = m.fcs;
        for (size_t r = 0; r < rows; r++, o += 2 * (m.max_fc + 1)) {
            memcpy(x + o, b + m.fcs + 2 * r * m.max_fc, 2 * m.max_fc);
            put_le(x + o + 2 * m.max_fc, 0, 2);
        }
        memcpy(x + o, b + m.gcount, 2 * grows);
        o += 2 * grows;
        for (size_t r = 0; r < grows; r++, o += 2 * (m.max_fc + 1)) {
            memcpy(x + o, b + m.gfcs + 2 * r * m.max_fc, 2 * m.max_fc);
            put_le(x + o + 2 * m.max_fc, 0, 2);
        }
        CHECK(o + 4 == n2);
        if (valid && m.max_fc < nfc) {
            uint32_t row[64];
            for (size_t i = 0; i < m.max_fc; i++)
                row[i] = (uint32_t)get_le(x + m.fcs + 2 * i, 2);
            uint32_t extra = 0;
            for (int again = 1; again;) {
                again = 0;
                for (size_t i = 0; i < m.max_fc; i++)
                    if (row[i] == extra) {
                        extra++;
                        again = 1;
                    }
            }
            row[m.max_fc] = extra;
            qsort(row, m.max_fc + 1, sizeof(uint32_t), cmp_u32);
            for (size_t i = 0; i <= m.max_fc; i++)
                put_le(x + m.fcs + 2 * i, row[i], 2);
            put_le(x + m.fc_count, m.max_fc + 1, 2);
        }
        fix_crc(x, n2);
        fasa_status st = load_fails(x, n2);
        CHECKF(st == (valid ? FASA_OK : FASA_ERR_BAD_FILE), "max_fc above every set (valid %d): %s",
               valid, fasa_status_name(st));
        free(x);
    }
    /* a CRC mismatch alone */
    memcpy(w, b, n);
    w[n - 1] ^= 0x40;
    CHECK_ST(load_fails(w, n), FASA_ERR_CHECKSUM);
    free(w);
    free(b);
}

static void test_files(const char *dir)
{
    fasa_profile *p = NULL;
    CHECK_ST(fasa_profile_load("/nonexistent-dir-fasa/none.prof", &p), FASA_ERR_IO);
    char path[512];
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK_ST(fasa_profile_load(path, &p), FASA_ERR_IO);
    CHECK_ST(fasa_profile_load(dir, &p), FASA_ERR_IO); /* a directory */
    snprintf(path, sizeof path, "%s/empty", dir);
    FILE *f = fopen(path, "wb");
    if (f)
        fclose(f);
    CHECK_ST(fasa_profile_load(path, &p), FASA_ERR_BAD_FILE);
    remove(path);
    uint8_t one = 0;
    CHECK_ST(fasa_profile_load_buffer(&one, 0, &p), FASA_ERR_BAD_FILE);
    CHECK_ST(fasa_profile_load_buffer(NULL, 10, &p), FASA_ERR_NULL_POINTER);
    CHECK(p == NULL);
    uint32_t fcs[2] = {0, 1};
    fasa_model_shape s = make_shape(1, 1, 1, 4, FASA_PAIRS_INTERLEAVED);
    CHECK_ST(fasa_profile_create(&s, fcs, 2, NULL, &p), FASA_OK);
    /* files: trailing garbage, truncation, an endless stream */
    size_t n = 0;
    uint8_t *b = save(p, &n);
    snprintf(path, sizeof path, "%s/t.prof", dir);
    for (int variant = 0; variant < 3 && b; variant++) {
        f = fopen(path, "wb");
        if (!f)
            break;
        size_t len = variant == 0 ? n : variant == 1 ? n - 1 : 71;
        fwrite(b, 1, len, f);
        if (variant == 0)
            fwrite("x", 1, 1, f);
        fclose(f);
        fasa_profile *q = NULL;
        CHECK_ST(fasa_profile_load(path, &q), FASA_ERR_BAD_FILE);
        CHECK(q == NULL);
    }
    remove(path);
    free(b);
    f = fopen("/dev/zero", "rb");
    if (f) {
        fclose(f);
        fasa_profile *q = NULL;
        CHECK_ST(fasa_profile_load("/dev/zero", &q), FASA_ERR_BAD_FILE);
    }
    snprintf(path, sizeof path, "%s/no/such/dir/x.prof", dir);
    CHECK_ST(fasa_profile_save(p, path), FASA_ERR_IO);
    CHECK_ST(fasa_profile_save(p, NULL), FASA_ERR_NULL_POINTER);
    fasa_profile_destroy(p);
}

int main(void)
{
    test_init("test_profile");
    char dir[] = "/tmp/fasa_test_profile_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_create_and_accessors();
    test_create_errors();

    /* list profile and calibrated profiles, every layout, GQA and MHA */
    size_t L = 2, Hq = 4, Hkv = 2, d = 16;
    uint32_t *fcs = test_random_fcs(L, Hq, 3, d);
    fasa_model_shape s = make_shape(L, Hq, Hkv, d, FASA_PAIRS_INTERLEAVED);
    fasa_profile *lp = NULL;
    CHECK_ST(fasa_profile_create(&s, fcs, 3, NULL, &lp), FASA_OK);
    free(fcs);
    if (lp) {
        fasa_profile_set_dense_layer(lp, 1, 1);
        check_describe(lp, 0);
        check_round_trip(lp, dir);
        check_corruption(lp, 1);
        check_forged(lp);
        fasa_profile_destroy(lp);
    }
    for (int layout = 0; layout < 3; layout++) {
        fasa_profile *cp = calibrated_profile(2, layout == 1 ? 2 : 4, 2, 8 + 4 * (size_t)layout,
                                              layout);
        if (!CHECK(cp != NULL))
            continue;
        check_describe(cp, 1);
        check_round_trip(cp, dir);
        if (layout == 0) {
            check_corruption(cp, 0);
            check_forged(cp);
        }
        fasa_profile_destroy(cp);
    }
    test_files(dir);
    rmdir(dir);
    return test_summary();
}
