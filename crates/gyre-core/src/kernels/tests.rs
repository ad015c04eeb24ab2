//! Every SIMD level of every kernel against the portable oracle: the same bits where the
//! operations are the same, or within the stated error for the nonlinearities and products.

use super::dispatch::*;

fn fill(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

#[test]
fn gemm_acc_matches_f64_arithmetic_on_every_shape_edge() {
    for &(m, n, k) in &[(1, 1, 1), (3, 17, 5), (4, 64, 33), (5, 65, 64), (9, 130, 7), (32, 1024, 256), (2, 200, 1)] {
        let (lda, ldb, ldc) = (k + 3, n + 5, n + 2);
        let a = fill(m * lda, 1);
        let b = fill(k * ldb, 2);
        let c0 = fill(m * ldc, 3);
        let mut c = c0.clone();
        gemm_acc(m, n, k, &a, lda, 1, &b, ldb, &mut c, ldc, &[]);
        for i in 0..m {
            for j in 0..ldc {
                let want = if j < n {
                    c0[i * ldc + j] as f64 + (0..k).map(|p| a[i * lda + p] as f64 * b[p * ldb + j] as f64).sum::<f64>()
                } else {
                    c0[i * ldc + j] as f64 // padding columns untouched
                };
                let tol = 1e-5 * (1.0 + k as f64).sqrt() * 4.0;
                assert!(
                    (c[i * ldc + j] as f64 - want).abs() <= tol,
                    "m{m} n{n} k{k} ({i},{j}): {} vs {want}",
                    c[i * ldc + j]
                );
            }
        }
    }
}

/// A `c += a·b` kernel over slices: `(m, n, k, a, rsa, csa, b, ldb, c, ldc)`.
type Product = fn(usize, usize, usize, &[f32], usize, usize, &[f32], usize, &mut [f32], usize);

/// Panics unless every address a product kernel may touch is inside its slice (what
/// [`gemm_acc`] checks before it enters one).
#[allow(clippy::too_many_arguments, dead_code)] // dead where no SIMD kernel exists
fn check_bounds(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    ldb: usize,
    c: &[f32],
    ldc: usize,
) {
    assert!(m > 0 && n > 0 && k > 0 && ldb >= n && ldc >= n);
    assert!(a.len() > (m - 1) * rsa + (k - 1) * csa && b.len() >= (k - 1) * ldb + n && c.len() >= (m - 1) * ldc + n);
}

/// The SIMD product kernels this CPU has, by level.
#[allow(unsafe_code)] // calls into the kernels; each block says why it is sound
fn simd_products() -> Vec<(Level, Product)> {
    #[allow(unused_mut)]
    let mut out: Vec<(Level, Product)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86;
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push((Level::Avx2, |m, n, k, a, rsa, csa, b, ldb, c, ldc| {
                check_bounds(m, n, k, a, rsa, csa, b, ldb, c, ldc);
                // SAFETY: AVX2 and FMA detected; the bounds were checked.
                unsafe { x86::gemm_acc_avx2(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, b) }
            }));
        }
        if is_x86_feature_detected!("avx512f") {
            out.push((Level::Avx512, |m, n, k, a, rsa, csa, b, ldb, c, ldc| {
                check_bounds(m, n, k, a, rsa, csa, b, ldb, c, ldc);
                // SAFETY: AVX-512 F detected; the bounds were checked.
                unsafe { x86::gemm_acc_avx512(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, b) }
            }));
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        use super::aarch64;
        out.push((Level::Neon, |m, n, k, a, rsa, csa, b, ldb, c, ldc| {
            check_bounds(m, n, k, a, rsa, csa, b, ldb, c, ldc);
            // SAFETY: NEON is in the target's baseline; the bounds were checked.
            unsafe { aarch64::gemm_acc_neon(m, n, k, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc) }
        }));
    }
    out
}

