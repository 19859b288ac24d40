// fasa-tool.cpp - llama-fasa-tool: drives the patched llama.cpp (public API
// only) on token-id windows, for the tests and measurements of
// examples/llama.cpp:
//
//   ppl       the perplexity protocol of `build/llama ppl` (dense prefill of P
//             tokens, then N predictions decoding one token at a time)
//   tokcheck  detokenize windows, retokenize with llama.cpp, compare the ids;
//             --text-out writes the text (input for llama-perplexity)
//   edit      greedy decoding with a seq_rm or a context shift mid-generation,
//             compared with a rebuild of the same cache contents
//   parallel  several sequences decoded in one batch vs each decoded alone
//   generate  greedy token ids after the first P tokens of each window
//   speed     decode tok/s after a real prefill, with and without FASA,
//             interleaved in one process
//
// Run without arguments for the options.
#include "llama.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct options {
    std::string mode, model, data, profile, text_out, scenario = "seqrm";
    size_t window_len = 0, prefill = 2048, decode = 128, gen = 48, steps = 64;
    std::vector<int> windows{0};
    float budget = 256.0f;
    bool group_shared = false, fa = true, verbose = false, defrag = false;
    int threads = 1, threads_batch = 0, ubatch = 512, n_seq = 4, reps = 3;
    size_t n_keep = 64, n_discard = 256;
    ggml_type type_k = GGML_TYPE_F16, type_v = GGML_TYPE_F16;
};

const char * usage =
    "usage: llama-fasa-tool MODE --model GGUF [options]\n"
    "modes: ppl | tokcheck | edit | parallel | generate | speed\n"
    "  --data FILE (uint16 windows, default: none)  --window-len N  --windows 0-3,7\n"
    "  --prefill P --decode N (ppl, speed: context P, N steps)\n"
    "  --fasa-profile F --fasa-budget B [--fasa-group-shared]  (FASA; default: llama.cpp's attention)\n"
    "  --no-fa (llama.cpp's attention without flash attention when FASA is off)\n"
    "  --threads N (decode) --threads-batch N (prefill, default: --threads) --ubatch N --ctk f16|f32|bf16|q8_0|q4_0 --ctv TYPE\n"
    "  edit: --scenario seqrm|shift|seqadd --gen N --n-keep N --n-discard N [--defrag]\n"
    "  parallel: --n-seq N --gen N;  generate: --prefill P --gen N (greedy ids);  speed: --steps N --reps R\n"
    "  tokcheck: [--text-out FILE];  -v: llama.cpp's log\n";

bool parse_windows(const char * s, std::vector<int> & out) {
    out.clear();
    while (*s) {
        char * e;
        long a = strtol(s, &e, 10), b = a;
        if (e == s) return false;
        s = e;
        if (*s == '-') {
            b = strtol(s + 1, &e, 10);
            s = e;
        }
        for (long i = a; i <= b; i++) out.push_back((int) i);
        if (*s == ',') s++;
        else if (*s) return false;
    }
    return !out.empty();
}

ggml_type parse_type(const std::string & s) {
    if (s == "f32") return GGML_TYPE_F32;
    if (s == "f16") return GGML_TYPE_F16;
    if (s == "bf16") return GGML_TYPE_BF16;
    if (s == "q8_0") return GGML_TYPE_Q8_0;
    if (s == "q4_0") return GGML_TYPE_Q4_0;
    fprintf(stderr, "llama-fasa-tool: unknown cache type %s\n", s.c_str());
    exit(2);
}

bool g_verbose = false;

// Without -v only the adapter's lines and errors reach stderr.
void log_cb(ggml_log_level level, const char * text, void *) {
    static bool fasa_line = false;
    if (level != GGML_LOG_LEVEL_CONT) {
        fasa_line = strstr(text, "fasa") != nullptr || level == GGML_LOG_LEVEL_ERROR;
    }
    if (g_verbose || fasa_line) fputs(text, stderr);
}

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct runtime {
    llama_model * model = nullptr;
    int n_vocab = 0;
};

