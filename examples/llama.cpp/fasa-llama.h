// fasa-llama.h - the hooks that the patched llama.cpp calls (see llama.cpp.patch).
//
// Compiled into libllama from this directory; nothing here is llama.cpp code.
// One llama_fasa per llama_context, created when --fasa-profile is given.
#pragma once

#include <memory>

struct llama_fasa;
struct llama_context;
struct llama_ubatch;
struct ggml_context;
struct ggml_tensor;

struct llama_fasa_deleter {
    void operator()(llama_fasa * f) const;
};
using llama_fasa_ptr = std::unique_ptr<llama_fasa, llama_fasa_deleter>;

// After the KV cache of lctx exists. nullptr (error logged) when the profile
// cannot serve this model; a KV type libfasa cannot read (q8_0, q4_0) gives an
// adapter that falls back to llama.cpp's flash attention for every graph.
llama_fasa * llama_fasa_init(const llama_context & lctx, const char * profile, float budget,
                             bool group_shared);

// Start of every graph build: decides whether libfasa serves this graph (the
// cells each query sees must be one range ending at its own cell) and drops
// label caches of the cells this graph writes. worst_case graphs (memory
// reservation) always take llama.cpp's path, the larger one.
void llama_fasa_graph_begin(llama_fasa & f, const llama_context & lctx, const llama_ubatch & ubatch,
                            bool worst_case);

// The attention of layer il as one custom op on q_cur [head_dim, n_head, n_tokens]
// and the layer's whole K and V caches (V not transposed), or nullptr when
// llama.cpp's own attention must run. Result: [head_dim, n_head, n_tokens] f32.
ggml_tensor * llama_fasa_build_attn(llama_fasa & f, ggml_context * ctx, ggml_tensor * q_cur,
                                    ggml_tensor * k_l, ggml_tensor * v_l, float kq_scale, int il);

// K data of the cache changed outside a graph store (K-shift, defrag, state load).
void llama_fasa_kv_changed(llama_fasa & f);
