/*
 * tokenizer.c - byte-level BPE decoding. GPT-2's byte-level alphabet maps
 * every byte to a printable code point (bytes that are printable Latin-1
 * map to themselves, the rest to 256 + n in byte order); decoding a piece
 * maps each code point of its vocabulary string back to that byte.
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static int printable_byte(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* code point -> byte, or -1 if not part of the alphabet */
static void build_unmap(int unmap[512])
{
    for (int i = 0; i < 512; i++)
        unmap[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        if (printable_byte(b))
            unmap[b] = b;
        else
            unmap[256 + n++] = b;
    }
}

/* Decode one UTF-8 code point; returns bytes consumed or 0 if invalid. */
static size_t utf8_cp(const unsigned char *s, size_t n, unsigned *cp)
{
    if (n >= 1 && s[0] < 0x80) { *cp = s[0]; return 1; }
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) { *cp = (unsigned)(s[0] & 0x1F) << 6 | (s[1] & 0x3F); return 2; }
    if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        *cp = (unsigned)(s[0] & 0x0F) << 12 | (unsigned)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    return 0;
}

static int set_piece(llama_tokenizer *t, long long id, const char *s, size_t n, int raw,
                     const int unmap[512])
{
    if (id < 0 || id >= t->vocab)
        return 0; /* ids past the model's vocabulary are never produced */
    char *out = malloc(n + 1);
    if (!out)
        return -1;
    size_t w = 0;
    if (raw) {
        memcpy(out, s, n);
        w = n;
    } else {
        for (size_t i = 0; i < n;) {
            unsigned cp;
            size_t k = utf8_cp((const unsigned char *)s + i, n - i, &cp);
            if (!k || cp >= 512 || unmap[cp] < 0) {
                free(out);
                return -2;
            }
            out[w++] = (char)unmap[cp];
            i += k;
        }
    }
    out[w] = 0;
    free(t->piece[id]);
    t->piece[id] = out;
    t->len[id] = w;
    return 0;
}

int tokenizer_load(llama_tokenizer *t, const char *path, int vocab, char *err, size_t cap)
{
    memset(t, 0, sizeof *t);
    json_doc d;
    if (json_load(&d, path, err, cap))
        return -1;
    const json_node *model = json_get(&d, json_root(&d), "model");
    const json_node *vmap = json_get(&d, model, "vocab");
    if (!vmap || vmap->type != JSON_OBJECT) {
        snprintf(err, cap, "%s: no model.vocab object", path);
        json_free(&d);
        return -1;
    }
    t->vocab = vocab;
    t->piece = calloc((size_t)vocab, sizeof(char *));
    t->len = calloc((size_t)vocab, sizeof(size_t));
    int unmap[512];
    build_unmap(unmap);
    int rc = (t->piece && t->len) ? 0 : -1;
    for (const json_node *e = json_first(&d, vmap); e && !rc; e = json_next(&d, e)) {
        if (e->type != JSON_NUMBER) {
            rc = -2;
            break;
        }
        rc = set_piece(t, (long long)e->number, e->key, e->key_len, 0, unmap);
    }
    /* Special tokens are emitted verbatim. */
    const json_node *added = json_get(&d, json_root(&d), "added_tokens");
    for (const json_node *a = json_first(&d, added); a && !rc; a = json_next(&d, a)) {
        long long id;
        const json_node *content = json_get(&d, a, "content");
        if (!json_get_int(&d, a, "id", &id) && content && content->type == JSON_STRING)
            rc = set_piece(t, id, content->str, content->len, 1, unmap);
    }
    json_free(&d);
    if (rc) {
        snprintf(err, cap, "%s: %s", path,
                 rc == -2 ? "vocabulary entry outside the byte-level alphabet" : "out of memory");
        tokenizer_free(t);
        return -1;
    }
    return 0;
}

void tokenizer_free(llama_tokenizer *t)
{
    for (int i = 0; t->piece && i < t->vocab; i++)
        free(t->piece[i]);
    free(t->piece);
    free(t->len);
    memset(t, 0, sizeof *t);
}

const char *tokenizer_piece(const llama_tokenizer *t, int id, size_t *len)
{
    if (id < 0 || id >= t->vocab || !t->piece[id]) {
        *len = 0;
        return "";
    }
    *len = t->len[id];
    return t->piece[id];
}
