//! Shape arithmetic shared by the type rules, the interpreter and the folders:
//! numpy broadcasting, row-major strides, and index mapping.

use crate::types::Dim;

/// Numpy broadcasting of two shapes (symbolic dimensions compare by name).
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let n = a.len().max(b.len());
    let one = Dim::Fixed(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.len() >= n { &a[i + a.len() - n] } else { &one };
        let db = if i + b.len() >= n { &b[i + b.len() - n] } else { &one };
        out.push(if da == db || *db == one {
            da.clone()
        } else if *da == one {
            db.clone()
        } else {
            return Err(format!("shapes do not broadcast: dimension {da} vs {db}"));
        });
    }
    Ok(out)
}

/// Row-major strides of a concrete shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// For every element of the broadcast result `out` (row-major), the flat
/// index of the element it reads from an operand of shape `input`.
pub fn broadcast_indices(input: &[usize], out: &[usize]) -> Vec<usize> {
    let total: usize = out.iter().product();
    let pad = out.len() - input.len();
    let in_strides = strides(input);
    // An operand dimension of size 1 repeats: its stride is 0.
    let eff: Vec<usize> = (0..out.len())
        .map(|d| if d < pad || input[d - pad] == 1 { 0 } else { in_strides[d - pad] })
        .collect();
    let mut idx = vec![0usize; out.len()];
    let mut flat = 0usize;
    let mut res = Vec::with_capacity(total);
    for _ in 0..total {
        res.push(flat);
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            flat += eff[d];
            if idx[d] < out[d] {
                break;
            }
            flat -= eff[d] * out[d];
            idx[d] = 0;
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_maps_rows_and_columns() {
        assert_eq!(broadcast_indices(&[3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_indices(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_indices(&[], &[2]), vec![0, 0]);
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
