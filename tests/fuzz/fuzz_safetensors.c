/*
 * fuzz_safetensors.c - fuzz entry point for the safetensors reader of the
 * Llama runtime (examples/llama/safetensors.c, compiled into this program
 * unchanged by including it; examples/llama/json.c is linked).
 *
 * The input is a whole model.safetensors image: the 8-byte header length,
 * the JSON header and the data. The reader works on files, so fopen is
 * redirected to an fmemopen() stream over the input. Each input goes through
 * open_shard (length prefix, JSON parse, object check) and then load_tensor
 * for every tensor the header declares with a small rank-1/2 shape, which
 * runs the dtype / shape / data_offsets checks and the read + conversion.
 * Only the checks of the reader itself are under test: the config.json and
 * shard-index paths read other files and are not covered here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *fuzz_data;
static size_t fuzz_size;

static FILE *fuzz_fopen(const char *path, const char *mode)
{
    (void)path;
    if (fuzz_size == 0 || strcmp(mode, "rb") != 0)
        return NULL;
    /* Read-only stream; fmemopen's prototype is not const-correct. */
    return fmemopen((void *)(uintptr_t)fuzz_data, fuzz_size, "rb");
}

#define fopen fuzz_fopen
#include "../../examples/llama/safetensors.c"
#undef fopen

/* llama_load_safetensors (not called here) needs the model allocator. */
int llama_alloc_weights(llama_model *m, int tied, char *err, size_t err_cap)
{
    (void)m, (void)tied, (void)err, (void)err_cap;
    abort();
}
int llama_init_rope(llama_model *m)
{
    (void)m;
    abort();
}
void llama_free(llama_model *m)
{
    (void)m;
    abort();
}

#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_safetensors: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define MAX_ELEMS (1u << 16)
#define MAX_TENSORS 16

/* A shape dimension as a size, 0 when it is not an integer in 1..MAX_ELEMS. */
static size_t dim_of(const json_node *n)
{
    if (n == NULL || n->type != JSON_NUMBER || !(n->number >= 1 && n->number <= MAX_ELEMS))
        return 0;
    size_t d = (size_t)n->number;
    return (double)d == n->number ? d : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_data = data;
    fuzz_size = size;
    char err[2048];
    err[0] = 0;
    st_files *fs = calloc(1, sizeof *fs);
    REQUIRE(fs != NULL);
    shard *s = shard_for(fs, "fuzz", "any", err, sizeof err);
    if (s == NULL) {
        REQUIRE(err[0] != 0 && fs->n_shards == 0);
        close_files(fs);
        return 0;
    }
    REQUIRE(fs->n_shards == 1 && s->data_start >= 8 && s->data_start <= size &&
            s->data_start + s->data_size == size);

    const json_node *root = json_root(&s->doc);
    int n_tried = 0;
    for (const json_node *t = json_first(&s->doc, root); t && n_tried < MAX_TENSORS;
         t = json_next(&s->doc, t)) {
        char name[256];
        if (t->key == NULL || t->key_len == 0 || t->key_len >= sizeof name ||
            memchr(t->key, 0, t->key_len))
            continue;
        memcpy(name, t->key, t->key_len);
        name[t->key_len] = 0;
        const json_node *sh = t->type == JSON_OBJECT ? json_get(&s->doc, t, "shape") : NULL;
        size_t rows = 1, cols = 1;
        if (sh && sh->type == JSON_ARRAY && sh->n_children == 1) {
            cols = dim_of(json_child(&s->doc, sh, 0));
        } else if (sh && sh->type == JSON_ARRAY && sh->n_children == 2) {
            rows = dim_of(json_child(&s->doc, sh, 0));
            cols = dim_of(json_child(&s->doc, sh, 1));
        } else {
            /* Not a loadable tensor: let the reader reject it as [1 x 1]. */
        }
        if (rows == 0 || cols == 0 || rows * cols > MAX_ELEMS)
            continue;
        float *dst = malloc(rows * cols * sizeof *dst);
        REQUIRE(dst != NULL);
        err[0] = 0;
        if (load_tensor(fs, "fuzz", name, rows, cols, dst, err, sizeof err) != 0) {
            REQUIRE(err[0] != 0);
        } else {
            /* Every element was written: the conversion covers rows x cols. */
            volatile float sink = 0;
            for (size_t i = 0; i < rows * cols; i++)
                sink += dst[i] * 0.0f;
            (void)sink;
        }
        free(dst);
        n_tried++;
    }
    close_files(fs);
    return 0;
}
