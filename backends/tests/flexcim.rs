//! FlexCiM backend tests: assembly and binary round trips, malformed streams,
//! TOML loader errors, functional equality on random N:M layers, cycle-count
//! sanity and the IR path (via the reference interpreter).

use flexc_backends::flexcim::arch::{Arch, EnergyTable, Nm, DEFAULT_ARCH, DEFAULT_ENERGY};
use flexc_backends::flexcim::isa::{decode, encode, parse_asm, print_asm, Instr, Program, StreamError};
use flexc_backends::flexcim::lower::{lower_layer, reference_matmul, synthetic_layer, MagnitudePrune, NmLayer, Rng};
use flexc_backends::flexcim::sim::simulate;
use flexc_backends::flexcim::{evaluate, fromir, Check, Workload};

const PATTERNS: [&str; 6] = ["1:2", "2:4", "2:8", "4:8", "4:4", "8:8"];

fn small_arch() -> Arch {
    // A smaller array so random layers need several tiles and passes.
    let text = DEFAULT_ARCH.replace("rows = 32 ", "rows = 8 ").replace("columns = 32 ", "columns = 8 ").replace("activation_bytes = 262144", "activation_bytes = 4096").replace("output_words = 65536", "output_words = 256");
    Arch::from_toml("small", &text).unwrap()
}

fn workload(nm: &str, out: usize, inp: usize, tokens: usize, aligned: bool, seed: u64) -> Workload {
    workload_tiled(nm, out, inp, tokens, aligned, 8, seed)
}

fn workload_tiled(nm: &str, out: usize, inp: usize, tokens: usize, aligned: bool, tile: usize, seed: u64) -> Workload {
    let mut rng = Rng(seed);
    let layer = synthetic_layer("l", out, inp, Nm::parse(nm).unwrap(), aligned, tile, &mut rng);
    let x = (0..tokens * inp).map(|_| rng.i8()).collect();
    Workload { layer, x, tokens, oracle: None, tile: None }
}

fn program(arch: &Arch, w: &Workload) -> Program {
    let mut p = Program::default();
    lower_layer(arch, &w.layer, &w.x, w.tokens, &mut p).unwrap();
    p
}

#[test]
fn asm_and_binary_round_trip() {
    let arch = small_arch();
    for nm in PATTERNS {
        let mut p = program(&arch, &workload(nm, 12, 32, 3, false, 7));
        p.instrs.push(Instr::Host { op: "tensor.rmsnorm".into(), elems: 99 });
        let text = print_asm(&p);
        let back = parse_asm(&text).unwrap();
        assert_eq!(back, p, "{nm}");
        assert_eq!(print_asm(&back), text);
        assert_eq!(decode(&encode(&p)).unwrap(), p, "{nm}");
    }
}

