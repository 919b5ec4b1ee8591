#!/usr/bin/env python3
"""Writes the valid op and pass case files of testsuite/cases from numpy.

Every `// run:` line's expected values come from the small numpy reference
implementations below, written from the op table's documentation
(ir/src/ops/defs.rs), never from the interpreter's output. Float math is done
in float64 and rounded once to the result's element type (float16/bfloat16
results are rounded with numpy / by hand), which is within the default 1e-5
relative tolerance of the interpreter's f32 arithmetic.

Usage (from the repository root): python3 testsuite/tools/gen_cases.py
The invalid cases (cases/parse, cases/verify) are written by hand.
"""

import math
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cases")
FILES = {}
HEADER = "expected values: numpy (float64, rounded once to the result type), see testsuite/tools/gen_cases.py"


def fmt_num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e18:
        return str(int(v))
    return "%.9g" % v


def fmt_list(a, exact=False):
    f = fmt_exact if exact else fmt_num
    return "[" + ", ".join(f(x) for x in np.asarray(a).reshape(-1)) + "]"


def fmt_exact(v):
    """Inputs are written exactly (shortest round-tripping form)."""
    v = float(v)
    if math.isinf(v) or math.isnan(v) or (v == int(v) and abs(v) < 1e18):
        return fmt_num(v)
    return repr(v)


def run(fn, inputs, outputs, shaped=()):
    """inputs: list of (name, array); names in `shaped` get an explicit shape."""
    parts = []
    for name, a in inputs:
        a = np.asarray(a)
        if name in shaped:
            parts.append("%s[%s]=%s" % (name, ", ".join(str(d) for d in a.shape), fmt_list(a, True)))
        else:
            parts.append("%s=%s" % (name, fmt_list(a, True)))
    return "// run: @%s %s => %s" % (fn, " ".join(parts), ", ".join(fmt_list(o) for o in outputs))


def case(path, body, runs=(), notes=(), tol=None, passes=None):
    lines = []
    for n in notes:
        lines.append("// " + n)
    if passes:
        lines.append("// test: passes=" + passes)
    if tol:
        lines.append("// tolerance: " + tol)
    lines.extend(runs)
    text = "\n".join(lines) + "\n" + body.strip("\n") + "\n"
    FILES.setdefault(path, []).append(text)


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def f16(x):
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def bf16(x):
    """Round-to-nearest-even to bfloat16 (from the f32 bit pattern)."""
    out = []
    for v in np.asarray(x, dtype=np.float32).reshape(-1):
        (bits,) = struct.unpack("<I", struct.pack("<f", float(v)))
        if math.isnan(v):
            out.append(float("nan"))
            continue
        lsb = (bits >> 16) & 1
        bits = (bits + 0x7FFF + lsb) & 0xFFFF0000
        out.append(struct.unpack("<f", struct.pack("<I", bits))[0])
    return np.array(out).reshape(np.shape(x))


# ----------------------------------------------------------------------------
# Reference semantics, from the op table's docs.

def softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.reshape(-1)]).reshape(x.shape)


def silu(x):
    return x / (1 + np.exp(-x))


def rmsnorm(x, w, eps=1e-6):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layernorm(x, w, b, eps=1e-5):
    mu = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rope(x, pos, base=10000.0, mode="neox", dims=0):
    """HF rotate_half form for neox, complex multiplication for norm."""
    s, h, d = x.shape
    n = dims or d
    out = x.copy()
    half = n // 2
    freqs = base ** (-np.arange(half) * 2.0 / n)
    for i in range(s):
        ang = (pos + i) * freqs
        if mode == "neox":
            x1, x2 = x[i, :, :half], x[i, :, half:n]
            cos, sin = np.cos(ang), np.sin(ang)
            out[i, :, :n] = np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        else:
            z = (x[i, :, 0:n:2] + 1j * x[i, :, 1:n:2]) * np.exp(1j * ang)
            out[i, :, 0:n:2] = z.real
            out[i, :, 1:n:2] = z.imag
    return out


def attention(q, k, v, pos, scale, bidirectional=False, window=0, softcap=0.0):
    s, hq, d = q.shape
    t, hk, _ = k.shape
    dv = v.shape[2]
    group = hq // hk
    out = np.zeros((s, hq, dv))
    for i in range(s):
        p = pos + i
        for h in range(hq):
            kh = h // group
            mask = np.array([
                j < pos + s and (bidirectional or (j <= p and (window <= 0 or p - j < window)))
                for j in range(t)
            ])
            logits = (k[:, kh, :] @ q[i, h, :]) * scale
            if softcap > 0:
                logits = softcap * np.tanh(logits / softcap)
            logits = np.where(mask, logits, -np.inf)
            w = np.exp(logits - logits.max())
            out[i, h] = (w / w.sum()) @ v[:, kh, :]
    return out


def trunc_div(a, b):
    return np.trunc(a / b).astype(np.int64)


def cast_int(x, lo, hi):
    return np.clip(np.trunc(x), lo, hi)


def rust_float(v):
    """Rust's `{:?}` of an f64: Python's repr with the exponent written `e-6`, `e16`."""
    r = repr(float(v))
    if "e" in r:
        m, e = r.split("e")
        r = m + "e" + str(int(e))
    return r


def dense(vals, is_float=True):
    vals = np.asarray(vals).reshape(-1)
    if is_float:
        return "dense<[" + ", ".join(rust_float(v) for v in vals) + "]>"
    return "dense<[" + ", ".join(str(int(v)) for v in vals) + "]>"


def ty(shape, elem="f32"):
    return "%s[%s]" % (elem, ", ".join(str(d) for d in shape))


A23 = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]])


# ============================================================================ ops

# ---------------------------------------------------------------- tensor.weight
W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]])
X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
case("ops/weight.fir", """
weight @w : f32[2, 3] = %s

func @f(%%x: f32[2, 3]) -> f32[2, 3] {
  %%w = tensor.weight @w : f32[2, 3]
  %%y = tensor.add %%x, %%w : f32[2, 3]
  return %%y
}
""" % dense(W), runs=[run("f", [("x", X)], [X + W])],
    notes=[HEADER, "An inline f32 weight read by tensor.weight."])

WH = np.array([0.1, 0.2, -0.3, 1000.1])
case("ops/weight.fir", """
weight @h : f16[4] = %s

func @f(%%x: f16[4]) -> f16[4] {
  %%h = tensor.weight @h : f16[4]
  %%y = tensor.mul %%x, %%h : f16[4]
  return %%y
}
""" % dense(WH), runs=[run("f", [("x", [1.0, 2.0, 1.0, 1.0])], [f16(f16(WH) * f16([1, 2, 1, 1]))])],
    notes=["An f16 weight: inline values round to f16 (0.1 -> 0.0999755859375, 1000.1 -> 1000.0)."])

WI = np.array([[1, -2], [300, 4]])
WE = np.array([[1.0, 0.0], [0.0, 2.0]])
case("ops/weight.fir", """
weight @emb : f32[2, 2] = %s
weight @idx : i32[2, 2] = %s
weight @blk.0.attn_q.weight : f32[2] = dense<[10.0, 20.0]>

func @ints(%%x: i32[2, 2]) -> i32[2, 2] {
  %%w = tensor.weight @idx : i32[2, 2]
  %%y = tensor.sub %%x, %%w : i32[2, 2]
  return %%y
}

func @floats(%%x: f32[2, 2]) -> (f32[2, 2], f32[2]) {
  %%e = tensor.weight @emb : f32[2, 2]
  %%b = tensor.weight @blk.0.attn_q.weight : f32[2]
  %%y = tensor.matmul %%x, %%e : f32[2, 2]
  return %%y, %%b
}
""" % (dense(WE), dense(WI, False)),
    runs=[run("ints", [("x", [[0, 0], [0, 0]])], [-WI]),
          run("floats", [("x", [[1.0, 2.0], [3.0, 4.0]])], [np.array([[1.0, 2.0], [3.0, 4.0]]) @ WE, [10, 20]])],
    notes=["Several weights (integer, float, a dotted GGUF-style name) shared by two functions."])

# ---------------------------------------------------------------- tensor.constant
C = np.array([[1.5, -2.0], [0.0, 1e-6]])
case("ops/constant.fir", """
func @f() -> f32[2, 2] {
  %%c = tensor.constant {value = %s} : f32[2, 2]
  return %%c
}
""" % dense(C), runs=[run("f", [], [C])], notes=[HEADER, "A rank-2 float constant, no parameters."])

case("ops/constant.fir", """
func @f(%x: f32[3]) -> f32[3] {
  %c = tensor.constant {value = dense<[2.5]>} : f32[]
  %y = tensor.mul %x, %c : f32[3]
  return %y
}
""", runs=[run("f", [("x", [1.0, -2.0, 4.0])], [[2.5, -5.0, 10.0]])],
    notes=["A scalar constant broadcast against a vector."])

