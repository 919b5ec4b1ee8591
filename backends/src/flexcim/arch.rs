//! The architecture and energy descriptions of the FlexCiM-like macro,
//! loaded from TOML (`backends/flexcim/arch.toml`, `energy.toml`).
//!
//! Nothing about the macro is a constant in code: the lowering and the
//! simulator read every size, depth, bandwidth and energy from these structs.
//! The defaults are embedded copies of the two data files (so a binary works
//! without them); `--arch`/`--energy` read others. Every error names the
//! file, the key and the cause.

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// The default architecture file's text.
pub const DEFAULT_ARCH: &str = include_str!("../../flexcim/arch.toml");
/// The default energy table's text.
pub const DEFAULT_ENERGY: &str = include_str!("../../flexcim/energy.toml");

/// A failure to read, parse or validate an architecture or energy file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file (or `<default arch.toml>`).
    pub file: String,
    /// The key, when one is to blame (`macro.rows`).
    pub key: Option<String>,
    /// What is wrong (TOML syntax errors include line and column).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}: key `{k}`: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message.trim_end()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// An N:M pattern: N kept of every M consecutive inputs (N = M is dense);
/// the IR's one N:M type.
pub use flexc_ir::quant::Nm;

/// Parses an `N:M` pattern FlexCiM can hold: a valid [`Nm`] whose M is even
/// (activations travel in pairs).
pub fn parse_pattern(s: &str) -> Result<Nm, String> {
    let nm = Nm::parse(s)?;
    if !nm.m().is_multiple_of(2) {
        return Err(format!("`{s}`: M must be even (activations travel in pairs)"));
    }
    Ok(nm)
}

/// `[macro]`: the array.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MacroCfg {
    /// Sub-macros P.
    pub sub_macros: usize,
    /// Rows per sub-macro (reduction axis).
    pub rows: usize,
    /// Columns per sub-macro (outputs).
    pub columns: usize,
    /// Weight bits per cell.
    pub weight_bits: u32,
    /// Metadata bits per cell (1: the cell picks one of its row's two activations).
    pub meta_bits: u32,
    /// Activation bits.
    pub activation_bits: u32,
}

/// `[distribution]`: the per-row activation distribution network.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DistributionCfg {
    /// Pairs per bus group (stage-1 mux fan-in).
    pub fan_in: usize,
    /// Mux pipeline stages (0: hard-wired, as in a dense DCiM).
    pub stages: usize,
    /// Dense (M:M) layers skip the network: rows wired to one activation,
    /// no pair selects, no metadata bits written (`cfg bypass=1`). Absent: false.
    #[serde(default)]
    pub dense_bypass: bool,
}

/// `[pipeline]`: depths.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineCfg {
    /// Adder-tree pipeline stages per column.
    pub adder_tree_stages: usize,
    /// Merger stages.
    pub merge_stages: usize,
    /// Accumulator stages.
    pub accumulate_stages: usize,
    /// Psum FIFO entries between a sub-macro and the merger.
    pub psum_fifo_depth: usize,
}

/// `[sparsity]`: what runs natively.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparsityCfg {
    /// Supported N:M patterns as text (`"2:4"`).
    pub supported: Vec<String>,
    /// Sub-macros the merger sums into one output.
    pub aggregation: usize,
    /// A sparse layer whose mask no supported sparse pattern holds is
    /// re-pruned (magnitude within its kept weights, one mask per column
    /// tile) to the densest
    /// supported sparse pattern not denser than it, instead of running dense
    /// (the `fixed-N:M-reprune` baselines; changes the layer's results).
    #[serde(default)]
    pub reprune: bool,
}

/// `[clock]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClockCfg {
    /// Frequency in MHz (reports only).
    pub mhz: f64,
}

