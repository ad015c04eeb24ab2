//! The x86 nonlinearities and gate rows: a vectorized `exp` (Cephes' polynomial after range
//! reduction) and the sigmoid and tanh built on it, element-wise over slices, and the fused
//! LSTM and GRU gate arithmetic of one row (`kernels/gate_rows.rs`), each for AVX-512 F and for
//! AVX2 + FMA.

use std::arch::x86_64::*;

// exp(x) = 2^n · e^r with Cephes' constants: see `kernels/portable.rs` (`exp_fused`, the
// tests' model of it).
use crate::kernels::portable::{EXP_HI, EXP_LO, EXP_POLY as P, LN2_HI, LN2_LO, LOG2E};

#[target_feature(enable = "avx512f")]
fn exp512(x: __m512) -> __m512 {
    // The clamp's constants first: `max`/`min` return their second operand when one is NaN,
    // so a NaN `x` stays NaN (as `f32::clamp` and NEON's FMAX/FMIN keep it), not EXP_LO.
    let x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), _mm512_max_ps(_mm512_set1_ps(EXP_LO), x));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
        x,
        _mm512_set1_ps(LOG2E),
    ));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    _mm512_scalef_ps(y, n)
}

#[target_feature(enable = "avx512f")]
fn sigmoid512(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_div_ps(one, _mm512_add_ps(one, e))
}

#[target_feature(enable = "avx512f")]
fn tanh512(x: __m512) -> __m512 {
    // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}), then the sign of x back.
    let sign = _mm512_set1_epi32(i32::MIN);
    let bits = _mm512_castps_si512(x);
    let ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, bits));
    let one = _mm512_set1_ps(1.0);
    let e = exp512(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0)));
    let t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(bits, sign)))
}

/// An element-wise kernel over a slice, 16 lanes at a time (the tail through a mask).
macro_rules! map512 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx512f")]
        pub fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(16);
            for ch in &mut chunks {
                // SAFETY: `ch` holds exactly 16 floats.
                unsafe { _mm512_storeu_ps(ch.as_mut_ptr(), $f(_mm512_loadu_ps(ch.as_ptr()))) };
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let mask: __mmask16 = (1u32 << rest.len()).wrapping_sub(1) as __mmask16;
                // SAFETY: the mask covers exactly the `rest.len()` < 16 floats of `rest`.
                unsafe {
                    let v = _mm512_maskz_loadu_ps(mask, rest.as_ptr());
                    _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, $f(v));
                }
            }
        }
    };
}
map512!(sigmoid_avx512, sigmoid512);
map512!(tanh_avx512, tanh512);

#[target_feature(enable = "avx2,fma")]
fn exp256(x: __m256) -> __m256 {
    // A NaN `x` stays NaN: see `exp512`.
    let x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
    let n =
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    // 2^n from the exponent bits (n is in [-126, 127] after the clamp).
    let pow2 =
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
    _mm256_mul_ps(y, pow2)
}

#[target_feature(enable = "avx2,fma")]
fn sigmoid256(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_div_ps(one, _mm256_add_ps(one, e))
}

#[target_feature(enable = "avx2,fma")]
fn tanh256(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let ax = _mm256_andnot_ps(sign, x);
    let one = _mm256_set1_ps(1.0);
    let e = exp256(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0)));
    let t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    _mm256_or_ps(t, _mm256_and_ps(x, sign))
}

/// An element-wise kernel over a slice, 8 lanes at a time (the tail through a padded copy).
macro_rules! map256 {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx2,fma")]
        pub fn $name(x: &mut [f32]) {
            let mut chunks = x.chunks_exact_mut(8);
            for ch in &mut chunks {
                // SAFETY: `ch` holds exactly 8 floats.
                unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), $f(_mm256_loadu_ps(ch.as_ptr()))) };
            }
            let rest = chunks.into_remainder();
            if !rest.is_empty() {
                let mut buf = [0f32; 8];
                buf[..rest.len()].copy_from_slice(rest);
                // SAFETY: `buf` holds 8 floats.
                unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), $f(_mm256_loadu_ps(buf.as_ptr()))) };
                let n = rest.len();
                rest.copy_from_slice(&buf[..n]);
            }
        }
    };
}
map256!(sigmoid_avx2, sigmoid256);
map256!(tanh_avx2, tanh256);

#[inline(always)]
fn mask16(left: usize) -> __mmask16 {
    if left >= 16 {
        0xFFFF
    } else {
        ((1u32 << left) - 1) as __mmask16
    }
}

/// The lanes of one 8-lane AVX2 load or store of a gate row: all of them (`full`: plain
/// `vmovups`) or the first `left` (`mask`: `vmaskmovps`, the row's last vector only). Masked
/// moves on every vector (13 loads and 6 stores per 8 LSTM units) took an extra micro-op each
/// on Intel cores, and some AMD cores run a masked store as a microcoded sequence of one
/// conditional store per lane. Plain moves for whole vectors: the Xeon's LSTM gate rows 4%
/// faster (lstm-m at `GYRE_SIMD=avx2`: 11.1–11.4 → 10.6–11.0 ms per 8 batches, timed in place),
/// the same bits.
#[derive(Clone, Copy)]
struct Lanes8 {
    full: bool,
    mask: __m256i,
}

/// [`Lanes8`] for the first `min(left, 8)` lanes.
#[target_feature(enable = "avx2,fma")]
fn mask8(left: usize) -> Lanes8 {
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    Lanes8 { full: left >= 8, mask: _mm256_cmpgt_epi32(_mm256_set1_epi32(left.min(8) as i32), idx) }
}

#[target_feature(enable = "avx512f")]
unsafe fn ld512(m: __mmask16, p: *const f32) -> __m512 {
    // SAFETY: the caller's mask covers readable lanes only.
    unsafe { _mm512_maskz_loadu_ps(m, p) }
}

#[target_feature(enable = "avx512f")]
unsafe fn st512(p: *mut f32, m: __mmask16, v: __m512) {
    // SAFETY: the caller's mask covers writable lanes only.
    unsafe { _mm512_mask_storeu_ps(p, m, v) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn ld256(m: Lanes8, p: *const f32) -> __m256 {
    // SAFETY: the caller's lanes are readable (masked-off lanes are not read).
    unsafe {
        if m.full {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, m.mask)
        }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn st256(p: *mut f32, m: Lanes8, v: __m256) {
    // SAFETY: the caller's lanes are writable (masked-off lanes are not written).
    unsafe {
        if m.full {
            _mm256_storeu_ps(p, v)
        } else {
            _mm256_maskstore_ps(p, m.mask, v)
        }
    }
}

gate_rows!(
    "avx512f",
    lstm_avx512,
    gru_avx512,
    16,
    __mmask16,
    mask16,
    ld512,
    st512,
    _mm512_set1_ps,
    _mm512_add_ps,
    _mm512_sub_ps,
    _mm512_mul_ps,
    sigmoid512,
    tanh512
);
gate_rows!(
    "avx2,fma",
    lstm_avx2,
    gru_avx2,
    8,
    Lanes8,
    mask8,
    ld256,
    st256,
    _mm256_set1_ps,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    sigmoid256,
    tanh256
);