llama_context * make_ctx(const runtime & rt, const options & o, size_t n_ctx, bool fasa, int n_seq = 1) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t) o.ubatch;
    cp.n_seq_max = (uint32_t) n_seq;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads_batch > 0 ? o.threads_batch : o.threads;
    cp.type_k = o.type_k;
    cp.type_v = o.type_v;
    cp.flash_attn = o.fa;
    if (fasa && !o.profile.empty()) {
        cp.fasa_profile = o.profile.c_str();
        cp.fasa_budget = o.budget;
        cp.fasa_group_shared = o.group_shared;
    }
    llama_context * ctx = llama_init_from_model(rt.model, cp);
    if (!ctx) {
        fprintf(stderr, "llama-fasa-tool: cannot create a context\n");
        exit(1);
    }
    return ctx;
}

std::vector<uint16_t> load_data(const options & o, size_t & window_len) {
    std::vector<uint16_t> tok;
    FILE * f = fopen(o.data.c_str(), "rb");
    if (!f) {
        fprintf(stderr, "llama-fasa-tool: cannot open %s\n", o.data.c_str());
        exit(1);
    }
    uint8_t b[2];
    while (fread(b, 1, 2, f) == 2) tok.push_back((uint16_t) (b[0] | b[1] << 8));
    fclose(f);
    window_len = o.window_len ? o.window_len : tok.size();
    if (tok.empty() || tok.size() % window_len) {
        fprintf(stderr, "llama-fasa-tool: %s is not whole windows of %zu tokens\n", o.data.c_str(), window_len);
        exit(1);
    }
    return tok;
}

const uint16_t * window(const std::vector<uint16_t> & tok, size_t len, int w) {
    if (w < 0 || (size_t) (w + 1) * len > tok.size()) {
        fprintf(stderr, "llama-fasa-tool: window %d out of range\n", w);
        exit(1);
    }
    return tok.data() + (size_t) w * len;
}

// Decode tokens [0, n) of seq at positions pos0.. in ubatch-sized batches; logits of the last.
void feed(llama_context * ctx, const llama_token * t, size_t n, llama_pos pos0, llama_seq_id seq, size_t ubatch) {
    llama_batch b = llama_batch_init((int32_t) ubatch, 0, 1);
    for (size_t i = 0; i < n; i += ubatch) {
        size_t m = std::min(ubatch, n - i);
        b.n_tokens = (int32_t) m;
        for (size_t j = 0; j < m; j++) {
            b.token[j] = t[i + j];
            b.pos[j] = pos0 + (llama_pos) (i + j);
            b.n_seq_id[j] = 1;
            b.seq_id[j][0] = seq;
            b.logits[j] = i + j == n - 1;
        }
        if (llama_decode(ctx, b) != 0) {
            fprintf(stderr, "llama-fasa-tool: llama_decode failed\n");
            exit(1);
        }
    }
    llama_batch_free(b);
}

double logprob(const float * lg, int n, int target) {
    double mx = lg[0];
    for (int i = 1; i < n; i++) mx = std::max(mx, (double) lg[i]);
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double) lg[i] - mx);
    return (double) lg[target] - mx - log(s);
}

int argmax(const float * lg, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (lg[i] > lg[b]) b = i;
    return b;
}

std::vector<llama_token> to_tokens(const uint16_t * p, size_t n) { return std::vector<llama_token>(p, p + n); }

// ------------------------------------------------------------------- ppl

int mode_ppl(const runtime & rt, const options & o) {
    size_t len;
    auto data = load_data(o, len);
    size_t P = o.prefill, N = o.decode;
    if (P + N > len) {
        fprintf(stderr, "llama-fasa-tool: prefill + decode > window\n");
        return 2;
    }
    llama_context * ctx = make_ctx(rt, o, P + N, true);
    double nll = 0, t0 = now();
    size_t count = 0;
    for (int w : o.windows) {
        auto tok = to_tokens(window(data, len, w), len);
        llama_kv_cache_clear(ctx);
        feed(ctx, tok.data(), P, 0, 0, o.ubatch);
        nll -= logprob(llama_get_logits_ith(ctx, -1), rt.n_vocab, tok[P]);
        count++;
        for (size_t s = 0; s + 1 < N; s++) {
            feed(ctx, &tok[P + s], 1, (llama_pos) (P + s), 0, 1);
            nll -= logprob(llama_get_logits_ith(ctx, -1), rt.n_vocab, tok[P + s + 1]);
            count++;
        }
    }
    const char * name = o.profile.empty() ? "llama.cpp" : "fasa";
    printf("ppl: %zu windows, prefill %zu, %zu predictions per window, %.0f s\n", o.windows.size(), P, N, now() - t0);
    printf("%s %g ppl %.6f nll_sum %.4f\n", name, o.profile.empty() ? 0.0 : (double) o.budget, exp(nll / (double) count), nll);
    llama_free(ctx);
    return 0;
}