case("ops/constant.fir", """
func @f() -> (i8[4], i64[2], u8[2]) {
  %a = tensor.constant {value = dense<[-128, -1, 0, 127]>} : i8[4]
  %b = tensor.constant {value = dense<[-9007199254740993, 9007199254740993]>} : i64[2]
  %c = tensor.constant {value = dense<[0, 255]>} : u8[2]
  return %a, %b, %c
}
""", runs=[run("f", [], [[-128, -1, 0, 127], [-9007199254740992, 9007199254740992], [0, 255]])],
    notes=["Integer constants at the edges of their ranges (the i64 values compare as f64 in the harness)."])

case("ops/constant.fir", """
func @f() -> (f16[3], bf16[2]) {
  %h = tensor.constant {value = dense<[2049.0000001, 2049.0, 0.1]>} : f16[3]
  %b = tensor.constant {value = dense<[33685505.0, -1.00390625]>} : bf16[2]
  return %h, %b
}
""", runs=[run("f", [], [[2050, 2048, 0.0999755859375], [33816576, -1.0]])],
    notes=["f16/bf16 constants round once, to nearest even: 2049.0000001 is just past the halfway point",
           "2049 between f16 neighbours 2048 and 2050, so it rounds up (2049.0 itself is a tie -> 2048);",
           "33685505 = 2^25 + 2^17 + 1 -> 2^25 + 2^18 in bf16; -1.00390625 = -(1 + 2^-8) is a bf16 tie -> -1."])

# ---------------------------------------------------------------- tensor.matmul
B32 = np.array([[1.0, 2.0], [0.5, -1.0], [-2.0, 0.25]])
case("ops/matmul.fir", """
func @f(%a: f32[2, 3], %b: f32[3, 2]) -> f32[2, 2] {
  %c = tensor.matmul %a, %b : f32[2, 2]
  return %c
}
""", runs=[run("f", [("a", A23), ("b", B32)], [A23 @ B32])], notes=[HEADER, "Plain [m, k] x [k, n]."])

BT = np.array([[1.0, 0.0, 2.0], [-1.0, 0.5, 0.0], [0.25, 0.25, 0.25], [3.0, -2.0, 1.0]])
case("ops/matmul.fir", """
func @f(%a: f32[2, 3], %w: f32[4, 3]) -> f32[2, 4] {
  %c = tensor.matmul %a, %w {transpose_b} : f32[2, 4]
  return %c
}
""", runs=[run("f", [("a", A23), ("w", BT)], [A23 @ BT.T])], notes=["transpose_b: the right operand is [n, k]."])

A223 = np.arange(12, dtype=float).reshape(2, 2, 3) * 0.5 - 2.0
case("ops/matmul.fir", """
func @f(%a: f32[2, 2, 3], %b: f32[3, 2]) -> f32[2, 2, 2] {
  %c = tensor.matmul %a, %b : f32[2, 2, 2]
  return %c
}
""", runs=[run("f", [("a", A223), ("b", B32)], [A223 @ B32])], notes=["Batched lhs with a shared rank-2 rhs."])

B232 = np.arange(12, dtype=float).reshape(2, 3, 2) * -0.25 + 1.0
case("ops/matmul.fir", """
func @f(%a: f32[2, 2, 3], %b: f32[2, 3, 2]) -> f32[2, 2, 2] {
  %c = tensor.matmul %a, %b : f32[2, 2, 2]
  return %c
}
""", runs=[run("f", [("a", A223), ("b", B232)], [np.matmul(A223, B232)])], notes=["Batched both sides: batch i uses rhs i."])

A213 = np.array([[[1.0, 2.0, 3.0]], [[-1.0, 0.0, 1.0]]])
B223 = np.array([[[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], [[2.0, 0.0, -2.0], [0.5, 0.5, 0.5]]])
case("ops/matmul.fir", """
func @f(%a: f32[2, 1, 3], %b: f32[2, 2, 3]) -> f32[2, 1, 2] {
  %c = tensor.matmul %a, %b {transpose_b} : f32[2, 1, 2]
  return %c
}
""", runs=[run("f", [("a", A213), ("b", B223)], [np.matmul(A213, np.swapaxes(B223, 1, 2))])],
    notes=["Batched both sides with transpose_b."])

XS = np.array([[1.0, 0.5, -1.0], [2.0, 0.0, 3.0], [0.25, 0.25, 0.25]])
WS = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
case("ops/matmul.fir", """
weight @wq : f32[2, 3] = %s

func @f(%%x: f32[seq, 3]) -> f32[seq, 2] {
  %%w = tensor.weight @wq : f32[2, 3]
  %%y = tensor.matmul %%x, %%w {transpose_b} : f32[seq, 2]
  return %%y
}
""" % dense(WS), runs=[run("f", [("x", XS)], [XS @ WS.T], shaped=("x",)), run("f", [("x", XS[:1])], [XS[:1] @ WS.T], shaped=("x",))],
    notes=["A linear layer on a symbolic sequence length (seq = 3, then seq = 1)."])

AH = np.array([[0.1, 0.2], [0.3, 1000.0]])
BH = np.array([[1.1, -0.7], [0.9, 3.3]])
case("ops/matmul.fir", """
func @f(%a: f16[2, 2], %b: f16[2, 2]) -> f16[2, 2] {
  %c = tensor.matmul %a, %b : f16[2, 2]
  return %c
}
""", runs=[run("f", [("a", AH), ("b", BH)], [f16(f16(AH) @ f16(BH))])],
    notes=["f16 operands (inputs round to f16), products accumulated exactly, result rounded to f16."])

# ---------------------------------------------------------------- binary
case("ops/binary.fir", """
func @add(%x: f32[2, 3], %y: f32[3]) -> f32[2, 3] {
  %z = tensor.add %x, %y : f32[2, 3]
  return %z
}
""", runs=[run("add", [("x", [1, 2, 3, 4, 5, 6]), ("y", [10, 20, 30])], [[11, 22, 33, 14, 25, 36]])],
    notes=[HEADER, "Elementwise arithmetic with numpy broadcasting."])

case("ops/binary.fir", """
func @ops(%a: i32[2], %b: i32[2]) -> (i32[2], i32[2], i32[2], i32[2]) {
  %s = tensor.add %a, %b : i32[2]
  %d = tensor.sub %a, %b : i32[2]
  %m = tensor.mul %a, %b : i32[2]
  %q = tensor.div %a, %b : i32[2]
  return %s, %d, %m, %q
}
""", runs=[run("ops", [("a", [6, -4]), ("b", [3, 2])], [[9, -2], [3, -6], [18, -8], [2, -2]])])

ROW = np.array([[1.0], [-2.0]])
COL = np.array([[10.0, 20.0, 30.0]])
case("ops/binary.fir", """
func @f(%a: f32[2, 1], %b: f32[1, 3]) -> (f32[2, 3], f32[2, 3], f32[2, 3], f32[2, 3]) {
  %s = tensor.add %a, %b : f32[2, 3]
  %d = tensor.sub %a, %b : f32[2, 3]
  %m = tensor.mul %a, %b : f32[2, 3]
  %q = tensor.div %a, %b : f32[2, 3]
  return %s, %d, %m, %q
}
""", runs=[run("f", [("a", ROW), ("b", COL)], [ROW + COL, ROW - COL, ROW * COL, ROW / COL])],
    notes=["Both operands broadcast: [2, 1] with [1, 3]."])

T3 = np.arange(4, dtype=float).reshape(2, 1, 2) - 1.5
U3 = np.array([[1.0], [2.0], [4.0]])
case("ops/binary.fir", """
func @f(%a: f32[2, 1, 2], %b: f32[3, 1]) -> f32[2, 3, 2] {
  %y = tensor.sub %a, %b : f32[2, 3, 2]
  return %y
}
""", runs=[run("f", [("a", T3), ("b", U3)], [T3 - U3])], notes=["Rank-3 with rank-2 broadcasting: [2, 1, 2] - [3, 1]."])

case("ops/binary.fir", """
func @f(%a: f32[], %b: f32[3]) -> (f32[3], f32[3]) {
  %x = tensor.div %a, %b : f32[3]
  %y = tensor.div %b, %a : f32[3]
  return %x, %y
}
""", runs=[run("f", [("a", [3.0]), ("b", [2.0, -4.0, 0.5])], [3.0 / np.array([2.0, -4.0, 0.5]), np.array([2.0, -4.0, 0.5]) / 3.0])],
    notes=["A rank-0 operand on either side."])

with np.errstate(divide="ignore", invalid="ignore"):
    DZ = np.array([1.0, -1.0, 0.0, 5.0]) / np.zeros(4)
case("ops/binary.fir", """
func @f(%a: f32[4], %b: f32[4]) -> f32[4] {
  %q = tensor.div %a, %b : f32[4]
  return %q
}
""", runs=[run("f", [("a", [1.0, -1.0, 0.0, 5.0]), ("b", [0.0, 0.0, 0.0, 0.0])], [DZ])],
    notes=["Float division by zero follows IEEE: inf, -inf, nan."])

NA = np.array([-7, 7, -7, 7, -1, 9])
NB = np.array([2, -2, -2, 2, 3, -10])
case("ops/binary.fir", """
func @f(%a: i32[6], %b: i32[6]) -> i32[6] {
  %q = tensor.div %a, %b : i32[6]
  return %q
}
""", runs=[run("f", [("a", NA), ("b", NB)], [trunc_div(NA, NB)])],
    notes=["Integer division truncates toward zero: -7 / 2 = -3, 7 / -2 = -3, -1 / 3 = 0."])

I8A = np.array([[100, -100], [-128, 127]])
I8B = np.array([27, -28])
case("ops/binary.fir", """
func @f(%a: i8[2, 2], %b: i8[2]) -> (i8[2, 2], i8[2, 2]) {
  %s = tensor.add %a, %b : i8[2, 2]
  %q = tensor.div %a, %b : i8[2, 2]
  return %s, %q
}
""", runs=[run("f", [("a", I8A), ("b", I8B)], [I8A + I8B, trunc_div(I8A, I8B)])],
    notes=["i8 arithmetic that stays in range (100 + 27 = 127, -100 + -28 = -128) with broadcasting."])

case("ops/binary.fir", """
func @f(%a: f16[3], %b: f16[3]) -> f16[3] {
  %s = tensor.add %a, %b : f16[3]
  return %s
}
""", runs=[run("f", [("a", [0.1, 2048.0, 60000.0]), ("b", [0.2, 1.0, 10000.0])],
               [f16(f16([0.1, 2048.0, 60000.0]) + f16([0.2, 1.0, 10000.0]))])],
    notes=["f16 sums round to f16: 2048 + 1 = 2048 (ties to even), 60000 + 10000 overflows to inf."])

# ---------------------------------------------------------------- unary
UX = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0])
case("ops/unary.fir", """
func @f(%x: f32[6]) -> (f32[6], f32[6], f32[6]) {
  %n = tensor.neg %x : f32[6]
  %e = tensor.exp %x : f32[6]
  %t = tensor.tanh %x : f32[6]
  return %n, %e, %t
}
""", runs=[run("f", [("x", UX)], [-UX, np.exp(UX), np.tanh(UX)])], notes=[HEADER, "neg, exp, tanh."])

