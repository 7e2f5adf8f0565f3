//! CPU kernels: matrix products on the `gemm` crate, and the loops around them, each
//! parallel over fixed chunks so results do not depend on scheduling.

pub mod conv;
pub mod im2col;
pub mod matmul;
pub mod reduce;
pub mod simd;
pub mod tile;
pub mod winograd;