// -------------------------------------------------------------- tokcheck

int mode_tokcheck(const runtime & rt, const options & o) {
    size_t len;
    auto data = load_data(o, len);
    const llama_vocab * vocab = llama_model_get_vocab(rt.model);
    FILE * out = o.text_out.empty() ? nullptr : fopen(o.text_out.c_str(), "wb");
    size_t total = 0, same = 0, exact_windows = 0;
    for (int w : o.windows) {
        auto tok = to_tokens(window(data, len, w), len);
        std::string text;
        char buf[256];
        for (llama_token t : tok) {
            int n = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, true);
            text.append(buf, n > 0 ? n : 0);
        }
        if (out) fwrite(text.data(), 1, text.size(), out);
        std::vector<llama_token> re(text.size() + 16);
        int n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), re.data(), (int32_t) re.size(), false, true);
        re.resize(n > 0 ? n : 0);
        size_t k = 0;
        while (k < re.size() && k < tok.size() && re[k] == tok[k]) k++;
        total += tok.size();
        same += k;
        exact_windows += re == tok;
        printf("tokcheck: window %d: %zu tokens, retokenized %zu, first difference at %zu%s\n", w, tok.size(),
               re.size(), k, re == tok ? " (identical)" : "");
    }
    if (out) fclose(out);
    printf("tokcheck: %zu/%zu windows identical, %zu/%zu leading ids equal\n", exact_windows, o.windows.size(), same, total);
    return exact_windows == o.windows.size() ? 0 : 1;
}

// ------------------------------------------------------------------ edit

std::vector<llama_token> greedy(llama_context * ctx, const runtime & rt, llama_token first, llama_pos pos, size_t n) {
    std::vector<llama_token> out;
    llama_token t = first;
    for (size_t i = 0; i < n; i++) {
        feed(ctx, &t, 1, pos + (llama_pos) i, 0, 1);
        t = argmax(llama_get_logits_ith(ctx, -1), rt.n_vocab);
        out.push_back(t);
    }
    return out;
}

int report_same(const char * what, const std::vector<llama_token> & a, const std::vector<llama_token> & b) {
    size_t k = 0;
    while (k < a.size() && k < b.size() && a[k] == b[k]) k++;
    bool ok = a == b;
    printf("edit: %s: %zu tokens, %s (first difference at %zu)\n", what, a.size(), ok ? "identical" : "DIFFERENT", k);
    return ok ? 0 : 1;
}

