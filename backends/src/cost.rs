//! The cost models the backends offer `select-gemm` and `tile-gemm`, one per
//! target (the trait is `flexc_passes::target::CostModel`; passes never depend
//! on a backend, so the driver collects the models here and hands them over).
//!
//! - `cpu`: [`CpuCostModel`] over a measured kernel-cost table: the file
//!   given to [`cost_models_with`] (`--cost-table`), else the file named by
//!   `FLEXC_COST_TABLE`, else the table shipped with flexc.
//! - `flexcim`: [`FlexcimCostModel`], the simulator's analytical model over
//!   the default architecture and energy files.

use crate::cpu::cost::{CpuCostModel, COST_TABLE_ENV};
use crate::flexcim::cost::FlexcimCostModel;
use flexc_passes::target::CostModel;
use std::path::Path;
use std::sync::Arc;

/// Every target's cost model, the CPU one from `cpu_table` if given, else
/// from `FLEXC_COST_TABLE`, else the shipped table. A table that cannot be
/// read or parsed is an error naming the file.
pub fn cost_models_with(cpu_table: Option<&Path>) -> Result<Vec<Arc<dyn CostModel>>, String> {
    let cpu: Arc<dyn CostModel> = Arc::new(CpuCostModel::select(cpu_table)?);
    Ok(vec![cpu, Arc::new(FlexcimCostModel::default())])
}

/// Every target's cost model as [`cost_models_with`]`(None)`. This function
/// cannot fail: if `FLEXC_COST_TABLE` names a bad file the CPU model falls
/// back to the shipped table and its `source()` says why (drivers that can
/// report errors use [`cost_models_with`]).
pub fn cost_models() -> Vec<Arc<dyn CostModel>> {
    cost_models_with(None).unwrap_or_else(|e| {
        let fallback = CpuCostModel::default_table().map(|m| m.with_source(format!("built-in default ({COST_TABLE_ENV} ignored: {e})")));
        let mut models = fallback.map(|m| vec![Arc::new(m) as Arc<dyn CostModel>]).unwrap_or_default();
        models.push(Arc::new(FlexcimCostModel::default()));
        models
    })
}
