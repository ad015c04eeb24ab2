//! What the examples that measure matrix products share: the timing loop, the operands and the
//! two external pure-Rust products (matrixmultiply through ndarray, and the `gemm` crate).
#![allow(dead_code)] // each example uses part of it

use ndarray::ShapeBuilder;
use std::time::Instant;

/// GFLOP/s of `rounds` rounds of `f` (which computes `flops` floating-point operations), after
/// one untimed call; each round repeats `f` until about `flops_per_round` operations are done
/// (at least once).
pub fn rates(flops: f64, rounds: usize, flops_per_round: f64, mut f: impl FnMut()) -> Vec<f64> {
    f();
    let reps = ((flops_per_round / flops) as usize).max(1);
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect()
}

/// The best of three rounds of about 3 GFLOP each.
pub fn best_gflops(flops: f64, f: impl FnMut()) -> f64 {
    rates(flops, 3, 3e9, f).into_iter().fold(0.0, f64::max)
}

/// Nanoseconds this thread has run on a CPU (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`).
#[cfg(unix)]
fn cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(unix))]
fn cpu_ns() -> Option<u64> {
    None
}

/// Seconds `reps` calls of `f` take: this thread's time on the CPU, so that time spent
/// descheduled while other processes run does not count (on a shared 2-core machine best-of-3
/// wall-clock figures moved by 20–40%); wall-clock time where the system has no such clock.
pub fn cpu_seconds(reps: usize, f: &mut dyn FnMut()) -> f64 {
    let (wall, cpu) = (Instant::now(), cpu_ns());
    for _ in 0..reps {
        f();
    }
    match (cpu, cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 * 1e-9,
        _ => wall.elapsed().as_secs_f64(),
    }
}

/// The level the two external products run at on this CPU in this build: ndarray takes
/// matrixmultiply without its `avx512` feature and gyre-core takes `gemm` without `x86-v4`, so
/// both run their AVX2 + FMA kernels even on an AVX-512 CPU, unless the example is built with
/// gyre-core's `compare-avx512` feature.
pub fn crates_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "compare-avx512") && is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return "AVX2 + FMA";
        }
        "below AVX2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "NEON"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "their portable code"
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Deterministic operands: `a` with `m·k` values and `b` with `k·n`, small and exact in f32.
pub fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i * 7) % 13) as f32 * 0.01).collect();
    let b = (0..k * n).map(|i| ((i * 5) % 11) as f32 * 0.01).collect();
    (a, b)
}

/// `c += a · b` by ndarray's `general_mat_mul` (matrixmultiply): `a` is `m × k` at strides
/// (`rsa`, `csa`) (`(k, 1)` row-major, `(1, m)` stored transposed), `b` row-major `k × n`,
/// `c` row-major `m × n`. With `threads` > 1 the rows of `c` are split into that many equal
/// blocks, each computed by its own scoped thread (matrixmultiply runs on one thread unless
/// its `threading` feature is enabled, which would change it for the whole workspace).
#[allow(clippy::too_many_arguments)]
pub fn matrixmultiply(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    let Ok(av) = ndarray::ArrayView2::from_shape((m, k).strides((rsa, csa)), a) else {
        return;
    };
    let Ok(bv) = ndarray::ArrayView2::from_shape((k, n), b) else {
        return;
    };
    let Ok(mut cv) = ndarray::ArrayViewMut2::from_shape((m, n), c) else {
        return;
    };
    if threads <= 1 {
        ndarray::linalg::general_mat_mul(1.0, &av, &bv, 1.0, &mut cv);
        return;
    }
    let rows = m.div_ceil(threads);
    std::thread::scope(|s| {
        for (a_blk, mut c_blk) in
            av.axis_chunks_iter(ndarray::Axis(0), rows).zip(cv.axis_chunks_iter_mut(ndarray::Axis(0), rows))
        {
            let bv = &bv;
            s.spawn(move || ndarray::linalg::general_mat_mul(1.0, &a_blk, bv, 1.0, &mut c_blk));
        }
    });
}

/// `c += a · b` by the `gemm` crate, same layouts as [`matrixmultiply`], on `threads` threads
/// of rayon's global pool (its own parallelism; 1 = none).
#[allow(clippy::too_many_arguments)]
pub fn crate_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    let fits = a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() >= k * n && c.len() >= m * n;
    if !fits {
        return;
    }
    let parallelism = if threads <= 1 { gemm::Parallelism::None } else { gemm::Parallelism::Rayon(threads) };
    // SAFETY: `a`, `b` and `c` hold every element the strides address (checked above), and `c`
    // is borrowed mutably for the call.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