#[test]
fn simd_products_are_one_fused_chain_per_element() {
    // Every SIMD level (the portable code multiplies, then adds): each element of `c` is
    // `c ← fma(a[i, p], b[p, j], c)` for p = 0, 1, … in order, whatever tile it falls in. The
    // x86 kernels run with `b` as the block to fetch ahead, so their fetching paths run too.
    for &(m, n, k, transposed) in &[
        (1, 1, 1, false),
        (1, 70, 300, false),
        (2, 130, 9, false),
        (3, 17, 5, true),
        (7, 64, 257, false),
        (13, 150, 40, true),
        (250, 67, 130, false),
    ] {
        let (rsa, csa) = if transposed { (1, m) } else { (k, 1) };
        let (ldb, ldc) = (n + 3, n + 1);
        let (a, b, c0) = (fill(m * k, 50), fill(k * ldb, 51), fill(m * ldc, 52));
        let mut want = c0.clone();
        for i in 0..m {
            for j in 0..n {
                let o = &mut want[i * ldc + j];
                *o = (0..k).fold(*o, |s, p| a[i * rsa + p * csa].mul_add(b[p * ldb + j], s));
            }
        }
        for (at, product) in simd_products() {
            let mut got = c0.clone();
            product(m, n, k, &a, rsa, csa, &b, ldb, &mut got, ldc);
            assert_eq!(got, want, "{at:?}: m{m} n{n} k{k} transposed {transposed}");
        }
    }
}

/// The SIMD sigmoid and tanh kernels this CPU has, by level.
#[allow(clippy::type_complexity, unsafe_code)] // calls into the kernels; each block says why it is sound
fn simd_nonlinearities() -> Vec<(Level, fn(&mut [f32]), fn(&mut [f32]))> {
    #[allow(unused_mut)]
    let mut out: Vec<(Level, fn(&mut [f32]), fn(&mut [f32]))> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86;
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY (both): AVX2 and FMA detected; the kernels touch only their slice.
            out.push((Level::Avx2, |x| unsafe { x86::sigmoid_avx2(x) }, |x| unsafe { x86::tanh_avx2(x) }));
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY (both): AVX-512 F detected; the kernels touch only their slice.
            out.push((Level::Avx512, |x| unsafe { x86::sigmoid_avx512(x) }, |x| unsafe { x86::tanh_avx512(x) }));
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        use super::aarch64;
        // SAFETY (both): NEON is in the target's baseline; the kernels touch only their slice.
        out.push((Level::Neon, |x| unsafe { aarch64::sigmoid_neon(x) }, |x| unsafe { aarch64::tanh_neon(x) }));
    }
    out
}

/// The nonlinearity kernels `(level, sigmoid, tanh)` against one scalar model of them: `exp`,
/// then the same divisions, bit for bit, on a grid, random values and the clamp's edges, for
/// lengths with and without a partial last vector; NaN for NaN (any NaN: payloads aside).
#[allow(clippy::type_complexity)]
fn assert_nonlinearities_follow(exp: fn(f32) -> f32, kernels: &[(Level, fn(&mut [f32]), fn(&mut [f32]))]) {
    let mut xs: Vec<f32> = (-9000..=9000).map(|i| i as f32 * 0.01).collect();
    xs.extend(fill(4001, 53).iter().map(|v| v * 120.0));
    xs.extend([-1e30, -88.5, -87.5, -1e-6, -0.0, 0.0, 1e-6, 1e-30, 87.5, 88.5, 1e30, f32::INFINITY, f32::NEG_INFINITY]);
    xs.extend([f32::NAN, -f32::NAN, 0.5, f32::NAN]);
    let sigmoid: Vec<f32> = xs.iter().map(|&x| 1.0 / (1.0 + exp(0.0 - x))).collect();
    let tanh: Vec<f32> = xs
        .iter()
        .map(|&x| {
            let e = exp(x.abs() * -2.0);
            ((1.0 - e) / (1.0 + e)).copysign(x)
        })
        .collect();
    let bits = |v: &[f32]| v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect::<Vec<_>>();
    assert_eq!(sigmoid.iter().chain(&tanh).filter(|v| v.is_nan()).count(), 6, "the model keeps NaN");
    for &(at, sig, th) in kernels {
        for len in [xs.len(), xs.len() - 3] {
            let (mut s, mut t) = (xs[..len].to_vec(), xs[..len].to_vec());
            sig(&mut s);
            th(&mut t);
            assert_eq!(bits(&s), bits(&sigmoid[..len]), "sigmoid {at:?}");
            assert_eq!(bits(&t), bits(&tanh[..len]), "tanh {at:?}");
        }
    }
}

#[test]
fn simd_nonlinearities_give_the_bits_of_one_fused_model() {
    // One model for every SIMD level, so that they all give the same bits (NEON the same as
    // AVX2 and AVX-512): `exp_fused`, then the same divisions.
    assert_nonlinearities_follow(crate::kernels::portable::exp_fused, &simd_nonlinearities());
}