case("ops/unary.fir", """
func @f(%x: f32[6]) -> (f32[6], f32[6]) {
  %r = tensor.relu %x : f32[6]
  %s = tensor.silu %x : f32[6]
  return %r, %s
}
""", runs=[run("f", [("x", UX)], [np.maximum(UX, 0), silu(UX)])], notes=["relu and silu (x * sigmoid(x))."])

case("ops/unary.fir", """
func @f(%x: i32[4]) -> (i32[4], i32[4]) {
  %n = tensor.neg %x : i32[4]
  %r = tensor.relu %x : i32[4]
  return %n, %r
}
""", runs=[run("f", [("x", [-5, 0, 7, -2147483647])], [[5, 0, -7, 2147483647], [0, 0, 7, 0]])],
    notes=["neg and relu on integers."])

GX = np.array([-4.0, -1.5, -0.5, 0.0, 0.7, 1.0, 3.0, 6.0])
case("ops/unary.fir", """
func @f(%x: f32[8]) -> f32[8] {
  %g = tensor.gelu %x : f32[8]
  return %g
}
""", runs=[run("f", [("x", GX)], [gelu_tanh(GX)])], notes=["GELU, tanh approximation (the default)."])

case("ops/unary.fir", """
func @f(%x: f32[8]) -> f32[8] {
  %g = tensor.gelu %x {approx = erf} : f32[8]
  return %g
}
""", runs=[run("f", [("x", GX)], [gelu_erf(GX)])], notes=["GELU, exact erf form (math.erf)."])

EX = np.array([-100.0, 10.0, 88.0, 89.0])
case("ops/unary.fir", """
func @f(%x: f32[4]) -> (f32[4], f32[4]) {
  %e = tensor.exp %x : f32[4]
  %s = tensor.silu %x : f32[4]
  return %e, %s
}
""", runs=[run("f", [("x", EX)], [[math.exp(-100), math.exp(10), math.exp(88), float("inf")], silu(EX)])],
    notes=["Extremes: e^89 overflows f32 to inf; silu(-100) is a tiny negative number, not nan."])

# ---------------------------------------------------------------- softmax
SX = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]])
case("ops/softmax.fir", """
func @f(%x: f32[2, 3]) -> f32[2, 3] {
  %y = tensor.softmax %x : f32[2, 3]
  return %y
}
""", runs=[run("f", [("x", SX)], [softmax(SX, -1)])], notes=[HEADER, "Softmax over the last axis (default axis = -1)."])

case("ops/softmax.fir", """
func @f(%x: f32[2, 3]) -> f32[2, 3] {
  %y = tensor.softmax %x {axis = 0} : f32[2, 3]
  return %y
}
""", runs=[run("f", [("x", SX)], [softmax(SX, 0)])], notes=["Softmax over axis 0."])

S3 = np.arange(12, dtype=float).reshape(2, 3, 2) * 0.3 - 1.0
case("ops/softmax.fir", """
func @f(%x: f32[2, 3, 2]) -> (f32[2, 3, 2], f32[2, 3, 2]) {
  %a = tensor.softmax %x {axis = 1} : f32[2, 3, 2]
  %b = tensor.softmax %x {axis = -3} : f32[2, 3, 2]
  return %a, %b
}
""", runs=[run("f", [("x", S3)], [softmax(S3, 1), softmax(S3, 0)])], notes=["A middle axis, and a negative axis that means axis 0."])

case("ops/softmax.fir", """
func @f(%x: f32[4]) -> f32[4] {
  %y = tensor.softmax %x : f32[4]
  return %y
}
""", runs=[run("f", [("x", [1000.0, 1001.0, 1002.0, -np.inf])], [softmax(np.array([1000.0, 1001.0, 1002.0, -np.inf]), -1)])],
    notes=["Large logits do not overflow (the max is subtracted); -inf gets weight 0."])

# ---------------------------------------------------------------- norms
RX = np.array([[1.0, 2.0, 3.0, 4.0], [-0.5, 0.5, 0.0, 1.0]])
RW = np.array([1.0, 0.5, -1.0, 2.0])
case("ops/norm.fir", """
func @f(%x: f32[2, 4], %w: f32[4]) -> f32[2, 4] {
  %y = tensor.rmsnorm %x, %w : f32[2, 4]
  return %y
}
""", runs=[run("f", [("x", RX), ("w", RW)], [rmsnorm(RX, RW)])], notes=[HEADER, "rmsnorm with the default eps = 1e-6."])

RX3 = np.array([[[0.1, 0.2]], [[3.0, -4.0]]])
case("ops/norm.fir", """
func @f(%x: f32[2, 1, 2], %w: f32[2]) -> f32[2, 1, 2] {
  %y = tensor.rmsnorm %x, %w {eps = 0.1} : f32[2, 1, 2]
  return %y
}
""", runs=[run("f", [("x", RX3), ("w", [1.0, 1.0])], [rmsnorm(RX3, np.array([1.0, 1.0]), 0.1)])],
    notes=["rmsnorm on rank 3 with a large eps that dominates small rows."])

LB = np.array([0.0, 1.0, -1.0, 0.5])
case("ops/norm.fir", """
func @f(%x: f32[2, 4], %w: f32[4], %b: f32[4]) -> f32[2, 4] {
  %y = tensor.layernorm %x, %w, %b : f32[2, 4]
  return %y
}
""", runs=[run("f", [("x", RX), ("w", RW), ("b", LB)], [layernorm(RX, RW, LB)])], notes=["layernorm with the default eps = 1e-5 (population variance)."])

LX = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 6.0]])
case("ops/norm.fir", """
func @f(%x: f32[2, 3], %w: f32[3], %b: f32[3]) -> f32[2, 3] {
  %y = tensor.layernorm %x, %w, %b {eps = 0.001} : f32[2, 3]
  return %y
}
""", runs=[run("f", [("x", LX), ("w", [1.0, 2.0, 3.0]), ("b", [0.5, 0.5, 0.5])],
               [layernorm(LX, np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5]), 1e-3)])],
    notes=["layernorm, eps = 0.001; a constant row normalises to 0 and returns the bias."])

# ---------------------------------------------------------------- rope
PX = np.arange(16, dtype=float).reshape(2, 2, 4) * 0.25 - 1.0
case("ops/rope.fir", """
func @f(%x: f32[2, 2, 4], %pos: i32[]) -> f32[2, 2, 4] {
  %y = tensor.rope %x, %pos : f32[2, 2, 4]
  return %y
}
""", runs=[run("f", [("x", PX), ("pos", [0])], [rope(PX, 0)]), run("f", [("x", PX), ("pos", [5])], [rope(PX, 5)])],
    notes=[HEADER, "Neox rope (pairs j, j + d/2) over all of head_dim; pos 0 leaves token 0 unchanged."])

case("ops/rope.fir", """
func @f(%x: f32[2, 2, 4], %pos: i32[]) -> f32[2, 2, 4] {
  %y = tensor.rope %x, %pos {mode = norm} : f32[2, 2, 4]
  return %y
}
""", runs=[run("f", [("x", PX), ("pos", [3])], [rope(PX, 3, mode="norm")])], notes=["Norm rope (pairs 2j, 2j + 1) at pos = 3."])

