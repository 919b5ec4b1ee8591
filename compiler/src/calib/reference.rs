//! Calibration on the reference interpreter: an observer sees the operands
//! of every op; those of a block linear (`tensor.matmul {transpose_b}` whose
//! right side is a weight) are its inputs. Slow; the oracle the JIT engine is
//! tested against.

use flexc_backends::reference::{Interpreter, Tensor};
use flexc_ir::calib::ChannelStats;
use flexc_ir::{ElemType, Module, Op};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Runs `@forward` on every window with an observer on the linears `ops`
/// (matmul op → weight name) and returns their statistics by weight name;
/// with `hessian`, also their Hessians by the reference formula
/// ([`ChannelStats::add_sequence_hessian`]).
pub fn calibrate(m: &Module, ops: HashMap<Op, String>, windows: &[Vec<u32>], hessian: bool, progress: &mut dyn FnMut(usize)) -> Result<BTreeMap<String, ChannelStats>, String> {
    let id = m.func("forward").ok_or("the module has no @forward function")?;
    let f = &m.funcs[id];
    let layers = Rc::new(RefCell::new(BTreeMap::<String, ChannelStats>::new()));
    let mut interp = Interpreter::new(m);
    let sink = layers.clone();
    interp.set_observer(Some(Box::new(move |_f, op, args: &[std::sync::Arc<Tensor>]| {
        if let (Some(name), Some(x)) = (ops.get(&op), args[0].as_f32()) {
            let ch = *args[0].shape.last().unwrap_or(&1);
            let mut layers = sink.borrow_mut();
            let s = layers.entry(name.clone()).or_default();
            if hessian {
                s.add_sequence_hessian(x, ch);
            }
            s.add_sequence(x, ch);
        }
    })));
    for (i, w) in windows.iter().enumerate() {
        let ids = Tensor::int(ElemType::I32, &[w.len()], w.iter().map(|&t| t as i64).collect())?;
        let mut inputs = vec![ids, Tensor::scalar_i32(0)];
        for &p in &f.params[2..] {
            let shape: Vec<usize> = f.dfg.ty(p).fixed_shape().unwrap_or_default().iter().map(|&d| d as usize).collect();
            inputs.push(Tensor::float(ElemType::F32, &shape, vec![0.0; shape.iter().product()]));
        }
        interp.run_id(id, inputs).map_err(|e| e.to_string())?;
        progress(i + 1);
    }
    drop(interp);
    let out = std::mem::take(&mut *layers.borrow_mut());
    Ok(out)
}
