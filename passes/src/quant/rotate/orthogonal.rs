//! The orthogonal matrices `rotate` turns the residual stream by: a
//! randomized Hadamard matrix `Q = D·H/√n` (QuaRot, QuIP#: `D` random signs,
//! `H` a Hadamard matrix) when one of order `n` can be built, else a random
//! orthogonal matrix (QR of a Gaussian one).
//!
//! Hadamard matrices are built as Kronecker products of 2×2 Sylvester blocks
//! and Paley (type I) matrices of order `q + 1` for primes `q ≡ 3 (mod 4)`:
//! 576 = 2²·12·12, 640 = 2⁵·20, 960 = 2²·12·20, 2048 = 2¹¹. A product of
//! factors is applied to a vector factor by factor (each along its own axis
//! of the vector seen as a tensor of the factors' orders), so turning one row
//! costs `n·Σ orders` multiply-adds, not `n²`.
//!
//! Everything is seeded ([`SplitMix64`]): the same seed gives the same matrix
//! on every machine, which is what lets calibration run on a rotated model
//! and the pipeline rotate the same way again.

/// A deterministic 64-bit generator (SplitMix64): seeds the signs and the
/// Gaussian fallback; not for anything cryptographic.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    pub fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The orders of the Paley factors tried, `q + 1` for primes `q ≡ 3 mod 4`
/// (powers of two come from Sylvester blocks).
const PALEY_PRIMES: &[usize] = &[3, 7, 11, 19, 23, 31, 43, 47, 59, 67, 71, 79, 83, 103, 107, 127];

/// The largest order of a dense random orthogonal matrix (128 MiB, about a
/// minute to orthogonalise).
pub const MAX_DENSE: usize = 4096;

/// A dense row-major square matrix of ±1 (Hadamard) or reals.
#[derive(Clone, Debug, PartialEq)]
struct Square {
    n: usize,
    a: Vec<f64>,
}

/// The Paley type-I Hadamard matrix of order `q + 1` (`q` prime, `q ≡ 3 mod 4`).
fn paley(q: usize) -> Square {
    let mut residue = vec![false; q];
    for x in 1..q {
        residue[(x * x) % q] = true;
    }
    let chi = |x: usize| -> f64 {
        match x % q {
            0 => 0.0,
            r if residue[r] => 1.0,
            _ => -1.0,
        }
    };
    let n = q + 1;
    let mut a = vec![0f64; n * n];
    for j in 1..n {
        a[j] = 1.0;
        a[j * n] = -1.0;
    }
    for i in 1..n {
        for j in 1..n {
            a[i * n + j] = chi(j + q - i);
        }
    }
    for i in 0..n {
        a[i * n + i] += 1.0;
    }
    Square { n, a }
}

/// Factor orders whose Kronecker product is a Hadamard matrix of order `n`
/// (2 for each Sylvester doubling, `q + 1` for each Paley factor), largest
/// Paley factors first; `None` when this construction has none.
fn hadamard_factors(n: usize) -> Option<Vec<usize>> {
    if n == 1 {
        return Some(Vec::new());
    }
    for &q in PALEY_PRIMES.iter().rev() {
        let m = q + 1;
        if m.is_power_of_two() || !n.is_multiple_of(m) {
            continue;
        }
        if let Some(mut rest) = hadamard_factors(n / m) {
            rest.push(m);
            return Some(rest);
        }
    }
    if n.is_multiple_of(2) {
        let mut rest = hadamard_factors(n / 2)?;
        rest.push(2);
        return Some(rest);
    }
    None
}

/// The Hadamard factor of order `m` (2: Sylvester's `[[1,1],[1,-1]]`).
fn factor(m: usize) -> Square {
    if m == 2 {
        return Square { n: 2, a: vec![1.0, 1.0, 1.0, -1.0] };
    }
    paley(m - 1)
}