PX6 = np.arange(18, dtype=float).reshape(3, 1, 6) * 0.1 + 0.5
case("ops/rope.fir", """
func @f(%x: f32[3, 1, 6], %pos: i32[]) -> f32[3, 1, 6] {
  %y = tensor.rope %x, %pos {base = 100.0, dims = 4} : f32[3, 1, 6]
  return %y
}
""", runs=[run("f", [("x", PX6), ("pos", [1])], [rope(PX6, 1, base=100.0, dims=4)])],
    notes=["Partial neox rope: the first 4 of 6 dims rotate (pairs (0, 2), (1, 3)), base 100, pos 1."])

case("ops/rope.fir", """
func @f(%x: f32[3, 1, 6], %pos: i32[]) -> f32[3, 1, 6] {
  %y = tensor.rope %x, %pos {base = 500000.0, mode = norm, dims = 2} : f32[3, 1, 6]
  return %y
}
""", runs=[run("f", [("x", PX6), ("pos", [7])], [rope(PX6, 7, base=500000.0, mode="norm", dims=2)])],
    notes=["Partial norm rope: only dims 0 and 1 rotate (frequency 1), pos 7."])

# ---------------------------------------------------------------- gather
GT = np.array([[0.0, 0.1, 0.2], [1.0, 1.1, 1.2], [2.0, 2.1, 2.2], [3.0, 3.1, 3.2]])
case("ops/gather.fir", """
func @f(%t: f32[4, 3], %ids: i32[3]) -> f32[3, 3] {
  %y = tensor.gather %t, %ids : f32[3, 3]
  return %y
}
""", runs=[run("f", [("t", GT), ("ids", [3, 0, 3])], [GT[[3, 0, 3]]])], notes=[HEADER, "Rows of a table, with a repeated id."])

case("ops/gather.fir", """
weight @tok_embd : f32[4, 3] = %s

func @f(%%ids: i64[2, 2]) -> f32[2, 2, 3] {
  %%t = tensor.weight @tok_embd : f32[4, 3]
  %%y = tensor.gather %%t, %%ids : f32[2, 2, 3]
  return %%y
}
""" % dense(GT), runs=[run("f", [("ids", [[1, 2], [2, 0]])], [GT[np.array([[1, 2], [2, 0]])]])],
    notes=["i64 ids of rank 2 into a weight table: [2, 2] ids -> [2, 2, 3]."])

case("ops/gather.fir", """
func @f(%t: f32[4, 3], %ids: i32[seq]) -> f32[seq, 3] {
  %y = tensor.gather %t, %ids : f32[seq, 3]
  return %y
}
""", runs=[run("f", [("t", GT), ("ids", [2])], [GT[[2]]], shaped=("ids",))], notes=["Symbolic number of ids (seq = 1)."])

IT = np.array([[1, -2], [300, 4], [-70000, 5]])
case("ops/gather.fir", """
func @f(%t: i32[3, 2], %ids: i32[2]) -> i32[2, 2] {
  %y = tensor.gather %t, %ids : i32[2, 2]
  return %y
}
""", runs=[run("f", [("t", IT), ("ids", [2, 0])], [IT[[2, 0]]])], notes=["An integer table (the rule allows any element type)."])

# ---------------------------------------------------------------- reshape
case("ops/reshape.fir", """
func @f(%x: f32[2, 3]) -> (f32[3, 2], f32[6], f32[1, 6, 1]) {
  %a = tensor.reshape %x : f32[3, 2]
  %b = tensor.reshape %a : f32[6]
  %c = tensor.reshape %b : f32[1, 6, 1]
  return %a, %b, %c
}
""", runs=[run("f", [("x", A23)], [A23, A23, A23])], notes=[HEADER, "Reshape keeps the row-major element order."])

R24 = np.arange(8, dtype=float).reshape(2, 4)
case("ops/reshape.fir", """
func @f(%x: f32[seq, 4]) -> f32[seq, 2, 2] {
  %y = tensor.reshape %x : f32[seq, 2, 2]
  return %y
}
""", runs=[run("f", [("x", R24)], [R24], shaped=("x",))], notes=["Splitting heads on a symbolic sequence length (seq = 2)."])

case("ops/reshape.fir", """
func @f(%x: i32[1, 1]) -> i32[] {
  %y = tensor.reshape %x : i32[]
  return %y
}
""", runs=[run("f", [("x", [[42]])], [[42]])], notes=["To rank 0, integers."])

R234 = np.arange(12, dtype=float).reshape(1, 3, 4)
case("ops/reshape.fir", """
func @f(%x: f32[b, seq, 4]) -> f32[b, 2, seq, 2] {
  %y = tensor.reshape %x : f32[b, 2, seq, 2]
  return %y
}
""", runs=[run("f", [("x", R234)], [R234], shaped=("x",))], notes=["Two symbols, both bound by the parameter (b = 1, seq = 3)."])

# ---------------------------------------------------------------- transpose
case("ops/transpose.fir", """
func @f(%x: f32[2, 3]) -> f32[3, 2] {
  %y = tensor.transpose %x {perm = [1, 0]} : f32[3, 2]
  return %y
}
""", runs=[run("f", [("x", A23)], [A23.T])], notes=[HEADER, "2-D transpose."])

T234 = np.arange(24, dtype=float).reshape(2, 3, 4)
case("ops/transpose.fir", """
func @f(%x: f32[2, 3, 4]) -> (f32[4, 2, 3], f32[3, 2, 4]) {
  %a = tensor.transpose %x {perm = [2, 0, 1]} : f32[4, 2, 3]
  %b = tensor.transpose %x {perm = [1, 0, 2]} : f32[3, 2, 4]
  return %a, %b
}
""", runs=[run("f", [("x", T234)], [np.transpose(T234, (2, 0, 1)), np.transpose(T234, (1, 0, 2))])],
    notes=["Rank 3: result axis i is input axis perm[i]."])

case("ops/transpose.fir", """
func @f(%x: i8[seq, 2]) -> i8[2, seq] {
  %y = tensor.transpose %x {perm = [1, 0]} : i8[2, seq]
  return %y
}
""", runs=[run("f", [("x", [[1, -2], [3, -4], [5, -6]])], [np.array([[1, -2], [3, -4], [5, -6]]).T], shaped=("x",))],
    notes=["Integers with a symbolic dimension (seq = 3)."])

# ---------------------------------------------------------------- concat
CA = np.array([[1.0, 2.0]])
CB = np.array([[3.0, 4.0], [5.0, 6.0]])
case("ops/concat.fir", """
func @f(%a: f32[1, 2], %b: f32[2, 2]) -> f32[3, 2] {
  %y = tensor.concat %a, %b {axis = 0} : f32[3, 2]
  return %y
}
""", runs=[run("f", [("a", CA), ("b", CB)], [np.concatenate([CA, CB], 0)])], notes=[HEADER, "Along axis 0."])

CC = np.array([[7.0], [8.0]])
case("ops/concat.fir", """
func @f(%a: f32[2, 2], %b: f32[2, 1], %c: f32[2, 2]) -> f32[2, 5] {
  %y = tensor.concat %a, %b, %c {axis = -1} : f32[2, 5]
  return %y
}
""", runs=[run("f", [("a", CB), ("b", CC), ("c", CB * 10)], [np.concatenate([CB, CC, CB * 10], -1)])],
    notes=["Three operands along the last axis."])

K1 = np.arange(4, dtype=float).reshape(2, 1, 2)
K2 = np.arange(8, dtype=float).reshape(2, 2, 2) + 10
case("ops/concat.fir", """
func @f(%a: f32[seq, 1, 2], %b: f32[seq, 2, 2]) -> f32[seq, 3, 2] {
  %y = tensor.concat %a, %b {axis = 1} : f32[seq, 3, 2]
  return %y
}
""", runs=[run("f", [("a", K1), ("b", K2)], [np.concatenate([K1, K2], 1)], shaped=("a", "b"))],
    notes=["A middle axis, with a symbolic dimension elsewhere (seq = 2)."])

case("ops/concat.fir", """
func @f(%a: i32[2]) -> i32[6] {
  %y = tensor.concat %a, %a, %a {axis = 0} : i32[6]
  return %y
}
""", runs=[run("f", [("a", [1, -1])], [[1, -1, 1, -1, 1, -1]])], notes=["One value used three times, integers."])

# ---------------------------------------------------------------- slice
SL = np.arange(12, dtype=float).reshape(3, 4)
case("ops/slice.fir", """
func @f(%x: f32[3, 4]) -> f32[2, 4] {
  %y = tensor.slice %x {axis = 0, start = 1, end = 3} : f32[2, 4]
  return %y
}
""", runs=[run("f", [("x", SL)], [SL[1:3]])], notes=[HEADER, "Rows 1..3."])

case("ops/slice.fir", """
func @f(%x: f32[3, 4]) -> (f32[3, 2], f32[3, 0]) {
  %y = tensor.slice %x {axis = -1, start = 1, end = 3} : f32[3, 2]
  %e = tensor.slice %x {axis = 1, start = 2, end = 2} : f32[3, 0]
  return %y, %e
}
""", runs=[run("f", [("x", SL)], [SL[:, 1:3], []])], notes=["Columns 1..3 via a negative axis, and an empty slice."])

