// fasa-llama.cpp - the llama.cpp side of the libfasa adapter: which graphs
// libfasa can serve, the custom op, the label-cache lifecycle hooks. Every
// libfasa call is in fasa-backend.c.
#include "fasa-llama.h"

#include "fasa-backend.h"

#include "llama-batch.h"
#include "llama-context.h"
#include "llama-impl.h"
#include "llama-kv-cache.h"
#include "llama-model.h"

#include "ggml.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace {

// What the op of one layer needs at compute time, fixed at graph build.
struct op_data {
    llama_fasa * f;
    fasa_llama_job job;
};

} // namespace

struct llama_fasa {
    fasa_llama_backend * be = nullptr; // nullptr: every graph falls back
    int max_threads = 1;
    std::vector<op_data> ops;          // per layer

    // the plan of the graph being built
    const char * fallback = nullptr;   // reason, or nullptr when served
    size_t first = 0, t = 0, n_q = 0;

    // what happened, logged at the end: graphs served / fallen back by reason
    uint64_t n_served = 0;
    std::map<std::string, uint64_t> n_fallback;

    ~llama_fasa() {
        std::string fb;
        for (const auto & r : n_fallback) {
            fb += ", " + std::to_string(r.second) + " " + r.first;
        }
        LLAMA_LOG_INFO("fasa: %llu graphs served by libfasa; fell back to llama.cpp: %s\n",
                       (unsigned long long) n_served, fb.empty() ? "none" : fb.c_str() + 2);
        fasa_llama_backend_destroy(be);
    }
};

void llama_fasa_deleter::operator()(llama_fasa * f) const { delete f; }

static int backend_type(ggml_type t) {
    switch (t) {
        case GGML_TYPE_F32:  return FB_F32;
        case GGML_TYPE_F16:  return FB_F16;
        case GGML_TYPE_BF16: return FB_BF16;
        default:             return FB_UNSUPPORTED;
    }
}

llama_fasa * llama_fasa_init(const llama_context & lctx, const char * profile, float budget,
                             bool group_shared) {
    const auto & hp = lctx.model.hparams;
    const auto & kv = lctx.kv_self;
    const char * why = nullptr;
    if (kv.recurrent || kv.v_trans) {
        why = "needs an attention KV cache with V not transposed";
    } else if (hp.n_swa != 0 || hp.f_max_alibi_bias != 0.0f || hp.attn_soft_cap) {
        why = "sliding-window, ALiBi and soft-capped attention are not supported";
    } else if (hp.n_embd_head_k != hp.n_embd_head_v) {
        why = "K and V head sizes differ";
    } else if (hp.rope_type != LLAMA_ROPE_TYPE_NORM && hp.rope_type != LLAMA_ROPE_TYPE_NEOX) {
        why = "the model's RoPE type is neither NORM nor NEOX";
    }
    for (uint32_t il = 0; !why && il < hp.n_layer; il++) {
        if (hp.n_head(il) != hp.n_head() || hp.n_head_kv(il) != hp.n_head_kv()) {
            why = "head counts vary across layers";
        }
    }
    if (why) {
        LLAMA_LOG_ERROR("%s: --fasa-profile: %s\n", __func__, why);
        return nullptr;
    }

    auto * f = new llama_fasa();
    f->max_threads = std::max(1, std::max(lctx.cparams.n_threads, lctx.cparams.n_threads_batch));
    f->ops.resize(hp.n_layer);

    fasa_llama_config cfg = {};
    cfg.n_layers         = hp.n_layer;
    cfg.n_q_heads        = hp.n_head();
    cfg.n_kv_heads       = hp.n_head_kv();
    cfg.head_dim         = hp.n_embd_head_k;
    cfg.rope_interleaved = hp.rope_type == LLAMA_ROPE_TYPE_NORM;
    cfg.capacity         = kv.size;
    cfg.max_queries      = lctx.cparams.n_ubatch;
    cfg.k_type           = backend_type(kv.type_k);
    cfg.v_type           = backend_type(kv.type_v);
    cfg.max_threads      = f->max_threads;
    cfg.budget           = budget;
    cfg.group_shared     = group_shared;
    if (cfg.k_type == FB_UNSUPPORTED || cfg.v_type == FB_UNSUPPORTED) {
        LLAMA_LOG_WARN("%s: FASA off: libfasa reads f32/f16/bf16 caches, this one is K %s, V %s; "
                       "llama.cpp's flash attention runs every graph\n", __func__,
                       ggml_type_name(kv.type_k), ggml_type_name(kv.type_v));
        return f;
    }
    char err[512];
    if (fasa_llama_backend_create(profile, &cfg, &f->be, err, sizeof err) != 0) {
        LLAMA_LOG_ERROR("%s: --fasa-profile: %s\n", __func__, err);
        delete f;
        return nullptr;
    }
    LLAMA_LOG_INFO("%s: FASA on: %s\n", __func__, fasa_llama_describe(f->be));
    return f;
}

