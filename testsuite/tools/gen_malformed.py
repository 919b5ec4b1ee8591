#!/usr/bin/env python3
"""Writes the text part of the malformed-input corpus (testsuite/malformed/).

What and why: each file is one small hostile or broken input for one of
flexc's readers; compiler/tests/malformed.rs runs every file through its
reader and through the CLI and checks for a clean one-line error, the
documented exit code, no panic and no leftover output file. The binary
formats (GGUF, safetensors, FlexCiM binary) are corrupted in the test itself
from tiny synthetic files (testsuite/src/synth.rs), so no model file is ever
committed. Re-run after editing: `python3 testsuite/tools/gen_malformed.py`.
"""
import os, shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "malformed")

GOOD_FUNC = "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x, %x : f32[2]\n  return %y\n}\n"

fir = {
    "empty-func-body": "func @f() {\n",
    "nul-bytes": "func @f(%x: f32[2]) -> f32[2] {\n  \0\0\0\n  return %x\n}\n",
    "invalid-utf8": b"func @f(%x: f32[2]) -> f32[2] {\n  // \xff\xfe\xc3\n  return %x\n}\n",
    "utf8-bom": "\ufeff" + GOOD_FUNC,
    "binary-garbage": bytes(range(256)) * 2,
    "gguf-magic-as-fir": b"GGUF\x03\x00\x00\x00" + b"\x00" * 24,
    "truncated-mid-op": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x,",
    "truncated-mid-type": "func @f(%x: f32[2",
    "truncated-mid-string": 'weight @w : f32[2] = file<"/tmp/x',
    "unterminated-attr-dict": "func @f(%x: f32[2, 2]) -> f32[2, 2] {\n  %y = tensor.softmax %x {axis = 1 : f32[2, 2]\n  return %y\n}\n",
    "deep-attr-list": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x, %x {a = " + "[" * 5000 + "]" * 5000 + "} : f32[2]\n  return %y\n}\n",
    "deep-encoding-params": "func @f(%x: f32[64] #nm<n = " + "[" * 5000 + "1" + "]" * 5000 + ", m = 4>) -> f32[64] {\n  return %x\n}\n",
    "deep-dense": "weight @w : f32[1] = dense<" + "[" * 5000 + "1.0" + "]" * 5000 + ">\n",
    "long-line": "func @f(%x: f32[2]) -> f32[2] { " + "%y = " * 4000 + "\n}\n",
    "int-overflow-dim": "func @f(%x: f32[99999999999999999999999]) -> f32[2] {\n  return %x\n}\n",
    "negative-dim": "func @f(%x: f32[-3]) -> f32[-3] {\n  return %x\n}\n",
    "int-overflow-attr": "func @f(%x: f32[2, 2]) -> f32[2, 2] {\n  %y = tensor.softmax %x {axis = 99999999999999999999999} : f32[2, 2]\n  return %y\n}\n",
    "huge-axis": "func @f(%x: f32[2, 2]) -> f32[2, 2] {\n  %y = tensor.softmax %x {axis = 9223372036854775807} : f32[2, 2]\n  return %y\n}\n",
    "min-int-axis": "func @f(%x: f32[2, 2]) -> f32[2, 2] {\n  %y = tensor.softmax %x {axis = -9223372036854775808} : f32[2, 2]\n  return %y\n}\n",
    "bad-float": "weight @w : f32[2] = dense<[1.0.0, 2]>\n",
    "bad-unicode-escape": 'weight @w : f32[2] = file<"\\u{110000}", 0, 8>\n',
    "unknown-escape": 'weight @w : f32[2] = file<"\\q", 0, 8>\n',
    "weight-file-wrong-len": 'weight @w : f32[2] = file<"/dev/null", 0, 7>\n',
    "weight-huge-shape": 'weight @w : f32[4294967296, 4294967296, 4294967296] = file<"/dev/null", 0, 8>\n',
    "weight-dense-count": "weight @w : f32[3] = dense<[1.0, 2.0]>\n",
    "weight-dense-bytes-odd": 'weight @w : f32[1] #q8_0 = dense<"0x123">\n',
    "weight-dense-bytes-nonhex": 'weight @w : f32[1] = dense<"0xzz">\n',
    "weight-encoded-partial-block": 'weight @w : f32[3] #q4_0 = dense<"0x00">\n',
    "weight-symbolic": 'weight @w : f32[seq] = dense<[1.0]>\n',
    "weight-twice": "weight @w : f32[1] = dense<[1.0]>\nweight @w : f32[1] = dense<[2.0]>\n",
    "func-twice": GOOD_FUNC + GOOD_FUNC,
    "value-twice": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x, %x : f32[2]\n  %y = tensor.add %x, %x : f32[2]\n  return %y\n}\n",
    "use-before-def": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %z, %x : f32[2]\n  %z = tensor.add %x, %x : f32[2]\n  return %y\n}\n",
    "self-use-cycle": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %y, %x : f32[2]\n  return %y\n}\n",
    "unknown-op": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.frobnicate %x : f32[2]\n  return %y\n}\n",
    "unknown-elem": "func @f(%x: f7[2]) -> f7[2] {\n  return %x\n}\n",
    "unknown-encoding": "func @f(%x: f32[32] #q9_9) -> f32[32] #q9_9 {\n  return %x\n}\n",
    "nm-bad-pattern": "func @f(%x: f32[64] #nm<n = 9, m = 4>) -> f32[64] {\n  return %x\n}\n",
    "nm-huge-m": "func @f(%x: f32[64] #nm<n = 1, m = 9223372036854775807>) -> f32[64] {\n  return %x\n}\n",
    "nm-plan-fraction-above-one": "module {nm_plan = [[@w, 1.5]]}\nweight @w : f32[2, 2] = dense<[1.0, 2.0, 3.0, 4.0]>\nfunc @f(%x: f32[2]) -> f32[2] {\n  return %x\n}\n",
    "nm-plan-m-overflows-u32": "module {nm_plan = [[@w, 1, 4294967296]]}\nweight @w : f32[2, 2] = dense<[1.0, 2.0, 3.0, 4.0]>\nfunc @f(%x: f32[2]) -> f32[2] {\n  return %x\n}\n",
    "nm-plan-wraps-to-2-4": "module {nm_plan = [[@w, 4294967298, 4294967300]]}\nweight @w : f32[2, 2] = dense<[1.0, 2.0, 3.0, 4.0]>\nfunc @f(%x: f32[2]) -> f32[2] {\n  return %x\n}\n",
    "nm-plan-not-a-list": "module {nm_plan = [@w]}\nweight @w : f32[2, 2] = dense<[1.0, 2.0, 3.0, 4.0]>\nfunc @f(%x: f32[2]) -> f32[2] {\n  return %x\n}\n",
    "wrong-arity": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x : f32[2]\n  return %y\n}\n",
    "wrong-result-type": "func @f(%x: f32[2]) -> f32[2] {\n  %y = tensor.add %x, %x : f32[3]\n  return %y\n}\n",
    "return-count": "func @f(%x: f32[2]) -> f32[2] {\n  return %x, %x\n}\n",
    "return-type": "func @f(%x: f32[2]) -> f32[3] {\n  return %x\n}\n",
    "no-return": "func @f(%x: f32[2]) -> f32[2] {\n}\n",
    "missing-weight": "func @f() -> f32[2] {\n  %w = tensor.weight @nope : f32[2]\n  return %w\n}\n",
    "matmul-mismatch": "func @f(%x: f32[2, 3], %w: f32[4, 5]) -> f32[2, 4] {\n  %y = tensor.matmul %x, %w {transpose_b} : f32[2, 4]\n  return %y\n}\n",
    "reshape-numel": "func @f(%x: f32[2, 3]) -> f32[7] {\n  %y = tensor.reshape %x : f32[7]\n  return %y\n}\n",
    "transpose-bad-perm": "func @f(%x: f32[2, 3]) -> f32[3, 2] {\n  %y = tensor.transpose %x {perm = [1, 1]} : f32[3, 2]\n  return %y\n}\n",
    "transpose-huge-perm": "func @f(%x: f32[2, 3]) -> f32[3, 2] {\n  %y = tensor.transpose %x {perm = [9223372036854775807, 0]} : f32[3, 2]\n  return %y\n}\n",
    "slice-out-of-range": "func @f(%x: f32[4]) -> f32[2] {\n  %y = tensor.slice %x {axis = 0, start = 9223372036854775806, end = 9223372036854775807} : f32[2]\n  return %y\n}\n",
    "quantized-matmul": "weight @w : f32[4, 32] #q8_0 = dense<\"0x" + "00" * (4 * 34) + "\">\nfunc @f(%x: f32[1, 32]) -> f32[1, 4] {\n  %w = tensor.weight @w : f32[4, 32] #q8_0\n  %y = tensor.matmul %x, %w {transpose_b} : f32[1, 4]\n  return %y\n}\n",
    "module-attr-garbage": "module @m {a = } \n" + GOOD_FUNC,
    "stray-brace": GOOD_FUNC + "}\n",
    "only-comment": "// nothing here but a comment, which is a valid empty module\n@",
}