case("ops/slice.fir", """
func @f(%x: f32[seq, 2, 6]) -> f32[seq, 2, 3] {
  %y = tensor.slice %x {axis = 2, start = 3, end = 6} : f32[seq, 2, 3]
  return %y
}
""", runs=[run("f", [("x", np.arange(24, dtype=float).reshape(2, 2, 6))], [np.arange(24, dtype=float).reshape(2, 2, 6)[:, :, 3:6]], shaped=("x",))],
    notes=["The tail of the last axis with a symbolic leading dimension (seq = 2)."])

# ---------------------------------------------------------------- reduce
RD = np.array([[1.0, -2.0, 3.5], [4.0, 0.25, -6.0]])
case("ops/reduce.fir", """
func @f(%x: f32[2, 3]) -> (f32[2], f32[1, 3], f32[2]) {
  %s = tensor.reduce %x {kind = sum} : f32[2]
  %m = tensor.reduce %x {kind = mean, axis = 0, keepdim} : f32[1, 3]
  %x2 = tensor.reduce %x {kind = max, axis = 1} : f32[2]
  return %s, %m, %x2
}
""", runs=[run("f", [("x", RD)], [RD.sum(-1), RD.mean(0, keepdims=True), RD.max(1)])],
    notes=[HEADER, "sum over the last axis, mean over axis 0 keeping it, max over axis 1."])

RD3 = np.arange(24, dtype=float).reshape(2, 3, 4) * np.where(np.arange(24) % 3 == 0, -1, 1).reshape(2, 3, 4)
case("ops/reduce.fir", """
func @f(%x: f32[2, 3, 4]) -> (f32[2, 4], f32[2, 3, 1]) {
  %a = tensor.reduce %x {kind = max, axis = -2} : f32[2, 4]
  %b = tensor.reduce %x {kind = mean, keepdim} : f32[2, 3, 1]
  return %a, %b
}
""", runs=[run("f", [("x", RD3)], [RD3.max(-2), RD3.mean(-1, keepdims=True)])], notes=["Rank 3: max over a middle axis, mean keepdim over the last."])

RI = np.array([[1, -5, 3], [100, 20, -7]])
case("ops/reduce.fir", """
func @f(%x: i32[2, 3]) -> (i32[3], i32[2, 1]) {
  %s = tensor.reduce %x {kind = sum, axis = 0} : i32[3]
  %m = tensor.reduce %x {kind = max, keepdim} : i32[2, 1]
  return %s, %m
}
""", runs=[run("f", [("x", RI)], [RI.sum(0), RI.max(-1, keepdims=True)])], notes=["Integer sum and max."])

case("ops/reduce.fir", """
func @f() -> (i64[], i64[]) {
  %x = tensor.constant {value = dense<[1, 9007199254740993]>} : i64[2]
  %s = tensor.reduce %x {kind = sum} : i64[]
  %m = tensor.reduce %x {kind = max} : i64[]
  %c = tensor.constant {value = dense<[9007199254740992]>} : i64[]
  %d = tensor.sub %s, %c : i64[]
  %e = tensor.sub %m, %c : i64[]
  return %d, %e
}
""", runs=[run("f", [], [[2], [1]])],
    notes=["i64 reductions are exact beyond 2^53: sum - 2^53 = 2, max - 2^53 = 1 (the values are",
           "constants and the results differences because the harness passes and compares numbers as f64)."])

# ---------------------------------------------------------------- cast
CX = np.array([1.9, -1.9, 2.5, -0.5, 0.0, 7.99])
case("ops/cast.fir", """
func @f(%x: f32[6]) -> i32[6] {
  %y = tensor.cast %x : i32[6]
  return %y
}
""", runs=[run("f", [("x", CX)], [np.trunc(CX)])], notes=[HEADER, "Float to integer truncates toward zero."])

SX8 = np.array([300.0, -300.0, 127.9, -128.9, 1e30, -np.inf])
case("ops/cast.fir", """
func @f(%x: f32[6]) -> (i8[6], u8[6]) {
  %a = tensor.cast %x : i8[6]
  %b = tensor.cast %x : u8[6]
  return %a, %b
}
""", runs=[run("f", [("x", SX8)], [cast_int(SX8, -128, 127), cast_int(SX8, 0, 255)])],
    notes=["Float to integer saturates at the type's range (including +-inf and 1e30)."])

case("ops/cast.fir", """
func @f(%x: i32[4]) -> (f32[4], i8[4]) {
  %a = tensor.cast %x : f32[4]
  %b = tensor.cast %x : i8[4]
  return %a, %b
}
""", runs=[run("f", [("x", [16777217, -3, 200, -200])], [f32([16777217, -3, 200, -200]), [127, -3, 127, -128]])],
    notes=["Integer to float rounds to nearest (16777217 -> 16777216); integer to a narrower integer saturates."])

H = np.array([0.1, 65519.0, 65520.0, 1e-8, 3e-5, -2.0009765625])
case("ops/cast.fir", """
func @f(%x: f32[6]) -> (f16[6], bf16[6]) {
  %h = tensor.cast %x : f16[6]
  %b = tensor.cast %x : bf16[6]
  return %h, %b
}
""", runs=[run("f", [("x", H)], [f16(f32(H)), bf16(H)])],
    notes=["f32 -> f16 rounds to nearest even: 65519 -> 65504, 65520 -> inf, 1e-8 -> 0, 3e-5 to a subnormal,",
           "-2.0009765625 (a tie) -> -2; f32 -> bf16 likewise (bf16 from the f32 bit pattern)."])

case("ops/cast.fir", """
func @f(%x: i32[3]) -> (bf16[3], f16[3]) {
  %b = tensor.cast %x : bf16[3]
  %h = tensor.cast %x : f16[3]
  return %b, %h
}
""", runs=[run("f", [("x", [33685505, -2049, 65519])], [[33816576, -2048, 65536], [float("inf"), -2048, 65504]])],
    notes=["Integer to bf16/f16 rounds once, to nearest even: 33685505 = 2^25 + 2^17 + 1 lies just above the",
           "halfway point 2^25 + 2^17 between bf16 neighbours, so it rounds up to 2^25 + 2^18 = 33816576",
           "(rounding through f32 first would land on the tie and give 2^25); -2049 -> -2048 (a tie in f16);",
           "65519 -> 65536 in bf16 (spacing 256) but 65504 in f16 (below the overflow threshold 65520)."])

case("ops/cast.fir", """
func @f(%x: f16[3]) -> (f32[3], i16[3]) {
  %a = tensor.cast %x : f32[3]
  %b = tensor.cast %x : i16[3]
  return %a, %b
}
""", runs=[run("f", [("x", [0.1, -65504.0, 1.5])], [f16([0.1, -65504.0, 1.5]), [0, -32768, 1]])],
    notes=["f16 -> f32 is exact; f16 -> i16 truncates and saturates."])

# ---------------------------------------------------------------- attention
rng = np.random.default_rng(7)


def rnd(*shape):
    return np.round(rng.uniform(-1, 1, size=shape), 2)


Q1 = rnd(3, 1, 2)
K1_ = rnd(3, 1, 2)
V1 = rnd(3, 1, 2)
case("ops/attention.fir", """
func @f(%q: f32[3, 1, 2], %k: f32[3, 1, 2], %v: f32[3, 1, 2], %pos: i32[]) -> f32[3, 1, 2] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 0.7071067811865476} : f32[3, 1, 2]
  return %y
}
""", runs=[run("f", [("q", Q1), ("k", K1_), ("v", V1), ("pos", [0])], [attention(Q1, K1_, V1, 0, 1 / math.sqrt(2))])],
    notes=[HEADER, "Causal attention (the default), one head, pos 0: query 0 sees only key 0."])

case("ops/attention.fir", """
func @f(%q: f32[3, 1, 2], %k: f32[3, 1, 2], %v: f32[3, 1, 2], %pos: i32[]) -> f32[3, 1, 2] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 2.0, bidirectional} : f32[3, 1, 2]
  return %y
}
""", runs=[run("f", [("q", Q1), ("k", K1_), ("v", V1), ("pos", [0])], [attention(Q1, K1_, V1, 0, 2.0, bidirectional=True)])],
    notes=["Bidirectional: every query sees every key."])

Q4 = rnd(4, 1, 2)
K4 = rnd(4, 1, 2)
V4 = rnd(4, 1, 3)
case("ops/attention.fir", """
func @f(%q: f32[4, 1, 2], %k: f32[4, 1, 2], %v: f32[4, 1, 3], %pos: i32[]) -> f32[4, 1, 3] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 1.0, window = 2} : f32[4, 1, 3]
  return %y
}
""", runs=[run("f", [("q", Q4), ("k", K4), ("v", V4), ("pos", [0])], [attention(Q4, K4, V4, 0, 1.0, window=2)])],
    notes=["Sliding window 2 (query i sees keys i-1 and i), and v_dim (3) != head_dim (2)."])

