//! THE op table: every op of every dialect, declared once.
//!
//! Each entry reads `Name = "dialect.mnemonic" (operands) [traits] { attributes } => rule;`.
//! The traits ([`OpTrait`](super::OpTrait)) are the properties passes and
//! backends query (`Opcode::is_pure`, `is_elementwise`, `is_gemm_like`)
//! instead of matching on opcodes.
//! Adding an op means adding an entry here, its rule in `rules.rs`, and its
//! semantics in the reference interpreter (the compiler tells you where: every
//! `match` over ops is exhaustive).
//!
//! Conventions: activations are row-major with the feature axis last; linear
//! weights are `[out, in]` (ggml and PyTorch order) and used with
//! `transpose_b`; attention tensors are `[seq, heads, head_dim]`; positions are
//! a scalar `i32[]` start position `pos` (token i sits at `pos + i`).

use super::attr::{CmpPred, Dense, GeluApprox, ReduceKind, RopeMode, Symbol};
use super::rules;
use super::table::{arity, define_ops, field_default};
use crate::types::Encoding;

define_ops! {
    // ---------------------------------------------------------------- tensor.
    /// Reads an entry of the module's weight table: `tensor.weight @name : T`.
    Weight = "tensor.weight" () [Pure] {
        /// The weight's symbol.
        name: Symbol,
    } => rules::declared;

    /// A small constant written inline: `tensor.constant {value = dense<[...]>} : T`.
    Constant = "tensor.constant" () [Pure] {
        /// The values, row-major.
        value: Dense,
    } => rules::constant;

    /// Matrix product over the last two axes: `[..., m, k] x [k, n] -> [..., m, n]`
    /// (`transpose_b`: the right operand is `[n, k]`); a rank-2 right operand is
    /// shared by every leading index, a higher-rank one must match them.
    Matmul = "tensor.matmul" (lhs, rhs) [Pure, GemmLike] {
        /// The right operand is stored `[n, k]` (linear-layer weight order).
        transpose_b: bool = false,
    } => rules::matmul;

    /// Elementwise sum with numpy broadcasting.
    Add = "tensor.add" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast;
    /// Elementwise difference with numpy broadcasting.
    Sub = "tensor.sub" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast;
    /// Elementwise product with numpy broadcasting.
    Mul = "tensor.mul" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast;
    /// Elementwise quotient with numpy broadcasting (integers: truncating; division by zero is an error).
    Div = "tensor.div" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast;

    /// Elementwise negation.
    Neg = "tensor.neg" (x) [Pure, Elementwise] {} => rules::same;
    /// Elementwise e^x.
    Exp = "tensor.exp" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise hyperbolic tangent.
    Tanh = "tensor.tanh" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise max(x, 0).
    Relu = "tensor.relu" (x) [Pure, Elementwise] {} => rules::same;
    /// Elementwise x·sigmoid(x) (SwiGLU's gate).
    Silu = "tensor.silu" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise GELU, tanh approximation or exact erf form.
    Gelu = "tensor.gelu" (x) [Pure, Elementwise] {
        /// Which formula.
        approx: GeluApprox = GeluApprox::Tanh,
    } => rules::same_float;

    /// Elementwise square root.
    Sqrt = "tensor.sqrt" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise 1/x.
    Reciprocal = "tensor.reciprocal" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise error function erf(x).
    Erf = "tensor.erf" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise logistic sigmoid 1/(1 + e^−x).
    Sigmoid = "tensor.sigmoid" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise |x|.
    Abs = "tensor.abs" (x) [Pure, Elementwise] {} => rules::same;
    /// Elementwise rounding to the nearest integer, ties to even.
    Round = "tensor.round" (x) [Pure, Elementwise] {} => rules::same_float;
    /// Elementwise x^y with numpy broadcasting (floats).
    Pow = "tensor.pow" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast_float;
    /// Elementwise maximum with numpy broadcasting (NaN propagates).
    Max = "tensor.max" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast;
    /// Elementwise minimum with numpy broadcasting (NaN propagates).
    Min = "tensor.min" (lhs, rhs) [Pure, Elementwise] {} => rules::broadcast;
    /// Elementwise comparison with numpy broadcasting; the result is `i1`.
    Compare = "tensor.compare" (lhs, rhs) [Pure, Elementwise] {
        /// The predicate.
        pred: CmpPred,
    } => rules::compare;
    /// Elementwise logical and of two `i1` tensors (numpy broadcasting).
    And = "tensor.and" (lhs, rhs) [Pure, Elementwise] {} => rules::logical;
    /// Elementwise logical or of two `i1` tensors (numpy broadcasting).
    Or = "tensor.or" (lhs, rhs) [Pure, Elementwise] {} => rules::logical;
    /// Elementwise logical not of an `i1` tensor.
    Not = "tensor.not" (x) [Pure, Elementwise] {} => rules::logical_not;
    /// Elementwise "is NaN" of a float tensor; the result is `i1`.
    Isnan = "tensor.isnan" (x) [Pure, Elementwise] {} => rules::isnan;
    /// `cond ? a : b` elementwise with numpy broadcasting of all three (`cond: i1`).
    Where = "tensor.where" (cond, a, b) [Pure, Elementwise] {} => rules::select;
    /// The index along one axis of the (written-out) result type, cast to its
    /// element type: `tensor.iota {axis = 0} : i64[seq]` is 0, 1, …, seq − 1.
    Iota = "tensor.iota" () [Pure] {
        /// The axis whose index is the value.
        axis: i64 = 0,
    } => rules::iota;
    /// Broadcasts `x` (numpy rules) to the written-out result shape.
    Expand = "tensor.expand" (x) [Pure] {} => rules::expand;

    /// Softmax along one axis (numerically stable: subtracts the max).
    Softmax = "tensor.softmax" (x) [Pure] {
        /// The axis; negative counts from the end.
        axis: i64 = -1,
    } => rules::softmax;

    /// RMS normalisation over the last axis: `x / sqrt(mean(x²) + eps) * w`.
    Rmsnorm = "tensor.rmsnorm" (x, weight) [Pure] {
        /// Added to the mean square.
        eps: f64 = 1e-6,
    } => rules::rmsnorm;

    /// Layer normalisation over the last axis: `(x − mean) / sqrt(var + eps) * w + b`.
    Layernorm = "tensor.layernorm" (x, weight, bias) [Pure] {
        /// Added to the variance.
        eps: f64 = 1e-5,
    } => rules::layernorm;

    /// Rotary position embedding of `x: [seq, heads, head_dim]`; token i is at
    /// position `pos + i` (`pos: i32[]`); the first `dims` dimensions rotate
    /// with frequencies `base^(-2j/dims)`.
    Rope = "tensor.rope" (x, pos) [Pure] {
        /// The frequency base θ.
        base: f64 = 10000.0,
        /// How dimensions are paired.
        mode: RopeMode = RopeMode::Neox,
        /// How many leading dimensions rotate (0: all of head_dim).
        dims: i64 = 0,
    } => rules::rope;

    /// Rows of a table: `table: [vocab, d]`, `ids: i32[...]` → `[..., d]`. The
    /// table may be encoded; only the gathered rows are decoded.
    Gather = "tensor.gather" (table, ids) [Pure] {} => rules::gather;

    /// The same elements in another shape (the result type is written out).
    Reshape = "tensor.reshape" (x) [Pure] {} => rules::reshape;

    /// Permutes axes: result axis i is input axis `perm[i]`.
    Transpose = "tensor.transpose" (x) [Pure] {
        /// A permutation of the axes.
        perm: Vec<i64>,
    } => rules::transpose;

    /// Joins tensors along one axis.
    Concat = "tensor.concat" (..inputs) [Pure] {
        /// The axis; negative counts from the end.
        axis: i64,
    } => rules::concat;

    /// The range `[start, end)` of one axis.
    Slice = "tensor.slice" (x) [Pure] {
        /// The axis; negative counts from the end.
        axis: i64,
        /// First index kept.
        start: i64,
        /// One past the last index kept.
        end: i64,
    } => rules::slice;

    /// Reduces one axis with sum, mean or max.
    Reduce = "tensor.reduce" (x) [Pure] {
        /// Which reduction.
        kind: ReduceKind,
        /// The axis; negative counts from the end.
        axis: i64 = -1,
        /// Keep the reduced axis with size 1.
        keepdim: bool = false,
    } => rules::reduce;

    /// Converts elements to another type (floats round to nearest even; float
    /// to integer truncates toward zero and saturates; the result type is written out).
    Cast = "tensor.cast" (x) [Pure, Elementwise] {} => rules::cast;

    /// Scaled dot-product attention. `q: [s, hq, d]`, `k: [t, hk, d]`,
    /// `v: [t, hk, dv]`, `pos: i32[]` → `[s, hq, dv]`. Query i sits at `pos + i`
    /// and sees keys j < pos + s; causal: j ≤ pos + i; window w > 0: also
    /// pos + i − j < w. Query heads share key heads in groups of hq / hk (GQA).
    Attention = "tensor.attention" (q, k, v, pos) [Pure] {
        /// Multiplies q·k before the softmax.
        scale: f64,
        /// Every query sees every valid key (encoders).
        bidirectional: bool = false,
        /// Sliding-window size, 0 for none.
        window: i64 = 0,
        /// Logit soft-capping `c·tanh(x/c)`, 0 for none.
        softcap: f64 = 0.0,
    } => rules::attention;

    /// Writes `x: [s, ...]` into rows `[pos, pos + s)` of `cache: [capacity, ...]`
    /// and returns the updated cache (a KV-cache append). Pure: the result is a
    /// new value (a backend may write in place when the old cache is dead).
    CacheWrite = "tensor.cache_write" (cache, x, pos) [Pure] {} => rules::cache_write;

    // ----------------------------------------------------------------- quant.
    /// Quantizes a float tensor into an encoding (round-trip lossy).
    Quantize = "quant.quantize" (x) [Pure] {
        /// The target encoding; it must match the result type's.
        encoding: Encoding,
    } => rules::quantize;

    /// Decodes an encoded tensor into plain values of its element type.
    Dequantize = "quant.dequantize" (x) [Pure] {} => rules::dequantize;

    /// Mixed-precision matrix product `x · dequantize(w)ᵀ` with an encoded right
    /// operand, computed without materialising the dequantized weights.
    Mpgemm = "quant.mpgemm" (x, w) [Pure, GemmLike] {
        /// The weight is stored `[n, k]`.
        transpose_b: bool = true,
    } => rules::mpgemm;

    // ------------------------------------------------------------------ kern.
    // The GEMM primitives `select-gemm` chooses between, and `tile-gemm`'s
    // weight tiling. Every kern GEMM computes `x · dequantize(w)ᵀ` with
    // `w: [n, k]`; they differ only in how a backend runs it.

    /// LUT (T-MAC) activation tables: `x: [..., k]` is cut into groups of 4 and
    /// each group gets the 16 sums `T[idx] = Σ_i (bit_i(idx) ? +x_i : −x_i)`,
    /// giving `f32[..., k/4, 16]`. Shared by every LUT GEMM reading the same `x`.
    LutPrecompute = "kern.lut_precompute" (x) [Pure] {
        /// Activations per int8 quantization group of the tables on the CPU
        /// kernel (a multiple of 8, at most 64); exact f32 in the reference.
        act_group: i64 = 32,
    } => rules::lut_precompute;

    /// Table-lookup GEMM over bit-serial weight planes (`#gq`, `#ternary`, `#bcq`):
    /// `tables` from `kern.lut_precompute`, `w: [n, k]` → `[..., n]`.
    LutGemm = "kern.lut_gemm" (tables, w) [Pure, GemmLike] {} => rules::lut_gemm;

    /// Shift-add GEMM (ShiftAddLLM) over binary-coded `#bcq` weights.
    ShiftaddGemm = "kern.shiftadd_gemm" (x, w) [Pure, GemmLike] {} => rules::shiftadd_gemm;

    /// N:M sparse GEMM over `#nm` weights read compressed (kept values and indices).
    SparseGemm = "kern.sparse_gemm" (x, w) [Pure, GemmLike] {} => rules::sparse_gemm;

    /// Dense GEMM: block-quantized (ggml) weights by integer dot products with
    /// quantized activations, any other weight dequantized ahead of time.
    DenseGemm = "kern.dense_gemm" (x, w) [Pure, GemmLike] {} => rules::dense_gemm;

    /// Weight tiling of a kern GEMM's `w: [n, k]`: tiles of `m` output rows by
    /// `k` input columns, laid out tile by tile. Values are unchanged.
    Tile = "kern.tile" (w) [Pure] {
        /// Output rows per tile.
        m: i64,
        /// Input columns per tile.
        k: i64,
    } => rules::tile;
}
