/*
 * json.h - a small purpose JSON reader for model metadata (safetensors
 * headers, config.json, the shard index, tokenizer.json).
 *
 * The whole document is parsed into one node array; strings are decoded to
 * UTF-8 in place of the source copy. Depth and size are bounded so hostile
 * input fails with a message instead of exhausting the stack.
 */
#ifndef LLAMA_JSON_H
#define LLAMA_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_node {
    json_type type;
    double number;     /* JSON_NUMBER, JSON_BOOL (0/1)                  */
    const char *str;   /* JSON_STRING value; for object members: key    */
    size_t len;        /* string length in bytes                        */
    const char *key;   /* member name when the parent is an object      */
    size_t key_len;
    size_t n_children; /* arrays and objects                            */
    size_t first;      /* index of the first child; children are chained */
    size_t next;       /* index of the next sibling, 0 = none            */
} json_node;

typedef struct json_doc {
    json_node *nodes;
    size_t n_nodes;
    char *text; /* private copy; decoded strings point into it */
} json_doc;

/* Parse text[len]; returns 0 on success, else -1 with a message in err. */
int json_parse(json_doc *doc, const char *text, size_t len, char *err, size_t err_cap);
void json_free(json_doc *doc);

/* Root node (index 0). */
const json_node *json_root(const json_doc *doc);
/* Member of an object by key, NULL if absent or not an object. */
const json_node *json_get(const json_doc *doc, const json_node *obj, const char *key);
/* i-th child of an array/object, NULL past the end. */
const json_node *json_child(const json_doc *doc, const json_node *node, size_t i);
/* First child / next sibling iteration (NULL at the end). */
const json_node *json_first(const json_doc *doc, const json_node *node);
const json_node *json_next(const json_doc *doc, const json_node *node);

/* Convenience: the member as an integer that is exactly representable,
 * returns 0 and sets *out, else -1. */
int json_get_int(const json_doc *doc, const json_node *obj, const char *key, long long *out);
int json_get_num(const json_doc *doc, const json_node *obj, const char *key, double *out);

/* Read a whole file into malloc'd memory (NUL-terminated); NULL on error. */
char *json_read_file(const char *path, size_t *len);

/* Read and parse the file at path into *doc (free with json_free).
 * Returns 0, JSON_LOAD_NOFILE when the file cannot be read, or -1 when it
 * does not parse; err gets "path: reason" on both failures. */
#define JSON_LOAD_NOFILE 1
int json_load(json_doc *doc, const char *path, char *err, size_t cap);

#endif
