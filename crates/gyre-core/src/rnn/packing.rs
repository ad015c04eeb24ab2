//! The row layout of a batch of sequences packed time-major ([`Packing`]), and the state each
//! step starts from: the previous step's rows, or the initial state's for sequences that start.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;

/// Layout of a batch of sequences sorted by decreasing length, packed time-major: step `t`
/// holds rows `offset(t) .. offset(t) + rows_at(t)`, the first `rows_at(t)` sequences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Packing {
    batch_sizes: Vec<usize>,
    offsets: Vec<usize>,
}

impl Packing {
    /// Every one of `batch` sequences has `steps` steps (plain time-major layout).
    pub(crate) fn uniform(batch: usize, steps: usize) -> Result<Self> {
        crate::kernels::tensor::positive("batch", batch)?;
        crate::kernels::tensor::positive("steps", steps)?;
        Self::from_batch_sizes(vec![batch; steps])
    }

    /// Sequences of the given lengths, which must be positive and non-increasing (sort the
    /// batch by decreasing length first).
    pub(crate) fn from_sorted_lengths(lengths: &[usize]) -> Result<Self> {
        let Some(&steps) = lengths.first() else {
            return Err(CoreError::invalid("lengths", "a non-empty list", "[]"));
        };
        for (i, w) in lengths.windows(2).enumerate() {
            if w[1] > w[0] {
                return Err(CoreError::invalid(
                    "lengths",
                    "sorted in decreasing order",
                    format!("{} after {} at index {}", w[1], w[0], i + 1),
                ));
            }
        }
        if let Some(i) = lengths.iter().position(|&l| l == 0) {
            return Err(CoreError::invalid(format!("lengths[{i}]"), "a positive integer", 0));
        }
        let batch_sizes = (0..steps).map(|t| lengths.iter().take_while(|&&l| l > t).count()).collect();
        Self::from_batch_sizes(batch_sizes)
    }

    fn from_batch_sizes(batch_sizes: Vec<usize>) -> Result<Self> {
        let mut offsets = Vec::with_capacity(batch_sizes.len() + 1);
        let mut total = 0usize;
        for &b in &batch_sizes {
            offsets.push(total);
            total =
                total.checked_add(b).ok_or_else(|| CoreError::invalid("batch × steps", "representable", "overflow"))?;
        }
        offsets.push(total);
        Ok(Packing { batch_sizes, offsets })
    }

    /// Number of sequences `B`.
    pub(crate) fn batch(&self) -> usize {
        self.batch_sizes.first().copied().unwrap_or(0)
    }

    /// Number of steps `T` of the longest sequence.
    pub(crate) fn steps(&self) -> usize {
        self.batch_sizes.len()
    }

    /// Total packed rows `N` (the sum of the lengths).
    pub(crate) fn rows(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Sequences still running at step `t`.
    pub(crate) fn rows_at(&self, t: usize) -> usize {
        self.batch_sizes[t]
    }

    /// First packed row of step `t`.
    pub(crate) fn offset(&self, t: usize) -> usize {
        self.offsets[t]
    }

    /// Length of sequence `b`.
    pub(crate) fn length(&self, b: usize) -> usize {
        self.batch_sizes.iter().take_while(|&&n| n > b).count()
    }

    /// The step processed `p`-th: `p` forwards, `T − 1 − p` in reverse.
    pub(crate) fn step(&self, p: usize, reverse: bool) -> usize {
        if reverse {
            self.steps() - 1 - p
        } else {
            p
        }
    }
}

/// Copies the `[rows, H]` state a step starts from into `dst`: the first `from_prev` rows from
/// the previous step's `src` rows, the rest from the initial state `init`.
pub(super) fn gather_state<F: Real>(dst: &mut [F], src: &[F], from_prev: usize, init: &[F], hidden: usize) {
    let (split, end) = (from_prev * hidden, dst.len());
    dst[..split].copy_from_slice(&src[..split]);
    dst[split..].copy_from_slice(&init[split..end]);
}

/// Where one step of `n` rows stands among the packed rows: its own rows start at row `s`; the
/// previous step's at row `prev_off`, of which the first `from_prev` carry on (the others
/// start from the initial state).
#[derive(Clone, Copy)]
pub(super) struct StepRows {
    pub(super) s: usize,
    pub(super) n: usize,
    pub(super) prev_off: usize,
    pub(super) from_prev: usize,
}

impl StepRows {
    /// Step `p` in processing order (`reverse` or not) of the whole batch: its time index and
    /// rows.
    pub(super) fn of(packing: &Packing, p: usize, reverse: bool) -> (usize, StepRows) {
        let t = packing.step(p, reverse);
        let (n, s) = (packing.rows_at(t), packing.offset(t));
        let prev = (p > 0).then(|| packing.step(p - 1, reverse));
        let from_prev = prev.map_or(0, |q| packing.rows_at(q).min(n));
        (t, StepRows { s, n, prev_off: prev.map_or(0, |q| packing.offset(q)), from_prev })
    }

    /// Whether every row carries on from the previous step (its rows can be read in place).
    pub(super) fn carried(&self) -> bool {
        self.from_prev == self.n
    }
}

/// The `[n, H]` state a step starts from, read from the packed states `buf`: the previous
/// step's rows in place when every row carries on, else gathered with the initial state's
/// rows `init` into `gather`.
pub(super) fn prev_state<'a, F: Real>(
    buf: &'a [F],
    gather: &'a mut [F],
    at: StepRows,
    init: &[F],
    hidden: usize,
) -> &'a [F] {
    let (prev, len) = (at.prev_off * hidden, at.n * hidden);
    if at.carried() {
        return &buf[prev..prev + len];
    }
    gather_state(&mut gather[..len], &buf[prev..], at.from_prev, init, hidden);
    &gather[..len]
}

/// As [`prev_state`], and the step's own rows of `buf` to write.
pub(super) fn step_state<'a, F: Real>(
    buf: &'a mut [F],
    gather: &'a mut [F],
    at: StepRows,
    init: &[F],
    hidden: usize,
) -> (&'a [F], &'a mut [F]) {
    let (s, prev, len) = (at.s * hidden, at.prev_off * hidden, at.n * hidden);
    if at.carried() {
        if prev < s {
            let (a, b) = buf.split_at_mut(s);
            return (&a[prev..prev + len], &mut b[..len]);
        }
        let (a, b) = buf.split_at_mut(prev);
        return (&b[..len], &mut a[s..s + len]);
    }
    gather_state(&mut gather[..len], &buf[prev..], at.from_prev, init, hidden);
    (&gather[..len], &mut buf[s..s + len])
}