#[test]
fn gemm_acc_gives_the_same_bits_for_any_split_of_the_output() {
    let (m, n, k) = (13, 150, 40);
    let a = fill(m * k, 4);
    let b = fill(k * n, 5);
    let mut whole = vec![0f32; m * n];
    gemm_acc(m, n, k, &a, k, 1, &b, n, &mut whole, n, &[]);
    let mut parts = vec![0f32; m * n];
    for (i0, i1) in [(0, 5), (5, 6), (6, 13)] {
        for (j0, j1) in [(0, 37), (37, 101), (101, 150)] {
            gemm_acc(i1 - i0, j1 - j0, k, &a[i0 * k..], k, 1, &b[j0..], n, &mut parts[i0 * n + j0..], n, &[]);
        }
    }
    let diff: Vec<usize> = (0..m * n).filter(|&q| whole[q] != parts[q]).collect();
    assert!(
        diff.is_empty(),
        "differ at (row, col) {:?}",
        diff.iter().take(12).map(|&q| (q / n, q % n)).collect::<Vec<_>>()
    );
}

#[test]
fn transpose_matches_the_portable_loop_on_every_edge() {
    for &(rows, k, pad) in &[(16, 16, 0), (64, 64, 0), (33, 47, 3), (5, 70, 1), (70, 5, 0), (1, 1, 0), (48, 128, 16)] {
        let src: Vec<f32> = (0..rows * k).map(|i| i as f32 + 0.5).collect();
        let ld = rows + pad;
        let mut got = vec![-1.0f32; (k - 1) * ld + rows + 5];
        let mut want = got.clone();
        transpose(&src, rows, k, &mut got, ld);
        crate::kernels::portable::transpose_portable(&src, rows, k, &mut want, ld);
        assert_eq!(got, want, "rows {rows}, k {k}, ld {ld}");
    }
}

#[test]
fn gemm_acc_reads_a_transposed_a_exactly_as_a_copied_one() {
    let (m, n, k) = (7, 90, 600);
    let at = fill(k * m, 8); // a stored transposed: a[i, p] = at[p·m + i]
    let a: Vec<f32> = (0..m * k).map(|q| at[(q % k) * m + q / k]).collect();
    let b = fill(k * n, 9);
    let (mut c1, mut c2) = (vec![0.25f32; m * n], vec![0.25f32; m * n]);
    gemm_acc(m, n, k, &at, 1, m, &b, n, &mut c1, n, &[]);
    gemm_acc(m, n, k, &a, k, 1, &b, n, &mut c2, n, &[]);
    assert_eq!(c1, c2);
}

/// The WebAssembly `simd128` product is the portable chain (multiply, then add, over `k` in
/// order) bit for bit, on every tile shape and edge: rows across its 4-row tiles, columns across
/// its 4- and 8-column tiles and the scalar edge, depths across its depth blocks, `a` row-major
/// or transposed, padded strides.
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
#[test]
fn simd128_products_give_the_portable_bits() {
    assert_eq!(level(), Level::Simd128);
    let cols = [1, 3, 4, 5, 8, 9, 12, 16, 17, 63, 64, 65, 130];
    for m in 1..=10 {
        for (q, &n) in cols.iter().enumerate() {
            for k in [1 + 5 * (q % 2), 257 + 3 * (m % 2)] {
                for transposed in [false, true] {
                    let (rsa, csa, len) = if transposed { (1, m + 3, k * (m + 3)) } else { (k + 2, 1, m * (k + 2)) };
                    let (ldb, ldc) = (n + 5, n + 2);
                    let (a, b, c0) = (fill(len, 60 + m as u32), fill(k * ldb, 61 + n as u32), fill(m * ldc, 62));
                    let mut want = c0.clone();
                    crate::kernels::portable::gemm_acc_portable(m, n, k, &a, rsa, csa, &b, ldb, &mut want, ldc);
                    let mut got = c0.clone();
                    gemm_acc(m, n, k, &a, rsa, csa, &b, ldb, &mut got, ldc, &[]);
                    let diff = got.iter().zip(&want).position(|(x, y)| x.to_bits() != y.to_bits());
                    assert_eq!(diff, None, "m{m} n{n} k{k} transposed {transposed}");
                }
            }
        }
    }
}