QG = rnd(2, 4, 2)
KG = rnd(2, 2, 2)
VG = rnd(2, 2, 2)
case("ops/attention.fir", """
func @f(%q: f32[2, 4, 2], %k: f32[2, 2, 2], %v: f32[2, 2, 2], %pos: i32[]) -> f32[2, 4, 2] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 0.5} : f32[2, 4, 2]
  return %y
}
""", runs=[run("f", [("q", QG), ("k", KG), ("v", VG), ("pos", [0])], [attention(QG, KG, VG, 0, 0.5)])],
    notes=["GQA: 4 query heads share 2 key heads (heads 0, 1 -> kv 0; heads 2, 3 -> kv 1)."])

QS = rnd(2, 1, 2) * 10
KS = rnd(3, 1, 2) * 10
VS = rnd(3, 1, 2)
case("ops/attention.fir", """
func @f(%q: f32[2, 1, 2], %k: f32[3, 1, 2], %v: f32[3, 1, 2], %pos: i32[]) -> f32[2, 1, 2] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 1.0, softcap = 5.0} : f32[2, 1, 2]
  return %y
}
""", runs=[run("f", [("q", QS), ("k", KS), ("v", VS), ("pos", [1])], [attention(QS, KS, VS, 1, 1.0, softcap=5.0)])],
    notes=["Soft-capped logits 5 tanh(x / 5) on large scores, pos 1 (query i sees keys 0..i+1)."])

QP = rnd(2, 2, 2)
KP = rnd(6, 1, 2)
VP = rnd(6, 1, 2)
KP[4:] = 50.0
VP[4:] = 1000.0
case("ops/attention.fir", """
func @f(%q: f32[2, 2, 2], %k: f32[6, 1, 2], %v: f32[6, 1, 2], %pos: i32[]) -> f32[2, 2, 2] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 0.7, bidirectional} : f32[2, 2, 2]
  return %y
}
""", runs=[run("f", [("q", QP), ("k", KP), ("v", VP), ("pos", [2])], [attention(QP, KP, VP, 2, 0.7, bidirectional=True)])],
    notes=["pos 2, s 2 with a 6-row cache: rows 4 and 5 (filled with large values) are never seen,",
           "even bidirectionally; two query heads share one key head."])

QW = rnd(2, 1, 2)
KW = rnd(8, 1, 2)
VW = rnd(8, 1, 2)
case("ops/attention.fir", """
func @f(%q: f32[2, 1, 2], %k: f32[8, 1, 2], %v: f32[8, 1, 2], %pos: i32[]) -> f32[2, 1, 2] {
  %y = tensor.attention %q, %k, %v, %pos {scale = 1.0, window = 3, softcap = 30.0} : f32[2, 1, 2]
  return %y
}
""", runs=[run("f", [("q", QW), ("k", KW), ("v", VW), ("pos", [4])], [attention(QW, KW, VW, 4, 1.0, window=3, softcap=30.0)])],
    notes=["Decode-like: pos 4, causal window 3 (query 0 at 4 sees keys 2..4), softcap, cache of 8."])

# ---------------------------------------------------------------- cache_write
CW = np.zeros((4, 2))
XW = np.array([[1.0, 2.0], [3.0, 4.0]])
cw = CW.copy()
cw[1:3] = XW
case("ops/cache_write.fir", """
func @f(%cache: f32[4, 2], %x: f32[2, 2], %pos: i32[]) -> f32[4, 2] {
  %c = tensor.cache_write %cache, %x, %pos : f32[4, 2]
  return %c
}
""", runs=[run("f", [("cache", CW - 1), ("x", XW), ("pos", [1])], [np.where(np.arange(4)[:, None] % 3 == 0, -1.0, cw)]),
           run("f", [("cache", CW), ("x", XW), ("pos", [2])], [np.concatenate([CW[:2], XW])])],
    notes=[HEADER, "Writes rows [pos, pos + 2) and keeps the rest (pos 1, then the last rows at pos 2)."])

case("ops/cache_write.fir", """
func @f(%cache: f16[3, 1, 2], %x: f16[1, 1, 2], %pos: i32[]) -> f16[3, 1, 2] {
  %c = tensor.cache_write %cache, %x, %pos : f16[3, 1, 2]
  return %c
}
""", runs=[run("f", [("cache", np.ones((3, 1, 2))), ("x", [[[0.1, -0.3]]]), ("pos", [0])], [np.concatenate([f16([0.1, -0.3]), np.ones(4)])])],
    notes=["A rank-3 f16 cache; the written values are f16-rounded."])

DQ = rnd(1, 2, 2)
DK = rnd(1, 1, 2)
DV = rnd(1, 1, 2)
KC = np.concatenate([rnd(2, 1, 2), np.zeros((2, 1, 2))])
VC = np.concatenate([rnd(2, 1, 2), np.zeros((2, 1, 2))])
KC2 = KC.copy(); KC2[2] = DK[0]
VC2 = VC.copy(); VC2[2] = DV[0]
case("ops/cache_write.fir", """
func @decode(%q: f32[1, 2, 2], %k: f32[1, 1, 2], %v: f32[1, 1, 2], %kc: f32[4, 1, 2], %vc: f32[4, 1, 2], %pos: i32[]) -> (f32[1, 2, 2], f32[4, 1, 2]) {
  %kc2 = tensor.cache_write %kc, %k, %pos : f32[4, 1, 2]
  %vc2 = tensor.cache_write %vc, %v, %pos : f32[4, 1, 2]
  %y = tensor.attention %q, %kc2, %vc2, %pos {scale = 0.7071067811865476} : f32[1, 2, 2]
  return %y, %kc2
}
""", runs=[run("decode", [("q", DQ), ("k", DK), ("v", DV), ("kc", KC), ("vc", VC), ("pos", [2])],
               [attention(DQ, KC2, VC2, 2, 1 / math.sqrt(2)), KC2])],
    notes=["One decode step: append k/v at pos 2 of a 4-row cache, then attend over rows 0..2."])

# ---------------------------------------------------------------- quant (parse/verify only until the codecs land)
Q8_BLOCK = "003c" + "".join("%02x" % i for i in range(32))  # d = 1.0 (f16 0x3c00), qs = 0..31
Q4_BLOCK = "0038" + "10" * 16  # d = 0.5, every nibble pair (0, 1)
QNOTE = "No run lines: the ggml codecs behind quant.* are not in this branch yet."
case("ops/quant.fir", """
weight @w : f32[2, 32] #q8_0 = dense<"0x%s">

func @f() -> f32[2, 32] {
  %%w = tensor.weight @w : f32[2, 32] #q8_0
  %%y = quant.dequantize %%w : f32[2, 32]
  return %%y
}
""" % (Q8_BLOCK * 2), notes=[QNOTE, "A q8_0 weight of two rows (34 bytes per 32 elements), dequantized.",
           "Each block is d = 1.0 (f16 0x3c00, little-endian) and qs = 0..31, so once the q8_0 decoder",
           "lands: @f => both rows 0.0, 1.0, ..., 31.0."])

case("ops/quant.fir", """
func @f(%x: f32[seq, 64]) -> (f32[seq, 64] #q4_0, f32[seq, 64]) {
  %q = quant.quantize %x {encoding = #q4_0} : f32[seq, 64] #q4_0
  %d = quant.dequantize %q : f32[seq, 64]
  return %q, %d
}
""", notes=["quantize to q4_0 and back on a symbolic row count; an encoded function result."])

case("ops/quant.fir", """
weight @ffn_up : f32[3, 32] #q4_0 = dense<"0x%s">

func @f(%%x: f32[seq, 32]) -> f32[seq, 3] {
  %%w = tensor.weight @ffn_up : f32[3, 32] #q4_0
  %%y = quant.mpgemm %%x, %%w : f32[seq, 3]
  return %%y
}
""" % (Q4_BLOCK * 3), notes=["mpgemm with a q4_0 weight [n = 3, k = 32] (transpose_b is its default).",
           "Each block is d = 0.5 (f16 0x3800) and qs bytes 0x10: elements 0..15 are (0 - 8) * 0.5 = -4.0,",
           "elements 16..31 are (1 - 8) * 0.5 = -3.5; so y[i, n] = -4 * sum(x[i, :16]) - 3.5 * sum(x[i, 16:])."])

case("ops/quant.fir", """
weight @tok_embd : f32[4, 32] #q8_0 = dense<"0x%s">

func @f(%%ids: i32[2]) -> f32[2, 32] {
  %%t = tensor.weight @tok_embd : f32[4, 32] #q8_0
  %%y = tensor.gather %%t, %%ids : f32[2, 32]
  return %%y
}
""" % (Q8_BLOCK * 4), notes=["gather reads rows of an encoded table directly."])

