//! The fused LSTM and GRU gate rows alone (`Kernels::lstm_row` / `gru_row` for f32, the level
//! in use: `GYRE_SIMD` caps it), on 32 rows of H units (256 unless given), the lstm-m and gru-m
//! batches' shape: nanoseconds per unit, the 10th percentile and the best of 401 rounds of 50
//! passes (other processes can only slow a round down), and a checksum of the outputs (the
//! same on every level and before and after a change that keeps the bits).
//!
//! Run: `GYRE_SIMD=avx2 cargo run --release -p gyre-core --example gate_rows -- [H]`
#![allow(clippy::unwrap_used, missing_docs)]
use gyre_core::kernels::Kernels;
use std::time::Instant;

fn main() {
    let hd: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(256);
    let rows = 32;
    let mut s = 1u32;
    let mut r = || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
    };
    let g0: Vec<f32> = (0..rows * 4 * hd).map(|_| r()).collect();
    let b: Vec<f32> = (0..4 * hd).map(|_| r() * 0.1).collect();
    let cp: Vec<f32> = (0..rows * hd).map(|_| r()).collect();
    let mut g = g0.clone();
    let (mut c, mut h) = (vec![0f32; rows * hd], vec![0f32; rows * hd]);
    let (p10, best) = ns_per_unit(rows * hd, || {
        g.copy_from_slice(&g0);
        for i in 0..rows {
            f32::lstm_row(
                &mut g[i * 4 * hd..(i + 1) * 4 * hd],
                &b,
                &cp[i * hd..(i + 1) * hd],
                &mut c[i * hd..(i + 1) * hd],
                &mut h[i * hd..(i + 1) * hd],
            );
        }
    });
    let sum: f64 = h.iter().map(|&v| v as f64).sum();
    println!(
        "lstm H={hd} level {:?}: p10 {:.3} ns/unit, best {:.3} (checksum {sum:.6})",
        gyre_core::kernels::level(),
        p10,
        best
    );
    let g0: Vec<f32> = g0[..rows * 3 * hd].to_vec();
    let b = &b[..3 * hd];
    let rec: Vec<f32> = (0..rows * hd).map(|i| cp[(i * 7) % (rows * hd)] * 0.5).collect();
    let mut g = g0.clone();
    let mut extra = vec![0f32; rows * hd];
    let (p10, best) = ns_per_unit(rows * hd, || {
        g.copy_from_slice(&g0);
        for i in 0..rows {
            let r = i * hd..(i + 1) * hd;
            f32::gru_row(
                &mut g[i * 3 * hd..(i + 1) * 3 * hd],
                b,
                &rec[r.clone()],
                &cp[r.clone()],
                &mut extra[r.clone()],
                &mut h[r],
            );
        }
    });
    let sum: f64 = h.iter().map(|&v| v as f64).sum::<f64>() + g.iter().map(|&v| v as f64).sum::<f64>();
    println!(
        "gru  H={hd} level {:?}: p10 {:.3} ns/unit, best {:.3} (checksum {sum:.6})",
        gyre_core::kernels::level(),
        p10,
        best
    );
}

/// Nanoseconds per unit of `pass` (which runs `units` units), the 10th percentile and the best
/// of 401 rounds of 50 passes each.
fn ns_per_unit(units: usize, mut pass: impl FnMut()) -> (f64, f64) {
    let mut samples: Vec<f64> = (0..401)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..50 {
                pass();
            }
            t.elapsed().as_nanos() as f64 / (50 * units) as f64
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[40], samples[0])
}
