/*
 * fasa.h - libfasa: Frequency-Aware Sparse Attention (FASA) for CPU decoders.
 *
 * This is the only public header of libfasa. It depends on <stddef.h> and
 * <stdint.h> only and compiles as C11 and as C++.
 *
 * FASA (arXiv 2602.03152) in three stages, each a call here:
 *   1. fasa_calibrate*  (offline, once per model): measure how well each RoPE
 *      frequency chunk (FC) ranks cached tokens like the full head does
 *      ("contextual agreement") and keep the best FCs per (layer, head) in a
 *      fasa_profile.
 *   2. fasa_predict     (TIP, every decode step): score all cached tokens with
 *      the dominant FCs only and select the top-k token indices.
 *   3. fasa_attend      (FAC): exact softmax attention of the full query over
 *      the selected tokens only.
 * fasa_attend_dense is ordinary attention (prefill, dense layers, short
 * contexts) and fasa_decode_step chains 2 and 3 for one layer.
 *
 * Conventions that hold for every function below:
 *  - Every function returns fasa_status (FASA_OK = 0) unless it is a pure
 *    query such as fasa_version_number(). Results go through out-pointers.
 *    On failure, outputs are left untouched unless the function says
 *    otherwise, and nothing outside the caller's declared output extents is
 *    ever written.
 *  - Memory passed in is owned by the caller and is never freed, copied as a
 *    whole or retained after the call returns (label caches and profiles are
 *    the only objects the library keeps, and they live where documented).
 *  - Tensors are described by fasa_view: a strided view of caller memory.
 *  - Hot-path calls (predict, attend, attend_dense, decode_step, label cache
 *    append) never allocate: scratch memory comes from a caller workspace
 *    whose size is queried first with the matching *_workspace_size call.
 *  - The optional fasa_ctx argument may be NULL (defaults: one thread, best
 *    CPU kernels, no error detail). Pass a context to get threads and the
 *    text of the last error.
 *  - Thread safety: the library has no mutable global state apart from the
 *    CPU dispatch table, which is resolved once, race-free. Each function's
 *    comment ends with one sentence on what may be shared between threads.
 *  - Structs with a struct_size member are appendable: set struct_size to
 *    sizeof the struct as you compiled it. The library reads at least the
 *    fields it knows: a smaller (older) struct is FASA_ERR_INVALID_ARGUMENT;
 *    a larger (newer) input struct is accepted when the bytes past the
 *    fields this library knows are all zero, else FASA_ERR_UNSUPPORTED; a
 *    larger output struct gets those bytes zero-filled.
 *  - Error messages (fasa_ctx_last_error) start with the public function
 *    that failed and name the argument, e.g.
 *    "fasa_attend: k: head_dim 64 != q head_dim 128".
 */
#ifndef FASA_H_7F3C19A2
#define FASA_H_7F3C19A2

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FASA_API marks exported functions. It is empty for users; the library's
 * own build redefines it (src/internal.h) to default visibility while
 * compiling with -fvisibility=hidden. */
#ifndef FASA_API
#define FASA_API
#endif

/* Opaque per-thread context (threads, CPU level cap, last error message). */
typedef struct fasa_ctx fasa_ctx;

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define FASA_VERSION_MAJOR 0
#define FASA_VERSION_MINOR 1
#define FASA_VERSION_PATCH 0
#define FASA_VERSION_NUMBER \
    (FASA_VERSION_MAJOR * 10000 + FASA_VERSION_MINOR * 100 + FASA_VERSION_PATCH)
#define FASA_VERSION_STRING "0.1.0"

/* Version of the library actually linked, to detect header/library skew. */
FASA_API unsigned fasa_version_number(void);
FASA_API const char *fasa_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes (values are fixed forever and never reused)                  */
/* ------------------------------------------------------------------------ */

typedef enum fasa_status {
    FASA_OK = 0,
    FASA_ERR_NULL_POINTER = 1,      /* a required pointer argument is NULL       */
    FASA_ERR_INVALID_ARGUMENT = 2,  /* an enum/flag/option value is not valid    */
    FASA_ERR_ZERO_SIZE = 3,         /* a size that must be > 0 is 0              */
    FASA_ERR_OVERFLOW = 4,          /* sizes overflow size_t / the index type    */
    FASA_ERR_BAD_SHAPE = 5,         /* shapes of the arguments are inconsistent  */
    FASA_ERR_BAD_STRIDE = 6,        /* strides too small, overlapping or odd     */
    FASA_ERR_BAD_DTYPE = 7,         /* unknown or unsupported element type       */
    FASA_ERR_BAD_BUDGET = 8,        /* budget 0, negative, NaN or infinite       */
    FASA_ERR_PROFILE_MISMATCH = 9,  /* profile does not fit the tensors / layer  */
    FASA_ERR_WORKSPACE_TOO_SMALL = 10, /* workspace smaller than *_workspace_size */
    FASA_ERR_BUFFER_TOO_SMALL = 11, /* an output buffer or capacity is too small */
    FASA_ERR_BAD_INDEX = 12,        /* index out of range, unsorted or repeated  */
    FASA_ERR_NONFINITE = 13,        /* NaN/Inf where a finite value is required  */
    FASA_ERR_ALIASING = 14,         /* an output overlaps an input or output     */
    FASA_ERR_OUT_OF_MEMORY = 15,    /* allocation failed (non-hot-path calls)    */
    FASA_ERR_IO = 16,               /* file could not be opened/read/written     */
    FASA_ERR_BAD_FILE = 17,         /* not a profile, truncated or inconsistent  */
    FASA_ERR_BAD_VERSION = 18,      /* profile file version not supported        */
    FASA_ERR_CHECKSUM = 19,         /* profile file checksum mismatch            */
    FASA_ERR_BAD_STATE = 20,        /* object used in the wrong state            */
    FASA_ERR_UNSUPPORTED = 21,      /* valid request this build cannot serve     */
    FASA_ERR_MISALIGNED = 22        /* pointer or quant-block alignment not met  */
} fasa_status;

