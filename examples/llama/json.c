/* json.c - see json.h. Recursive descent with an explicit depth limit. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    char *s;
    size_t n, pos;
    json_doc *doc;
    size_t cap;
    char *err;
    size_t err_cap;
} parser;

static int fail(parser *p, const char *what)
{
    snprintf(p->err, p->err_cap, "JSON error at byte %zu: %s", p->pos, what);
    return -1;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                             p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static long new_node(parser *p)
{
    if (p->doc->n_nodes == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        json_node *nn = realloc(p->doc->nodes, cap * sizeof *nn);
        if (!nn)
            return -1;
        p->doc->nodes = nn;
        p->cap = cap;
    }
    memset(&p->doc->nodes[p->doc->n_nodes], 0, sizeof(json_node));
    return (long)p->doc->n_nodes++;
}

static int hex4(parser *p, unsigned *out)
{
    unsigned v = 0;
    if (p->pos + 4 > p->n)
        return fail(p, "truncated \\u escape");
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "bad \\u escape");
    }
    *out = v;
    return 0;
}

/* Decodes in place: the output never grows past the input it consumed. */
static int parse_string(parser *p, const char **str, size_t *len)
{
    if (p->pos >= p->n || p->s[p->pos] != '"')
        return fail(p, "expected string");
    p->pos++;
    char *out = p->s + p->pos, *w = out;
    for (;;) {
        if (p->pos >= p->n)
            return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, "control character in string");
        if (c != '\\') {
            *w++ = (char)c;
            continue;
        }
        if (p->pos >= p->n)
            return fail(p, "unterminated escape");
        char e = p->s[p->pos++];
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp))
                return -1;
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (p->pos + 2 > p->n || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return fail(p, "lone high surrogate");
                p->pos += 2;
                if (hex4(p, &lo))
                    return -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, "bad low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                return fail(p, "lone low surrogate");
            }
            /* \uXXXX takes 6 input bytes, UTF-8 at most 4: in-place is safe. */
            if (cp < 0x80) {
                *w++ = (char)cp;
            } else if (cp < 0x800) {
                *w++ = (char)(0xC0 | (cp >> 6));
                *w++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *w++ = (char)(0xE0 | (cp >> 12));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *w++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *w++ = (char)(0xF0 | (cp >> 18));
                *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *w++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return fail(p, "bad escape");
        }
    }
    *str = out;
    *len = (size_t)(w - out);
    return 0;
}

static int parse_value(parser *p, long idx, int depth);

static int parse_container(parser *p, long idx, int depth, int is_obj)
{
    char close = is_obj ? '}' : ']';
    p->pos++;
    skip_ws(p);
    long prev = -1;
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(p);
        if (is_obj) {
            if (parse_string(p, &key, &key_len))
                return -1;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':')
                return fail(p, "expected ':'");
            p->pos++;
            skip_ws(p);
        }
        long c = new_node(p);
        if (c < 0)
            return fail(p, "out of memory");
        p->doc->nodes[c].key = key;
        p->doc->nodes[c].key_len = key_len;
        if (prev < 0)
            p->doc->nodes[idx].first = (size_t)c;
        else
            p->doc->nodes[prev].next = (size_t)c;
        p->doc->nodes[idx].n_children++;
        if (parse_value(p, c, depth + 1))
            return -1;
        prev = c;
        skip_ws(p);
        if (p->pos >= p->n)
            return fail(p, "unterminated container");
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        return fail(p, "expected ',' or closing bracket");
    }
}

