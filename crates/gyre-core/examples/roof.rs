//! The benchmark suite's roofs that are not gyre's own code (`benchmark/run.mjs`), printed as
//! one JSON object on stdout:
//!
//! - `sgemm`: an f32 matrix product of 1024 × 1024 × 1024 by the two pure-Rust products
//!   gyre was measured against (`benchmark/gemm.md`): the `gemm` crate (on 2 threads, its own
//!   rayon parallelism) and matrixmultiply through ndarray (on 2 threads, the rows of the
//!   output split in two halves, one per thread). The suite uses these when no Python with
//!   numpy (OpenBLAS) is at hand. Median of the rounds, each one product, after a warm-up.
//! - `fma`: the core's multiply-add peak, from a probe that keeps everything in registers:
//!   independent chains of fused multiply-adds (16 chains of 16-lane AVX-512 vectors, 12 of
//!   8-lane AVX2 vectors: more than latency × throughput, so the FMA ports never wait), at the
//!   CPU's widest level and at AVX2 width; 1 thread, and N threads each running the probe at
//!   once (their summed rate). Best of the rounds: other processes can only lower a peak.
//!
//! Run: `cargo run --release -p gyre-core --example roof -- [--sgemm] [--fma] [--threads 1,2] [--rounds 11]`
//! (neither `--sgemm` nor `--fma`: both).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{crate_gemm, matrixmultiply, median, operands, rates};
use serde_json::{json, Value};
use std::time::Instant;

struct Args {
    sgemm: bool,
    fma: bool,
    threads: Vec<usize>,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args { sgemm: false, fma: false, threads: vec![1, 2], rounds: 11 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sgemm" => a.sgemm = true,
            "--fma" => a.fma = true,
            "--threads" => {
                a.threads = it.next().unwrap_or_default().split(',').filter_map(|t| t.trim().parse().ok()).collect()
            }
            "--rounds" => a.rounds = it.next().and_then(|r| r.parse().ok()).unwrap_or(a.rounds).max(1),
            other => {
                eprintln!("unknown argument {other:?}; usage: roof [--sgemm] [--fma] [--threads 1,2] [--rounds N]");
                std::process::exit(2);
            }
        }
    }
    if !a.sgemm && !a.fma {
        a.sgemm = true;
        a.fma = true;
    }
    a
}

const N: usize = 1024;

fn sgemm(threads: &[usize], rounds: usize) -> Vec<Value> {
    let (a, b) = operands(N, N, N);
    let mut c = vec![0f32; N * N];
    let flops = 2.0 * (N * N * N) as f64;
    let mut out = Vec::new();
    type Product = fn(usize, usize, usize, &[f32], usize, usize, &[f32], &mut [f32], usize);
    let libraries: [(&str, &str, Product); 2] = [
        ("gemm crate", "gemm::Parallelism::Rayon(threads)", crate_gemm),
        ("matrixmultiply", "ndarray general_mat_mul; rows of c split over scoped threads", matrixmultiply),
    ];
    for &t in threads {
        for (library, how, product) in libraries {
            // One product per round (~10–20 ms): the median is over single products.
            let r = rates(flops, rounds, 0.0, || product(N, N, N, &a, N, 1, &b, &mut c, t));
            let gflops = median(&r);
            out.push(json!({
                "library": library,
                "threads": t,
                "gflops": gflops,
                "bestGflops": r.iter().copied().fold(0.0, f64::max),
                "productMs": flops / gflops / 1e6,
                "rounds": rounds,
                "how": how,
            }));
        }
    }
    out
}

