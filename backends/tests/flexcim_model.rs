//! Whole-model FlexCiM runs on a small two-block module pruned by
//! `prune-nm`: block linears and the head found (the head dense), the cycle-level
//! engine's functional check, the analytical engine equal to it, and
//! tile-aligned masks (`align=rows:32`, `align=pairs:32`) realising the N:M
//! speedup that per-row masks lose.

use flexc_backends::flexcim::arch::{Arch, EnergyTable};
use flexc_backends::flexcim::lower::Rng;
use flexc_backends::flexcim::model::{activations, model_layers, run_phase, Engine, Machines, PhaseResult};
use flexc_backends::flexcim::Check;
use flexc_passes::{ManagerOptions, PassManager};

fn weight(rng: &mut Rng, name: &str, out: usize, inp: usize) -> String {
    let vals: Vec<String> = (0..out * inp).map(|_| format!("{:?}", (rng.below(2001) as f32 - 1000.0) / 512.0)).collect();
    format!("weight @{name} : f32[{out}, {inp}] = dense<[{}]>\n", vals.join(", "))
}

/// Two blocks of up/down projections (d = 256, ff = 512) and a head.
fn module(prune: &str) -> flexc_ir::Module {
    let mut rng = Rng(11);
    let (d, ff) = (256, 512);
    let mut text = String::new();
    for b in 0..2 {
        text += &weight(&mut rng, &format!("blk.{b}.ffn_up.weight"), ff, d);
        text += &weight(&mut rng, &format!("blk.{b}.ffn_down.weight"), d, ff);
    }
    text += &weight(&mut rng, "output.weight", 16, d);
    text += &format!("\nfunc @f(%x: f32[seq, {d}]) -> f32[seq, 16] {{\n");
    let mut cur = "%x".to_string();
    for b in 0..2 {
        text += &format!("  %u{b} = tensor.weight @blk.{b}.ffn_up.weight : f32[{ff}, {d}]\n  %h{b} = tensor.matmul {cur}, %u{b} {{transpose_b}} : f32[seq, {ff}]\n  %r{b} = tensor.relu %h{b} : f32[seq, {ff}]\n");
        text += &format!("  %d{b} = tensor.weight @blk.{b}.ffn_down.weight : f32[{d}, {ff}]\n  %y{b} = tensor.matmul %r{b}, %d{b} {{transpose_b}} : f32[seq, {d}]\n");
        cur = format!("%y{b}");
    }
    text += &format!("  %o = tensor.weight @output.weight : f32[16, {d}]\n  %z = tensor.matmul {cur}, %o {{transpose_b}} : f32[seq, 16]\n  return %z\n}}\n");
    let mut m = flexc_ir::text::parse_module(&text).unwrap();
    let mut pm = PassManager::from_text(prune, ManagerOptions { verify_each: true, ..Default::default() }).unwrap();
    pm.run(&mut m, &mut |_, _| {}).unwrap();
    m
}

fn phase(m: &flexc_ir::Module, rows: usize, engine: Engine) -> PhaseResult {
    let ml = model_layers(m, None, &mut |_, _| {}).unwrap();
    assert_eq!(ml.layers.len(), 5);
    assert!(ml.skipped.is_empty());
    let head = &ml.layers[4];
    assert_eq!((head.gemm.name.as_str(), head.block, head.layer.out, head.layer.nm.n(), head.layer.nm.m()), ("output.weight", None, 16, 8, 8), "the LM head runs, dense");
    assert_eq!(ml.host.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), vec!["tensor.relu"; 2], "host work: the relus (weights are decoded offline)");
    let acts = (engine == Engine::Cycle).then(|| activations(m, None, &ml.layers, rows, 3).unwrap());
    let mut seen = 0;
    let (arch, energy, baselines) = (Arch::default_flexcim(), EnergyTable::default_table(), ["dense".to_string(), "fixed-2:4".to_string()]);
    let p = run_phase(Machines { arch: &arch, energy: &energy, baselines: &baselines }, &ml.layers, "t", rows, engine, acts.as_deref(), &mut |d| seen = d).unwrap();
    assert_eq!(seen, 5, "progress reaches every layer");
    p
}

