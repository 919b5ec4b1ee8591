#!/usr/bin/env bash
# llamacpp-fixtures.sh: regenerates testsuite/fixtures/llamacpp/{smollm2-135m,gemma3-270m}.json,
# llama.cpp's greedy reference for compiler/tests/llamacpp_reference.rs.
#
# Builds llama.cpp (via bench/compare-llama-cpp.sh --build-only, ~7-13 min once),
# compiles bench/llamacpp-ref.cpp against its static libllama, and runs it on
# each model and prompt: 1 thread, 16 greedy tokens, top-20 logits of the last
# prompt position. About 10 s in all once built.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLEXC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flexc}"
BUILD="$CACHE/llama.cpp/build"
SRC="$CACHE/llama.cpp/llama_cpp_python-0.3.36/vendor/llama.cpp"
OUT="$REPO/testsuite/fixtures/llamacpp"
THREADS=1
N_PREDICT=16
TOP_K=20
PROMPTS=(
    "The capital of France is"
    "The history of the printing press begins in the fifteenth century, when"
    "Once upon a time, in a small village,"
)

"$REPO/bench/compare-llama-cpp.sh" --build-only >/dev/null
REF="$BUILD/llamacpp-ref"
libs=("$BUILD/src/libllama.a" "$BUILD/ggml/src/libggml.a" "$BUILD/ggml/src/libggml-cpu.a" "$BUILD/ggml/src/libggml-base.a")
if [ ! -x "$REF" ] || [ "$REPO/bench/llamacpp-ref.cpp" -nt "$REF" ]; then
    g++ -O2 -std=c++17 -I"$SRC/include" -I"$SRC/ggml/include" "$REPO/bench/llamacpp-ref.cpp" -o "$REF" \
        "${libs[@]}" -fopenmp -lpthread -ldl -lm
fi

mkdir -p "$OUT"
for spec in "smollm2-135m:SmolLM2-135M-Instruct.Q4_1.gguf" "gemma3-270m:gemma-3-270m-q4_k_m.gguf"; do
    name="${spec%%:*}"
    file="${spec#*:}"
    path="$CACHE/models/$name/$file"
    cases=()
    cases_f32=()
    for p in "${PROMPTS[@]}"; do
        cases+=("$("$REF" "$path" "$THREADS" "$N_PREDICT" "$TOP_K" "$p")")
        cases_f32+=("$(LLAMACPP_REF_F32_KV=1 "$REF" "$path" "$THREADS" "$N_PREDICT" "$TOP_K" "$p")")
    done
    how="bench/llamacpp-fixtures.sh: bench/llamacpp-ref.cpp (g++ -O2, linked statically against libllama/libggml built by bench/compare-llama-cpp.sh from the llama.cpp tree vendored in the PyPI sdist llama-cpp-python==0.3.36 = ggml-org/llama.cpp@0c1e57098, ggml 0.25.3, Release, GGML_NATIVE=ON, CPU only) run as: llamacpp-ref $file $THREADS $N_PREDICT $TOP_K PROMPT. $THREADS thread (n_threads = n_threads_batch = $THREADS), n_ctx = prompt+$N_PREDICT+8, the prompt as one batch (n_batch = n_ubatch = prompt length), then one token per llama_decode. Tokenization: llama_tokenize(add_special = llama_vocab_get_add_bos, parse_special = true). Greedy = argmax of llama_get_logits_ith(ctx, -1), first id on ties, stop at EOG. last_prompt_logits: the top-$TOP_K (id, logit) of the last prompt position and mean/std/min/max of its whole row. steps_top2[i] = [best id, its logit, second id, its logit] before generated token i. cases: llama.cpp's defaults (f16 KV cache, flash attention auto). cases_f32_kv: the same with LLAMACPP_REF_F32_KV=1 (type_k = type_v = GGML_TYPE_F32, flash attention disabled), the closer match for an f32 engine. Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(date -u +%Y-%m-%d)."
    printf '%s\n' "${cases[@]}" >"$OUT/.cases.tmp"
    printf '%s\n' "${cases_f32[@]}" | jq -s --arg how "$how" --arg name "$name" --arg file "$file" \
        --arg sha "$(sha256sum "$path" | cut -d' ' -f1)" --slurpfile cases "$OUT/.cases.tmp" \
        '{how: $how, model: $name, file: $file, sha256: $sha, threads: 1, n_predict: 16, cases: $cases, cases_f32_kv: .}' >"$OUT/$name.json"
    rm -f "$OUT/.cases.tmp"
    echo "wrote $OUT/$name.json" >&2
done
