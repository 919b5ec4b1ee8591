//! The cost models the backends offer `select-gemm` and `tile-gemm`, one per
//! target (the trait is `flexc_passes::target::CostModel`; passes never depend
//! on a backend, so the driver collects the models here and hands them over).

use flexc_passes::target::CostModel;
use std::sync::Arc;

/// Every target's default cost model.
pub fn cost_models() -> Vec<Arc<dyn CostModel>> {
    vec![Arc::new(crate::flexcim::cost::FlexcimCostModel::default())]
}