/* A short static English description of a status, never NULL (unknown values
 * give "unknown fasa_status"). Thread-safe. */
FASA_API const char *fasa_status_string(fasa_status status);

/* Stable identifier of a status, e.g. "FASA_ERR_BAD_STRIDE"; never NULL.
 * Thread-safe. */
FASA_API const char *fasa_status_name(fasa_status status);

/* ------------------------------------------------------------------------ */
/* Element types, RoPE pair layouts, GQA modes                               */
/* ------------------------------------------------------------------------ */

/* Q8_0 and Q4_0 are ggml's block formats (llama.cpp `-ctk/-ctv q8_0 /
 * q4_0`), read in place: blocks of 32 consecutive elements of a row, each
 * an IEEE binary16 scale d followed by the quants.
 *   Q8_0: 34 bytes, d then 32 int8 q[j];           element j = d * q[j]
 *   Q4_0: 18 bytes, d then 16 bytes b[0..15]; element j < 16 is the low
 *         nibble of b[j], element j + 16 its high nibble;  value = d * (nibble - 8)
 * Only K and V views (and label-cache builds from K) may be quantized; q
 * and out must be F32/F16/BF16 (FASA_ERR_BAD_DTYPE). See fasa_view for the
 * block alignment rule. */
typedef enum fasa_dtype {
    FASA_DTYPE_F32 = 0,
    FASA_DTYPE_F16 = 1,  /* IEEE binary16                     */
    FASA_DTYPE_BF16 = 2, /* bfloat16                          */
    FASA_DTYPE_Q8_0 = 3, /* ggml block_q8_0, 32 values a block */
    FASA_DTYPE_Q4_0 = 4  /* ggml block_q4_0, 32 values a block */
} fasa_dtype;

/* Which head dimensions form frequency chunk (FC) f, 0 <= f < head_dim/2.
 *  INTERLEAVED: dims (2f, 2f+1). True RoPE pairs of the Meta / GPT-J /
 *               llama.cpp ROPE_TYPE_NORMAL layout; FC f has frequency
 *               theta_f = base^(-2f/d).
 *  HALF:        dims (f, f + d/2). True RoPE pairs of the HF rotate_half /
 *               NeoX layout; FC f has frequency theta_f.
 *  ADJACENT:    dims (2f, 2f+1) of a rotate-half tensor. Not a rotation pair:
 *               this is the grouping of the official FASA code, kept so that
 *               published profiles can be reproduced.
 * The layout is a property of a profile (and of the calibration that made
 * it); tensors themselves are plain arrays. */
typedef enum fasa_pair_layout {
    FASA_PAIRS_INTERLEAVED = 0,
    FASA_PAIRS_HALF = 1,
    FASA_PAIRS_ADJACENT = 2
} fasa_pair_layout;

/* How grouped-query attention (Hq query heads sharing Hkv KV heads,
 * G = Hq / Hkv) selects tokens.
 *  PER_HEAD:     the paper: each query head has its own FC set and its own
 *                selected tokens (Hq token sets per step).
 *  GROUP_SHARED: one FC set per KV head, chosen from the group's summed
 *                agreement, scored with the group's summed query; one token
 *                set per KV head (Hkv sets per step), so each selected K/V row
 *                is read once per group. */
typedef enum fasa_gqa_mode {
    FASA_GQA_PER_HEAD = 0,
    FASA_GQA_GROUP_SHARED = 1
} fasa_gqa_mode;

/* ------------------------------------------------------------------------ */
/* Views over caller-owned memory                                            */
/* ------------------------------------------------------------------------ */

/* A strided view of a [tokens][heads][head_dim] tensor in caller memory.
 * Element (t, h, i) lives at  (elem*)data + t*token_stride + h*head_stride + i
 * (strides in ELEMENTS, not bytes; head dimensions are contiguous).
 *
 *   llama.cpp KV cache (token-major, heads interleaved):
 *        token_stride = n_heads*head_dim, head_stride = head_dim
 *   head-major cache / HF [heads, tokens, dim] tensor:
 *        token_stride = head_dim, head_stride = max_tokens*head_dim
 *
 * A view is valid when data is non-NULL, all sizes are > 0, dtype is known,
 * the extent does not overflow, and distinct (token, head) rows do not
 * overlap (a stride of a dimension of size 1 is ignored). Input views are
 * never written. Output views must not overlap any input.
 *
 * Quantized views (Q8_0, Q4_0) keep strides in ELEMENTS too; head_dim and
 * the strides of dimensions of size > 1 must be multiples of the 32-element
 * block (else FASA_ERR_MISALIGNED), so every row starts on a block, at byte
 * offset (element offset / 32) * block bytes. llama.cpp's quantized cache
 * (token_stride = n_heads*head_dim, head_stride = head_dim) qualifies
 * whenever head_dim is a multiple of 32.
 *
 * struct_size is sizeof(fasa_view) as the caller compiled it (fasa_view_make
 * sets it); the rule of every struct with a struct_size is at the top of
 * this header. kind must be 0 (strided). */
typedef struct fasa_view {
    size_t struct_size;  /* = sizeof(fasa_view)                    */
    void *data;          /* first element; const for inputs        */
    int32_t dtype;       /* fasa_dtype                             */
    int32_t kind;        /* 0 = strided; other values reserved     */
    size_t n_tokens;
    size_t n_heads;
    size_t head_dim;
    size_t token_stride; /* elements between consecutive tokens    */
    size_t head_stride;  /* elements between consecutive heads     */
} fasa_view;

/* Fill *view (no validation beyond NULL; validation happens where it is
 * used). data may be const memory for input views; the library never writes
 * through an input view. Thread-safe. */
