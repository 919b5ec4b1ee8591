//! Quantization passes: `rotate` (turn the residual stream so weights
//! quantize with less error), `quantize` (re-encode matching weights in a low-bit
//! scheme) and `fuse-dequant` (`quant.dequantize` feeding a linear layer
//! becomes one `quant.mpgemm`).

pub mod encode;
pub mod formats;
pub mod fuse_dequant;
pub mod gptq;
pub mod grid;
pub mod hessian;
pub mod loss;
pub mod mixed;
pub mod optq;
pub mod optq_shared;
pub mod quantize;
pub mod rotate;

/// Glob match with `*` (any run, dots included) and `?` (one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("blk.*.ffn_*", "blk.0.ffn_up.weight"));
        assert!(glob_match("blk.*.ffn_*", "blk.12.ffn_down.weight"));
        assert!(!glob_match("blk.*.ffn_*", "blk.0.attn_q.weight"));
        assert!(glob_match("*", "output.weight"));
        assert!(glob_match("blk.?.attn_*", "blk.3.attn_k.weight"));
        assert!(!glob_match("blk.?.attn_*", "blk.13.attn_k.weight"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
