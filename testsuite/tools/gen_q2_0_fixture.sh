#!/bin/sh
# Regenerates testsuite/fixtures/ggml/smollm2-blk0-ffn_down-q2_0-q1_0.json:
# the first 4 rows of blk.0.ffn_down.weight of SmolLM2-135M-Instruct.Q4_1.gguf
# (Q4_1, as shipped) and of the same tensor requantized by llama.cpp's
# llama-quantize to Q2_0 and to Q1_0 (no imatrix, so llama.cpp's reference
# quantizers). Needs llama.cpp with Q2_0/Q1_0 (ggml type ids 42/41) and a
# Python with numpy; gguf-py is taken from the llama.cpp tree.
set -eu
LLAMA=${LLAMA:-$HOME/.cache/flexc/llama.cpp}
SRC=${SRC:-$HOME/.cache/flexc/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf}
PY=${PY:-$HOME/.cache/flexc/bench-venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$LLAMA/build/bin/llama-quantize" --allow-requantize --pure "$SRC" "$TMP/q2_0.gguf" Q2_0 1
# Q1_0 needs rows of whole 128-blocks: requantize only ffn_down (1536 wide) to it.
"$LLAMA/build/bin/llama-quantize" --allow-requantize --tensor-type ffn_down=q1_0 "$SRC" "$TMP/q1_0.gguf" Q8_0 1
GGUF_PY="$LLAMA/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py" "$PY" - "$SRC" "$TMP/q2_0.gguf" "$TMP/q1_0.gguf" <<'PY' > "$(dirname "$0")/../fixtures/ggml/smollm2-blk0-ffn_down-q2_0-q1_0.json"
import json, os, sys
sys.path.insert(0, os.environ["GGUF_PY"])
from gguf import GGUFReader
def rows(path, name, nrows):
    t = next(t for t in GGUFReader(path).tensors if t.name == name)
    data = bytes(t.data.tobytes())
    return int(t.tensor_type), int(t.shape[0]), data[: len(data) // int(t.shape[1]) * nrows]
out = {}
for label, path in zip(["q4_1", "q2_0", "q1_0"], sys.argv[1:]):
    ty, cols, b = rows(path, "blk.0.ffn_down.weight", 4)
    out[label] = {"ggml_type": ty, "cols": cols, "hex": b.hex()}
print(json.dumps(out, indent=1))
PY