int mode_edit(const runtime & rt, const options & o) {
    size_t len;
    auto data = load_data(o, len);
    auto tok = to_tokens(window(data, len, o.windows[0]), len);
    size_t P = o.prefill, G = o.gen;
    if (P + G + 1 > len) return 2;
    llama_context * ctx = make_ctx(rt, o, P + G + o.n_discard + 8, true);
    // the last 4 prompt tokens one at a time, so that FASA's label caches exist
    // (and must be maintained) when the cache is edited
    feed(ctx, tok.data(), P - 4, 0, 0, o.ubatch);
    for (size_t i = P - 4; i < P; i++) feed(ctx, &tok[i], 1, (llama_pos) i, 0, 1);
    llama_token t0 = argmax(llama_get_logits_ith(ctx, -1), rt.n_vocab);
    int rc = 0;
    if (o.scenario == "seqrm") {
        // first run: prompt, t0, then G greedy tokens
        auto run = greedy(ctx, rt, t0, (llama_pos) P, G);
        // drop everything after prompt + t0 + run[0..h-1], decode again from there
        size_t h = G / 2;
        llama_kv_cache_seq_rm(ctx, 0, (llama_pos) (P + 1 + h), -1);
        auto again = greedy(ctx, rt, run[h], (llama_pos) (P + 1 + h), G - h - 1);
        rc |= report_same("seq_rm of the last half, decoded again",
                          std::vector<llama_token>(run.begin() + h + 1, run.end()), again);
        // rebuild: a fresh context fed the same tokens
        llama_context * fresh = make_ctx(rt, o, P + G + 8, true);
        std::vector<llama_token> all(tok.begin(), tok.begin() + P);
        all.push_back(t0);
        all.insert(all.end(), run.begin(), run.begin() + h);
        feed(fresh, all.data(), all.size(), 0, 0, o.ubatch);
        auto rebuilt = greedy(fresh, rt, run[h], (llama_pos) all.size(), G - h - 1);
        rc |= report_same("rebuild of the same prefix", again, rebuilt);
        llama_free(fresh);
    } else if (o.scenario == "seqadd") {
        // every position moved by +n_discard: K is re-rotated in place (K-shift) while
        // the cells stay where they are, so stale label caches would go unnoticed
        // unless the K-shift hook drops them
        size_t D = o.n_discard;
        llama_kv_cache_seq_add(ctx, 0, 0, -1, (llama_pos) D);
        llama_kv_cache_update(ctx);
        std::vector<uint8_t> state(llama_state_seq_get_size(ctx, 0));
        llama_state_seq_get_data(ctx, state.data(), state.size(), 0);
        llama_context * fresh = make_ctx(rt, o, P + G + D + 8, true);
        if (llama_state_seq_set_data(fresh, state.data(), state.size(), 0) != state.size()) {
            fprintf(stderr, "llama-fasa-tool: state restore failed\n");
            return 1;
        }
        auto shifted = greedy(ctx, rt, t0, (llama_pos) (P + D), G);
        auto rebuilt = greedy(fresh, rt, t0, (llama_pos) (P + D), G);
        rc |= report_same("positions shifted in place vs the same cache restored into a fresh context",
                          shifted, rebuilt);
        llama_free(fresh);
    } else if (o.scenario == "shift") {
        // Context shift as llama-cli does it: keep n_keep, discard n_discard, shift the
        // rest (K re-rotated in place), optionally defragment. The rebuild is a fresh
        // context given the same cache contents through llama_state_seq_set_data, so
        // its label caches are built from scratch: the greedy tokens must be identical.
        // (Recomputing the kept tokens is no rebuild: their K/V saw the discarded ones.)
        size_t K = o.n_keep, D = o.n_discard;
        if (K + D >= P) return 2;
        llama_kv_cache_seq_rm(ctx, 0, (llama_pos) K, (llama_pos) (K + D));
        llama_kv_cache_seq_add(ctx, 0, (llama_pos) (K + D), (llama_pos) P, -(llama_pos) D);
        if (o.defrag) {
            llama_kv_cache_defrag(ctx);
        }
        llama_kv_cache_update(ctx);
        std::vector<uint8_t> state(llama_state_seq_get_size(ctx, 0));
        llama_state_seq_get_data(ctx, state.data(), state.size(), 0);
        llama_context * fresh = make_ctx(rt, o, P + G + 8, true);
        if (llama_state_seq_set_data(fresh, state.data(), state.size(), 0) != state.size()) {
            fprintf(stderr, "llama-fasa-tool: state restore failed\n");
            return 1;
        }
        auto shifted = greedy(ctx, rt, t0, (llama_pos) (P - D), G);
        auto rebuilt = greedy(fresh, rt, t0, (llama_pos) (P - D), G);
        rc |= report_same(o.defrag ? "context shift + defrag vs the same cache restored into a fresh context"
                                   : "context shift vs the same cache restored into a fresh context",
                          shifted, rebuilt);
        llama_free(fresh);
    } else {
        fprintf(stderr, "llama-fasa-tool: --scenario seqrm|shift|seqadd\n");
        rc = 2;
    }
    llama_free(ctx);
    return rc;
}

// -------------------------------------------------------------- generate