case("ops/quant.fir", """
weight @big : f16[2, 256] #q4_k = file<"model.bin", 4096, 288>
weight @t : f32[1, 256] #tq2_0 = dense<"0x%s">

func @f(%%x: f16[1, 256]) -> (f16[1, 2], f32[1, 256]) {
  %%w = tensor.weight @big : f16[2, 256] #q4_k
  %%y = quant.mpgemm %%x, %%w : f16[1, 2]
  %%t = tensor.weight @t : f32[1, 256] #tq2_0
  %%d = quant.dequantize %%t : f32[1, 256]
  return %%y, %%d
}
""" % ("00" * 66), notes=["A file-backed q4_k weight (2 blocks of 144 bytes), an inline tq2_0 one (66 bytes), f16 logical type."])

# ============================================================================ passes

CAN = "passes/canonicalize/"
case(CAN + "identities.fir", """
func @f(%x: f32[2, 3]) -> f32[2, 3] {
  %nzero = tensor.constant {value = dense<[-0.0]>} : f32[]
  %zero = tensor.constant {value = dense<[0.0]>} : f32[]
  %one = tensor.constant {value = dense<[1.0, 1.0, 1.0]>} : f32[3]
  %a = tensor.add %x, %nzero : f32[2, 3]
  %b = tensor.add %nzero, %a : f32[2, 3]
  %c = tensor.sub %b, %zero : f32[2, 3]
  %d = tensor.mul %c, %one : f32[2, 3]
  %e = tensor.mul %one, %d : f32[2, 3]
  %g = tensor.div %e, %one : f32[2, 3]
  return %g
}
""", passes="canonicalize", runs=[run("f", [("x", A23)], [A23])],
    notes=[HEADER, "x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1 all fold to x when the type is kept;",
           "the splat constants are broadcast (f32[] and f32[3]) but x already has the result type."])

case(CAN + "identities.fir", """
func @f(%x: f32[3]) -> (f32[2, 3], f32[3], f32[3], f32[3]) {
  %zero = tensor.constant {value = dense<[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]>} : f32[2, 3]
  %a = tensor.add %x, %zero : f32[2, 3]
  %z = tensor.constant {value = dense<[0.0, 0.0, 0.0]>} : f32[3]
  %b = tensor.sub %z, %x : f32[3]
  %half = tensor.constant {value = dense<[1.0, 0.5, 1.0]>} : f32[3]
  %c = tensor.mul %x, %half : f32[3]
  %d = tensor.add %x, %z : f32[3]
  return %a, %b, %c, %d
}
""", passes="canonicalize", runs=[run("f", [("x", [1.0, 2.0, 3.0])], [np.tile([1.0, 2.0, 3.0], (2, 1)), [-1.0, -2.0, -3.0], [1.0, 1.0, 3.0]])],
    notes=["Must NOT fire: x + 0 whose broadcast changes the type, 0 - x (not an identity),",
           "x * c where c is not a splat of 1."])

case(CAN + "identities.fir", """
func @f(%x: i32[4]) -> (i32[4], i32[4]) {
  %n = tensor.neg %x : i32[4]
  %nn = tensor.neg %n : i32[4]
  %one = tensor.constant {value = dense<[1]>} : i32[1]
  %y = tensor.div %nn, %one : i32[4]
  %m = tensor.mul %one, %y : i32[4]
  return %m, %n
}
""", passes="canonicalize", runs=[run("f", [("x", [3, -4, 0, 7])], [[3, -4, 0, 7], [-3, 4, 0, -7]])],
    notes=["-(-x) -> x and integer x / 1, 1 * x; the inner neg stays because it is returned."])

T = np.arange(24, dtype=float).reshape(2, 3, 4)
case(CAN + "transpose.fir", """
func @f(%x: f32[2, 3, 4]) -> (f32[2, 3, 4], f32[4, 3, 2], f32[2, 3, 4]) {
  %a = tensor.transpose %x {perm = [1, 0, 2]} : f32[3, 2, 4]
  %b = tensor.transpose %a {perm = [1, 0, 2]} : f32[2, 3, 4]
  %c = tensor.transpose %a {perm = [2, 0, 1]} : f32[4, 3, 2]
  %d = tensor.transpose %x {perm = [0, 1, 2]} : f32[2, 3, 4]
  return %b, %c, %d
}
""", passes="canonicalize", runs=[run("f", [("x", T)], [T, np.transpose(np.transpose(T, (1, 0, 2)), (2, 0, 1)), T])],
    notes=[HEADER, "transpose(transpose(x)) composes to one transpose (or to x when the perms cancel);",
           "an identity perm is x."])

case(CAN + "reshape_cast.fir", """
func @f(%x: f32[2, 3]) -> (f32[6], f32[2, 3], f32[2, 3], f32[3, 2]) {
  %a = tensor.reshape %x : f32[3, 2]
  %b = tensor.reshape %a : f32[6]
  %c = tensor.reshape %x : f32[2, 3]
  %d = tensor.cast %x : f32[2, 3]
  %e = tensor.cast %a : f32[3, 2]
  return %b, %c, %d, %e
}
""", passes="canonicalize", runs=[run("f", [("x", A23)], [A23, A23, A23, A23])],
    notes=[HEADER, "reshape(reshape(x)) -> reshape(x); a reshape or cast to the operand's own type is the operand."])

case(CAN + "reshape_cast.fir", """
func @f(%x: f32[2, 3]) -> (f16[2, 3], f32[2, 3]) {
  %h = tensor.cast %x : f16[2, 3]
  %a = tensor.reshape %x : f32[3, 2]
  %b = tensor.reshape %a : f32[2, 3]
  return %h, %b
}
""", passes="canonicalize,canonicalize", runs=[run("f", [("x", [[0.1, 1.0, 2.0], [3.0, 4.0, 5.0]])], [f16([[0.1, 1.0, 2.0], [3.0, 4.0, 5.0]]), [[0.1, 1.0, 2.0], [3.0, 4.0, 5.0]]])],
    notes=["A cast that changes the element type stays; reshape(reshape(x)) back to x's type needs the",
           "second canonicalize run to drop the now-trivial reshape."])

case(CAN + "fold.fir", """
func @f(%x: f32[2]) -> f32[2] {
  %a = tensor.constant {value = dense<[1.0, 1.0]>} : f32[2]
  %b = tensor.constant {value = dense<[2.0, 2.0]>} : f32[2]
  %c = tensor.add %a, %b : f32[2]
  %zero = tensor.constant {value = dense<[0.0, 0.0]>} : f32[2]
  %y = tensor.add %x, %zero : f32[2]
  %z = tensor.add %y, %c : f32[2]
  return %z
}
""", passes="canonicalize,dce", runs=[run("f", [("x", [1, 2])], [[4, 5]])], notes=[HEADER])

FA = np.array([1.5, -2.0, 0.25])
FB = np.array([0.5, 4.0, -1.0])
case(CAN + "fold.fir", """
func @f() -> (f32[3], f32[3], f32[3], f32[3], f32[3], f32[3, 1]) {
  %%a = tensor.constant {value = %s} : f32[3]
  %%b = tensor.constant {value = %s} : f32[3]
  %%s = tensor.add %%a, %%b : f32[3]
  %%d = tensor.sub %%a, %%b : f32[3]
  %%m = tensor.mul %%a, %%b : f32[3]
  %%q = tensor.div %%a, %%b : f32[3]
  %%n = tensor.neg %%q : f32[3]
  %%r = tensor.reshape %%n : f32[3, 1]
  return %%s, %%d, %%m, %%q, %%n, %%r
}
""" % (dense(FA), dense(FB)), passes="canonicalize",
    runs=[run("f", [], [FA + FB, FA - FB, FA * FB, FA / FB, -(FA / FB), -(FA / FB)])],
    notes=["Folding every foldable op of f32 constants (0.25 / -1.0 and 1.5 / 0.5 are exact)."])

case(CAN + "fold.fir", """
func @f() -> (f32[2], f32[2, 2]) {
  %a = tensor.constant {value = dense<[0.1, 0.2]>} : f32[2]
  %b = tensor.constant {value = dense<[3.0]>} : f32[]
  %c = tensor.div %a, %b : f32[2]
  %col = tensor.constant {value = dense<[1.0, 2.0]>} : f32[2, 1]
  %m = tensor.mul %col, %a : f32[2, 2]
  return %c, %m
}
""", passes="canonicalize", runs=[run("f", [], [f32(f32([0.1, 0.2]) / 3.0), f32(np.array([[1.0], [2.0]]) * f32([0.1, 0.2]))])],
    notes=["Folding with broadcasting; results are the f32-rounded quotients the interpreter computes."])

case(CAN + "fold.fir", """
func @f() -> (i32[4], i8[2], i32[2]) {
  %a = tensor.constant {value = dense<[-7, 7, -7, 100]>} : i32[4]
  %b = tensor.constant {value = dense<[2, -2, -2, 7]>} : i32[4]
  %q = tensor.div %a, %b : i32[4]
  %x = tensor.constant {value = dense<[-128, 127]>} : i8[2]
  %y = tensor.constant {value = dense<[1, 0]>} : i8[2]
  %s = tensor.add %x, %y : i8[2]
  %k = tensor.constant {value = dense<[2147483647, 5]>} : i32[2]
  %n = tensor.neg %k : i32[2]
  return %q, %s, %n
}
""", passes="canonicalize,dce", runs=[run("f", [], [[-3, -3, 3, 14], [-127, 127], [-2147483647, -5]])],
    notes=["Integer folding truncates like the interpreter and fires when the result fits the type."])