FASA_API fasa_status fasa_view_make(fasa_view *view, const void *data, fasa_dtype dtype,
                                    size_t n_tokens, size_t n_heads, size_t head_dim,
                                    size_t token_stride, size_t head_stride);

/* Check a view and report the first problem (status and, with ctx, a message).
 * Thread-safe (a ctx must not be shared). */
FASA_API fasa_status fasa_view_validate(fasa_ctx *ctx, const fasa_view *view);

/* ------------------------------------------------------------------------ */
/* Context (optional everywhere: NULL means defaults)                        */
/* ------------------------------------------------------------------------ */

/* CPU kernel levels, for fasa_ctx_options.cpu_level and fasa_cpu_level(). */
typedef enum fasa_cpu_level {
    FASA_CPU_AUTO = -1,      /* best the CPU supports (default)           */
    FASA_CPU_SCALAR = 0,     /* portable reference kernels                */
    FASA_CPU_AVX2 = 1,       /* AVX2 + FMA + F16C                         */
    FASA_CPU_AVX512 = 2,     /* AVX-512 F/BW/VL (+F16C)                   */
    FASA_CPU_AVX512_BF16 = 3,/* AVX-512 plus AVX512_BF16 (vdpbf16ps)      */
    FASA_CPU_NEON = 4        /* AArch64 Advanced SIMD (+fp16 conversion)  */
} fasa_cpu_level;

typedef struct fasa_ctx_options {
    size_t struct_size; /* = sizeof(fasa_ctx_options)                          */
    int32_t n_threads;  /* OpenMP threads per call; 1 = the caller's thread
                           only; 0 = FASA_NUM_THREADS from the environment
                           (a positive integer) or else 1. Clamped to the CPUs
                           online (more would only oversubscribe) and to 1 in
                           a build without OpenMP; fasa_ctx_threads() tells
                           the count in effect. A runtime with its own thread
                           pool uses plans and fasa_execute_share instead. */
    int32_t cpu_level;  /* fasa_cpu_level cap; FASA_CPU_AUTO = best available.
                           A level above what the CPU supports is clamped.       */
} fasa_ctx_options;

/* Defaults: n_threads 1, cpu_level FASA_CPU_AUTO. Thread-safe. */
FASA_API void fasa_ctx_options_default(fasa_ctx_options *options);

/* Create a context (allocates). options may be NULL for defaults.
 * A context holds the options and the message of the last error of a call
 * made with it. One context per thread at a time; contexts are cheap. */
FASA_API fasa_status fasa_ctx_create(const fasa_ctx_options *options, fasa_ctx **out);

/* Free a context; NULL is a no-op. Not thread-safe with other uses of ctx. */
FASA_API void fasa_ctx_destroy(fasa_ctx *ctx);

/* Human-readable detail of the last failed call made with ctx ("" if none,
 * "" for ctx == NULL); valid until the next call with ctx. Never NULL. */
FASA_API const char *fasa_ctx_last_error(const fasa_ctx *ctx);

/* Effective thread count of ctx (NULL: 1). Thread-safe. */
FASA_API int fasa_ctx_threads(const fasa_ctx *ctx);

/* CPU kernel level ctx uses (a fasa_cpu_level: the requested cap resolved
 * against this CPU and the FASA_CPU environment cap; NULL: the best level).
 * Thread-safe. */