# Shapes that parse and verify but would need unbounded memory to run:
# `flexc exec` and `flexc sim` must refuse them before allocating.
fir_exec = {
    "exec-huge-param": "func @f(%x: f32[100000, 100000]) -> f32[100000, 100000] {\n  %y = tensor.add %x, %x : f32[100000, 100000]\n  return %y\n}\n",
    "exec-overflow-param": "func @f(%x: f32[4294967296, 4294967296]) -> f32[4294967296, 4294967296] {\n  %y = tensor.add %x, %x : f32[4294967296, 4294967296]\n  return %y\n}\n",
    "exec-overflow-3d": "func @f(%x: f32[4294967296, 4294967296, 4294967296]) -> f32[4294967296, 4294967296, 4294967296] {\n  return %x\n}\n",
    "exec-huge-matmul-result": "func @f(%x: f32[1, 4], %w: f32[2000000000, 4]) -> f32[1, 2000000000] {\n  %y = tensor.matmul %x, %w {transpose_b} : f32[1, 2000000000]\n  return %y\n}\n",
    "exec-huge-outer-product": "func @f(%x: f32[65536, 1]) -> f32[65536, 65536] {\n  %y = tensor.matmul %x, %x {transpose_b} : f32[65536, 65536]\n  return %y\n}\n",
    "exec-weight-file-missing": 'weight @w : f32[2] = file<"/nonexistent/flexc/model.bin", 0, 8>\nfunc @f() -> f32[2] {\n  %w = tensor.weight @w : f32[2]\n  return %w\n}\n',
    "exec-weight-file-huge-offset": 'weight @w : f32[2] = file<"/dev/null", 18446744073709551607, 8>\nfunc @f() -> f32[2] {\n  %w = tensor.weight @w : f32[2]\n  return %w\n}\n',
    "exec-weight-file-short": 'weight @w : f32[2] = file<"/dev/null", 1099511627776, 8>\nfunc @f() -> f32[2] {\n  %w = tensor.weight @w : f32[2]\n  return %w\n}\n',
}