#[test]
fn malformed_streams_give_located_errors() {
    let asm_cases: [(&str, usize, &str); 10] = [
        ("frob x=1", 1, "unknown instruction"),
        ("sync\ncfg n=2 m=4", 2, "missing field `agg=`"),
        ("cfg n=2 m=4 agg=4 zz=1", 1, "unknown field `zz`"),
        ("cfg n=2 n=2 m=4 agg=4", 1, "given twice"),
        ("cfg n=x m=4 agg=4", 1, "not a valid"),
        ("ldx addr=0 data=12", 1, "must start with 0x"),
        ("ldx addr=0 data=0x123", 1, "odd number of hex digits"),
        ("ldw sm=0 row=0 col=0 rows=1 cols=2 w=0x01 meta=0x00", 1, "holds 1 bytes"),
        ("dsel row=0 bus=0,- s1=0 s2=0,-", 1, "must agree"),
        ("mac x=0 xstride=1 y=0 count=1 acc=2", 1, "acc` is 0 or 1"),
    ];
    for (text, line, want) in asm_cases {
        match parse_asm(text) {
            Err(StreamError::Asm { line: l, message, .. }) => assert!(l == line && message.contains(want), "{text}: line {l}: {message}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    let good = encode(&Program { instrs: vec![Instr::Cfg { n: 2, m: 4, agg: 2, bypass: false }, Instr::Sync] });
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut bad_op = good.clone();
    bad_op[10] = 77;
    let mut trailing = good.clone();
    trailing.push(0);
    let bin_cases: [(Vec<u8>, usize, &str); 4] =
        [(bad_magic, 0, "magic"), (good[..good.len() - 2].to_vec(), 14, "truncated"), (bad_op, 10, "unknown opcode 77"), (trailing, good.len(), "trailing")];
    for (bytes, off, want) in bin_cases {
        match decode(&bytes) {
            Err(StreamError::Bin { offset, message }) => assert!(offset == off && message.contains(want), "{offset}: {message}"),
            other => panic!("{other:?}"),
        }
    }
    // Streams that parse but do not fit the machine fail in the simulator, by index.
    let arch = small_arch();
    for (text, want) in [
        ("mac x=0 xstride=1 y=0 count=1 acc=0", "no cfg"),
        ("ldw sm=9 row=0 col=0 rows=1 cols=1 w=0x01 meta=0x00", "outside"),
        ("dsel row=0 bus=0,0,0,0 s1=7,0,0,0 s2=0,-,-,-", "fan-in"),
        ("cfg n=3 m=10 agg=4", "not a pattern"),
        ("sync\nst y=0 count=1 cols=1 dst=0 dstride=1", "no layer"),
    ] {
        let e = simulate(&arch, &parse_asm(text).unwrap()).unwrap_err();
        assert!(e.message.contains(want), "{text}: {e}");
    }
}

#[test]
fn toml_loader_errors_name_file_and_key() {
    assert!(Arch::from_toml("a.toml", DEFAULT_ARCH).is_ok());
    assert!(EnergyTable::from_toml("e.toml", DEFAULT_ENERGY).is_ok());
    let cases: [(String, Option<&str>, &str); 6] = [
        (DEFAULT_ARCH.replace("rows = 32 ", "rows = 0 "), Some("macro.rows"), "at least 1"),
        (DEFAULT_ARCH.replace("adder_tree_stages = 5", "adder_tree_stages = 4"), Some("pipeline.adder_tree_stages"), "cannot reduce"),
        (DEFAULT_ARCH.replace("\"2:8\",", "\"2:16\","), Some("sparsity.supported"), "exceeds"),
        (DEFAULT_ARCH.replace("aggregation = 4", "aggregation = 3"), Some("sparsity.aggregation"), "does not divide"),
        (DEFAULT_ARCH.replace("mhz = 500.0", "mhz = \"fast\""), None, "line"),
        (DEFAULT_ARCH.replace("fan_in = 4", "fan_in = 4\nbogus = 1"), None, "unknown field"),
    ];
    for (text, key, want) in cases {
        let e = Arch::from_toml("a.toml", &text).unwrap_err();
        assert_eq!(e.key.as_deref(), key, "{e}");
        assert!(e.to_string().starts_with("a.toml") && e.to_string().contains(want), "{e}");
    }
    let e = EnergyTable::from_toml("e.toml", &DEFAULT_ENERGY.replace("mac = 0.2", "mac = -1.0")).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("energy_pj.mac"));
    let e = EnergyTable::from_toml("e.toml", &DEFAULT_ENERGY.replace("mac = 0.2 ", "")).unwrap_err();
    assert!(e.to_string().contains("missing field `mac`"), "{e}");
}

#[test]
fn random_layers_are_bit_exact_for_every_pattern() {
    let arch = small_arch();
    let baselines: Vec<String> = ["dense", "fixed-1:2", "fixed-2:4"].map(String::from).to_vec();
    let mut rng = Rng(12345);
    for nm in PATTERNS {
        for case in 0..4 {
            let m = Nm::parse(nm).unwrap().m();
            let (out, inp, tokens) = (1 + rng.below(20), m * (1 + rng.below(12)), 1 + rng.below(40));
            let w = workload(nm, out, inp, tokens, case % 2 == 0, rng.next_u64());
            let ev = evaluate(&arch, &EnergyTable::default_table(), std::slice::from_ref(&w), &[], &baselines).unwrap();
            assert_eq!(ev.check, Check::Passed, "{nm} {out}x{inp} t{tokens}");
        }
    }
    // The default (full-size) macro too, with the interpreter as a second oracle.
    let mut w = workload("2:8", 70, 96, 5, false, 99);
    w.oracle = Some(fromir::interpreter_matmul(&w.layer, &w.x, w.tokens).unwrap());
    let ev = evaluate(&Arch::default_flexcim(), &EnergyTable::default_table(), &[w], &[], &baselines).unwrap();
    assert_eq!(ev.check, Check::Passed);
}

#[test]
fn magnitude_prune_keeps_the_largest() {
    let l = NmLayer::prune("p", 1, 8, &[1, -9, 3, 2, 0, 5, -5, 4], Nm::of(2, 4)).unwrap();
    assert_eq!(l.idx, vec![1, 2, 1, 2]);
    assert_eq!(l.values, vec![-9, 3, 5, -5]);
    assert_eq!(reference_matmul(&l, &[1; 8], 1).unwrap(), vec![-6]);
    // As a denser pattern: kept positions stay, the lowest free ones pad (with zeros).
    let one = NmLayer::prune("p", 1, 8, &[0, 0, 7, 0, 0, -3, 0, 0], Nm::of(1, 4)).unwrap();
    let two = one.as_pattern(Nm::of(2, 4)).unwrap();
    assert_eq!((two.idx, two.values), (vec![0, 2, 0, 1], vec![0, 7, 0, -3]));
    assert_eq!(l.as_pattern(Nm::of(1, 4)), None, "2 kept do not fit 1:4");
}

fn cycles(arch: &Arch, w: &Workload) -> (u64, u64) {
    let r = simulate(arch, &program(arch, w)).unwrap();
    (r.total.total_cycles(), r.total.cycles[0])
}

#[test]
fn cycle_counts_are_sane() {
    let arch = Arch::default_flexcim();
    // Monotonic in work: more tokens, more outputs, more inputs.
    let (a, _) = cycles(&arch, &workload("2:4", 64, 256, 8, true, 1));
    let (b, _) = cycles(&arch, &workload("2:4", 64, 256, 16, true, 1));
    let (c, _) = cycles(&arch, &workload("2:4", 128, 256, 16, true, 1));
    let (d, _) = cycles(&arch, &workload("2:4", 128, 512, 16, true, 1));
    assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
    // The adder-tree depth is visible: deeper trees, longer latency.
    let deep = Arch::from_toml("deep", &DEFAULT_ARCH.replace("adder_tree_stages = 5", "adder_tree_stages = 9")).unwrap();
    let w = workload("2:4", 32, 64, 1, true, 2);
    assert_eq!(program(&arch, &w).instrs.iter().filter(|i| matches!(i, Instr::Mac { .. })).count(), 1);
    assert_eq!(cycles(&deep, &w).0, cycles(&arch, &w).0 + 4);
    // N:M speedups against dense, in the expected direction (aligned masks).
    let dense = cycles(&arch, &workload_tiled("4:4", 512, 1024, 16, true, 32, 3)).1;
    for (nm, ratio) in [("2:4", 2.0), ("4:8", 2.0), ("2:8", 4.0), ("1:2", 2.0)] {
        let sparse = cycles(&arch, &workload_tiled(nm, 512, 1024, 16, true, 32, 3)).1;
        let r = dense as f64 / sparse as f64;
        assert!((r - ratio).abs() < 0.05 * ratio, "{nm}: compute speedup {r}, expected about {ratio}");
    }
    // Unaligned masks never need more array passes than dense.
    assert!(cycles(&arch, &workload("2:8", 512, 1024, 16, false, 3)).1 <= dense);
}

#[test]
fn ir_function_lowers_and_checks_against_the_interpreter() {
    let text = "weight @w : f32[4, 8] = dense<[0.5, -1.0, 2.0, 1.5, 0.25, -3.0, 1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]>\n\nfunc @f(%x: f32[seq, 8]) -> f32[seq, 4] {\n  %w = tensor.weight @w : f32[4, 8]\n  %y = tensor.matmul %x, %w {transpose_b} : f32[seq, 4]\n  %z = tensor.relu %y : f32[seq, 4]\n  return %z\n}\n";
    let m = flexc_ir::text::parse_module(text).unwrap();
    let w = fromir::from_ir(&m, None, 3, &MagnitudePrune(Nm::of(2, 4)), 5).unwrap();
    assert_eq!(w.work.len(), 1);
    assert_eq!(w.host, vec![("tensor.relu".to_string(), 12)]);
    assert_eq!(w.work[0].tokens, 3);
    let ev = evaluate(&Arch::default_flexcim(), &EnergyTable::default_table(), &w.work, &w.host, &["dense".into()]).unwrap();
    assert_eq!(ev.check, Check::Passed);
    assert_eq!(ev.flexcim.result.total.host_elems, 12);
}

/// Prints FlexCiM-like ratios at SmolLM2 shapes and the simulation speed
/// (`cargo test -p flexc-backends --test flexcim -- --ignored --nocapture`).
#[test]
#[ignore]
fn smollm2_shapes_ratios() {
    let arch = Arch::default_flexcim();
    let e = EnergyTable::default_table();
    let bl: Vec<String> = ["dense", "fixed-2:4"].map(String::from).to_vec();
    for aligned in [true, false] {
        for nm in ["2:4", "4:8", "2:8", "1:2", "8:8"] {
            let work: Vec<Workload> = [(576, 576), (1536, 576), (576, 1536)].iter().enumerate().map(|(i, &(o, k))| workload_tiled(nm, o, k, 16, aligned, 32, 11 + i as u64)).collect();
            let ev = evaluate(&arch, &e, &work, &[], &bl).unwrap();
            let t = &ev.flexcim.result.total;
            let r: Vec<String> = ev.baselines.iter().map(|b| format!("{}: latency {:.3} energy {:.3}", b.name, t.total_cycles() as f64 / b.result.total.total_cycles() as f64, t.energy_pj(&e) / b.result.total.energy_pj(&e))).collect();
            println!("aligned={aligned} {nm}: cycles {} energy {:.3e} pJ check {} speed {:.1} M MAC/s | {}", t.total_cycles(), t.energy_pj(&e), ev.check.label(), t.macs as f64 / ev.flexcim.sim_seconds / 1e6, r.join(" | "));
        }
    }
}

/// `timing::mac` keeps only the last `psum_fifo_depth` merge times (a ring);
/// this is the step-by-step recurrence over every vector it replaced
/// (vector t enters at max(previous + II_in, merge(t − depth) − front), is
/// merged at max(enter + front, previous merge + II_out)), compared on random
/// shapes, FIFO depths and port widths, stalls included.
#[test]
fn mac_timing_equals_the_step_by_step_fifo_recurrence() {
    use flexc_backends::flexcim::sim::Stats;
    use flexc_backends::flexcim::timing::{ceil_div, mac, MacShape};
    let mut rng = Rng(2024);
    for case in 0..300 {
        let depth = 1 + rng.below(5);
        let port = [1, 8, 32, 128][rng.below(4)];
        let bw = [4, 64, 1024][rng.below(3)];
        let text = DEFAULT_ARCH
            .replace("psum_fifo_depth = 3 ", &format!("psum_fifo_depth = {depth} "))
            .replace("output_words_per_cycle = 128 ", &format!("output_words_per_cycle = {port} "))
            .replace("activation_read_bytes_per_cycle = 1024 ", &format!("activation_read_bytes_per_cycle = {bw} "));
        let a = Arch::from_toml("t", &text).unwrap();
        let sets = [1u64, 2, 4][rng.below(3)];
        let shape = MacShape { count: rng.below(40) as u64, positions: 1 + rng.below(128) as u64, bytes: 2 + rng.below(256) as u64, active_subs: 1 + rng.below(4) as u64, active_sets: 1, agg: 4 / sets, sets, accumulate: case % 2 == 0, bypass: false };
        let got = mac(&a, &mut Stats::default(), &shape);
        let ii_in = ceil_div(shape.bytes, bw as u64).max(1);
        let ii_out = ceil_div(sets * a.array.columns as u64, port as u64).max(1);
        let (front, back) = (a.front_latency(), a.back_latency());
        let (mut enter, mut merged): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        for t in 0..shape.count as usize {
            let mut e = if t == 0 { 0 } else { enter[t - 1] + ii_in };
            if t >= depth {
                e = e.max(merged[t - depth].saturating_sub(front));
            }
            merged.push((e + front).max(if t == 0 { 0 } else { merged[t - 1] + ii_out }));
            enter.push(e);
        }
        let issue = enter.last().map_or(0, |&e| e + ii_in);
        let finish = merged.last().map_or(0, |&m| m + ii_out + back);
        assert_eq!((got.ideal, got.issue, got.finish), (shape.count * ii_in, issue, finish), "case {case}: {shape:?} depth {depth} port {port} bw {bw}");
    }
}

/// The dense bypass (`distribution.dense_bypass`): a dense layer on the
/// flexible macro costs what it costs on the dense DCiM (same cycles, same
/// energy), its stream says `cfg ... bypass=1`, results stay exact; without
/// the bypass it pays the mux stages, the pair selects and 9-bit cells.
#[test]
fn dense_layers_take_the_bypass() {
    let arch = Arch::default_flexcim();
    assert!(arch.distribution.dense_bypass);
    let e = EnergyTable::default_table();
    let no_bypass = Arch::from_toml("nb", &DEFAULT_ARCH.replace("dense_bypass = true", "dense_bypass = false")).unwrap();
    for (nm, out, inp, tokens) in [("8:8", 576, 576, 1), ("8:8", 96, 256, 16), ("4:4", 64, 200, 3)] {
        let w = workload(nm, out, inp, tokens, false, 5);
        let p = program(&arch, &w);
        assert!(p.instrs.iter().any(|i| matches!(i, Instr::Cfg { bypass: true, .. })), "{nm}");
        let ev = evaluate(&arch, &e, std::slice::from_ref(&w), &[], &["dense".into()]).unwrap();
        assert_eq!(ev.check, Check::Passed, "{nm}");
        let (f, d) = (&ev.flexcim.result.total, &ev.baselines[0].result.total);
        assert_eq!((f.total_cycles(), f.events), (d.total_cycles(), d.events), "{nm} {out}x{inp}: FlexCiM in bypass = dense DCiM");
        let slow = evaluate(&no_bypass, &e, std::slice::from_ref(&w), &[], &[]).unwrap();
        assert_eq!(slow.check, Check::Passed);
        assert!(slow.flexcim.result.total.total_cycles() > f.total_cycles(), "{nm}: the sparse datapath costs more on a dense layer");
    }
    // The measured case of issue 15: a dense 576×576 decode token was 15,418 cycles against 11,710.
    let w = workload("8:8", 576, 576, 1, false, 5);
    assert_eq!(simulate(&no_bypass, &program(&no_bypass, &w)).unwrap().total.total_cycles(), 15_418);
    assert_eq!(simulate(&arch, &program(&arch, &w)).unwrap().total.total_cycles(), 11_710);
    // Sparse layers never take it.
    assert!(program(&arch, &workload("2:4", 32, 64, 1, true, 2)).instrs.iter().all(|i| !matches!(i, Instr::Cfg { bypass: true, .. })));
    // Streams that misuse it fail in the simulator, by index.
    for (text, want) in [
        ("cfg n=2 m=4 agg=2 bypass=1", "dense bypass takes a dense"),
        ("cfg n=8 m=8 agg=4 bypass=1\nldw sm=0 row=0 col=0 rows=1 cols=1 w=0x01 meta=0x01", "metadata bit set in the dense bypass"),
        ("cfg n=8 m=8 agg=4 bypass=1\ndsel row=0 bus=0,0,0,0 s1=1,0,0,0 s2=0,1,2,3", "s1 must be 0"),
    ] {
        let err = simulate(&arch, &parse_asm(text).unwrap()).unwrap_err();
        assert!(err.message.contains(want), "{text}: {err}");
    }
    assert!(simulate(&no_bypass, &parse_asm("cfg n=8 m=8 agg=4 bypass=1").unwrap()).is_err());
    match parse_asm("cfg n=8 m=8 agg=4 bypass=2") {
        Err(StreamError::Asm { message, .. }) => assert!(message.contains("0 or 1"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// Version 1 binary streams (no `cfg` flags byte) still decode, without bypass;
/// version 2 writes the flags byte and rejects undefined bits.
#[test]
fn binary_version_1_streams_still_decode() {
    let v1 = [b"FXCM".as_slice(), &1u16.to_le_bytes(), &2u32.to_le_bytes(), &[1, 8, 8, 4], &[8]].concat();
    assert_eq!(decode(&v1).unwrap().instrs, vec![Instr::Cfg { n: 8, m: 8, agg: 4, bypass: false }, Instr::Sync]);
    let v2 = encode(&Program { instrs: vec![Instr::Cfg { n: 8, m: 8, agg: 4, bypass: true }] });
    assert_eq!(&v2[4..6], &2u16.to_le_bytes());
    assert_eq!(decode(&v2).unwrap().instrs, vec![Instr::Cfg { n: 8, m: 8, agg: 4, bypass: true }]);
    let mut bad = v2.clone();
    *bad.last_mut().unwrap() = 6;
    match decode(&bad) {
        Err(StreamError::Bin { offset, message }) => assert!(offset == bad.len() - 1 && message.contains("flags"), "{offset} {message}"),
        other => panic!("{other:?}"),
    }
}

/// The resident regime (`[memory] regime = "resident"`): the same stream,
/// the same results, no weight-load or select cycles or energy per run (the
/// cells are counted as preloaded), passes back to back; fewer cycles than
/// streamed, and N:M saves compute against dense there.
#[test]
fn resident_weights_cost_no_load() {
    use flexc_backends::flexcim::arch::Regime;
    use flexc_backends::flexcim::timing::{cy, ev};
    let streamed = Arch::default_flexcim();
    assert_eq!(streamed.memory.regime, Regime::Streamed, "the default file prices streamed weights");
    let resident = streamed.with_regime(Regime::Resident);
    let e = EnergyTable::default_table();
    for (nm, aligned) in [("2:4", true), ("4:8", false), ("8:8", true), ("2:8", true)] {
        let w = workload_tiled(nm, 256, 512, 4, aligned, 32, 9);
        let ev_r = evaluate(&resident, &e, std::slice::from_ref(&w), &[], &["dense".into()]).unwrap();
        let ev_s = evaluate(&streamed, &e, std::slice::from_ref(&w), &[], &["dense".into()]).unwrap();
        assert_eq!((&ev_r.check, &ev_r.flexcim.program), (&Check::Passed, &ev_s.flexcim.program), "{nm}: one stream, both regimes");
        let (r, s) = (&ev_r.flexcim.result.total, &ev_s.flexcim.result.total);
        assert_eq!((r.cycles[cy::WEIGHT_LOAD], r.events[ev::WEIGHT_WRITE], r.weight_offchip_bytes, r.events[ev::SELECT_WRITE]), (0, 0, 0, 0), "{nm}");
        assert_eq!(r.preloaded_cells, s.events[ev::WEIGHT_WRITE], "{nm}: the cells streamed are the cells preloaded");
        assert_eq!((r.macs, r.cycles[cy::COMPUTE]), (s.macs, s.cycles[cy::COMPUTE]), "{nm}");
        assert!(r.total_cycles() < s.total_cycles() && r.energy_pj(&e) < s.energy_pj(&e), "{nm}");
        if nm != "8:8" && aligned {
            let d = &ev_r.baselines[0].result.total;
            // Half the compute or less; activations in and results out are the same.
            assert!((d.total_cycles() as f64) > 1.3 * r.total_cycles() as f64, "{nm}: resident N:M vs dense {} vs {}", d.total_cycles(), r.total_cycles());
            assert!(d.cycles[cy::COMPUTE] >= 2 * r.cycles[cy::COMPUTE], "{nm}");
        }
    }
    // The regime key is checked.
    let bad = DEFAULT_ARCH.replace("regime = \"streamed\"", "regime = \"cached\"");
    assert!(Arch::from_toml("bad", &bad).unwrap_err().to_string().contains("unknown variant"));
}

/// The paper's baselines: fixed-2:4 runs a 4:8 layer dense (its mask does
/// not fit 2:4) or, as `fixed-2:4-reprune`, re-prunes it to 2:4 (checked
/// against that layer's own matmul); the VEGETA-like engine runs N:4 only
/// (1:4 and 2:4 natively, a 2:8 mask as 2:4, a 4:8 mask dense).
#[test]
fn baselines_as_the_paper_frames_them() {
    use flexc_backends::flexcim::layer::fit_pattern;
    let arch = Arch::default_flexcim();
    let e = EnergyTable::default_table();
    let w48 = workload_tiled("4:8", 128, 512, 2, false, 32, 4);
    let run_as = |b: &str, w: &Workload| fit_pattern(&arch.baseline(b).unwrap(), &w.layer).unwrap().nm.to_string();
    assert_eq!(run_as("fixed-2:4", &w48), "8:8");
    assert_eq!(run_as("fixed-2:4-reprune", &w48), "2:4");
    assert_eq!(run_as("vegeta", &w48), "8:8");
    assert_eq!(run_as("vegeta", &workload_tiled("2:8", 64, 256, 1, false, 32, 5)), "2:4");
    assert_eq!(run_as("vegeta", &workload_tiled("1:4", 64, 256, 1, false, 32, 6)), "1:4");
    assert_eq!(run_as("fixed-2:4-reprune", &workload_tiled("8:8", 64, 256, 1, false, 32, 6)), "8:8", "dense layers are not re-pruned");
    let names: Vec<String> = ["dense", "fixed-2:4", "fixed-2:4-reprune", "vegeta"].map(String::from).to_vec();
    let ev = evaluate(&arch, &e, std::slice::from_ref(&w48), &[], &names).unwrap();
    assert_eq!(ev.check, Check::Passed, "every baseline checked, the re-pruned one against its own layer");
    let c: Vec<u64> = ev.baselines.iter().map(|b| b.result.total.cycles[0]).collect();
    assert_eq!(c[0], c[1], "fixed-2:4 runs the 4:8 layer dense");
    assert!(c[2] < c[1], "re-pruned to 2:4 it computes less");
    assert!(arch.baseline("fixed-3:5").is_err() && arch.baseline("systolic").unwrap_err().contains("vegeta"));
}