int mode_generate(const runtime & rt, const options & o) {
    size_t len;
    auto data = load_data(o, len);
    for (int w : o.windows) {
        auto tok = to_tokens(window(data, len, w), o.prefill);
        llama_context * ctx = make_ctx(rt, o, o.prefill + o.gen + 8, true);
        feed(ctx, tok.data(), tok.size(), 0, 0, o.ubatch);
        llama_token t0 = argmax(llama_get_logits_ith(ctx, -1), rt.n_vocab);
        auto out = greedy(ctx, rt, t0, (llama_pos) tok.size(), o.gen - 1);
        printf("tokens %d: %d", w, t0);
        for (llama_token t : out) printf(" %d", t);
        printf("\n");
        llama_free(ctx);
    }
    return 0;
}

// -------------------------------------------------------------- parallel

int mode_parallel(const runtime & rt, const options & o) {
    size_t len;
    auto data = load_data(o, len);
    int S = o.n_seq;
    size_t P = o.prefill, G = o.gen;
    std::vector<std::vector<llama_token>> alone(S), together(S);
    for (int s = 0; s < S; s++) {
        auto tok = to_tokens(window(data, len, o.windows[s % o.windows.size()]) + 37 * s, P);
        llama_context * ctx = make_ctx(rt, o, P + G + 8, true);
        feed(ctx, tok.data(), P, 0, 0, o.ubatch);
        alone[s] = greedy(ctx, rt, argmax(llama_get_logits_ith(ctx, -1), rt.n_vocab), (llama_pos) P, G);
        llama_free(ctx);
    }
    llama_context * ctx = make_ctx(rt, o, (P + G + 8) * S, true, S);
    std::vector<llama_token> next(S);
    for (int s = 0; s < S; s++) {
        auto tok = to_tokens(window(data, len, o.windows[s % o.windows.size()]) + 37 * s, P);
        feed(ctx, tok.data(), P, 0, s, o.ubatch);
        next[s] = argmax(llama_get_logits_ith(ctx, -1), rt.n_vocab);
    }
    llama_batch b = llama_batch_init(S, 0, 1);
    for (size_t i = 0; i < G; i++) {
        b.n_tokens = S;
        for (int s = 0; s < S; s++) {
            b.token[s] = next[s];
            b.pos[s] = (llama_pos) (P + i);
            b.n_seq_id[s] = 1;
            b.seq_id[s][0] = s;
            b.logits[s] = 1;
        }
        if (llama_decode(ctx, b) != 0) return 1;
        for (int s = 0; s < S; s++) {
            next[s] = argmax(llama_get_logits_ith(ctx, s), rt.n_vocab);
            together[s].push_back(next[s]);
        }
    }
    llama_batch_free(b);
    llama_free(ctx);
    int rc = 0;
    for (int s = 0; s < S; s++) {
        char what[64];
        snprintf(what, sizeof what, "sequence %d of %d in one batch vs alone", s, S);
        rc |= report_same(what, together[s], alone[s]);
    }
    return rc;
}

// ----------------------------------------------------------------- speed

int mode_speed(const runtime & rt, const options & o) {
    size_t len;
    auto data = load_data(o, len);
    auto tok = to_tokens(window(data, len, o.windows[0]), len);
    size_t P = o.prefill, N = o.steps;
    if (P + N > len) return 2;
    // two contexts from the same prefill: llama.cpp's attention and FASA
    llama_context * base = make_ctx(rt, o, P + N, false);
    llama_context * fasa = o.profile.empty() ? nullptr : make_ctx(rt, o, P + N, true);
    llama_context * ctxs[2] = {base, fasa};
    double secs[2] = {0, 0};
    // one prefill; the FASA context gets the same cache through the state API
    feed(base, tok.data(), P, 0, 0, o.ubatch);
    if (fasa) {
        std::vector<uint8_t> state(llama_state_seq_get_size(base, 0));
        llama_state_seq_get_data(base, state.data(), state.size(), 0);
        if (llama_state_seq_set_data(fasa, state.data(), state.size(), 0) != state.size()) {
            fprintf(stderr, "llama-fasa-tool: state copy failed\n");
            return 1;
        }
    }
    for (int r = 0; r < o.reps; r++) {
        for (int c = 0; c < 2; c++) {
            if (!ctxs[c]) continue;
            llama_kv_cache_seq_rm(ctxs[c], 0, (llama_pos) P, -1);
            double t0 = now();
            for (size_t i = 0; i < N; i++) feed(ctxs[c], &tok[P + i], 1, (llama_pos) (P + i), 0, 1);
            secs[c] += now() - t0;
        }
    }
    double steps = (double) N * o.reps;
    printf("speed: context %zu..%zu, %zu steps x %d reps interleaved, %d thread(s), K %s V %s\n", P + 1, P + N, N,
           o.reps, o.threads, ggml_type_name(o.type_k), ggml_type_name(o.type_v));
    printf("speed: llama.cpp %s %.2f tok/s\n", o.fa ? "flash attention" : "attention", steps / secs[0]);
    if (fasa) {
        printf("speed: FASA budget %g %.2f tok/s, ratio %.2f\n", (double) o.budget, steps / secs[1], secs[0] / secs[1]);
    }
    llama_free(base);
    if (fasa) llama_free(fasa);
    return 0;
}

} // namespace