/// `[buffers]`: capacities and bandwidths.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BufferCfg {
    /// Activation buffer bytes.
    pub activation_bytes: usize,
    /// Activation buffer read bandwidth to the distribution bus.
    pub activation_read_bytes_per_cycle: usize,
    /// Output accumulator capacity in 32-bit words.
    pub output_words: usize,
    /// Accumulator words updated per cycle.
    pub output_words_per_cycle: usize,
    /// Weight (+ metadata) bits written into the array per cycle.
    pub weight_load_bits_per_cycle: usize,
    /// Off-macro port bytes per cycle.
    pub offchip_bytes_per_cycle: usize,
    /// Select-register bits written per cycle.
    pub select_bits_per_cycle: usize,
}

/// Where the weights live between tokens (`[memory] regime`).
#[derive(Copy, Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Regime {
    /// Every weight and its select registers are already in a macro (the
    /// FlexCiM paper's assumption: all parameters on chip): `ldw` and `dsel`
    /// are a one-off preload, free per token, and passes run back to back.
    Resident,
    /// Weights stream into the macro per tile, every run (`ldw` over the
    /// off-macro port, then `dsel`), each load waiting for the pipeline to drain.
    #[default]
    Streamed,
}

impl Regime {
    /// Both, in report order.
    pub const ALL: [Regime; 2] = [Regime::Resident, Regime::Streamed];

    /// `resident` / `streamed`.
    pub fn label(self) -> &'static str {
        match self {
            Regime::Resident => "resident",
            Regime::Streamed => "streamed",
        }
    }

    /// Parses `resident` or `streamed`.
    pub fn parse(s: &str) -> Result<Regime, String> {
        Regime::ALL.into_iter().find(|r| r.label() == s).ok_or_else(|| format!("unknown regime `{s}` (use resident or streamed)"))
    }
}

/// `[memory]`: the weight regime the simulator and the cost model price.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryCfg {
    /// `resident` or `streamed` (absent: streamed).
    #[serde(default)]
    pub regime: Regime,
}

/// A whole architecture file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// A name for reports.
    pub name: String,
    /// `[macro]`.
    #[serde(rename = "macro")]
    pub array: MacroCfg,
    /// `[distribution]`.
    pub distribution: DistributionCfg,
    /// `[pipeline]`.
    pub pipeline: PipelineCfg,
    /// `[sparsity]`.
    pub sparsity: SparsityCfg,
    /// `[clock]`.
    pub clock: ClockCfg,
    /// `[buffers]`.
    pub buffers: BufferCfg,
    /// `[memory]` (absent: streamed).
    #[serde(default)]
    pub memory: MemoryCfg,
    /// Parsed `sparsity.supported` (filled by validation).
    #[serde(skip)]
    pub patterns: Vec<Nm>,
}

/// Energy per event in pJ (`[energy_pj]`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyTable {
    /// One cell read (per active cell per vector).
    pub cell_read: f64,
    /// One in-cell multiply.
    pub mac: f64,
    /// One 2-input add in a column adder tree.
    pub adder_add: f64,
    /// One pair through one mux stage.
    pub mux_hop: f64,
    /// One add in the merger.
    pub merge_add: f64,
    /// One psum FIFO write.
    pub psum_fifo_write: f64,
    /// One psum FIFO read.
    pub psum_fifo_read: f64,
    /// One activation buffer byte read.
    pub act_buffer_read: f64,
    /// One activation buffer byte written.
    pub act_buffer_write: f64,
    /// One accumulator word read or written.
    pub out_buffer_access: f64,
    /// One cell written.
    pub weight_write: f64,
    /// One select-register bit written.
    pub select_write: f64,
    /// One byte over the off-macro port.
    pub offchip_byte: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnergyFile {
    energy_pj: EnergyTable,
}

