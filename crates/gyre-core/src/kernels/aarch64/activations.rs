//! The NEON nonlinearities and gate rows: a vectorized `exp` (Cephes' polynomial after range
//! reduction, the operations of the AVX2 `exp` one for one: the same fused multiply-adds,
//! rounding and exponent arithmetic) and the sigmoid and tanh built on it, element-wise over
//! slices, and the fused LSTM and GRU gate arithmetic of one row (`kernels/gate_rows.rs`).
//!
//! One difference from x86: NEON's `fmax`/`fmin` return NaN for a NaN input where x86's
//! `max`/`min` return the bound, so a NaN stays NaN through these functions, as through the
//! portable ones.

use std::arch::aarch64::*;

// exp(x) = 2^n · e^r with Cephes' constants: see `kernels/portable.rs` (`exp_fused`, the
// tests' model of it).
use crate::kernels::portable::{EXP_HI, EXP_LO, EXP_POLY as P, LN2_HI, LN2_LO, LOG2E};

#[target_feature(enable = "neon")]
fn exp4(x: float32x4_t) -> float32x4_t {
    let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(EXP_LO)), vdupq_n_f32(EXP_HI));
    // Round to nearest, ties to even (FRINTN), as x86's `_MM_FROUND_TO_NEAREST_INT`.
    let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    // vfmsq_f32(a, b, c) = a − b·c, rounded once.
    let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
    let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    let mut p = vdupq_n_f32(P[0]);
    for &c in &P[1..] {
        p = vfmaq_f32(vdupq_n_f32(c), p, r);
    }
    let r2 = vmulq_f32(r, r);
    let y = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
    // 2^n from the exponent bits (n is an integer in [-126, 127] after the clamp).
    let pow2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127))));
    vmulq_f32(y, pow2)
}

#[target_feature(enable = "neon")]
fn sigmoid4(x: float32x4_t) -> float32x4_t {
    let one = vdupq_n_f32(1.0);
    let e = exp4(vsubq_f32(vdupq_n_f32(0.0), x));
    vdivq_f32(one, vaddq_f32(one, e))
}

#[target_feature(enable = "neon")]
fn tanh4(x: float32x4_t) -> float32x4_t {
    // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}), then the sign of x back.
    let one = vdupq_n_f32(1.0);
    let e = exp4(vmulq_f32(vabsq_f32(x), vdupq_n_f32(-2.0)));
    let t = vdivq_f32(vsubq_f32(one, e), vaddq_f32(one, e));
    vbslq_f32(vdupq_n_u32(0x8000_0000), x, t)
}

/// An element-wise kernel over a slice, 4 lanes at a time (the tail through a padded copy).
macro_rules! map4 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "neon")]
        pub fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(4);
            for ch in &mut chunks {
                // SAFETY: `ch` holds exactly 4 floats.
                unsafe { vst1q_f32(ch.as_mut_ptr(), $f(vld1q_f32(ch.as_ptr()))) };
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let mut buf = [0f32; 4];
                buf[..rest.len()].copy_from_slice(rest);
                // SAFETY: `buf` holds 4 floats.
                unsafe { vst1q_f32(buf.as_mut_ptr(), $f(vld1q_f32(buf.as_ptr()))) };
                let n = rest.len();
                rest.copy_from_slice(&buf[..n]);
            }
        }
    };
}
map4!(sigmoid_neon, sigmoid4);
map4!(tanh_neon, tanh4);

/// The lanes a gate-row load or store covers: the first `min(left, 4)`.
#[inline(always)]
fn lanes4(left: usize) -> usize {
    left.min(4)
}

/// Loads the first `m` (1 to 4) floats at `p`, the other lanes 0.
///
/// # Safety
/// `p` must point to `m` readable floats.
#[target_feature(enable = "neon")]
unsafe fn ld4(m: usize, p: *const f32) -> float32x4_t {
    // SAFETY: the caller's count covers readable floats only.
    unsafe {
        if m >= 4 {
            vld1q_f32(p)
        } else {
            let mut buf = [0f32; 4];
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), m);
            vld1q_f32(buf.as_ptr())
        }
    }
}

/// Stores the first `m` (1 to 4) lanes of `v` at `p`.
///
/// # Safety
/// `p` must point to `m` writable floats.
#[target_feature(enable = "neon")]
unsafe fn st4(p: *mut f32, m: usize, v: float32x4_t) {
    // SAFETY: the caller's count covers writable floats only.
    unsafe {
        if m >= 4 {
            vst1q_f32(p, v)
        } else {
            let mut buf = [0f32; 4];
            vst1q_f32(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, m);
        }
    }
}

gate_rows!(
    "neon",
    lstm_neon,
    gru_neon,
    4,
    usize,
    lanes4,
    ld4,
    st4,
    vdupq_n_f32,
    vaddq_f32,
    vsubq_f32,
    vmulq_f32,
    sigmoid4,
    tanh4
);