case(CAN + "fold.fir", """
func @ok() -> i8[1] {
  %a = tensor.constant {value = dense<[100]>} : i8[1]
  %b = tensor.constant {value = dense<[27]>} : i8[1]
  %c = tensor.add %a, %b : i8[1]
  return %c
}

func @overflow() -> (i8[1], i8[1], i32[1]) {
  %a = tensor.constant {value = dense<[100]>} : i8[1]
  %b = tensor.constant {value = dense<[28]>} : i8[1]
  %c = tensor.add %a, %b : i8[1]
  %m = tensor.constant {value = dense<[-128]>} : i8[1]
  %n = tensor.neg %m : i8[1]
  %z = tensor.constant {value = dense<[0]>} : i32[1]
  %one = tensor.constant {value = dense<[1]>} : i32[1]
  %q = tensor.div %one, %z : i32[1]
  return %c, %n, %q
}
""", passes="canonicalize", runs=[run("ok", [], [[127]])],
    notes=["Must NOT fold: i8 100 + 28 and -(-128) overflow i8, 1 / 0 divides by zero",
           "(they stay and fail at run time; only @ok is run)."])

case(CAN + "fold.fir", """
func @f(%x: f16[2]) -> (f16[2], f16[2]) {
  %a = tensor.constant {value = dense<[0.1, 0.2]>} : f16[2]
  %b = tensor.constant {value = dense<[0.2, 0.1]>} : f16[2]
  %c = tensor.add %a, %b : f16[2]
  %z = tensor.constant {value = dense<[0.0, 0.0]>} : f16[2]
  %y = tensor.add %x, %z : f16[2]
  return %c, %y
}
""", passes="canonicalize", runs=[run("f", [("x", [1.0, 0.1])], [f16(f16([0.1, 0.2]) + f16([0.2, 0.1])), f16([1.0, 0.1])])],
    notes=["f16 constants are not folded, but x + 0 still simplifies."])

CSE = "passes/cse/"
case(CSE + "merge.fir", """
func @f(%x: f32[2, 2], %y: f32[2, 2]) -> f32[2, 2] {
  %a = tensor.add %x, %y : f32[2, 2]
  %b = tensor.add %x, %y : f32[2, 2]
  %ea = tensor.exp %a : f32[2, 2]
  %eb = tensor.exp %b : f32[2, 2]
  %s = tensor.mul %ea, %eb : f32[2, 2]
  return %s
}
""", passes="cse", runs=[run("f", [("x", [[0.0, 1.0], [-1.0, 0.5]]), ("y", [[0.5, 0.5], [1.0, -1.0]])],
                          [np.exp(np.array([[0.0, 1.0], [-1.0, 0.5]]) + [[0.5, 0.5], [1.0, -1.0]]) ** 2])],
    notes=[HEADER, "Identical adds merge, and then the exps that read them merge too."])

case(CSE + "merge.fir", """
weight @w : f32[2] = dense<[1.0, 2.0]>

func @f(%x: f32[2]) -> f32[2] {
  %w1 = tensor.weight @w : f32[2]
  %w2 = tensor.weight @w : f32[2]
  %c1 = tensor.constant {value = dense<[3.0, 4.0]>} : f32[2]
  %c2 = tensor.constant {value = dense<[3.0, 4.0]>} : f32[2]
  %a = tensor.mul %x, %w1 : f32[2]
  %b = tensor.mul %x, %w2 : f32[2]
  %s = tensor.add %a, %c1 : f32[2]
  %t = tensor.add %b, %c2 : f32[2]
  %r = tensor.sub %s, %t : f32[2]
  return %r
}
""", passes="cse", runs=[run("f", [("x", [5.0, -1.0])], [[0.0, 0.0]])],
    notes=["Reads of the same weight and equal constants merge."])

case(CSE + "no_merge.fir", """
func @f(%x: f32[2, 2], %y: f32[2, 2]) -> (f32[2, 2], f32[2, 2], f32[2, 2], f32[2, 2], f32[4], f32[1, 4], f32[2, 2], f32[2, 2]) {
  %a = tensor.softmax %x {axis = 0} : f32[2, 2]
  %b = tensor.softmax %x : f32[2, 2]
  %c = tensor.matmul %x, %y : f32[2, 2]
  %d = tensor.matmul %x, %y {transpose_b} : f32[2, 2]
  %e = tensor.reshape %x : f32[4]
  %f = tensor.reshape %x : f32[1, 4]
  %g = tensor.sub %x, %y : f32[2, 2]
  %h = tensor.sub %y, %x : f32[2, 2]
  return %a, %b, %c, %d, %e, %f, %g, %h
}
""", passes="cse", runs=[run("f", [("x", [[1.0, 2.0], [3.0, 5.0]]), ("y", [[0.5, -1.0], [2.0, 0.0]])],
                          [softmax(np.array([[1.0, 2.0], [3.0, 5.0]]), 0), softmax(np.array([[1.0, 2.0], [3.0, 5.0]]), 1),
                           np.array([[1.0, 2.0], [3.0, 5.0]]) @ [[0.5, -1.0], [2.0, 0.0]],
                           np.array([[1.0, 2.0], [3.0, 5.0]]) @ np.array([[0.5, -1.0], [2.0, 0.0]]).T,
                           [1, 2, 3, 5], [1, 2, 3, 5], [[0.5, 3.0], [1.0, 5.0]], [[-0.5, -3.0], [-1.0, -5.0]]])],
    notes=["Nothing merges: different attributes (axis, transpose_b), different result types,",
           "different operand order."])

case(CSE + "no_merge.fir", """
func @f() -> (f32[2], f32[2]) {
  %a = tensor.constant {value = dense<[1.0, 2.0]>} : f32[2]
  %b = tensor.constant {value = dense<[1.0, 2.5]>} : f32[2]
  return %a, %b
}

func @g() -> f32[2] {
  %a = tensor.constant {value = dense<[1.0, 2.0]>} : f32[2]
  return %a
}
""", passes="cse", runs=[run("f", [], [[1.0, 2.0], [1.0, 2.5]]), run("g", [], [[1.0, 2.0]])],
    notes=["Constants with different values stay; equal ops in different functions are not merged."])

DCE = "passes/dce/"
case(DCE + "dce.fir", """
func @f(%x: f32[2], %unused: f32[2]) -> f32[2] {
  %a = tensor.exp %x : f32[2]
  %b = tensor.neg %a : f32[2]
  %c = tensor.tanh %b : f32[2]
  %y = tensor.relu %x : f32[2]
  return %y
}
""", passes="dce", runs=[run("f", [("x", [-1.0, 2.0]), ("unused", [0.0, 0.0])], [[0.0, 2.0]])],
    notes=[HEADER, "A dead chain (exp -> neg -> tanh) goes; an unused parameter stays."])

case(DCE + "dce.fir", """
weight @used : f32[2] = dense<[1.0, 2.0]>
weight @dead_read : f32[2] = dense<[3.0, 4.0]>
weight @never : f32[2] = dense<[5.0, 6.0]>

func @f(%%x: f32[2]) -> f32[2] {
  %%u = tensor.weight @used : f32[2]
  %%d = tensor.weight @dead_read : f32[2]
  %%y = tensor.add %%x, %%u : f32[2]
  return %%y
}
""".replace("%%", "%"), passes="dce", runs=[run("f", [("x", [1.0, 1.0])], [[2.0, 3.0]])],
    notes=["Weights no function references are dropped, including one read only by a dead op."])

case(DCE + "dce.fir", """
weight @shared : f32[2] = dense<[1.0, 2.0]>

func @f(%x: f32[2]) -> f32[2] {
  %w = tensor.weight @shared : f32[2]
  %y = tensor.mul %x, %w : f32[2]
  return %y
}

func @g(%x: f32[2]) -> f32[2] {
  %w = tensor.weight @shared : f32[2]
  %y = tensor.mul %x, %w : f32[2]
  return %x
}
""", passes="dce", runs=[run("f", [("x", [3.0, 3.0])], [[3.0, 6.0]]), run("g", [("x", [3.0, 3.0])], [[3.0, 3.0]])],
    notes=["A weight still used by one function stays though another function's read of it dies."])

case(DCE + "dce.fir", """
func @f(%x: f32[2]) -> (f32[2], f32[2]) {
  %a = tensor.exp %x : f32[2]
  %b = tensor.add %a, %a : f32[2]
  return %b, %a
}
""", passes="canonicalize,cse,dce", runs=[run("f", [("x", [0.0, 1.0])], [[2.0, 2 * math.e], [1.0, math.e]])],
    notes=["Nothing to remove: every op is used (the full pipeline leaves it unchanged)."])


def main():
    for path, cases in sorted(FILES.items()):
        full = os.path.join(ROOT, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write("\n// -----\n".join(cases))
    n = sum(len(c) for c in FILES.values())
    print("wrote %d cases in %d files" % (n, len(FILES)))


if __name__ == "__main__":
    main()