asm = {
    "unknown-instr": "frobnicate x=1\n",
    "missing-field": "layer name=a tokens=1 out=4\n",
    "unknown-field": "sync bogus=1\n",
    "field-twice": "cfg n=2 n=2 m=4 agg=1\n",
    "not-key-value": "cfg 2 4 1\n",
    "number-overflow": "cfg n=300 m=4 agg=1\n",
    "negative-number": "layer name=a tokens=-1 out=4 in=4\n",
    "bad-name": "layer name=a=b tokens=1 out=4 in=4\n",
    "hex-no-prefix": "ldx addr=0 data=1234\n",
    "hex-odd": "ldx addr=0 data=0x123\n",
    "hex-non-ascii": "ldx addr=0 data=0x1\u00e91\n",
    "hex-bad-digit": "ldx addr=0 data=0xzz\n",
    "ldw-size-mismatch": "ldw sm=0 row=0 col=0 rows=2 cols=2 w=0x0102 meta=0x00\n",
    "ldw-meta-mismatch": "ldw sm=0 row=0 col=0 rows=1 cols=2 w=0x0102 meta=0x0000\n",
    "ldw-out-of-array": "ldw sm=9 row=0 col=0 rows=1 cols=1 w=0x01 meta=0x00\n",
    "ldw-row-overflow": "ldw sm=0 row=65535 col=65535 rows=1 cols=1 w=0x01 meta=0x00\n",
    "dsel-lengths": "dsel row=0 bus=0,1 s1=0 s2=0,1\n",
    "dsel-bad-list": "dsel row=0 bus=a,b s1=0,0 s2=0,1\n",
    "dsel-row-range": "dsel row=999 bus=0,0,0,0 s1=0,0,0,0 s2=0,1,2,3\n",
    "dsel-s1-missing": "dsel row=0 bus=0,0,0,0 s1=-,0,0,0 s2=0,1,2,3\n",
    "mac-no-cfg": "layer name=a tokens=1 out=4 in=4\nmac x=0 xstride=4 y=0 count=1 acc=0\n",
    "mac-acc-2": "mac x=0 xstride=4 y=0 count=1 acc=2\n",
    "mac-huge-count": "layer name=a tokens=1 out=4 in=4\ncfg n=2 m=4 agg=4\nmac x=0 xstride=4294967295 y=0 count=4294967295 acc=0\n",
    "st-no-layer": "st y=0 count=1 cols=1 dst=0 dstride=0\n",
    "st-beyond-output": "layer name=a tokens=1 out=4 in=4\nst y=0 count=4294967295 cols=65535 dst=4294967295 dstride=4294967295\n",
    "ldx-beyond-buffer": "ldx addr=4294967295 data=0x0102\n",
    "cfg-bad-pattern": "cfg n=3 m=5 agg=1\n",
    "cfg-agg-zero": "cfg n=2 m=4 agg=0\n",
    "layer-huge-output": "layer name=a tokens=65536 out=32768 in=1\n",
    "layers-exceed-budget": "".join(f"layer name=l{i} tokens=8192 out=8192 in=1\n" for i in range(8)),
    "invalid-utf8": b"layer name=\xff\xfe tokens=1 out=1 in=1\n",
    "binary-garbage": bytes((i * 7 + 3) % 256 for i in range(300)),
    "magic-then-garbage": b"FXCM\x01\x00\xff\xff\xff\xff\x09",
    "magic-truncated": b"FXCM\x01",
    "magic-bad-version": b"FXCM\x09\x00\x00\x00\x00\x00",
}