FASA_API int fasa_ctx_cpu_level(const fasa_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* CPU dispatch introspection                                                */
/* ------------------------------------------------------------------------ */

/* Feature bits detected on this CPU (FASA_CPU_FEATURE_*), after the
 * FASA_CPU environment cap (scalar|avx2|avx512|avx512bf16|neon) read once. */
#define FASA_CPU_FEATURE_AVX2 (1u << 0)     /* with FMA and F16C, OS-enabled */
#define FASA_CPU_FEATURE_AVX512 (1u << 1)   /* F, BW, VL, OS-enabled         */
#define FASA_CPU_FEATURE_AVX512BF16 (1u << 2)
#define FASA_CPU_FEATURE_NEON (1u << 3)
#define FASA_CPU_FEATURE_NEON_FP16 (1u << 4)
#define FASA_CPU_FEATURE_NEON_BF16 (1u << 5)
FASA_API uint32_t fasa_cpu_features(void);

/* Highest kernel level usable by default (a fasa_cpu_level). */
FASA_API int fasa_cpu_best_level(void);

/* Name of the kernel chosen for an internal operation at the given level
 * (FASA_CPU_AUTO for the default), e.g. "score_labels_f16_avx512"; op names
 * are listed in docs/api.md. Returns NULL for an unknown op. Thread-safe. */
FASA_API const char *fasa_kernel_name(const char *op, int cpu_level);

/* ------------------------------------------------------------------------ */
/* Profiles                                                                  */
/* ------------------------------------------------------------------------ */

/* A profile holds, for one model: its shape, the calibrated K values, the
 * mean contextual agreement of every FC of every (layer, query head) at each
 * K (if calibrated), the dominant FC set of every (layer, query head) and of
 * every (layer, KV head) for GROUP_SHARED mode, and the set of layers that
 * run dense (default: layer 0 only). Profiles are immutable after creation
 * except through fasa_profile_select and fasa_profile_set_dense_layer. */
typedef struct fasa_profile fasa_profile;

typedef struct fasa_model_shape {
    size_t struct_size; /* = sizeof(fasa_model_shape) */
    size_t n_layers;
    size_t n_q_heads;   /* Hq                         */
    size_t n_kv_heads;  /* Hkv, divides Hq            */
    size_t head_dim;    /* even                       */
    int32_t pair_layout;/* fasa_pair_layout           */
    int32_t reserved;   /* 0                          */
} fasa_model_shape;

/* Build a profile directly from FC lists (no agreement data).
 * fcs: [n_layers][n_q_heads][n_fc] FC indices (< head_dim/2, distinct within
 * a row, any order; stored sorted ascending). group_fcs: optional
 * [n_layers][n_kv_heads][n_fc] for GROUP_SHARED mode; NULL derives them by
 * vote (FCs used by most heads of the group, ties to the lower FC index).
 * Dense layers default to {0}. Allocates *out; free with fasa_profile_destroy.
 * Thread-safe. */
FASA_API fasa_status fasa_profile_create(const fasa_model_shape *shape, const uint32_t *fcs,
                                         size_t n_fc, const uint32_t *group_fcs,
                                         fasa_profile **out);

/* Free; NULL is a no-op. Must not race with any other use of the profile. */
FASA_API void fasa_profile_destroy(fasa_profile *profile);

/* Deep copy. Thread-safe with concurrent readers of src. */
FASA_API fasa_status fasa_profile_clone(const fasa_profile *src, fasa_profile **out);

/* Summary of a profile. */
typedef struct fasa_profile_info {
    size_t struct_size;      /* = sizeof(fasa_profile_info), set by caller */
    fasa_model_shape shape;
    size_t n_k;              /* number of calibrated K values (0: none)    */
    size_t n_steps;          /* decode steps accumulated per layer (max)   */
    size_t max_fc;           /* largest dominant set size of any head      */
    uint32_t has_agreement;  /* 1 if agreement data is stored              */
    uint32_t selection_k;    /* K slice the current sets were chosen from (0 = given) */
} fasa_profile_info;
FASA_API fasa_status fasa_profile_get_info(const fasa_profile *profile, fasa_profile_info *info);

/* Copy the calibrated K values (n_k of them) into k_values[capacity]. */
FASA_API fasa_status fasa_profile_get_k_values(const fasa_profile *profile, uint32_t *k_values,
                                               size_t capacity);

/* Mean contextual agreement of layer `layer` at K index k_index:
 * out[n_q_heads][head_dim/2] (capacity in floats). FASA_ERR_BAD_STATE when
 * the profile has no agreement data. */
FASA_API fasa_status fasa_profile_get_agreement(const fasa_profile *profile, size_t layer,
                                                size_t k_index, float *out, size_t capacity);

/* Dominant FC set (ascending) of query head `head` (PER_HEAD) or of KV head
 * `head` (GROUP_SHARED) in `layer`: writes *n_fc entries into fcs[capacity]. */
FASA_API fasa_status fasa_profile_get_fcs(const fasa_profile *profile, size_t layer,
                                          fasa_gqa_mode mode, size_t head, uint32_t *fcs,
                                          size_t capacity, size_t *n_fc);

/* Whether a layer runs dense (1) or sparse (0). */
FASA_API fasa_status fasa_profile_get_dense_layer(const fasa_profile *profile, size_t layer,
                                                  int *dense);
/* Mark a layer dense or sparse. Must not race with any use of the profile. */
FASA_API fasa_status fasa_profile_set_dense_layer(fasa_profile *profile, size_t layer, int dense);

/* How dominant FCs are chosen from agreement data. */
typedef struct fasa_select_options {
    size_t struct_size;     /* = sizeof(fasa_select_options)                       */
    uint32_t n_fc;          /* N_tip, FCs kept per head; default 16                 */
    uint32_t k;             /* K slice deciding the ranking; 0 = the calibrated K
                               closest to budget_hint (ties: the smaller K)          */
    uint32_t budget_hint;   /* intended token budget, default 256                   */
    uint32_t use_threshold; /* 1: official rule below instead of plain top-n_fc     */
    float threshold_ratio;  /* quantile of the head's agreement (default 0.8)       */
    uint32_t min_fc;        /* if fewer than min_fc pass: top min_fc (default 16)   */
    uint32_t max_fc;        /* if more than max_fc pass: top max_fc (default 16)    */
} fasa_select_options;

/* Defaults as in the paper and the official scripts. Thread-safe. */
FASA_API void fasa_select_options_default(fasa_select_options *options);

/* Re-derive all dominant sets (per query head and per KV group) from the
 * stored agreement. Ties rank the lower FC index first. Fails with
 * FASA_ERR_BAD_STATE when there is no agreement data. Must not race with any
 * other use of the profile. */
FASA_API fasa_status fasa_profile_select(fasa_profile *profile, const fasa_select_options *options);

/* Serialize to the binary format of docs/profile-format.md (little-endian,
 * versioned, CRC-32 checked). _save_buffer writes *size bytes into buf; call
 * it with buf == NULL to learn the size. Thread-safe with concurrent readers. */
FASA_API fasa_status fasa_profile_save(const fasa_profile *profile, const char *path);
FASA_API fasa_status fasa_profile_save_buffer(const fasa_profile *profile, void *buf,
                                              size_t capacity, size_t *size);

/* Parse a profile file / buffer. Every field is validated; truncated,
 * oversized, corrupted or wrong-version input gives an error, never a crash.
 * Allocates *out. Thread-safe. */
FASA_API fasa_status fasa_profile_load(const char *path, fasa_profile **out);
FASA_API fasa_status fasa_profile_load_buffer(const void *buf, size_t size, fasa_profile **out);

/* Human-readable text dump (shape, K values, dense layers, per head: the
 * dominant FCs with their agreement). Writes at most capacity bytes including
 * the terminating NUL into text and sets *length to the full length without
 * NUL (call with text == NULL to size). Thread-safe with concurrent readers. */
FASA_API fasa_status fasa_profile_describe(const fasa_profile *profile, char *text,
                                           size_t capacity, size_t *length);

/* ------------------------------------------------------------------------ */
/* Calibration (offline; may allocate)                                       */
/* ------------------------------------------------------------------------ */

typedef struct fasa_calibrator fasa_calibrator;

#define FASA_MAX_K_VALUES 16
typedef struct fasa_calib_config {
    size_t struct_size;       /* = sizeof(fasa_calib_config)                     */
    fasa_model_shape shape;
    size_t n_k;               /* number of K values, 1..FASA_MAX_K_VALUES;
                                 0 = default {64,128,256,512,1024}                */
    uint32_t k_values[FASA_MAX_K_VALUES]; /* strictly ascending, >= 1             */
} fasa_calib_config;

/* Create a streaming accumulator. Thread-safe. */
FASA_API fasa_status fasa_calibrator_create(const fasa_calib_config *config,
                                            fasa_calibrator **out);
FASA_API void fasa_calibrator_destroy(fasa_calibrator *cal);

/* Add one decode step of one layer: q is the post-RoPE query of the new token
 * (n_tokens = 1, n_heads = Hq) and k the post-RoPE keys of the t cached tokens
 * including the new one (n_tokens = t, n_heads = Hkv). For every query head h
 * and FC f: full logits s_j = q_h . k_j and FC logits s^f_j (raw dot products
 * in double, no scale), K' = min(K, t), CA = |TopK'(s) & TopK'(s^f)| / K'
 * (ties: lower token index ranks first), accumulated for the mean.
 * Non-finite q/k give FASA_ERR_NONFINITE and leave the accumulator unchanged.
 * One thread at a time per calibrator. */
FASA_API fasa_status fasa_calibrator_add_step(fasa_calibrator *cal, fasa_ctx *ctx,
                                              size_t layer, const fasa_view *q,
                                              const fasa_view *k);

/* Finish into a new profile (the calibrator stays usable for more steps).
 * options NULL = defaults. Every layer must have at least one step, else
 * FASA_ERR_BAD_STATE. One thread at a time per calibrator. */
FASA_API fasa_status fasa_calibrator_finish(const fasa_calibrator *cal,
                                            const fasa_select_options *options,
                                            fasa_profile **out);

/* One-shot convenience: steps[i] is (layer, q, k) as for add_step, then
 * finish; the same errors, checked step by step in order. Runs on the
 * calling thread (no ctx: use a calibrator with a ctx for threads and error
 * messages). Allocates *out. Thread-safe: it only reads its inputs. */
typedef struct fasa_calib_step {
    size_t layer;
    const fasa_view *q;
    const fasa_view *k;
} fasa_calib_step;
FASA_API fasa_status fasa_calibrate(const fasa_calib_config *config, const fasa_calib_step *steps,
                                    size_t n_steps, const fasa_select_options *options,
                                    fasa_profile **out);

/* ------------------------------------------------------------------------ */
/* Label cache: the dominant key dims of one layer, laid out for fast TIP     */
/* ------------------------------------------------------------------------ */

/* Per KV head, the dims of the FCs its heads need (PER_HEAD: the union of the
 * group's sets; GROUP_SHARED: the group set), stored in 64-token tiles,
 * channel-major inside, in f32, f16 or bf16. Lives entirely inside caller
 * memory of the size fasa_label_cache_size reports (any alignment; the
 * object aligns itself); it holds no pointers, so the block may be copied or
 * moved with memcpy. */
typedef struct fasa_label_cache fasa_label_cache;

FASA_API fasa_status fasa_label_cache_size(const fasa_profile *profile, size_t layer,
                                           fasa_gqa_mode mode, fasa_dtype dtype,
                                           size_t capacity_tokens, size_t *bytes);

/* Initialize an empty cache in mem[bytes] for `layer` of `profile` (the FC
 * sets are copied in; the profile may be destroyed afterwards). *out points
 * into mem. Thread-safe for distinct memory. */
FASA_API fasa_status fasa_label_cache_init(void *mem, size_t bytes, const fasa_profile *profile,
                                           size_t layer, fasa_gqa_mode mode, fasa_dtype dtype,
                                           size_t capacity_tokens, fasa_label_cache **out);

/* Append the keys of n new tokens (k: n_tokens = n, n_heads = Hkv, same
 * head_dim as the profile). FASA_ERR_BUFFER_TOO_SMALL when capacity would be
 * exceeded (nothing appended). Never allocates. One thread at a time per
 * cache; concurrent readers are not allowed during an append. */
FASA_API fasa_status fasa_label_cache_append(fasa_label_cache *cache, const fasa_view *k);

/* Reset and fill from all tokens of k (after prefill). Same rules as append. */
FASA_API fasa_status fasa_label_cache_build(fasa_label_cache *cache, const fasa_view *k);

/* Number of tokens held. */
FASA_API fasa_status fasa_label_cache_tokens(const fasa_label_cache *cache, size_t *n_tokens);

/* Drop all tokens (keeps the configuration). */
FASA_API fasa_status fasa_label_cache_reset(fasa_label_cache *cache);

/* ------------------------------------------------------------------------ */
/* Attention as a runtime calls it: describe, plan, execute                  */
/* ------------------------------------------------------------------------ */

/* The KV views k and v of an attention call are the runtime's cache: k has
 * t = k->n_tokens CELLS (llama.cpp's n_kv), v the same cells. Which cells
 * each query may see is its visibility:
 *  CAUSAL: query i of n_q sees cells [0, t - n_q + i + 1): the n_q queries
 *          are the last n_q cells of one sequence (bottom-right alignment).
 *          The default when no fasa_visibility is given.
 *  RANGES: query i sees the union of its [begin, end) cell ranges, pairs
 *          ranges[2p], ranges[2p+1] for p in range_first[i] ..
 *          range_first[i+1]-1: ascending, disjoint, non-empty, end <= t.
 *          A query may see nothing (no ranges): its output row is zero and
 *          its lse -INFINITY.
 *  MASK:   query i sees the cells j whose mask value
 *          mask[i * mask_stride + j] (f32 or f16, mask_cells >= t entries
 *          per row) is not -INFINITY; finite values are added to the
 *          logits (llama.cpp's KQ_mask, one row per query). NaN counts as
 *          visible and propagates.
 * Queries of one call may belong to different sequences that share the KV
 * buffer: one call decodes a whole batch (RANGES or MASK), and a label
 * cache is shared the same way (it is indexed by cell). */
typedef enum fasa_visibility_kind {
    FASA_VISIBLE_CAUSAL = 0,
    FASA_VISIBLE_RANGES = 1,
    FASA_VISIBLE_MASK = 2
} fasa_visibility_kind;

typedef struct fasa_visibility {
    size_t struct_size;          /* = sizeof(fasa_visibility)                 */
    int32_t kind;                /* fasa_visibility_kind                      */
    int32_t mask_dtype;          /* MASK: FASA_DTYPE_F32 or FASA_DTYPE_F16    */
    const uint32_t *ranges;      /* RANGES: [begin, end) cell pairs           */
    const uint32_t *range_first; /* RANGES: [n_q + 1] pair offsets per query  */
    const void *mask;            /* MASK: n_q rows                            */
    size_t mask_stride;          /* MASK: elements between query rows         */
    size_t mask_cells;           /* MASK: entries per row, >= t               */
} fasa_visibility;

/* What a runtime's attention does to the logits, in ggml's order:
 *   x_j = scale * q.k_j;  if softcap > 0: x_j = softcap * tanh(x_j / softcap);
 *   x_j += slope_h * b_j  where b_j is the mask value (MASK), or, with
 *   ALiBi slopes and CAUSAL visibility, b_j = j - p_i (p_i = t - n_q + i,
 *   the query's cell); without slopes slope_h = 1 and b_j = mask value or 0;
 *   softmax over the visible cells, joined by the head's sink logit when
 *   sinks are given (a sink adds exp(sink_h) to the denominator and nothing
 *   to the output; lse then includes it).
 * window (CAUSAL only; RANGES and MASK express windows themselves): query
 * i sees only cells j with p_i - j < window; 0 = no window. */
typedef struct fasa_attn_params {
    size_t struct_size;        /* = sizeof(fasa_attn_params)               */
    float scale;               /* 0 = 1/sqrt(head_dim); else finite        */
    float softcap;             /* 0 = off; else finite and > 0             */
    const float *sinks;        /* [Hq] finite sink logits, or NULL         */
    const float *alibi_slopes; /* [Hq] finite slopes, or NULL              */
    uint32_t window;           /* CAUSAL: sliding window in cells, 0 = off */
    uint32_t reserved;         /* 0                                        */
} fasa_attn_params;

/* What one attention call computes (fasa_attention_desc.op):
 *  DENSE:   softmax attention over every visible cell.
 *  SPARSE:  attention over given token sets (indices/counts, the layout
 *           of fasa_predict below; every index visible to its query).
 *  PREDICT: TIP only: score the visible cells with the profile's dominant
 *           FCs (from the label cache if given, else from k) and write the
 *           top-budget token sets to indices/counts (and scores).
 *  FASA:    PREDICT then SPARSE, for one layer: dense when the layer is
 *           dense in the profile, and for every query whose visible count
 *           is within its budget (exactly DENSE's result for that query). */
typedef enum fasa_op {
    FASA_OP_DENSE = 0,
    FASA_OP_SPARSE = 1,
    FASA_OP_PREDICT = 2,
    FASA_OP_FASA = 3
} fasa_op;

/* One attention call. Pointers are borrowed for the call (fasa_attention)
 * or for the life of a plan made from it (fasa_plan_init). In a plan, the
 * data pointers (view data, lse, mask, ranges, indices, counts, scores,
 * budgets, label_cache) may be NULL and given at execution instead
 * (fasa_attention_data); the shapes may not change. */
typedef struct fasa_attention_desc {
    size_t struct_size;        /* = sizeof(fasa_attention_desc)                   */
    int32_t op;                /* fasa_op                                         */
    int32_t mode;              /* fasa_gqa_mode (SPARSE, PREDICT, FASA)           */
    const fasa_view *q;        /* [n_q][Hq][d]                                    */
    const fasa_view *k;        /* [t][Hkv][d] cells                               */
    const fasa_view *v;        /* [t][Hkv][dv] (not PREDICT)                      */
    const fasa_view *out;      /* [n_q][Hq][dv] written (not PREDICT)             */
    float *lse;                /* [n_q][Hq] written, optional (not PREDICT)       */
    const fasa_visibility *visibility; /* NULL = CAUSAL                          */
    const fasa_attn_params *params;    /* NULL = defaults (scale 1/sqrt(d))      */
    const fasa_profile *profile;       /* PREDICT, FASA                          */
    size_t layer;                      /* PREDICT, FASA                          */
    fasa_label_cache *label_cache;     /* PREDICT, FASA: NULL = score from k     */
    double budget;             /* PREDICT, FASA: see "Budget semantics" below     */
    const float *budgets;      /* PREDICT, FASA: [n_q] per-query budgets, or NULL */
    uint32_t *indices;         /* PREDICT: written; SPARSE: read                  */
    size_t index_stride;       /* PREDICT, SPARSE                                 */
    uint32_t *counts;          /* PREDICT: written; SPARSE: read                  */
    float *scores;             /* PREDICT: [n_q][n_sets][t] written, optional     */
    float *select_hints;       /* PREDICT, FASA: [n_q][n_sets] in/out, optional:
                                  each set's selection threshold from the
                                  previous step of the same sequence (NaN =
                                  none). A speed hint only (results never
                                  depend on it): a runtime keeps one row per
                                  sequence and layer and passes it back. Without
                                  it a single query uses the label cache's own
                                  memo, a batch none (TIP ~1.5x slower at 4k). */
    int32_t n_threads;         /* threads that will run it: 0 = ctx's count       */
    int32_t reserved;          /* 0                                               */
} fasa_attention_desc;

/* Workspace bytes fasa_attention needs for desc (only shapes are read: data
 * pointers may be NULL). */
FASA_API fasa_status fasa_attention_workspace_size(fasa_ctx *ctx, const fasa_attention_desc *desc,
                                                   size_t *bytes);

/* Validate, plan and run desc in one call on ctx's threads (OpenMP).
 * Every check (shapes, options, aliasing, index sets, ranges, non-finite q
 * for TIP) happens before the first write. Concurrent calls may share
 * inputs, not outputs, workspace or ctx. */
FASA_API fasa_status fasa_attention(fasa_ctx *ctx, const fasa_attention_desc *desc,
                                    void *workspace, size_t workspace_size);

/* A plan is a validated attention call with its work split fixed: make it
 * once (before a graph runs), then execute it any number of times, on the
 * library's threads (fasa_execute) or on the caller's own threads
 * (fasa_execute_share), with results identical for every thread count and
 * split. A plan lives in caller memory of fasa_plan_size bytes (any
 * alignment), holds no allocation and may be copied with memcpy. It
 * borrows what desc points to (profile, label cache, small arrays). */
typedef struct fasa_plan fasa_plan;

FASA_API fasa_status fasa_plan_size(size_t *bytes);

/* Validate desc (everything except the contents of data arrays) and write
 * the plan into mem. desc->n_threads (or ctx's count) fixes how many
 * threads may run it: the workspace holds one scratch slot per thread. */
FASA_API fasa_status fasa_plan_init(fasa_ctx *ctx, const fasa_attention_desc *desc, void *mem,
                                    size_t bytes, fasa_plan **out);

/* Workspace bytes and the number of phases of a plan. */
FASA_API fasa_status fasa_plan_workspace_size(const fasa_plan *plan, size_t *bytes);
FASA_API fasa_status fasa_plan_phases(const fasa_plan *plan, uint32_t *n_phases);

/* Data given at execution; a non-NULL member replaces the plan's pointer,
 * NULL keeps it. The views' shapes, strides and dtypes stay the plan's. */
typedef struct fasa_attention_data {
    size_t struct_size; /* = sizeof(fasa_attention_data) */
    const void *q, *k, *v;
    void *out;
    float *lse;
    const void *mask;
    const uint32_t *ranges, *range_first;
    const float *budgets;
    uint32_t *indices, *counts;
    float *scores;
    fasa_label_cache *label_cache;
    float *select_hints;
} fasa_attention_data;

/* Run a plan (data may be NULL) on ctx's threads: checks the data (pointers
 * present, no aliasing, index sets, ranges, finite q for TIP) before the
 * first write, then runs every phase. */
FASA_API fasa_status fasa_execute(fasa_ctx *ctx, const fasa_plan *plan,
                                  const fasa_attention_data *data, void *workspace,
                                  size_t workspace_size);

/* Only the checks of fasa_execute (nothing written). */
FASA_API fasa_status fasa_execute_check(fasa_ctx *ctx, const fasa_plan *plan,
                                        const fasa_attention_data *data, void *workspace,
                                        size_t workspace_size);

/* Host threads: thread ith of nth (nth <= the plan's thread count) runs its
 * share of one phase, using scratch slot ith of the workspace. The caller
 * runs phases 0 .. n_phases-1 in order with a barrier between phases (every
 * share of phase p returns before any share of p+1 starts); nothing else is
 * synchronised, no thread is started and nothing is allocated. The data is
 * not checked (call fasa_execute_check once first if it may be malformed);
 * it never fails once arguments are valid: FASA_ERR_INVALID_ARGUMENT /
 * NULL_POINTER / BAD_STATE only for a bad plan, phase, ith or nth, or a
 * data pointer the plan lacks. */
FASA_API fasa_status fasa_execute_share(const fasa_plan *plan, const fasa_attention_data *data,
                                        void *workspace, uint32_t phase, uint32_t ith,
                                        uint32_t nth);

/* ------------------------------------------------------------------------ */
/* TIP: token importance prediction                                          */
/* ------------------------------------------------------------------------ */

/* Budget semantics (as the official code): budget >= 1 is a token count
 * (fractional part dropped); 0 < budget < 1 is a fraction of the visible
 * length t_i, n = max(1, floor(t_i * budget)); n is clamped to t_i.
 * budget <= 0, NaN or Inf: FASA_ERR_BAD_BUDGET.
 *
 * Queries: q has n_q = q->n_tokens >= 1 tokens and Hq heads. They are the
 * LAST n_q of the t cached tokens (bottom-right causal alignment): query i
 * sees keys 0 .. t - n_q + i (t_i = t - n_q + i + 1 keys).
 *
 * Output layout: n_sets = Hq (PER_HEAD) or Hkv (GROUP_SHARED) index sets per
 * query; set (i, s) occupies indices[(i*n_sets + s) * index_stride ...] with
 * counts[i*n_sets + s] valid entries, strictly ascending token indices.
 * index_stride must be >= fasa_predict_max_selected(budget, t). */

/* Largest selected count any set can have for this budget and t: min(n, t). */
FASA_API fasa_status fasa_predict_max_selected(double budget, size_t t, size_t *max_selected);

/* Scratch bytes fasa_predict / fasa_predict_cached need for these shapes
 * (q, k: only the shape fields are read; data may be NULL). */
FASA_API fasa_status fasa_predict_workspace_size(fasa_ctx *ctx, const fasa_profile *profile,
                                                 const fasa_view *q, size_t t,
                                                 fasa_gqa_mode mode, size_t *bytes);

/* Score the t = k->n_tokens cached tokens with the dominant FCs of `layer`
 * (raw dot products over the FC dims, fp32 accumulation; GROUP_SHARED uses
 * the group's summed query) and select the top-n per set, ties to the lower
 * token index. scores (optional, may be NULL) receives the raw scores
 * [n_q][n_sets][t] (positions a query cannot see are -INFINITY).
 * Dense layers are scored like the others (the caller decides; see
 * fasa_decode_step). NaN scores never get selected ahead of finite ones;
 * non-finite q gives FASA_ERR_NONFINITE.
 * Accuracy: scores within 1e-5 relative of a double-precision sum for
 * F32 keys; selection exact for those scores.
 * Aliasing: indices, counts, scores and workspace must not overlap each other
 * or the inputs. Concurrent calls may share profile, q and k but not outputs,
 * workspace or ctx. */
FASA_API fasa_status fasa_predict(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                  fasa_gqa_mode mode, const fasa_view *q, const fasa_view *k,
                                  double budget, uint32_t *indices, size_t index_stride,
                                  uint32_t *counts, float *scores, void *workspace,
                                  size_t workspace_size);

/* Same, scoring from a label cache (t = its token count) instead of the key
 * view: the fast path. The cache must have been made for this profile, layer
 * and mode (else FASA_ERR_PROFILE_MISMATCH). Score values are computed from
 * the cache's dtype (f16/bf16 rounding of the keys) and may differ from
 * fasa_predict by that rounding. The cache's per-head selection threshold
 * memo is updated (a speed hint only; results do not depend on it), so one
 * thread at a time per cache. */
FASA_API fasa_status fasa_predict_cached(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                         fasa_gqa_mode mode, const fasa_view *q,
                                         fasa_label_cache *cache, double budget,
                                         uint32_t *indices, size_t index_stride, uint32_t *counts,
                                         float *scores, void *workspace, size_t workspace_size);

/* ------------------------------------------------------------------------ */
/* FAC: exact attention over selected tokens, and dense attention            */
/* ------------------------------------------------------------------------ */

/* Shared rules for fasa_attend and fasa_attend_dense:
 *  - q: n_q tokens x Hq heads x head_dim; k: t tokens x Hkv heads x head_dim;
 *    v: t tokens x Hkv heads x head_dim_v; out: n_q x Hq x head_dim_v view
 *    (written; any dtype, converted with round-to-nearest-even).
 *    Query head h uses KV head h * Hkv / Hq. Causal bottom-right alignment
 *    for n_q > 1 as in fasa_predict.
 *  - scale: 0 means 1/sqrt(head_dim); otherwise used as given (finite).
 *  - lse (optional, may be NULL): [n_q][Hq] natural log of the softmax
 *    denominator including the max, i.e. log(sum_j exp(scale * q.k_j)), so
 *    partial attentions over disjoint token sets merge exactly. An empty
 *    token set gives lse = -INFINITY and a zero output row.
 *  - fp32 accumulation; accuracy: max abs error <= 1e-5 * max|v| (F32 data)
 *    against double precision.
 *  - NaN/Inf in the used q/k/v rows propagate to the affected outputs (no
 *    check on the hot path); fasa_view_validate does not scan data.
 *  - out must not overlap q, k, v, lse, indices or workspace.
 *  - Concurrent calls may share q, k, v, indices and profile, not out, lse,
 *    workspace or ctx. */

FASA_API fasa_status fasa_attend_workspace_size(fasa_ctx *ctx, const fasa_view *q,
                                                const fasa_view *k, const fasa_view *v,
                                                fasa_gqa_mode mode, size_t index_stride,
                                                size_t *bytes);

/* Attention of each query head over its selected tokens, in the output
 * layout of fasa_predict (mode gives n_sets). Every index must be < t_i of
 * its query and each set strictly ascending (else FASA_ERR_BAD_INDEX, checked
 * before anything is written). Tokens keep their original positions. */
FASA_API fasa_status fasa_attend(fasa_ctx *ctx, fasa_gqa_mode mode, const fasa_view *q,
                                 const fasa_view *k, const fasa_view *v, const uint32_t *indices,
                                 size_t index_stride, const uint32_t *counts, float scale,
                                 const fasa_view *out, float *lse, void *workspace,
                                 size_t workspace_size);

FASA_API fasa_status fasa_attend_dense_workspace_size(fasa_ctx *ctx, const fasa_view *q,
                                                      const fasa_view *k, const fasa_view *v,
                                                      size_t *bytes);

/* Ordinary causal attention over all visible tokens (prefill, dense layers). */
FASA_API fasa_status fasa_attend_dense(fasa_ctx *ctx, const fasa_view *q, const fasa_view *k,
                                       const fasa_view *v, float scale, const fasa_view *out,
                                       float *lse, void *workspace, size_t workspace_size);

/* ------------------------------------------------------------------------ */
/* One layer of one decode step                                              */
/* ------------------------------------------------------------------------ */

FASA_API fasa_status fasa_decode_step_workspace_size(fasa_ctx *ctx,
                                                     const fasa_profile *profile,
                                                     const fasa_view *q, const fasa_view *k,
                                                     const fasa_view *v, fasa_gqa_mode mode,
                                                     double budget, size_t *bytes);

/* predict (from cache if non-NULL, else from k) + attend for one layer.
 * Runs fasa_attend_dense instead when the layer is dense in the profile or
 * every visible token would be selected (t <= budget), so budget >= t gives
 * exactly the dense result. Same sharing rules as predict and attend. */
FASA_API fasa_status fasa_decode_step(fasa_ctx *ctx, const fasa_profile *profile, size_t layer,
                                      fasa_gqa_mode mode, const fasa_view *q, const fasa_view *k,
                                      const fasa_view *v, fasa_label_cache *cache, double budget,
                                      float scale, const fasa_view *out, float *lse,
                                      void *workspace, size_t workspace_size);

#ifdef __cplusplus
}
#endif

#endif /* FASA_H_7F3C19A2 */