static int parse_value(parser *p, long idx, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return fail(p, "nesting too deep");
    skip_ws(p);
    if (p->pos >= p->n)
        return fail(p, "unexpected end");
    char c = p->s[p->pos];
    json_node *nd = &p->doc->nodes[idx];
    if (c == '{' || c == '[') {
        nd->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
        return parse_container(p, idx, depth, c == '{');
    }
    if (c == '"') {
        const char *s;
        size_t l;
        if (parse_string(p, &s, &l))
            return -1;
        nd = &p->doc->nodes[idx];
        nd->type = JSON_STRING;
        nd->str = s;
        nd->len = l;
        return 0;
    }
    if (!strncmp(p->s + p->pos, "true", 4) && p->pos + 4 <= p->n) {
        nd->type = JSON_BOOL; nd->number = 1; p->pos += 4; return 0;
    }
    if (!strncmp(p->s + p->pos, "false", 5) && p->pos + 5 <= p->n) {
        nd->type = JSON_BOOL; nd->number = 0; p->pos += 5; return 0;
    }
    if (!strncmp(p->s + p->pos, "null", 4) && p->pos + 4 <= p->n) {
        nd->type = JSON_NULL; p->pos += 4; return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        /* strtod stops at the first non-number byte; the text is NUL-ended. */
        char *end;
        double v = strtod(p->s + p->pos, &end);
        if (end == p->s + p->pos || !isfinite(v))
            return fail(p, "bad number");
        p->pos = (size_t)(end - p->s);
        nd->type = JSON_NUMBER;
        nd->number = v;
        return 0;
    }
    return fail(p, "unexpected character");
}

int json_parse(json_doc *doc, const char *text, size_t len, char *err, size_t err_cap)
{
    memset(doc, 0, sizeof *doc);
    doc->text = malloc(len + 1);
    if (!doc->text) {
        snprintf(err, err_cap, "out of memory");
        return -1;
    }
    memcpy(doc->text, text, len);
    doc->text[len] = 0;
    parser p = {doc->text, len, 0, doc, 0, err, err_cap};
    long root = new_node(&p);
    if (root < 0 || parse_value(&p, root, 0)) {
        if (root < 0)
            snprintf(err, err_cap, "out of memory");
        json_free(doc);
        return -1;
    }
    skip_ws(&p);
    if (p.pos != p.n) {
        fail(&p, "trailing data");
        json_free(doc);
        return -1;
    }
    return 0;
}

void json_free(json_doc *doc)
{
    free(doc->nodes);
    free(doc->text);
    memset(doc, 0, sizeof *doc);
}

const json_node *json_root(const json_doc *doc) { return &doc->nodes[0]; }

const json_node *json_first(const json_doc *doc, const json_node *node)
{
    if (!node || (node->type != JSON_ARRAY && node->type != JSON_OBJECT) || !node->n_children)
        return NULL;
    return &doc->nodes[node->first];
}

const json_node *json_next(const json_doc *doc, const json_node *node)
{
    return node->next ? &doc->nodes[node->next] : NULL;
}

const json_node *json_child(const json_doc *doc, const json_node *node, size_t i)
{
    const json_node *c = json_first(doc, node);
    while (c && i--)
        c = json_next(doc, c);
    return c;
}

const json_node *json_get(const json_doc *doc, const json_node *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (const json_node *c = json_first(doc, obj); c; c = json_next(doc, c))
        if (c->key_len == kl && !memcmp(c->key, key, kl))
            return c;
    return NULL;
}

int json_get_num(const json_doc *doc, const json_node *obj, const char *key, double *out)
{
    const json_node *n = json_get(doc, obj, key);
    if (!n || n->type != JSON_NUMBER)
        return -1;
    *out = n->number;
    return 0;
}

int json_get_int(const json_doc *doc, const json_node *obj, const char *key, long long *out)
{
    double v;
    if (json_get_num(doc, obj, key, &v) || v != floor(v) || fabs(v) > 9007199254740992.0)
        return -1;
    *out = (long long)v;
    return 0;
}

char *json_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)n + 1);
            if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            }
            if (buf) {
                buf[n] = 0;
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return buf;
}

int json_load(json_doc *doc, const char *path, char *err, size_t cap)
{
    size_t len;
    char *text = json_read_file(path, &len);
    if (!text) {
        snprintf(err, cap, "%s: cannot read", path);
        return JSON_LOAD_NOFILE;
    }
    char jerr[200];
    int rc = json_parse(doc, text, len, jerr, sizeof jerr);
    free(text);
    if (rc) {
        snprintf(err, cap, "%s: %s", path, jerr);
        return -1;
    }
    return 0;
}