# One pipeline per file; the prefix says the documented exit code
# (usage: 2, the pipeline text or options are wrong; input: 1, a pass
# refuses the module it is given).
pipeline = {
    "usage-empty-name": ",cse",
    "usage-trailing-comma": "cse,",
    "usage-double-comma": "dce,,cse",
    "usage-unknown-pass": "frobnicate",
    "usage-unclosed-brace": "quantize{bits=4",
    "usage-stray-close": "quantize}",
    "usage-unknown-option": "dce{bogus=1}",
    "usage-option-twice": "quantize{bits=4,bits=2}",
    "usage-not-key-value": "quantize{4}",
    "usage-bits-not-int": "quantize{bits=four}",
    "usage-bits-huge": "quantize{bits=99999999999999999999}",
    "usage-bits-zero": "quantize{bits=0}",
    "usage-bits-too-many": "quantize{bits=9223372036854775807}",
    "usage-group-negative": "quantize{group=-8}",
    "usage-group-huge": "quantize{group=9223372036854775807}",
    "usage-group-odd": "quantize{group=7}",
    "usage-scheme-unknown": "quantize{scheme=magic}",
    "usage-apot-range": "quantize{scheme=shiftadd,apot=99}",
    "usage-sparsity-nan": "flow-nm{sparsity=nan}",
    "usage-sparsity-inf": "flow-nm{sparsity=inf}",
    "usage-sparsity-range": "flow-nm{sparsity=7.5}",
    "usage-pattern-garbage": "prune-nm{pattern=x:y}",
    "usage-pattern-zero": "prune-nm{pattern=0:4}",
    "usage-pattern-huge": "prune-nm{pattern=2:99999999999999999999}",
    "usage-candidates-garbage": "flow-nm{candidates=2:4,,,}",
    "usage-method-unknown": "flow-nm{method=magic}",
    # Options that would be silently ignored or out of range (issue 19 B3).
    "usage-prune-block-negative": "prune-nm{pattern=2:4,block=-5}",
    "usage-quantize-layers-bracket": "quantize{layers=[}",
    "usage-quantize-layers-empty": "quantize{layers=,}",
    "usage-flow-uniform-sparsity": "flow-nm{method=uniform,sparsity=0.3}",
    "usage-flow-uniform-candidates": "flow-nm{method=uniform,candidates=1:4}",
    "usage-flow-uniform-mode": "flow-nm{method=uniform,mode=nearest}",
    "usage-flow-owl-pattern": "flow-nm{method=owl,pattern=2:4}",
    "usage-flow-hyper-m-zero": "flow-nm{hyper-m=0}",
    "usage-flow-hyper-m-negative": "flow-nm{hyper-m=-3}",
    "usage-flow-lamda-negative": "flow-nm{method=owl,lamda=-1}",
    "usage-flow-lamda-huge": "flow-nm{method=owl,lamda=1e300}",
    "input-quantize-layers-nomatch": "quantize{layers=attn.*}",
    "input-prune-block-missing": "prune-nm{pattern=2:4,block=7}",
    "usage-bool-garbage": "quantize{zero=yes}",
    "usage-non-ascii": "dcé",
    "usage-control-chars": "dce\x01\x02",
    "usage-only-braces": "{}",
    "usage-very-long": "dce," * 4000 + "bogus",
}

