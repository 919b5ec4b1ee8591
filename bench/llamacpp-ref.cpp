// llamacpp-ref: greedy reference data from llama.cpp, printed as one JSON object.
//
//   llamacpp-ref MODEL.gguf THREADS N_PREDICT TOP_K PROMPT
//
// Tokenizes PROMPT as llama.cpp does (add_special = the model's BOS setting,
// parse_special = true), runs the whole prompt as one batch, then generates
// N_PREDICT tokens greedily (argmax, first index on ties), one token per
// llama_decode call. One sequence, THREADS threads for both the prompt and the
// generation (use 1 for reduction-order determinism). Prints: the prompt ids,
// the generated ids / pieces / text, the TOP_K (id, logit) of the last prompt
// position with stats of its whole logits row, and for each generated token
// the best two candidates (to tell near-ties from real mismatches).
//
// Built and run by bench/llamacpp-fixtures.sh against the static libllama that
// bench/compare-llama-cpp.sh builds.

#include "llama.h"

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

static std::string json_str(const std::string & s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            default:
                if (c < 0x20) {
                    char b[8];
                    snprintf(b, sizeof b, "\\u%04x", c);
                    o += b;
                } else {
                    o += (char) c;  // UTF-8 passes through
                }
        }
    }
    return o + "\"";
}

static std::string piece(const llama_vocab * vocab, llama_token id) {
    char buf[256];
    int n = llama_token_to_piece(vocab, id, buf, sizeof buf, 0, true);
    if (n < 0) {
        std::vector<char> big(-n);
        n = llama_token_to_piece(vocab, id, big.data(), big.size(), 0, true);
        return std::string(big.data(), n);
    }
    return std::string(buf, n);
}

static std::string fmt(double x) {
    char b[64];
    snprintf(b, sizeof b, "%.9g", x);
    return b;
}

// Indices of the k largest logits, descending (ties: smaller id first).
static std::vector<int> topk(const float * l, int n, int k) {
    std::vector<int> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    k = std::min(k, n);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
        return l[a] > l[b] || (l[a] == l[b] && a < b);
    });
    idx.resize(k);
    return idx;
}

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL.gguf THREADS N_PREDICT TOP_K PROMPT\n", argv[0]);
        return 2;
    }
    const char * model_path = argv[1];
    const int threads = atoi(argv[2]);
    const int n_predict = atoi(argv[3]);
    const int k = atoi(argv[4]);
    const std::string prompt = argv[5];

    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", model_path);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const bool add_bos = llama_vocab_get_add_bos(vocab);

    int n_prompt = -llama_tokenize(vocab, prompt.data(), prompt.size(), nullptr, 0, add_bos, true);
    std::vector<llama_token> ids(n_prompt);
    if (llama_tokenize(vocab, prompt.data(), prompt.size(), ids.data(), ids.size(), add_bos, true) != n_prompt) {
        fprintf(stderr, "tokenize failed\n");
        return 1;
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_predict + 8;
    cp.n_batch = n_prompt;
    cp.n_ubatch = n_prompt;
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.no_perf = true;
    // Diagnosis only: LLAMACPP_REF_F32_KV=1 keeps the KV cache in f32 (default f16)
    // and turns flash attention off, to see how much of a difference is KV rounding.
    const bool f32_kv = getenv("LLAMACPP_REF_F32_KV") && atoi(getenv("LLAMACPP_REF_F32_KV")) == 1;
    if (f32_kv) {
        cp.type_k = GGML_TYPE_F32;
        cp.type_v = GGML_TYPE_F32;
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create context\n");
        return 1;
    }

    if (llama_decode(ctx, llama_batch_get_one(ids.data(), n_prompt)) != 0) {
        fprintf(stderr, "prompt decode failed\n");
        return 1;
    }

    // The last prompt position: top-k and stats of the whole row.
    std::string first;
    {
        const float * l = llama_get_logits_ith(ctx, -1);
        double sum = 0, sq = 0, mn = l[0], mx = l[0];
        for (int i = 0; i < n_vocab; i++) {
            sum += l[i];
            sq += (double) l[i] * l[i];
            mn = std::min(mn, (double) l[i]);
            mx = std::max(mx, (double) l[i]);
        }
        const double mean = sum / n_vocab;
        const double std_ = std::sqrt(std::max(0.0, sq / n_vocab - mean * mean));
        first = "{\"n_vocab\": " + std::to_string(n_vocab) + ", \"mean\": " + fmt(mean) + ", \"std\": " + fmt(std_) +
                ", \"min\": " + fmt(mn) + ", \"max\": " + fmt(mx) + ", \"top\": [";
        auto t = topk(l, n_vocab, k);
        for (size_t i = 0; i < t.size(); i++) {
            first += (i ? ", [" : "[") + std::to_string(t[i]) + ", " + fmt(l[t[i]]) + "]";
        }
        first += "]}";
    }

    std::vector<llama_token> gen;
    std::string text, pieces = "[", steps = "[";
    for (int i = 0; i < n_predict; i++) {
        const float * l = llama_get_logits_ith(ctx, -1);
        auto t = topk(l, n_vocab, 2);
        llama_token next = t[0];
        steps += std::string(i ? ", " : "") + "[" + std::to_string(t[0]) + ", " + fmt(l[t[0]]) + ", " + std::to_string(t[1]) +
                 ", " + fmt(l[t[1]]) + "]";
        if (llama_vocab_is_eog(vocab, next)) {
            break;
        }
        gen.push_back(next);
        std::string p = piece(vocab, next);
        text += p;
        pieces += std::string(i ? ", " : "") + json_str(p);
        if (i + 1 == n_predict) {
            break;
        }
        if (llama_decode(ctx, llama_batch_get_one(&gen.back(), 1)) != 0) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
    }
    pieces += "]";
    steps += "]";

    std::string out = "{\"prompt\": " + json_str(prompt) + (f32_kv ? ", \"kv\": \"f32\"" : "") + ", \"add_bos\": " + (add_bos ? "true" : "false") + ", \"prompt_ids\": [";
    for (int i = 0; i < n_prompt; i++) {
        out += (i ? ", " : "") + std::to_string(ids[i]);
    }
    out += "], \"generated_ids\": [";
    for (size_t i = 0; i < gen.size(); i++) {
        out += (i ? ", " : "") + std::to_string(gen[i]);
    }
    out += "], \"generated_text\": " + json_str(text) + ", \"generated_pieces\": " + pieces +
           ", \"steps_top2\": " + steps + ", \"last_prompt_logits\": " + first + "}";
    printf("%s\n", out.c_str());

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
