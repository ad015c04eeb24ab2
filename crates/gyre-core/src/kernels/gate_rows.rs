//! The fused LSTM and GRU gate rows, written once over a vector type and instantiated by each
//! SIMD module (`x86` for AVX-512 F and AVX2 + FMA, `aarch64` for NEON, `wasm32` for `simd128`): the gates of a row
//! first, block by block, then the state update from the stored gates. Only plain IEEE
//! additions, subtractions and multiplications beside the level's sigmoid and tanh, so each
//! level gives the bits of its own `sigmoid_inplace`/`tanh_inplace` plus the portable state
//! arithmetic (tested in `kernels/tests.rs`).

/// `$f` (a level's sigmoid or tanh) of `g + b` into `g`, over the `n` floats at `g` and `b`
/// (raw pointers; the caller's `unsafe` guarantees they hold `n` floats each): four whole
/// vectors at a time, then one vector at a time with the mask of the last one. Four
/// independent chains side by side in program order let the core overlap their long
/// latencies within its scheduler's window: on the AMD EPYC (Zen 5), the LSTM row of H = 256
/// took 2.11 → 1.87 ns per unit at AVX2 and 1.19 → 0.94 at AVX-512 (this and the states' loop
/// four wide; `cargo run --release -p gyre-core --example gate_rows`). The same operations on
/// each value either way.
macro_rules! activate_span {
    ($lanes:literal, $mk:ident, $ld:ident, $st:ident, $add:ident, $f:ident, $g:expr, $b:expr, $n:expr) => {{
        let (g, b, n): (*mut f32, *const f32, usize) = ($g, $b, $n);
        let full = $mk($lanes);
        let mut j = 0;
        while j + 4 * $lanes <= n {
            // SAFETY: the four vectors end at or before `n`; `g` and `b` hold `n` floats.
            unsafe {
                let (g, b) = (g.add(j), b.add(j));
                let x0 = $add($ld(full, g), $ld(full, b));
                let x1 = $add($ld(full, g.add($lanes)), $ld(full, b.add($lanes)));
                let x2 = $add($ld(full, g.add(2 * $lanes)), $ld(full, b.add(2 * $lanes)));
                let x3 = $add($ld(full, g.add(3 * $lanes)), $ld(full, b.add(3 * $lanes)));
                let (y0, y1, y2, y3) = ($f(x0), $f(x1), $f(x2), $f(x3));
                $st(g, full, y0);
                $st(g.add($lanes), full, y1);
                $st(g.add(2 * $lanes), full, y2);
                $st(g.add(3 * $lanes), full, y3);
            }
            j += 4 * $lanes;
        }
        while j < n {
            let m = $mk(n - j);
            // SAFETY: `m` covers only lanes below `n - j`.
            unsafe { $st(g.add(j), m, $f($add($ld(m, g.add(j)), $ld(m, b.add(j))))) };
            j += $lanes;
        }
    }};
}

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
            // The gates first (i and f, g, o: every vector independent of the others, so the
            // core overlaps their long chains), then the states from the stored gates: 1.85 →
            // 1.55 ns per unit on H = 256 (the Xeon, AVX-512) against one pass doing both (whose
            // every vector waited on its gates before its tanh(c)). The same operations on each
            // value either way.
            activate_span!($lanes, $mk, $ld, $st, $add, $sig, gp, bp, 2 * hd);
            // SAFETY (both): `g` and `b` are `4·hd` long.
            let (g2, b2) = unsafe { (gp.add(2 * hd), bp.add(2 * hd)) };
            activate_span!($lanes, $mk, $ld, $st, $add, $tanh, g2, b2, hd);
            let (g3, b3) = unsafe { (gp.add(3 * hd), bp.add(3 * hd)) };
            activate_span!($lanes, $mk, $ld, $st, $add, $sig, g3, b3, hd);
            let full = $mk($lanes);
            let mut j = 0;
            // Four whole vectors at a time, as in `activate_span`, then the rest one by one.
            while j + 4 * $lanes <= hd {
                // SAFETY: the four vectors end at or before `hd`; every block is `hd` long.
                unsafe {
                    let mut ct = [$set1(0.0); 4];
                    for (u, v) in ct.iter_mut().enumerate() {
                        let at = j + u * $lanes;
                        let gate = |q: usize| $ld(full, gp.add(q * hd + at));
                        *v = $add($mul(gate(1), $ld(full, c_prev.as_ptr().add(at))), $mul(gate(0), gate(2)));
                        $st(c.as_mut_ptr().add(at), full, *v);
                    }
                    let th = [$tanh(ct[0]), $tanh(ct[1]), $tanh(ct[2]), $tanh(ct[3])];
                    for (u, t) in th.into_iter().enumerate() {
                        let at = j + u * $lanes;
                        $st(h.as_mut_ptr().add(at), full, $mul($ld(full, gp.add(3 * hd + at)), t));
                    }
                }
                j += 4 * $lanes;
            }
            while j < hd {
                let m = $mk(hd - j);
                // SAFETY: `m` covers only lanes below `hd - j`; every block is `hd` long.
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
            activate_span!($lanes, $mk, $ld, $st, $add, $sig, gp, bp, 2 * hd);
            let full = $mk($lanes);
            let mut j = 0;
            while j + 4 * $lanes <= hd {
                // SAFETY: the four vectors end at or before `hd`; every block is `hd` long.
                unsafe {
                    let mut pre = [$set1(0.0); 4];
                    for (u, v) in pre.iter_mut().enumerate() {
                        let at = j + u * $lanes;
                        let e = $ld(full, rec.as_ptr().add(at));
                        $st(extra.as_mut_ptr().add(at), full, e);
                        *v = $add($ld(full, gp.add(2 * hd + at)), $mul($ld(full, gp.add(at)), e));
                    }
                    let n = [$tanh(pre[0]), $tanh(pre[1]), $tanh(pre[2]), $tanh(pre[3])];
                    for (u, n) in n.into_iter().enumerate() {
                        let at = j + u * $lanes;
                        $st(gp.add(2 * hd + at), full, n);
                        let z = $ld(full, gp.add(hd + at));
                        let hv = $add($mul($sub(one, z), n), $mul(z, $ld(full, h_prev.as_ptr().add(at))));
                        $st(h.as_mut_ptr().add(at), full, hv);
                    }
                }
                j += 4 * $lanes;
            }
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
