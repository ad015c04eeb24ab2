//! Chooses the matrix product by measurement: single-threaded f32 GFLOP/s of gyre's SIMD
//! kernel (`gyre_core::kernels::gemm_acc`), ndarray's `general_mat_mul` (matrixmultiply) and the
//! `gemm` crate, on the shapes gyre runs (1024³ and the benchmark workloads' products).
//!
//! Run: `cargo run --release -p gyre-core --example gemm_compare` (results: benchmark/gemm.md).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{best_gflops as gflops, crate_gemm, matrixmultiply, operands};

fn main() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    println!(
        "| product | m × k × n | gyre, b packed ({:?}) | gyre, b row-major | matrixmultiply | gemm crate |",
        gyre_core::kernels::level()
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    let shapes = [
        ("sgemm 1024³", 1024, 1024, 1024, false),
        ("lstm-m recurrent step", 32, 256, 1024, false),
        ("lstm-m input projection", 2048, 128, 1024, false),
        ("lstm-l recurrent step", 64, 512, 2048, false),
        ("lstm-l input projection", 6400, 512, 2048, false),
        ("stream step (batch 1, hidden 128)", 1, 128, 512, false),
        ("lstm-m weight gradient dGᵀ·X (a read transposed)", 1024, 2048, 128, true),
    ];
    // (name, m, k, n, whether `a` is read transposed: the weight gradient's `dG: [k, m]`)
    for (name, m, k, n, transposed) in shapes {
        let (rsa, csa) = if transposed { (1, m) } else { (k, 1) };
        let (a, b) = operands(m, k, n);
        let mut c = vec![0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let ours = gflops(flops, || gyre_core::kernels::gemm_acc(m, n, k, &a, rsa, csa, &b, n, &mut c, n, &[]));
        // b packed once in column panels, as gyre keeps its weights (the packing is not timed).
        let bp = gyre_core::kernels::pack(ndarray::ArrayView2::from_shape((k, n), &b).unwrap());
        let packed =
            gflops(flops, || gyre_core::kernels::gemm_acc_packed(m, k, &a, rsa, csa, &bp, k, 0, 0, n, &mut c, n));
        let mm = gflops(flops, || matrixmultiply(m, n, k, &a, rsa, csa, &b, &mut c, 1));
        let crate_gemm = gflops(flops, || crate_gemm(m, n, k, &a, rsa, csa, &b, &mut c, 1));
        println!("| {name} | {m} × {k} × {n} | {packed:.1} | {ours:.1} | {mm:.1} | {crate_gemm:.1} |");
    }
}