/// An orthogonal `n×n` transform applied to row vectors: `x ↦ x·Q`.
#[derive(Clone, Debug)]
pub enum Orthogonal {
    /// `Q = D·(H₁⊗H₂⊗…)/√n`: signs, then the factors.
    Hadamard {
        /// The order.
        n: usize,
        /// The random signs (the diagonal of `D`).
        signs: Vec<f64>,
        /// The Kronecker factors, outermost first.
        factors: Vec<Vec<f64>>,
        /// Their orders.
        orders: Vec<usize>,
    },
    /// A dense orthogonal matrix, row-major.
    Dense {
        /// The order.
        n: usize,
        /// `Q`.
        q: Vec<f64>,
    },
}

/// Which family [`Orthogonal::new`] draws from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A randomized Hadamard matrix, or a random orthogonal one where no
    /// Hadamard matrix of that order is built here.
    Hadamard,
    /// A random orthogonal matrix (Haar, by QR of a Gaussian matrix).
    Random,
}

impl Kind {
    /// `hadamard` / `random`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hadamard => "hadamard",
            Kind::Random => "random",
        }
    }

    /// Parses `hadamard` / `random`.
    pub fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "hadamard" => Ok(Kind::Hadamard),
            "random" => Ok(Kind::Random),
            _ => Err(format!("kind must be hadamard or random, got '{s}'")),
        }
    }
}