/// Independent FMA chains in registers. `$fma(acc, mul, add)` on `$n` accumulators for
/// `iters` iterations; returns a value depending on every chain, so none is optimized away.
#[cfg(target_arch = "x86_64")]
macro_rules! chains {
    ($iters:expr, $set1:ident, $fma:ident, $add:ident, $reduce:expr, [$($acc:ident),+]) => {{
        let mul = $set1(std::hint::black_box(0.999_999_9));
        let add = $set1(std::hint::black_box(1e-7));
        let mut k = 0.0f32;
        $( let mut $acc = $set1({ k += 0.01; k }); )+
        for _ in 0..$iters {
            $( $acc = $fma($acc, mul, add); )+
        }
        let mut sum = $set1(0.0);
        $( sum = $add(sum, $acc); )+
        $reduce(sum)
    }};
}

#[cfg(target_arch = "x86_64")]
mod probe {
    use std::arch::x86_64::*;

    /// FLOPs per iteration: 16 chains × 16 lanes × 2.
    pub const AVX512_FLOPS_PER_ITER: f64 = 16.0 * 16.0 * 2.0;
    /// FLOPs per iteration: 12 chains × 8 lanes × 2.
    pub const AVX2_FLOPS_PER_ITER: f64 = 12.0 * 8.0 * 2.0;

    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(iters: u64) -> f32 {
        chains!(
            iters,
            _mm512_set1_ps,
            _mm512_fmadd_ps,
            _mm512_add_ps,
            _mm512_reduce_add_ps,
            [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15]
        )
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(iters: u64) -> f32 {
        chains!(
            iters,
            _mm256_set1_ps,
            _mm256_fmadd_ps,
            _mm256_add_ps,
            |s: __m256| {
                let mut v = [0f32; 8];
                _mm256_storeu_ps(v.as_mut_ptr(), s);
                v.iter().sum::<f32>()
            },
            [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]
        )
    }
}

/// Rates of `threads` threads each running `probe(iters)` at once: total FLOPs ÷ the wall time
/// from a common start to the last thread's end.
fn probe_rate(threads: usize, iters: u64, flops_per_iter: f64, probe: fn(u64) -> f32) -> f64 {
    let start = std::sync::Barrier::new(threads + 1);
    let (elapsed, sink) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    probe(iters)
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        let sink: f32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (t.elapsed().as_secs_f64(), sink)
    });
    std::hint::black_box(sink);
    threads as f64 * iters as f64 * flops_per_iter / elapsed / 1e9
}

/// A probe: its name, vector bits, FLOPs per iteration, and the probe itself.
type Width = (&'static str, u32, f64, fn(u64) -> f32);

fn fma(threads: &[usize], rounds: usize) -> Vec<Value> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))] // the probes are x86 only
    let mut widths: Vec<Width> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512 F detected just above.
            widths.push(("avx512", 512, probe::AVX512_FLOPS_PER_ITER, |n| unsafe { probe::avx512(n) }));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA detected just above.
            widths.push(("avx2", 256, probe::AVX2_FLOPS_PER_ITER, |n| unsafe { probe::avx2(n) }));
        }
    }
    let mut out = Vec::new();
    for (width, bits, flops_per_iter, probe) in widths {
        // About 0.2 s per round at 100 GFLOP/s per thread.
        let iters = (2e10 / flops_per_iter) as u64;
        for &t in threads {
            probe_rate(t, iters / 10, flops_per_iter, probe);
            let r: Vec<f64> = (0..rounds).map(|_| probe_rate(t, iters, flops_per_iter, probe)).collect();
            out.push(json!({
                "width": width,
                "bits": bits,
                "threads": t,
                "gflops": r.iter().copied().fold(0.0, f64::max),
                "medianGflops": median(&r),
                "rounds": rounds,
            }));
        }
    }
    out
}

fn main() {
    let a = args();
    let level = format!("{:?}", gyre_core::kernels::level()).to_lowercase();
    let mut out = json!({ "arch": std::env::consts::ARCH, "gyreLevel": level });
    if a.sgemm {
        out["sgemm"] = Value::Array(sgemm(&a.threads, a.rounds));
    }
    if a.fma {
        out["fma"] = Value::Array(fma(&a.threads, a.rounds.min(7)));
    }
    println!("{out}");
}