fn parse_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    // One line (`line L, column C: cause`): the toml crate's own Display
    // draws a multi-line source excerpt, and CLI errors are one line.
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|r| {
            let before = &text[..r.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
            format!("line {line}, column {col}: ")
        });
        let message = format!("{}{}", at.unwrap_or_default(), e.message().trim_end().replace('\n', "; "));
        ConfigError { file: file.to_string(), key: None, message }
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError { file: path.display().to_string(), key: None, message: format!("cannot read: {e}") })
}

impl Arch {
    /// Parses and validates architecture text; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Arch, ConfigError> {
        let mut a: Arch = parse_toml(file, text)?;
        a.validate(file)?;
        Ok(a)
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Arch, ConfigError> {
        Arch::from_toml(&path.display().to_string(), &read(path)?)
    }

    /// The embedded default (`backends/flexcim/arch.toml`).
    pub fn default_flexcim() -> Arch {
        // The embedded file is checked by a test; failing here is a build bug.
        Arch::from_toml("<default arch.toml>", DEFAULT_ARCH).expect("the embedded arch.toml is valid")
    }

    /// Checks every value and fills `patterns`.
    pub fn validate(&mut self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError { file: file.to_string(), key: Some(key.to_string()), message };
        let positive: [(&str, usize); 13] = [
            ("macro.sub_macros", self.array.sub_macros),
            ("macro.rows", self.array.rows),
            ("macro.columns", self.array.columns),
            ("distribution.fan_in", self.distribution.fan_in),
            ("pipeline.psum_fifo_depth", self.pipeline.psum_fifo_depth),
            ("sparsity.aggregation", self.sparsity.aggregation),
            ("buffers.activation_bytes", self.buffers.activation_bytes),
            ("buffers.activation_read_bytes_per_cycle", self.buffers.activation_read_bytes_per_cycle),
            ("buffers.output_words", self.buffers.output_words),
            ("buffers.output_words_per_cycle", self.buffers.output_words_per_cycle),
            ("buffers.weight_load_bits_per_cycle", self.buffers.weight_load_bits_per_cycle),
            ("buffers.offchip_bytes_per_cycle", self.buffers.offchip_bytes_per_cycle),
            ("buffers.select_bits_per_cycle", self.buffers.select_bits_per_cycle),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(bad(k, "must be at least 1".into()));
            }
        }
        let limits: [(&str, usize, usize); 4] =
            [("macro.sub_macros", self.array.sub_macros, 64), ("macro.rows", self.array.rows, 4096), ("macro.columns", self.array.columns, 4096), ("distribution.fan_in", self.distribution.fan_in, 64)];
        for (k, v, max) in limits {
            if v > max {
                return Err(bad(k, format!("{v} is larger than the simulator supports ({max})")));
            }
        }
        // The simulator allocates the array, the activation buffer and the
        // accumulator up front: bound them so a hostile file gets an error,
        // not a multi-GiB allocation (the defaults are far below these).
        let cells = self.array.sub_macros * self.array.rows * self.array.columns;
        if cells > 1 << 24 {
            return Err(bad("macro", format!("{cells} cells (sub_macros x rows x columns) is larger than the simulator supports ({})", 1 << 24)));
        }
        let sizes: [(&str, usize, usize); 2] = [("buffers.activation_bytes", self.buffers.activation_bytes, 1 << 30), ("buffers.output_words", self.buffers.output_words, 1 << 28)];
        for (k, v, max) in sizes {
            if v > max {
                return Err(bad(k, format!("{v} is larger than the simulator supports ({max})")));
            }
        }
        if self.array.weight_bits != 8 {
            return Err(bad("macro.weight_bits", format!("only 8-bit weights are modelled, got {}", self.array.weight_bits)));
        }
        if self.array.activation_bits != 8 {
            return Err(bad("macro.activation_bits", format!("only 8-bit activations are modelled, got {}", self.array.activation_bits)));
        }
        if self.array.meta_bits > 1 {
            return Err(bad("macro.meta_bits", format!("a cell holds 0 or 1 metadata bits, got {}", self.array.meta_bits)));
        }
        if (1usize << self.pipeline.adder_tree_stages.min(31)) < self.array.rows {
            return Err(bad("pipeline.adder_tree_stages", format!("{} binary levels cannot reduce {} rows", self.pipeline.adder_tree_stages, self.array.rows)));
        }
        if !self.array.sub_macros.is_multiple_of(self.sparsity.aggregation) {
            return Err(bad("sparsity.aggregation", format!("{} does not divide macro.sub_macros = {}", self.sparsity.aggregation, self.array.sub_macros)));
        }
        if !(self.clock.mhz.is_finite() && self.clock.mhz > 0.0) {
            return Err(bad("clock.mhz", format!("must be a positive number, got {}", self.clock.mhz)));
        }
        let mut patterns = Vec::new();
        for s in &self.sparsity.supported {
            let nm = parse_pattern(s).map_err(|m| bad("sparsity.supported", m))?;
            if self.array.meta_bits == 0 && !nm.is_dense() {
                return Err(bad("sparsity.supported", format!("{nm} needs the in-cell metadata bit (macro.meta_bits = 0)")));
            }
            if nm.m() > 2 * self.distribution.fan_in {
                return Err(bad("sparsity.supported", format!("{nm}: M = {} exceeds 2 x distribution.fan_in = {}", nm.m(), 2 * self.distribution.fan_in)));
            }
            patterns.push(nm);
        }
        if patterns.is_empty() {
            return Err(bad("sparsity.supported", "lists no pattern".into()));
        }
        self.patterns = patterns;
        Ok(())
    }

    /// True if `nm` runs natively.
    pub fn supports(&self, nm: Nm) -> bool {
        self.patterns.contains(&nm)
    }

    /// True if the macro has no distribution network or metadata (a dense
    /// DCiM): every row is hard-wired to one activation.
    pub fn hard_wired(&self) -> bool {
        self.array.meta_bits == 0
    }

    /// True if a layer run as `nm` takes the dense bypass (`cfg bypass=1`):
    /// a dense pattern on a flexible macro with `distribution.dense_bypass`.
    pub fn bypasses(&self, nm: Nm) -> bool {
        nm.is_dense() && self.distribution.dense_bypass && !self.hard_wired()
    }

    /// Whether rows are wired to one activation (no pair select, metadata 0)
    /// for a layer run as `nm`: a dense DCiM always, a flexible macro in bypass.
    pub fn wired_for(&self, nm: Nm) -> bool {
        self.hard_wired() || self.bypasses(nm)
    }

    /// Distribution select bits per row: stage 1 picks a pair in each bus
    /// group, stage 2 picks a bus group for each sub-macro.
    pub fn select_bits_per_row(&self) -> usize {
        if self.distribution.stages == 0 {
            return 0;
        }
        let bits = |n: usize| (usize::BITS - (n.max(1) - 1).leading_zeros()) as usize;
        self.array.sub_macros * (bits(self.distribution.fan_in) + bits(self.array.sub_macros))
    }

    /// The same architecture under another weight regime.
    pub fn with_regime(&self, regime: Regime) -> Arch {
        let mut a = self.clone();
        a.memory.regime = regime;
        a
    }

    /// True under the resident regime.
    pub fn resident(&self) -> bool {
        self.memory.regime == Regime::Resident
    }

    /// Cycles from a vector entering the mux to its psum reaching the FIFO.
    pub fn front_latency(&self) -> u64 {
        (self.distribution.stages + self.pipeline.adder_tree_stages) as u64
    }

    /// Cycles from the merger taking a psum to the accumulator holding it.
    pub fn back_latency(&self) -> u64 {
        (self.pipeline.merge_stages + self.pipeline.accumulate_stages) as u64
    }

    /// A baseline on the same array (same sizes, buffers, regime, energy):
    /// * `dense`: a dense DCiM (hard-wired rows, no metadata, no muxes);
    /// * `fixed-N:M`: the macro running only that pattern natively, plus
    ///   dense; a layer whose mask it does not hold runs dense;
    /// * `fixed-N:M-reprune`: the same, but such a sparse layer is re-pruned
    ///   to N:M, tile-aligned (its results change: the accuracy is not this
    ///   model's; `bench/flexcim-iso.sh` measures it);
    /// * `vegeta`: a VEGETA-like flexible engine (Jeong et al., HPCA 2023:
    ///   N:4 for N in {1, 2, 4}, row-wise; published speed-ups over its dense
    ///   engine 1.09/2.20/3.74 for 4:4/2:4/1:4) [ASSUMED here: this array
    ///   with its selects and bypass, patterns 1:4, 2:4 and dense; its own
    ///   per-MAC area and energy overheads are not published in a form the
    ///   energy table can take, so they are this macro's].
    pub fn baseline(&self, name: &str) -> Result<Arch, String> {
        let mut a = self.clone();
        a.name = format!("{} ({name})", self.name);
        let dense: Vec<String> = ["2:2", "4:4", "8:8"].iter().filter(|p| parse_pattern(p).is_ok_and(|nm| nm.m() <= 2 * self.distribution.fan_in)).map(|s| s.to_string()).collect();
        a.sparsity.reprune = false;
        if name == "dense" {
            a.distribution.stages = 0;
            a.array.meta_bits = 0;
            a.sparsity.supported = dense;
        } else if name == "vegeta" {
            a.sparsity.supported = dense;
            a.sparsity.supported.extend(["1:4", "2:4"].map(String::from));
        } else if let Some(p) = name.strip_prefix("fixed-") {
            let (p, reprune) = match p.strip_suffix("-reprune") {
                Some(q) => (q, true),
                None => (p, false),
            };
            let nm = parse_pattern(p)?;
            a.sparsity.supported = dense;
            a.sparsity.supported.push(nm.to_string());
            a.sparsity.reprune = reprune;
        } else {
            return Err(format!("unknown baseline `{name}` (use dense, fixed-N:M, fixed-N:M-reprune or vegeta, e.g. fixed-2:4)"));
        }
        a.validate("<baseline>").map_err(|e| e.to_string())?;
        Ok(a)
    }
}