arch_base = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "backends", "flexcim", "arch.toml")).read()
def arch_with(old, new):
    assert old in arch_base, old
    return arch_base.replace(old, new, 1)

arch = {
    "arch-empty": "",
    "arch-not-toml": "this is not = = toml [",
    "arch-binary": bytes(range(256)),
    "arch-invalid-utf8": b"name = \"\xff\"\n",
    "arch-missing-section": "name = \"x\"\n",
    "arch-zero-rows": arch_with("rows = 32 ", "rows = 0 "),
    "arch-negative-rows": arch_with("rows = 32 ", "rows = -32 "),
    "arch-huge-rows": arch_with("rows = 32 ", "rows = 18446744073709551615 "),
    "arch-rows-float": arch_with("rows = 32 ", "rows = 32.5 "),
    "arch-rows-string": arch_with("rows = 32 ", "rows = \"32\" "),
    "arch-huge-columns": arch_with("columns = 32 ", "columns = 1000000 "),
    "arch-huge-cells": arch_with("sub_macros = 4 ", "sub_macros = 64 ").replace("rows = 32 ", "rows = 4096 ", 1).replace("columns = 32 ", "columns = 4096 ", 1).replace("adder_tree_stages = 5", "adder_tree_stages = 12"),
    "arch-huge-act-buffer": arch_with("activation_bytes = 262144", "activation_bytes = 1099511627776"),
    "arch-huge-out-buffer": arch_with("output_words = 65536", "output_words = 1099511627776"),
    "arch-weight-bits": arch_with("weight_bits = 8 ", "weight_bits = 4 "),
    "arch-meta-bits": arch_with("meta_bits = 1 ", "meta_bits = 7 "),
    "arch-adder-tree": arch_with("adder_tree_stages = 5", "adder_tree_stages = 2"),
    "arch-aggregation": arch_with("aggregation = 4 ", "aggregation = 3 "),
    "arch-mhz-nan": arch_with("mhz = 500.0", "mhz = nan"),
    "arch-mhz-negative": arch_with("mhz = 500.0", "mhz = -1.0"),
    "arch-pattern-garbage": arch_with('supported = ["1:2"', 'supported = ["x:y"'),
    "arch-pattern-too-wide": arch_with('supported = ["1:2"', 'supported = ["2:64"'),
    "arch-no-patterns": arch_with('supported = ["1:2", "2:4", "2:8", "4:8", "4:4", "8:8"]', "supported = []"),
    "arch-duplicate-key": arch_with("rows = 32 ", "rows = 32\nrows = 32 "),
    "arch-unknown-key": arch_with("rows = 32 ", "rows = 32\nbogus = 1\n"),
}

