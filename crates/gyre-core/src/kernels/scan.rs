//! Scans of flat input buffers before they reach a model: the first NaN or infinite value.

use super::threads;

/// Bits of an f32's exponent; all set means NaN or ±infinity.
const EXPONENT: u32 = 0x7f80_0000;

/// Values one scan task reads: a large input is split into blocks of at most this many values
/// (within one sequence's range), searched side by side on the pool.
const BLOCK: usize = 1 << 16;

/// Inputs shorter than this are scanned on the calling thread.
const PARALLEL_MIN: usize = 1 << 20;

/// Index of the first value of `data` that is NaN or infinite, or `None`.
///
/// `data` holds sequences of `per` values each (`[S, per]`, row-major); with `counts`, only the
/// first `counts[s]` values of sequence `s` are read (padded steps are never read by a model,
/// so they are not checked); without `counts` (or with `per == 0`), all of `data`. A bit test
/// per value that the compiler vectorizes, then a scan of the block that failed: the check of
/// an input runs at memory speed. A large input is searched on the pool; the leftmost failing
/// block gives the index, so the answer is the same on any number of threads.
pub fn first_non_finite(data: &[f32], per: usize, counts: Option<&[u32]>) -> Option<usize> {
    let bad_in =
        |block: &[f32]| block.iter().fold(0u32, |acc, &v| acc | u32::from(v.to_bits() & EXPONENT == EXPONENT)) != 0;
    let first = |start: usize, len: usize| -> Option<usize> {
        let slice = data.get(start..(start + len).min(data.len()))?;
        let mut at = start;
        for block in slice.chunks(4096) {
            if bad_in(block) {
                return block.iter().position(|v| !v.is_finite()).map(|i| at + i);
            }
            at += block.len();
        }
        None
    };
    let ranges: Vec<(usize, usize)> = match (counts, per) {
        (Some(c), p) if p > 0 => c.iter().enumerate().map(|(s, &n)| (s * p, (n as usize).min(p))).collect(),
        _ => vec![(0, data.len())],
    };
    let blocks: Vec<(usize, usize)> =
        ranges.iter().flat_map(|&(s, n)| (0..n).step_by(BLOCK).map(move |o| (s + o, (n - o).min(BLOCK)))).collect();
    let search = || {
        use rayon::prelude::*;
        blocks.par_iter().find_map_first(|&(s, n)| first(s, n))
    };
    let serial = || blocks.iter().find_map(|&(s, n)| first(s, n));
    // In the WebAssembly build the pool's search failed on large inputs (rayon found a job
    // without its result and aborted: the first lstm-m batch of 128 sequences, reproduced on 1
    // thread, not on the functional API's products), so there it reads serially: a few
    // milliseconds for megabytes.
    if data.len() < PARALLEL_MIN || cfg!(target_family = "wasm") {
        serial()
    } else {
        threads::install(search).unwrap_or_else(|_| serial())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_finite_value_reading_only_counted_steps() {
        assert_eq!(first_non_finite(&[1.0, 2.0, 3.0], 3, None), None);
        assert_eq!(first_non_finite(&[1.0, f32::NAN, f32::INFINITY], 3, None), Some(1));
        assert_eq!(first_non_finite(&[1.0, 2.0, f32::NEG_INFINITY], 0, None), Some(2));
        // Two sequences of 3 values; the padding after each count is not read.
        let data = [1.0, f32::NAN, f32::NAN, 2.0, 3.0, f32::INFINITY];
        assert_eq!(first_non_finite(&data, 3, Some(&[1, 2])), None);
        assert_eq!(first_non_finite(&data, 3, Some(&[1, 3])), Some(5));
        assert_eq!(first_non_finite(&data, 3, Some(&[2, 3])), Some(1));
        // Counts beyond the sequence length read only the sequence.
        assert_eq!(first_non_finite(&data, 3, Some(&[1, 9])), Some(5));
    }

    #[test]
    fn a_large_input_gives_the_leftmost_index_from_the_pool() {
        let mut data = vec![0.5f32; 3 * BLOCK * 8];
        assert!(data.len() >= PARALLEL_MIN);
        data[2 * BLOCK + 17] = f32::NAN;
        data[5 * BLOCK] = f32::INFINITY;
        assert_eq!(first_non_finite(&data, 0, None), Some(2 * BLOCK + 17));
        assert_eq!(first_non_finite(&data, BLOCK, Some(&[10, 10, 10, 10, 10, BLOCK as u32])), Some(5 * BLOCK));
    }
}