impl EnergyTable {
    /// Parses and validates an energy table.
    pub fn from_toml(file: &str, text: &str) -> Result<EnergyTable, ConfigError> {
        let e: EnergyFile = parse_toml(file, text)?;
        let t = e.energy_pj;
        for (k, v) in t.entries() {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError { file: file.to_string(), key: Some(format!("energy_pj.{k}")), message: format!("must be a finite number >= 0, got {v}") });
            }
        }
        Ok(t)
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<EnergyTable, ConfigError> {
        EnergyTable::from_toml(&path.display().to_string(), &read(path)?)
    }

    /// The embedded default (`backends/flexcim/energy.toml`).
    pub fn default_table() -> EnergyTable {
        EnergyTable::from_toml("<default energy.toml>", DEFAULT_ENERGY).expect("the embedded energy.toml is valid")
    }

    /// Every (key, pJ) pair in table order.
    pub fn entries(&self) -> [(&'static str, f64); 13] {
        [
            ("cell_read", self.cell_read),
            ("mac", self.mac),
            ("adder_add", self.adder_add),
            ("mux_hop", self.mux_hop),
            ("merge_add", self.merge_add),
            ("psum_fifo_write", self.psum_fifo_write),
            ("psum_fifo_read", self.psum_fifo_read),
            ("act_buffer_read", self.act_buffer_read),
            ("act_buffer_write", self.act_buffer_write),
            ("out_buffer_access", self.out_buffer_access),
            ("weight_write", self.weight_write),
            ("select_write", self.select_write),
            ("offchip_byte", self.offchip_byte),
        ]
    }
}