impl Orthogonal {
    /// The transform of order `n` of `kind` drawn with `seed`; an error
    /// when it would be a dense matrix of order above [`MAX_DENSE`].
    pub fn new(n: usize, kind: Kind, seed: u64) -> Result<Orthogonal, String> {
        let mut rng = SplitMix64::new(seed ^ (n as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        if kind == Kind::Hadamard
            && let Some(orders) = hadamard_factors(n)
        {
            let signs = (0..n).map(|_| if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 }).collect();
            let factors = orders.iter().map(|&m| factor(m).a).collect();
            return Ok(Orthogonal::Hadamard { n, signs, factors, orders });
        }
        if n > MAX_DENSE {
            return Err(format!("no Hadamard matrix of order {n} is built here, and a random orthogonal one above order {MAX_DENSE} costs too much (n² memory, n³ time)"));
        }
        Ok(Orthogonal::Dense { n, q: random_orthogonal(n, &mut rng) })
    }

    /// The order.
    pub fn order(&self) -> usize {
        match self {
            Orthogonal::Hadamard { n, .. } | Orthogonal::Dense { n, .. } => *n,
        }
    }

    /// Whether this is a (randomized) Hadamard transform.
    pub fn is_hadamard(&self) -> bool {
        matches!(self, Orthogonal::Hadamard { .. })
    }

    /// `x ← x·Q` for one row of length `n`.
    pub fn apply(&self, x: &mut [f64]) {
        match self {
            Orthogonal::Dense { n, q } => {
                let mut y = vec![0f64; *n];
                for (i, &xi) in x.iter().enumerate() {
                    for (yj, &qij) in y.iter_mut().zip(&q[i * n..(i + 1) * n]) {
                        *yj += xi * qij;
                    }
                }
                x.copy_from_slice(&y);
            }
            Orthogonal::Hadamard { n, signs, factors, orders } => {
                for (xi, s) in x.iter_mut().zip(signs) {
                    *xi *= s;
                }
                // x·(H₁⊗…⊗H_k): axis t of x (seen as [m₁, …, m_k]) is
                // multiplied by H_t from the right, i.e. y[.., j, ..] = Σ_i x[.., i, ..]·H_t[i, j].
                let mut tmp = vec![0f64; *n];
                let mut inner = *n;
                for (h, &m) in factors.iter().zip(orders) {
                    inner /= m;
                    let outer = *n / (inner * m);
                    for o in 0..outer {
                        for r in 0..inner {
                            let base = o * m * inner + r;
                            for j in 0..m {
                                let mut acc = 0.0;
                                for i in 0..m {
                                    acc += x[base + i * inner] * h[i * m + j];
                                }
                                tmp[base + j * inner] = acc;
                            }
                        }
                    }
                    x.copy_from_slice(&tmp);
                }
                let s = 1.0 / (*n as f64).sqrt();
                for xi in x.iter_mut() {
                    *xi *= s;
                }
            }
        }
    }
}

/// A Haar-random orthogonal matrix: Gram–Schmidt (twice, for accuracy) on a
/// Gaussian matrix's rows.
fn random_orthogonal(n: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let mut q: Vec<f64> = (0..n * n).map(|_| rng.gaussian()).collect();
    for i in 0..n {
        for _ in 0..2 {
            for j in 0..i {
                let d: f64 = (0..n).map(|k| q[i * n + k] * q[j * n + k]).sum();
                for k in 0..n {
                    q[i * n + k] -= d * q[j * n + k];
                }
            }
        }
        let norm = (0..n).map(|k| q[i * n + k] * q[i * n + k]).sum::<f64>().sqrt();
        for k in 0..n {
            q[i * n + k] /= norm;
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense matrix of a transform: row i is e_i·Q.
    fn dense(t: &Orthogonal) -> Vec<f64> {
        let n = t.order();
        let mut out = vec![0f64; n * n];
        for i in 0..n {
            let row = &mut out[i * n..(i + 1) * n];
            row[i] = 1.0;
            t.apply(row);
        }
        out
    }

    fn assert_orthogonal(q: &[f64], n: usize) {
        for i in 0..n {
            for j in 0..n {
                let d: f64 = (0..n).map(|k| q[i * n + k] * q[j * n + k]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-9, "Q·Qᵀ[{i},{j}] = {d} (n = {n})");
            }
        }
    }

    #[test]
    fn paley_matrices_are_hadamard() {
        for &q in PALEY_PRIMES {
            let h = paley(q);
            let n = h.n;
            for i in 0..n {
                for j in 0..n {
                    let d: f64 = (0..n).map(|k| h.a[i * n + k] * h.a[j * n + k]).sum();
                    assert_eq!(d, if i == j { n as f64 } else { 0.0 }, "Paley {q}: row {i}·row {j}");
                }
            }
        }
    }

    #[test]
    fn model_widths_get_hadamard_transforms() {
        for n in [576, 640, 960, 1536, 2048, 2304, 768, 384, 12, 20] {
            let f = hadamard_factors(n).unwrap_or_else(|| panic!("no Hadamard order {n}"));
            assert_eq!(f.iter().product::<usize>(), n);
            assert!(Orthogonal::new(n, Kind::Hadamard, 1).unwrap().is_hadamard());
        }
        assert!(hadamard_factors(9).is_none());
        assert!(!Orthogonal::new(18, Kind::Hadamard, 1).unwrap().is_hadamard(), "18 = 2·9 falls back to a random orthogonal matrix");
    }

    #[test]
    fn every_transform_is_orthogonal() {
        for (n, kind) in [(48, Kind::Hadamard), (40, Kind::Hadamard), (24, Kind::Random), (18, Kind::Hadamard), (64, Kind::Hadamard)] {
            assert_orthogonal(&dense(&Orthogonal::new(n, kind, 7).unwrap()), n);
        }
    }

    #[test]
    fn a_dense_matrix_too_large_to_build_is_refused() {
        let e = Orthogonal::new(MAX_DENSE + 2, Kind::Random, 0).unwrap_err();
        assert!(e.contains("costs too much"), "{e}");
    }

    #[test]
    fn the_fast_product_matches_the_kronecker_matrix() {
        // 40 = 2·20: compare against the explicit D·(H₂⊗H₂₀)/√40.
        let t = Orthogonal::new(40, Kind::Hadamard, 5).unwrap();
        let Orthogonal::Hadamard { signs, orders, .. } = &t else { panic!("not Hadamard") };
        assert_eq!(orders, &[2, 20]);
        let (a, b) = (factor(orders[0]), factor(orders[1]));
        let n = 40;
        let mut want = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                let h = a.a[(i / b.n) * a.n + j / b.n] * b.a[(i % b.n) * b.n + j % b.n];
                want[i * n + j] = signs[i] * h / (n as f64).sqrt();
            }
        }
        for (x, y) in dense(&t).iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_matrix() {
        assert_eq!(dense(&Orthogonal::new(40, Kind::Hadamard, 9).unwrap()), dense(&Orthogonal::new(40, Kind::Hadamard, 9).unwrap()));
        assert_ne!(dense(&Orthogonal::new(40, Kind::Hadamard, 9).unwrap()), dense(&Orthogonal::new(40, Kind::Hadamard, 10).unwrap()));
    }
}
