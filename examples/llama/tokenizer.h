/* tokenizer.h - decode token ids to bytes with a byte-level BPE
 * tokenizer.json (Hugging Face tokenizers format). */
#ifndef LLAMA_TOKENIZER_H
#define LLAMA_TOKENIZER_H

#include <stddef.h>

typedef struct llama_tokenizer {
    int vocab;
    char **piece;   /* bytes of each id, NUL-terminated            */
    size_t *len;    /* byte length of each piece                    */
} llama_tokenizer;

/* 0 on success, else -1 with a message in err. */
int tokenizer_load(llama_tokenizer *t, const char *path, int vocab, char *err, size_t cap);
void tokenizer_free(llama_tokenizer *t);
/* Bytes of one token (empty for unknown ids). */
const char *tokenizer_piece(const llama_tokenizer *t, int id, size_t *len);

#endif