/// The WebAssembly `simd128` sigmoid and tanh give the bits of one unfused model of the `exp`
/// every level shares (`exp_unfused`), then the same divisions.
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
#[test]
fn simd128_nonlinearities_give_the_bits_of_the_unfused_model() {
    assert_eq!(level(), Level::Simd128);
    assert_nonlinearities_follow(
        crate::kernels::portable::exp_unfused,
        &[(Level::Simd128, sigmoid_inplace as fn(&mut [f32]), tanh_inplace as fn(&mut [f32]))],
    );
}

/// Every level (each runs at the CPU's best below it: on AArch64 every level above `Scalar` is
/// NEON, on x86 `Neon` is the portable code).
const LEVELS: [Level; 5] = [Level::Scalar, Level::Neon, Level::Simd128, Level::Avx2, Level::Avx512];

/// Both SIMD levels give each element's fused multiply-add chain over `k` in order, bit for bit
/// (the `mul_add` loop below, which the one- and many-thread results and the two levels all
/// share), on every tile shape and edge: rows 1 to 14 (every row tile and the 7- and 8-row
/// splits), columns across vector, tile and 64-column block edges, depths across the kernels'
/// depth blocks and their 4-step loops, `a` row-major or transposed, padded strides.
/// (WebAssembly has no fused multiply-add: its product is held to the portable chain instead.)
#[cfg(not(target_family = "wasm"))]
#[test]
fn gemm_acc_gives_the_fused_chain_bits_on_every_simd_level() {
    let fused = |m: usize,
                 n: usize,
                 k: usize,
                 a: &[f32],
                 (rsa, csa): (usize, usize),
                 b: &[f32],
                 ldb: usize,
                 c: &mut [f32],
                 ldc: usize| {
        for i in 0..m {
            for j in 0..n {
                let mut s = c[i * ldc + j];
                for p in 0..k {
                    s = a[i * rsa + p * csa].mul_add(b[p * ldb + j], s);
                }
                c[i * ldc + j] = s;
            }
        }
    };
    let cols = [1, 7, 8, 9, 16, 17, 23, 24, 25, 33, 40, 63, 64, 65, 100, 130];
    for m in 1..=14 {
        for (q, &n) in cols.iter().enumerate() {
            // Depths 1, 6 and past the deepest block (257 on AVX2, 129 and 257 on AVX-512), in turn.
            for k in [1 + 5 * (q % 2), 257 + 3 * (m % 2)] {
                for transposed in [false, true] {
                    let (rsa, csa, len) = if transposed { (1, m + 3, k * (m + 3)) } else { (k + 2, 1, m * (k + 2)) };
                    let (ldb, ldc) = (n + 5, n + 2);
                    let a = fill(len, 50 + m as u32);
                    let b = fill(k * ldb, 51 + n as u32);
                    let c0 = fill(m * ldc, 52);
                    let mut want = c0.clone();
                    fused(m, n, k, &a, (rsa, csa), &b, ldb, &mut want, ldc);
                    for at in [Level::Avx2, Level::Avx512] {
                        let mut got = c0.clone();
                        gemm_acc_on(at, m, n, k, &a, rsa, csa, &b, ldb, &mut got, ldc);
                        let diff = got.iter().zip(&want).position(|(x, y)| x.to_bits() != y.to_bits());
                        assert_eq!(diff, None, "{at:?}: m{m} n{n} k{k} transposed {transposed}");
                    }
                }
            }
        }
    }
}

#[test]
fn gru_backward_row_and_add_rows_give_the_portable_bits_on_every_level() {
    for hd in [1, 7, 16, 100] {
        let g: Vec<f32> = fill(3 * hd, 40).iter().map(|x| 0.5 + 0.4 * x).collect();
        let (hp, e, dh) = (fill(hd, 41), fill(hd, 42), fill(hd, 43));
        for reset_after in [true, false] {
            let mut want = vec![f32::NAN; 3 * hd];
            crate::kernels::portable::gru_backward_row_portable(&g, &hp, &e, &dh, &mut want, reset_after);
            assert!(want.iter().all(|x| x.is_finite()));
            for at in LEVELS {
                let mut got = vec![f32::NAN; 3 * hd];
                gru_backward_row_on(at, &g, &hp, &e, &dh, &mut got, reset_after);
                assert_eq!(got, want, "{at:?}, H {hd}, reset_after {reset_after}");
            }
        }
        let x = fill(37 * hd, 44);
        let mut want = fill(hd, 45);
        let start = want.clone();
        crate::kernels::portable::add_rows_portable(&mut want, &x);
        for at in LEVELS {
            let mut got = start.clone();
            add_rows_on(at, &mut got, &x);
            assert_eq!(got, want, "{at:?}, W {hd}");
        }
    }
}

