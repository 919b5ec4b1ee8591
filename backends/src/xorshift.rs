//! A small deterministic xorshift64 generator for benchmarks and tests:
//! reproducible random weights and activations with no dependency, and one
//! definition instead of a copy per benchmark and test file.

/// xorshift64 (Marsaglia's 13/7/17 triple). The state must not be 0.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (`n > 0`; modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n as u64) as usize
    }

    /// Uniform in `[-1, 1)` from 24 random bits.
    pub fn f(&mut self) -> f32 {
        (self.bits() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// `n` values uniform in `[-scale, scale)`.
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.fill(&mut b);
        b
    }

    /// Fills `buf` with random bytes (the same stream as [`XorShift::bytes`]).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            chunk.copy_from_slice(&self.bits().to_le_bytes()[..chunk.len()]);
        }
    }

    /// One element of `xs` (non-empty).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn is_the_13_7_17_xorshift_and_stays_in_range() {
        // First output of xorshift64 from state 1, worked out by hand:
        // 1 ^ 1<<13 = 0x2001; ^ >>7 = 0x2001 ^ 0x40 = 0x2041; ^ <<17 = 0x2041 ^ 0x40820000.
        assert_eq!(XorShift(1).bits(), 0x4082_2041);
        let mut r = XorShift(7);
        assert!((0..1000).all(|_| (-1.0..1.0).contains(&r.f())));
        assert!((0..1000).all(|_| r.below(3) < 3));
        assert_eq!(r.bytes(13).len(), 13);
    }
}
