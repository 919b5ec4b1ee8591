//! Modules: functions, the weight table, and metadata.
//!
//! Metadata holds facts the runtime needs that are not ops (the source
//! architecture, tokenizer file, context length) as typed literals.

use crate::calib::Calibration;
use crate::entity::FuncId;
use crate::func::Func;
use crate::ops::AttrLit;
use crate::weights::WeightTable;
use cranelift_entity::PrimaryMap;
use std::sync::Arc;

/// The module fact that keeps the parameter count of the model as imported
/// ([`Module::parameter_count`]).
pub const PARAMETERS_META: &str = "parameters";

/// A compilation unit.
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// An optional name (`module @smollm2`).
    pub name: Option<String>,
    /// `key = literal` facts, in order.
    pub meta: Vec<(String, AttrLit)>,
    /// Named weights.
    pub weights: WeightTable,
    /// Functions, in order.
    pub funcs: PrimaryMap<FuncId, Func>,
    /// Calibration statistics the driver attached (`--stats FILE`), read by
    /// data-aware passes (`flow-nm`, `prune-nm`). Not part of the text form.
    pub calibration: Option<Arc<Calibration>>,
}

impl Module {
    /// Looks a function up by name.
    pub fn func(&self, name: &str) -> Option<FuncId> {
        self.funcs.iter().find(|(_, f)| f.name == name).map(|(id, _)| id)
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&AttrLit> {
        self.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The model's parameter count: the [`PARAMETERS_META`] fact when a pass
    /// that copied weights recorded the count from before (a rotated model's
    /// untied head is not a new parameter), else the sum over the weights.
    pub fn parameter_count(&self) -> u64 {
        if let Some(AttrLit::Int(n)) = self.meta(PARAMETERS_META)
            && *n > 0
        {
            return *n as u64;
        }
        self.weights.iter().map(|(_, w)| w.ty.numel().unwrap_or(0)).sum()
    }
}
