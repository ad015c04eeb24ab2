//! The `simd128` nonlinearities and gate rows: a vectorized `exp` (Cephes' polynomial after
//! range reduction, as the other levels, but multiply then add where they fuse: Cephes' own
//! `expf` does so too), the sigmoid and tanh built on it, element-wise over slices, and the
//! fused LSTM and GRU gate arithmetic of one row (`kernels/gate_rows.rs`).
//!
//! `f32x4_pmax`/`f32x4_pmin` clamp as x86's `max`/`min` do (a NaN input becomes the bound), and
//! `f32x4_nearest` rounds ties to even, as the other levels' rounding.

use std::arch::wasm32::*;

use crate::kernels::portable::{EXP_HI, EXP_LO, EXP_POLY as P, LN2_HI, LN2_LO, LOG2E};

#[inline(always)]
fn splat(v: f32) -> v128 {
    f32x4_splat(v)
}

#[inline(always)]
fn exp4(x: v128) -> v128 {
    // `pmax(a, b)` is `a < b ? b : a` and `pmin(a, b)` is `b < a ? b : a`: with `x` first, a
    // NaN `x` stays NaN (as `f32::clamp` keeps it), not EXP_LO.
    let x = f32x4_pmin(f32x4_pmax(x, splat(EXP_LO)), splat(EXP_HI));
    let n = f32x4_nearest(f32x4_mul(x, splat(LOG2E)));
    let r = f32x4_sub(x, f32x4_mul(n, splat(LN2_HI)));
    let r = f32x4_sub(r, f32x4_mul(n, splat(LN2_LO)));
    let mut p = splat(P[0]);
    for &c in &P[1..] {
        p = f32x4_add(f32x4_mul(p, r), splat(c));
    }
    let r2 = f32x4_mul(r, r);
    let y = f32x4_add(f32x4_add(f32x4_mul(p, r2), r), splat(1.0));
    // 2^n from the exponent bits (n is an integer in [-126, 127] after the clamp).
    let pow2 = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
    f32x4_mul(y, pow2)
}

#[inline(always)]
fn sigmoid4(x: v128) -> v128 {
    let one = splat(1.0);
    let e = exp4(f32x4_sub(splat(0.0), x));
    f32x4_div(one, f32x4_add(one, e))
}

#[inline(always)]
fn tanh4(x: v128) -> v128 {
    // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}), then the sign of x back.
    let one = splat(1.0);
    let e = exp4(f32x4_mul(f32x4_abs(x), splat(-2.0)));
    let t = f32x4_div(f32x4_sub(one, e), f32x4_add(one, e));
    v128_bitselect(x, t, u32x4_splat(0x8000_0000))
}

/// An element-wise kernel over a slice, 4 lanes at a time (the tail through a padded copy).
macro_rules! map4 {
    ($name:ident, $f:ident) => {
        pub fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(4);
            for ch in &mut chunks {
                // SAFETY: `ch` holds exactly 4 floats (unaligned access is allowed).
                unsafe { v128_store(ch.as_mut_ptr().cast(), $f(v128_load(ch.as_ptr().cast()))) };
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let mut buf = [0f32; 4];
                buf[..rest.len()].copy_from_slice(rest);
                // SAFETY: `buf` holds 4 floats.
                unsafe { v128_store(buf.as_mut_ptr().cast(), $f(v128_load(buf.as_ptr().cast()))) };
                let n = rest.len();
                rest.copy_from_slice(&buf[..n]);
            }
        }
    };
}
map4!(sigmoid_simd128, sigmoid4);
map4!(tanh_simd128, tanh4);

/// The lanes a gate-row load or store covers: the first `min(left, 4)`.
#[inline(always)]
fn lanes4(left: usize) -> usize {
    left.min(4)
}

/// Loads the first `m` (1 to 4) floats at `p`, the other lanes 0.
///
/// # Safety
/// `p` must point to `m` readable floats.
#[inline(always)]
unsafe fn ld4(m: usize, p: *const f32) -> v128 {
    // SAFETY: the caller's count covers readable floats only.
    unsafe {
        if m >= 4 {
            v128_load(p.cast())
        } else {
            let mut buf = [0f32; 4];
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), m);
            v128_load(buf.as_ptr().cast())
        }
    }
}

/// Stores the first `m` (1 to 4) lanes of `v` at `p`.
///
/// # Safety
/// `p` must point to `m` writable floats.
#[inline(always)]
unsafe fn st4(p: *mut f32, m: usize, v: v128) {
    // SAFETY: the caller's count covers writable floats only.
    unsafe {
        if m >= 4 {
            v128_store(p.cast(), v)
        } else {
            let mut buf = [0f32; 4];
            v128_store(buf.as_mut_ptr().cast(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, m);
        }
    }
}

gate_rows!(
    "simd128",
    lstm_simd128,
    gru_simd128,
    4,
    usize,
    lanes4,
    ld4,
    st4,
    splat,
    f32x4_add,
    f32x4_sub,
    f32x4_mul,
    sigmoid4,
    tanh4
);
