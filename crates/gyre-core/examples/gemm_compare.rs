//! Chooses the matrix product by measurement: single-threaded f32 GFLOP/s of gyre's SIMD
//! kernel (`gyre_core::kernels::gemm_acc`), ndarray's `general_mat_mul` (matrixmultiply) and the
//! `gemm` crate, on the shapes gyre runs (1024³ and the benchmark workloads' products).
//!
//! Run: `cargo run --release -p gyre-core --example gemm_compare` (results: benchmark/gemm.md).
//! `GYRE_SIMD=avx2` runs gyre's AVX2 + FMA kernel. The two crates run their AVX2 + FMA kernels
//! unless built with `--features compare-avx512` (then their AVX-512 ones, where the CPU has
//! them); the first line says which level each ran at. `ROUNDS=n` sets the rounds (default 5).
//!
//! Each round times every column once, in turn, so that a noisy spell on a shared machine
//! falls on all of them alike; each figure is the median over the rounds. Time is the thread's
//! time on the CPU (see `common::cpu_seconds`), so that time spent descheduled while other
//! processes run does not count.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{cpu_seconds, crate_gemm, crates_level, matrixmultiply, median, operands};

fn main() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().unwrap();
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let clock = if cfg!(unix) { "on-CPU time" } else { "wall-clock time" };
    println!(
        "gyre at {:?}; matrixmultiply and gemm at {}; GFLOP/s, one thread, {clock}, median of {rounds} rounds",
        gyre_core::kernels::level(),
        crates_level()
    );
    println!();
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
        let flops = 2.0 * (m * k * n) as f64;
        // b packed once in column panels, as gyre keeps its weights (the packing is not timed).
        let bp = gyre_core::kernels::pack(ndarray::ArrayView2::from_shape((k, n), &b).unwrap());
        // One output per column (their closures live side by side).
        let mut cs = [(); 4].map(|()| vec![0f32; m * n]);
        let [c0, c1, c2, c3] = &mut cs;
        let mut columns: [Box<dyn FnMut() + '_>; 4] = [
            Box::new(|| gyre_core::kernels::gemm_acc_packed(m, k, &a, rsa, csa, &bp, k, 0, 0, n, c0, n)),
            Box::new(|| gyre_core::kernels::gemm_acc(m, n, k, &a, rsa, csa, &b, n, c1, n, &[])),
            Box::new(|| matrixmultiply(m, n, k, &a, rsa, csa, &b, c2, 1)),
            Box::new(|| crate_gemm(m, n, k, &a, rsa, csa, &b, c3, 1)),
        ];
        // About 0.2 s per column and round, after one untimed call of each.
        let reps = ((4e8 / flops) as usize).max(3);
        for f in columns.iter_mut() {
            f();
        }
        let mut rates: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            for (f, r) in columns.iter_mut().zip(&mut rates) {
                r.push(flops * reps as f64 / cpu_seconds(reps, f.as_mut()) / 1e9);
            }
        }
        let [packed, ours, mm, gemm] = rates.map(|r| median(&r));
        println!("| {name} | {m} × {k} × {n} | {packed:.1} | {ours:.1} | {mm:.1} | {gemm:.1} |");
    }
}
