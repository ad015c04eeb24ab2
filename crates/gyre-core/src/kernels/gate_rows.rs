//! The fused LSTM and GRU gate rows, written once over a vector type and instantiated by each
//! SIMD module (`x86` for AVX-512 F and AVX2 + FMA, `aarch64` for NEON, `wasm32` for `simd128`): the gates of a row
//! first, block by block, then the state update from the stored gates. Only plain IEEE
//! additions, subtractions and multiplications beside the level's sigmoid and tanh, so each
//! level gives the bits of its own `sigmoid_inplace`/`tanh_inplace` plus the portable state
//! arithmetic (tested in `kernels/tests.rs`).

/// The fused gate arithmetic of one row, written once over a vector type of `$lanes` lanes:
/// `$mk(left)` the mask of the first `min(left, $lanes)` lanes (of type `$mask`),
/// `$ld(mask, ptr)` / `$st(ptr, mask, v)` loads and stores of those lanes only, `$set1` a
/// broadcast, `$sig`/`$tanh` the nonlinearities and `$add`/`$sub`/`$mul` plain IEEE arithmetic;
/// `$feat` the target features the functions are compiled with.
macro_rules! gate_rows {
    ($feat:literal, $lstm:ident, $gru:ident, $lanes:literal, $mask:ty, $mk:ident, $ld:ident, $st:ident,
     $set1:ident, $add:ident, $sub:ident, $mul:ident, $sig:ident, $tanh:ident) => {
        /// # Safety
        /// `g`, `b`: `4·H` floats, `c_prev`, `c`: `H` (checked by the caller).
        #[target_feature(enable = $feat)]
        pub unsafe fn $lstm(g: &mut [f32], b: &[f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32]) {
            let hd = h.len();
            let (gp, bp) = (g.as_mut_ptr(), b.as_ptr());
            // The gates first, one block at a time (every vector independent of the
            // others, so the core overlaps their long chains), then the states from the
            // stored gates: 1.85 → 1.55 ns per unit on H = 256 against one pass doing both
            // (whose every vector waited on its gates before its tanh(c)). The same
            // operations on each value either way.
            for (q, tanh) in [(0, false), (1, false), (2, true), (3, false)] {
                let mut j = 0;
                while j < hd {
                    let m = $mk(hd - j);
                    // SAFETY: `m` covers only lanes below `hd - j`; every block is `hd` long.
                    unsafe {
                        let at = gp.add(q * hd + j);
                        let x = $add($ld(m, at), $ld(m, bp.add(q * hd + j)));
                        $st(at, m, if tanh { $tanh(x) } else { $sig(x) });
                    }
                    j += $lanes;
                }
            }
            let mut j = 0;
            while j < hd {
                let m = $mk(hd - j);
                // SAFETY: as above.
                unsafe {
                    let gate = |q: usize| $ld(m, gp.add(q * hd + j));
                    let ct = $add($mul(gate(1), $ld(m, c_prev.as_ptr().add(j))), $mul(gate(0), gate(2)));
                    $st(c.as_mut_ptr().add(j), m, ct);
                    $st(h.as_mut_ptr().add(j), m, $mul(gate(3), $tanh(ct)));
                }
                j += $lanes;
            }
        }

        /// # Safety
        /// `g`, `b`: `3·H` floats, `rec`, `h_prev`, `extra`: `H` (checked by the caller).
        #[target_feature(enable = $feat)]
        pub unsafe fn $gru(g: &mut [f32], b: &[f32], rec: &[f32], h_prev: &[f32], extra: &mut [f32], h: &mut [f32]) {
            let hd = h.len();
            let (gp, bp) = (g.as_mut_ptr(), b.as_ptr());
            let one = $set1(1.0);
            // r and z first (independent vectors, as in the LSTM row), then n and h.
            let mut j = 0;
            while j < 2 * hd {
                let m = $mk(2 * hd - j);
                // SAFETY: `m` covers only lanes below `2·hd - j`; `g` and `b` are `3·hd` long.
                unsafe {
                    let at = gp.add(j);
                    $st(at, m, $sig($add($ld(m, at), $ld(m, bp.add(j)))));
                }
                j += $lanes;
            }
            let mut j = 0;
            while j < hd {
                let m = $mk(hd - j);
                // SAFETY: `m` covers only lanes below `hd - j`; every block is `hd` long.
                unsafe {
                    let (r, z) = ($ld(m, gp.add(j)), $ld(m, gp.add(hd + j)));
                    let e = $ld(m, rec.as_ptr().add(j));
                    let n = $tanh($add($ld(m, gp.add(2 * hd + j)), $mul(r, e)));
                    $st(gp.add(2 * hd + j), m, n);
                    $st(extra.as_mut_ptr().add(j), m, e);
                    let hv = $add($mul($sub(one, z), n), $mul(z, $ld(m, h_prev.as_ptr().add(j))));
                    $st(h.as_mut_ptr().add(j), m, hv);
                }
                j += $lanes;
            }
        }
    };
}