int main(int argc, char ** argv) {
    options o;
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    o.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i];
        auto val = [&]() -> const char * {
            if (i + 1 >= argc) {
                fprintf(stderr, "llama-fasa-tool: %s needs a value\n", a.c_str());
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--model") o.model = val();
        else if (a == "--data") o.data = val();
        else if (a == "--window-len") o.window_len = strtoul(val(), nullptr, 10);
        else if (a == "--windows" || a == "--window") {
            if (!parse_windows(val(), o.windows)) { fprintf(stderr, "bad --windows\n"); return 2; }
        }
        else if (a == "--prefill") o.prefill = strtoul(val(), nullptr, 10);
        else if (a == "--decode") o.decode = strtoul(val(), nullptr, 10);
        else if (a == "--gen") o.gen = strtoul(val(), nullptr, 10);
        else if (a == "--steps") o.steps = strtoul(val(), nullptr, 10);
        else if (a == "--reps") o.reps = atoi(val());
        else if (a == "--fasa-profile") o.profile = val();
        else if (a == "--fasa-budget") o.budget = (float) atof(val());
        else if (a == "--fasa-group-shared") o.group_shared = true;
        else if (a == "--no-fa") o.fa = false;
        else if (a == "--threads") o.threads = atoi(val());
        else if (a == "--threads-batch") o.threads_batch = atoi(val());
        else if (a == "--ubatch") o.ubatch = atoi(val());
        else if (a == "--ctk") o.type_k = parse_type(val());
        else if (a == "--ctv") o.type_v = parse_type(val());
        else if (a == "--scenario") o.scenario = val();
        else if (a == "--n-keep") o.n_keep = strtoul(val(), nullptr, 10);
        else if (a == "--n-discard") o.n_discard = strtoul(val(), nullptr, 10);
        else if (a == "--defrag") o.defrag = true;
        else if (a == "--n-seq") o.n_seq = atoi(val());
        else if (a == "--text-out") o.text_out = val();
        else if (a == "-v") o.verbose = true;
        else {
            fprintf(stderr, "llama-fasa-tool: unknown option %s\n%s", a.c_str(), usage);
            return 2;
        }
    }
    g_verbose = o.verbose;
    llama_log_set(log_cb, nullptr);
    llama_backend_init();
    runtime rt;
    llama_model_params mp = llama_model_default_params();
    rt.model = llama_model_load_from_file(o.model.c_str(), mp);
    if (!rt.model) {
        fprintf(stderr, "llama-fasa-tool: cannot load %s\n", o.model.c_str());
        return 1;
    }
    rt.n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(rt.model));
    int rc;
    if (o.mode == "ppl") rc = mode_ppl(rt, o);
    else if (o.mode == "tokcheck") rc = mode_tokcheck(rt, o);
    else if (o.mode == "edit") rc = mode_edit(rt, o);
    else if (o.mode == "parallel") rc = mode_parallel(rt, o);
    else if (o.mode == "generate") rc = mode_generate(rt, o);
    else if (o.mode == "speed") rc = mode_speed(rt, o);
    else {
        fprintf(stderr, "llama-fasa-tool: unknown mode %s\n%s", o.mode.c_str(), usage);
        rc = 2;
    }
    llama_model_free(rt.model);
    llama_backend_free();
    return rc;
}