#[test]
fn cycle_engine_checks_and_the_analytical_engine_agrees() {
    let m = module("prune-nm{pattern=2:8,score=magnitude,align=pairs:32}");
    for rows in [1, 5] {
        let c = phase(&m, rows, Engine::Cycle);
        assert_eq!(c.check, Check::Passed);
        let a = phase(&m, rows, Engine::Analytical);
        assert_eq!(a.check, Check::Skipped);
        for (lc, la) in c.layers.iter().zip(&a.layers) {
            assert_eq!(lc.slots, la.slots, "{}: the lowering's slots = slot_use", lc.name);
            for (sc, sa) in lc.stats.iter().zip(&la.stats) {
                assert_eq!((sc.cycles, sc.events, sc.macs), (sa.cycles, sa.events, sa.macs), "{}: analytical = cycle-level", lc.name);
            }
        }
    }
}

#[test]
fn aligned_masks_realise_the_nm_speedup_per_row_masks_lose() {
    let speedup = |p: &PhaseResult| p.totals[1].total_cycles() as f64 / p.totals[0].total_cycles() as f64;
    let slot_ratio = |p: &PhaseResult| p.layers.iter().map(|l| l.slots.0).sum::<usize>() as f64 / p.layers.iter().map(|l| l.slots.1).sum::<usize>() as f64;
    let per_row = phase(&module("prune-nm{pattern=2:4,score=magnitude}"), 1, Engine::Cycle);
    assert!(slot_ratio(&per_row) > 1.8, "per-row 2:4 masks need about M/N times the slots: {}", slot_ratio(&per_row));
    assert!(speedup(&per_row) < 1.0, "per-row masks: slower than the dense DCiM ({})", speedup(&per_row));
    for align in ["rows:32", "pairs:32"] {
        let p = phase(&module(&format!("prune-nm{{pattern=2:4,score=magnitude,align={align}}}")), 1, Engine::Cycle);
        assert_eq!(p.check, Check::Passed);
        assert_eq!(slot_ratio(&p), 1.0, "{align}: exactly N slots per group");
        assert!(speedup(&p) > 1.3, "{align}: aligned 2:4 beats the dense DCiM ({})", speedup(&p));
        assert!(p.totals[0].total_cycles() * 3 < per_row.totals[0].total_cycles() * 2, "{align}: aligned takes under 2/3 of the per-row cycles");
    }
}

#[test]
fn select_and_tile_gemm_for_flexcim_lower_and_match_the_cost_model() {
    use flexc_backends::flexcim::cost::FlexcimCostModel;
    use flexc_backends::flexcim::fromir::from_ir;
    use flexc_backends::flexcim::lower::MagnitudePrune;
    use flexc_backends::flexcim::{evaluate, Check};
    use flexc_passes::target::{CostModel, GemmQuery, Primitive};
    let mut m = module("prune-nm{pattern=2:8,score=magnitude,align=rows:32}");
    let cm = std::sync::Arc::new(FlexcimCostModel::default());
    let mut pm = PassManager::from_text("select-gemm{target=flexcim},tile-gemm{target=flexcim}", ManagerOptions { verify_each: true, ..Default::default() }).unwrap().with_cost_model(cm.clone());
    pm.run(&mut m, &mut |_, _| {}).unwrap();
    let text = flexc_ir::text::print_module(&m);
    assert_eq!(text.matches("kern.sparse_gemm").count(), 4, "the block linears run sparse:\n{text}");
    assert!(text.contains("kern.tile"), "tile-gemm placed the macro tiles");
    // The stream runs, checks, and costs what the cost model said.
    let w = from_ir(&m, None, 1, &MagnitudePrune(flexc_backends::flexcim::arch::Nm::of(2, 4)), 5).unwrap();
    let arch = Arch::default_flexcim();
    let ev = evaluate(&arch, &EnergyTable::default_table(), &w.work, &w.host, &["dense".into()]).unwrap();
    assert_eq!(ev.check, Check::Passed);
    for (wk, st) in w.work.iter().zip(ev.flexcim.result.layers.iter().filter(|l| l.dense_macs > 0)) {
        let ty = flexc_ir::TensorType { encoding: Some(flexc_ir::types::Encoding::Nm(flexc_ir::quant::Nm::of(2, 8))), ..flexc_ir::TensorType::new(flexc_ir::ElemType::F32, &[wk.layer.out as u64, wk.layer.inp as u64]) };
        let q = GemmQuery { rows: 1, n: wk.layer.out as u64, k: wk.layer.inp as u64, weight: &ty };
        if wk.layer.nm.n() == 2 {
            // From the type alone the dsels a pass can keep are expected values: within 2% (flexcim_cost.rs).
            let est = cm.gemm(Primitive::Sparse, &q, wk.tile).unwrap();
            let sim = st.total_cycles() as f64;
            assert!((est / sim - 1.0).abs() <= 0.02, "{}: cost model {est} vs simulated {sim} cycles", wk.layer.name);
        }
    }
}