energy_base = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "backends", "flexcim", "energy.toml")).read()
def energy_with(old, new):
    assert old in energy_base, old
    return energy_base.replace(old, new, 1)

energy = {
    "energy-empty": "",
    "energy-not-toml": "[energy_pj\nmac = ",
    "energy-negative": energy_with("mac = 0.2 ", "mac = -0.2 "),
    "energy-nan": energy_with("mac = 0.2 ", "mac = nan "),
    "energy-inf": energy_with("mac = 0.2 ", "mac = inf "),
    "energy-string": energy_with("mac = 0.2 ", "mac = \"cheap\" "),
    "energy-missing-key": energy_with("mac = 0.2 ", ""),
    "energy-binary": bytes((i * 13) % 256 for i in range(200)),
}

# config.json next to a valid tiny model.safetensors (flexc import <dir>).
config = {
    "config-not-json": "{ this is not json",
    "config-empty": "",
    "config-array": "[1, 2, 3]",
    "config-no-model-type": '{"hidden_size": 8}',
    "config-unknown-model-type": '{"model_type": "gpt-neo-x-9000"}',
    "config-zero-heads": '{"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 0, "num_hidden_layers": 1, "vocab_size": 32}',
    "config-huge-layers": '{"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1099511627776, "rms_norm_eps": 1e-5, "vocab_size": 32, "tie_word_embeddings": true}',
    "config-huge-sizes": '{"model_type": "llama", "hidden_size": 9223372036854775807, "intermediate_size": 9223372036854775807, "num_attention_heads": 1, "num_hidden_layers": 1, "rms_norm_eps": 1e-5, "vocab_size": 9223372036854775807}',
    "config-negative": '{"model_type": "llama", "hidden_size": -8}',
    "config-heads-mismatch": '{"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 3, "num_hidden_layers": 1, "vocab_size": 32}',
    "config-deep-json": '{"model_type": "llama", "rope_scaling": ' + "[" * 5000 + "]" * 5000 + "}",
    "config-wrong-shapes": '{"model_type": "llama", "hidden_size": 16, "intermediate_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1, "rms_norm_eps": 1e-5, "vocab_size": 32, "tie_word_embeddings": true}',
}

# Text given to `flexc tokenize -f` (a tiny synthetic GGUF vocabulary):
# invalid UTF-8 is an input error; the rest must tokenize (exit 0).
tokenizer = {
    "text-invalid-utf8": b"hello \xff\xfe world",
    "text-lone-surrogate-bytes": b"\xed\xa0\x80",
    "text-truncated-utf8": b"caf\xc3",
    "text-binary": bytes(range(256)),
    "text-nul": b"a\0b",
}

def write(sub, name, ext, content):
    d = os.path.join(ROOT, sub)
    os.makedirs(d, exist_ok=True)
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    with open(os.path.join(d, name + ext), "wb") as f:
        f.write(data)

shutil.rmtree(ROOT, ignore_errors=True)
for k, v in fir.items(): write("fir", k, ".fir", v)
for k, v in fir_exec.items(): write("fir-exec", k, ".fir", v)
for k, v in asm.items(): write("asm", k, ".s", v)
for k, v in pipeline.items(): write("pipeline", k, ".pipeline", v)
for k, v in arch.items(): write("arch", k, ".toml", v)
for k, v in energy.items(): write("energy", k, ".toml", v)
for k, v in config.items(): write("config", k, ".json", v)
for k, v in tokenizer.items(): write("tokenizer", k, ".txt", v)
n = sum(len(x) for x in [fir, fir_exec, asm, pipeline, arch, energy, config, tokenizer])
print(f"{n} files under {os.path.normpath(ROOT)}")