// The cells query i of the ubatch sees, as llama.cpp's KQ mask defines them
// (llama_set_inputs): cells of the token's first sequence with pos <= its pos.
// Served when that is [first, kv_head + i] for every i.
static const char * plan(llama_fasa & f, const llama_context & lctx, const llama_ubatch & ub) {
    const auto & kv = lctx.kv_self;
    if (!lctx.cparams.causal_attn) {
        return "non-causal attention";
    }
    const uint32_t n = ub.n_tokens, per = ub.n_seq_tokens ? ub.n_seq_tokens : 1;
    const llama_seq_id s = ub.seq_id[0][0];
    for (uint32_t i = 0; i < n; i++) {
        if (ub.seq_id[i / per][0] != s) {
            return "several sequences in one batch";
        }
        if (i > 0 && ub.pos[i] <= ub.pos[i - 1]) {
            return "positions not increasing within the batch";
        }
    }
    const uint32_t head = kv.head, end = head + n;
    const llama_pos p0 = ub.pos[0], last = ub.pos[n - 1];
    uint32_t first = end, count = 0;
    for (uint32_t c = 0; c < kv.n; c++) {
        const auto & cell = kv.cells[c];
        if (cell.pos <= last && cell.has_seq_id(s)) {
            if (c >= end) {
                return "a visible cell after the batch";
            }
            if (c < head && cell.pos > p0) {
                return "cached cells with later positions than the batch";
            }
            first = std::min(first, c);
            count++;
        }
    }
    if (count != end - first) {
        return "visible cells not one contiguous range (several sequences, or a gap)";
    }
    f.first = first;
    f.t     = end - first;
    f.n_q   = n;
    return nullptr;
}

void llama_fasa_graph_begin(llama_fasa & f, const llama_context & lctx, const llama_ubatch & ubatch,
                            bool worst_case) {
    f.fallback = "memory reservation graph";
    if (worst_case) {
        return;
    }
    if (!f.be) {
        f.fallback = "KV type not readable by libfasa";
    } else {
        fasa_llama_cells_written(f.be, lctx.kv_self.head, ubatch.n_tokens);
        f.fallback = plan(f, lctx, ubatch);
    }
    if (f.fallback) {
        if (f.n_fallback[f.fallback]++ == 0) {
            LLAMA_LOG_INFO("fasa: first graph that libfasa cannot serve (%s): llama.cpp's flash attention runs it\n",
                           f.fallback);
        }
    } else {
        f.n_served++;
    }
}

static void fasa_op(ggml_tensor * dst, const ggml_tensor * a, const ggml_tensor * b,
                    const ggml_tensor * c, int ith, int nth, void * userdata) {
    op_data & od = *(op_data *) userdata;
    fasa_llama_job job = od.job;
    job.q   = (const float *) a->data;
    job.out = (float *) dst->data;
    job.k   = b->data;
    job.v   = c->data;
    // Threads beyond the slots made at init (llama_set_n_threads raised the
    // count) take no units.
    const int slots = std::min(nth, od.f->max_threads);
    const size_t units = fasa_llama_units(od.f->be, &job);
    for (size_t u = ith; ith < slots && u < units; u += slots) {
        if (fasa_llama_run_unit(od.f->be, &job, u, ith) != 0) {
            GGML_ABORT("fasa: attention of layer %d failed", (int) job.layer);
        }
    }
}

ggml_tensor * llama_fasa_build_attn(llama_fasa & f, ggml_context * ctx, ggml_tensor * q_cur,
                                    ggml_tensor * k_l, ggml_tensor * v_l, float kq_scale, int il) {
    if (f.fallback || q_cur->type != GGML_TYPE_F32 || !ggml_is_contiguous(q_cur) ||
        (size_t) q_cur->ne[2] != f.n_q) {
        return nullptr;
    }
    op_data & od = f.ops[il];
    od.f   = &f;
    od.job = {};
    od.job.layer = il;
    od.job.first = f.first;
    od.job.t     = f.t;
    od.job.n_q   = f.n_q;
    od.job.scale = kq_scale;
    return ggml_map_custom3(ctx, q_cur, k_l, v_l, fasa_op, GGML_N_TASKS_MAX, &od);
}

void llama_fasa_kv_changed(llama_fasa & f) {
    if (f.be) {
        fasa_llama_invalidate(f.be);
    }
}
