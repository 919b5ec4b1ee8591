//! Tests of `select-gemm` and `tile-gemm` against a small deterministic cost model.

mod model;
mod rules;
mod scale;
mod select;
mod tile;