#[test]
fn square_sums_give_the_portable_bits_on_every_level() {
    for len in [0, 5, 8, 13, 32, 77, 1000, 1037] {
        // Magnitudes far apart, so that a different order or a fused multiply-add shows.
        let x: Vec<f32> = fill(len, 46).iter().enumerate().map(|(i, v)| v * 10f32.powi((i % 9) as i32 - 4)).collect();
        let mut want = [0.125f64; crate::kernels::portable::SQUARE_LANES];
        crate::kernels::portable::square_sums_portable(&x, &mut want);
        for at in LEVELS {
            let mut got = [0.125f64; crate::kernels::portable::SQUARE_LANES];
            square_sums_on(at, &x, &mut got);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{at:?}, {len} values");
        }
    }
}

#[test]
fn adam_gives_the_portable_bits_on_every_level() {
    let n = 1037;
    let (p0, g) = (fill(n, 10), fill(n, 11));
    let (m0, v0) = (fill(n, 12), fill(n, 13).iter().map(|x| x.abs()).collect::<Vec<_>>());
    let h = crate::kernels::portable::AdamStep {
        weight_decay: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        bias_correction2_sqrt: 0.3,
        eps: 1e-8,
        step_size: 0.002,
    };
    type Update<'a> = &'a dyn Fn(&mut [f32], &[f32], &mut [f32], &mut [f32], crate::kernels::portable::AdamStep<f32>);
    let run = |f: Update| {
        let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
        f(&mut p, &g, &mut m, &mut v, h);
        (p, m, v)
    };
    let want = run(&|p, g, m, v, h| crate::kernels::portable::adam_portable(p, g, m, v, h));
    assert_eq!(run(&|p, g, m, v, h| adam(p, g, m, v, h)), want);
    for at in LEVELS {
        assert_eq!(run(&|p, g, m, v, h| adam_on(at, p, g, m, v, h)), want, "{at:?}");
    }
}

/// The fused gate rows give the bits of the unfused arithmetic: the level's sigmoid and tanh
/// and the portable state update, on every SIMD level this CPU has and at the level in use,
/// for widths with and without a partial last vector and around the rows' four-vector groups
/// (32 floats at AVX2 and NEON width, 64 at AVX-512).
#[test]
fn fused_gate_rows_match_the_unfused_arithmetic() {
    #[allow(clippy::type_complexity)]
    let mut levels: Vec<(Level, fn(&mut [f32]), fn(&mut [f32]))> = simd_nonlinearities();
    levels.push((level(), sigmoid_inplace, tanh_inplace));
    for (at, sigmoid, tanh) in levels {
        for hd in [1, 5, 8, 16, 23, 32, 40, 64, 100, 136, 256] {
            let (g0, b) = (fill(4 * hd, 20).iter().map(|x| 4.0 * x).collect::<Vec<_>>(), fill(4 * hd, 21));
            let c_prev = fill(hd, 22);
            // LSTM.
            let (mut g, mut c, mut h) = (g0.clone(), vec![0f32; hd], vec![0f32; hd]);
            lstm_row_on(at, &mut g, &b, &c_prev, &mut c, &mut h);
            let mut w: Vec<f32> = g0.iter().zip(&b).map(|(x, y)| x + y).collect();
            sigmoid(&mut w[..2 * hd]);
            tanh(&mut w[2 * hd..3 * hd]);
            sigmoid(&mut w[3 * hd..]);
            let wc: Vec<f32> = (0..hd).map(|j| w[hd + j] * c_prev[j] + w[j] * w[2 * hd + j]).collect();
            let mut wh = wc.clone();
            tanh(&mut wh);
            wh.iter_mut().zip(&w[3 * hd..]).for_each(|(x, &o)| *x *= o);
            assert_eq!((&g, &c, &h), (&w, &wc, &wh), "lstm {at:?} hd {hd}");
            // GRU (reset after).
            let (rec, hp) = (fill(hd, 23), fill(hd, 24));
            let (mut g, mut e, mut h) = (g0[..3 * hd].to_vec(), vec![0f32; hd], vec![0f32; hd]);
            gru_row_on(at, &mut g, &b[..3 * hd], &rec, &hp, &mut e, &mut h);
            let mut w: Vec<f32> = (0..2 * hd).map(|j| g0[j] + b[j]).collect();
            sigmoid(&mut w);
            let mut n: Vec<f32> = (0..hd).map(|j| g0[2 * hd + j] + w[j] * rec[j]).collect();
            tanh(&mut n);
            let wh: Vec<f32> = (0..hd).map(|j| (1.0 - w[hd + j]) * n[j] + w[hd + j] * hp[j]).collect();
            w.extend(&n);
            assert_eq!((&g, &e, &h), (&w, &rec, &wh), "gru {at:?} hd {hd}");
        }
    }
}

