//! flexc's backends: the reference interpreter (the oracle), the Cranelift CPU JIT and FlexCiM.

pub mod chart;
pub mod cost;
pub mod cpu;
pub mod flexcim;
pub mod reference;
pub mod xorshift;
