//! Fuzz target: the architecture and energy TOML loaders (first byte even:
//! `arch.toml`, odd: `energy.toml`). An architecture that validates must be
//! usable: a small N:M layer is lowered and simulated on it, which must end
//! in a result or an error value, never a panic or a huge allocation.
#![no_main]
use flexc_backends::flexcim::arch::{Arch, EnergyTable, Nm};
use flexc_backends::flexcim::lower::{synthetic_layer, Rng};
use flexc_backends::flexcim::{evaluate, Workload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if sel % 2 == 1 {
        if let Ok(e) = EnergyTable::from_toml("fuzz.toml", text) {
            let _ = e.entries();
        }
        return;
    }
    let Ok(arch) = Arch::from_toml("fuzz.toml", text) else { return };
    let mut rng = Rng(3);
    let layer = synthetic_layer("l", 8, 16, Nm::of(2, 4), true, 4, &mut rng);
    let x: Vec<i8> = (0..2 * 16).map(|_| rng.i8()).collect();
    let work = [Workload { layer, x, tokens: 2, oracle: None, tile: None }];
    if let Ok(ev) = evaluate(&arch, &EnergyTable::default_table(), &work, &[], &["dense".to_string()]) {
        assert!(!matches!(ev.check, flexc_backends::flexcim::Check::Failed(_)), "functional check failed on a valid arch: {:?}", ev.check);
    }
});