#[test]
fn lstm_backward_row_gives_the_portable_bits_on_every_level() {
    for hd in [1, 7, 16, 100] {
        let g: Vec<f32> = fill(4 * hd, 30).iter().map(|x| 0.5 + 0.4 * x).collect();
        let (cp, tc, dh, dc) = (fill(hd, 31), fill(hd, 32), fill(hd, 33), fill(hd, 34));
        type Row<'a> = &'a dyn Fn(&mut [f32], &mut [f32]);
        let run = |f: Row| {
            let (mut dg, mut dcp) = (vec![0f32; 4 * hd], vec![0f32; hd]);
            f(&mut dg, &mut dcp);
            (dg, dcp)
        };
        let want =
            run(&|dg, dcp| crate::kernels::portable::lstm_backward_row_portable(&g, &cp, &tc, &dh, &dc, dg, dcp));
        assert_eq!(run(&|dg, dcp| lstm_backward_row(&g, &cp, &tc, &dh, &dc, dg, dcp)), want);
        for at in LEVELS {
            let got = run(&|dg, dcp| lstm_backward_row_on(at, &g, &cp, &tc, &dh, &dc, dg, dcp));
            assert_eq!(got, want, "{at:?}");
        }
    }
}

#[test]
fn dot_matches_f64_arithmetic() {
    for n in [0, 1, 7, 16, 31, 32, 33, 100, 256] {
        let (a, b) = (fill(n, 6), fill(n, 7));
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        for at in LEVELS {
            assert!((dot_on(at, &a, &b) as f64 - want).abs() < 1e-5 * (1.0 + n as f64), "{at:?} n {n}");
        }
        assert!(
            (crate::kernels::portable::dot_portable(&a, &b) as f64 - want).abs() < 1e-5 * (1.0 + n as f64),
            "n {n}"
        );
    }
}

#[test]
fn nonlinearities_match_the_scalar_oracle() {
    let mut xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.01).collect();
    xs.extend([-100.0, -88.5, -87.5, -30.0, -1e-6, 0.0, 1e-6, 1e-30, 30.0, 87.5, 88.5, 100.0]);
    let mut s = xs.clone();
    sigmoid_inplace(&mut s);
    let mut t = xs.clone();
    tanh_inplace(&mut t);
    for ((&x, &sv), &tv) in xs.iter().zip(&s).zip(&t) {
        let (ws, wt) = (1.0 / (1.0 + (-(x as f64)).exp()), (x as f64).tanh());
        assert!((sv as f64 - ws).abs() <= 2e-7 + 4e-7 * ws, "sigmoid({x}) = {sv}, want {ws}");
        assert!((tv as f64 - wt).abs() <= 3e-7, "tanh({x}) = {tv}, want {wt}");
        assert!(sv.is_finite() && tv.is_finite() && (0.0..=1.0).contains(&sv) && (-1.0..=1.0).contains(&tv));
    }
}

#[test]
fn add_dots_gives_each_row_the_bits_of_its_own_dot_product_on_every_level() {
    // Row counts around the 4-row blocks, depths around the vector widths and their tails.
    for at in LEVELS {
        for rows in [0, 1, 3, 4, 5, 9, 512] {
            for k in [0, 1, 7, 8, 15, 16, 31, 32, 33, 128, 129] {
                let (x, w, out0) = (fill(k, 8), fill(rows * k, 9), fill(rows, 10));
                let mut out = out0.clone();
                add_dots_on(at, &x, &w, &mut out);
                for r in 0..rows {
                    let want = out0[r] + dot_on(at, &x, &w[r * k..(r + 1) * k]);
                    assert_eq!(out[r].to_bits(), want.to_bits(), "{at:?} rows {rows} k {k} row {r}");
                }
            }
        }
    }
}
