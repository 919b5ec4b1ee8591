"""ONNX Runtime CPU speed on the all-MiniLM-L6-v2 ONNX files (the baseline
for flexc's ONNX frontend). Usage: python onnx-ort-speed.py MINILM_DIR [THREADS]
(MINILM_DIR from testsuite/tools/onnx/minilm.py). Prints a markdown table:
median wall time of one forward pass per sequence length, batch 1."""
import sys, time, json, os
import numpy as np
import onnxruntime as ort

d = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
man = json.load(open(os.path.join(d, "manifest.json")))
print(f"| model | threads | tokens | median ms | tokens/s |\n|---|---|---|---|---|")
for name in ["fp32", "int8", "dynint8", "nbits4"]:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    s = ort.InferenceSession(man["models"][name], o, providers=["CPUExecutionProvider"])
    for n in [16, 128]:
        ids = (np.arange(n, dtype=np.int64) * 37 + 1000) % 30000
        ids[0], ids[-1] = 101, 102
        feed = {"input_ids": ids[None], "attention_mask": np.ones((1, n), np.int64), "token_type_ids": np.zeros((1, n), np.int64)}
        for _ in range(3):
            s.run(None, feed)
        ts = []
        for _ in range(20):
            t = time.perf_counter()
            s.run(None, feed)
            ts.append(time.perf_counter() - t)
        ms = 1000 * float(np.median(ts))
        print(f"| {name} | {threads} | {n} | {ms:.2f} | {n / ms * 1000:.0f} |")
