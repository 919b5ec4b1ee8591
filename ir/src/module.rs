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
}
