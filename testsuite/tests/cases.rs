//! Runs every case file: round trip, located errors, `run` lines, and
//! snapshots of the IR after each case's pipeline.

use flexc_ir::text::{parse_module, print_module};
use flexc_ir::verify::verify_module;
use flexc_passes::{ManagerOptions, PassManager};
use flexc_testsuite::{cases_in, check_run, Case};

fn all_cases() -> Vec<Case> {
    let cases = cases_in("");
    assert!(!cases.is_empty(), "no case files found");
    cases
}

fn parse_ok(c: &Case) -> flexc_ir::Module {
    let m = parse_module(&c.text).unwrap_or_else(|d| panic!("{}: {}", c.name(), d.render(&c.name(), &c.text)));
    if let Err(es) = verify_module(&m) {
        panic!("{}: {}", c.name(), es[0].render(&c.name(), &c.text));
    }
    m
}

#[test]
fn valid_cases_round_trip_byte_for_byte() {
    let mut n = 0;
    for c in all_cases().iter().filter(|c| c.errors.is_empty()) {
        let m = parse_ok(c);
        let printed = print_module(&m);
        assert_eq!(printed, c.canonical_text(), "{}: printing the parsed case does not give it back", c.name());
        let again = print_module(&parse_module(&printed).expect("printed text parses"));
        assert_eq!(again, printed, "{}: print is not a fixpoint", c.name());
        n += 1;
    }
    assert!(n >= 40, "only {n} valid cases");
}

#[test]
fn invalid_cases_fail_at_the_marked_line() {
    let mut n = 0;
    for c in all_cases().iter().filter(|c| !c.errors.is_empty()) {
        let (line, want) = &c.errors[0];
        let (got_line, msg) = match parse_module(&c.text) {
            Err(d) => (d.line_col(&c.text).0, d.message),
            Ok(m) => match verify_module(&m) {
                Err(es) => {
                    let span = es[0].span.unwrap_or_default();
                    (flexc_ir::diag::line_col(&c.text, span.start as usize).0, es[0].message.clone())
                }
                Ok(()) => panic!("{}: expected an error at line {line} ({want}), but the case is valid", c.name()),
            },
        };
        assert!(msg.contains(want.as_str()), "{}: expected an error containing '{want}', got '{msg}'", c.name());
        assert_eq!(got_line, *line, "{}: error '{msg}' reported at line {got_line}, expected line {line}", c.name());
        n += 1;
    }
    assert!(n >= 20, "only {n} invalid cases");
}

#[test]
fn run_lines_match_hand_computed_values() {
    let mut n = 0;
    for c in all_cases().iter().filter(|c| !c.runs.is_empty()) {
        let m = parse_ok(c);
        for r in &c.runs {
            check_run(&m, r, c.tolerance).unwrap_or_else(|e| panic!("{}: run {r}: {e}", c.name()));
            n += 1;
        }
    }
    assert!(n > 0);
}

#[test]
fn pipelines_snapshot() {
    for c in all_cases().iter().filter(|c| c.passes.is_some()) {
        let mut m = parse_ok(c);
        let pipeline = c.passes.as_deref().unwrap_or_default();
        let opts = ManagerOptions { verify_each: true, ..Default::default() };
        let pm = PassManager::from_text(pipeline, opts).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
        // The shipped cost models (CI never sets FLEXC_COST_TABLE), so
        // select-gemm's choices are the same on every machine.
        let mut pm = flexc_backends::cost::cost_models_with(None).unwrap_or_else(|e| panic!("cost models: {e}")).into_iter().fold(pm, PassManager::with_cost_model);
        let report = pm.run(&mut m, &mut |_, _| {}).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
        // Run lines still hold after the pipeline: passes preserve semantics.
        for r in &c.runs {
            check_run(&m, r, c.tolerance).unwrap_or_else(|e| panic!("{} after {pipeline}: run {r}: {e}", c.name()));
        }
        let name = c.name().replace(['/', ':'], "__");
        insta::with_settings!({ description => format!("{}\npipeline: {pipeline}", c.name()), omit_expression => true, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name.clone(), print_module(&m));
            if let Some(explain) = &report.explain {
                insta::assert_snapshot!(format!("{name}.explain"), explain.text());
            }
        });
    }
}
