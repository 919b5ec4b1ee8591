//! ggml type ids, names and block geometry (the full codecs arrive with the
//! ggml formats work; this file is replaced by it at merge).

/// A ggml tensor type, with llama.cpp's numeric ids.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
#[allow(missing_docs)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2K = 10,
    Q3K = 11,
    Q4K = 12,
    Q5K = 13,
    Q6K = 14,
    Q8K = 15,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
}

const TABLE: [(GgmlType, &str, usize, usize); 17] = [
    (GgmlType::F32, "f32", 1, 4),
    (GgmlType::F16, "f16", 1, 2),
    (GgmlType::Q4_0, "q4_0", 32, 18),
    (GgmlType::Q4_1, "q4_1", 32, 20),
    (GgmlType::Q5_0, "q5_0", 32, 22),
    (GgmlType::Q5_1, "q5_1", 32, 24),
    (GgmlType::Q8_0, "q8_0", 32, 34),
    (GgmlType::Q8_1, "q8_1", 32, 36),
    (GgmlType::Q2K, "q2_k", 256, 84),
    (GgmlType::Q3K, "q3_k", 256, 110),
    (GgmlType::Q4K, "q4_k", 256, 144),
    (GgmlType::Q5K, "q5_k", 256, 176),
    (GgmlType::Q6K, "q6_k", 256, 210),
    (GgmlType::Q8K, "q8_k", 256, 292),
    (GgmlType::BF16, "bf16", 1, 2),
    (GgmlType::TQ1_0, "tq1_0", 256, 54),
    (GgmlType::TQ2_0, "tq2_0", 256, 66),
];

impl GgmlType {
    fn entry(self) -> &'static (GgmlType, &'static str, usize, usize) {
        TABLE.iter().find(|e| e.0 == self).expect("every variant is in TABLE")
    }
    /// The lowercase name (`q4_k`).
    pub fn name(self) -> &'static str {
        self.entry().1
    }
    /// Parses a lowercase name.
    pub fn from_name(s: &str) -> Option<GgmlType> {
        TABLE.iter().find(|e| e.1 == s).map(|e| e.0)
    }
    /// Elements per block.
    pub fn block_size(self) -> usize {
        self.entry().2
    }
    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.entry().3
    }
}

/// Placeholder until the codecs land: every call reports the missing codec.
pub fn dequantize(ty: GgmlType, _bytes: &[u8], _out: &mut [f32]) -> Result<(), String> {
    Err(format!("no {} decoder yet", ty.name()))
}

/// Placeholder until the codecs land: every call reports the missing codec.
pub fn quantize(ty: GgmlType, _x: &[f32]) -> Result<Vec<u8>, String> {
    Err(format!("no {} encoder yet", ty.name()))
}
