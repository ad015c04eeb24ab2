//! How a pass spreads over the thread pool: shards of sequences that each run the whole time
//! loop on one thread, or one step's rows split into blocks. Each row's arithmetic is the same
//! in any shard or block, so results do not depend on the number of threads.

use super::packing::{gather_state, Packing};
use crate::error::Result;
use crate::kernels::real::Real;

/// A pass of at least this many sequences per shard and multiply-adds runs its time loop in
/// shards (any size in unit tests, so that they run shards whenever a pool has threads).
pub(super) const SHARD_MIN_SEQUENCES: usize = 4;
#[cfg(not(test))]
pub(super) const SHARD_MIN_WORK: usize = 1 << 22;
#[cfg(test)]
pub(super) const SHARD_MIN_WORK: usize = 1;

/// The sequences of each shard, `bounds[j]..bounds[j + 1]`, for a pass of `work_per_row`
/// multiply-adds per packed row: one shard per pool thread when the pass is large enough, each
/// with about the same number of rows. A shard runs the whole time loop of its sequences on one
/// thread without waiting for the others (rows of different sequences never meet), instead of
/// every step being split and joined (a synchronization per step). Each row's arithmetic is
/// the same in any shard, so the result does not depend on the shards.
pub(super) fn shards(packing: &Packing, work_per_row: usize) -> Vec<usize> {
    let (batch, rows) = (packing.batch(), packing.rows());
    let threads = if crate::kernels::threads::can_split() { rayon::current_num_threads() } else { 1 };
    let parts = threads.min(batch / SHARD_MIN_SEQUENCES);
    if parts < 2 || rows * work_per_row < SHARD_MIN_WORK {
        return vec![0, batch];
    }
    let mut bounds = vec![0];
    let mut prefix = 0;
    for b in 0..batch - 1 {
        prefix += packing.length(b);
        if bounds.len() < parts && prefix * parts >= bounds.len() * rows {
            bounds.push(b + 1);
        }
    }
    bounds.push(batch);
    bounds
}

/// Shard `b0..b1`'s rows at step `t`: the first packed row and how many.
pub(super) fn shard_rows(packing: &Packing, t: usize, (b0, b1): (usize, usize)) -> (usize, usize) {
    let n = packing.rows_at(t);
    (packing.offset(t) + b0.min(n), b1.min(n) - b0.min(n))
}

/// `buf: [N, width]` cut into each shard's rows of each step: `out[shard][t]`.
pub(super) fn shard_slices<'a, F>(
    mut buf: &'a mut [F],
    width: usize,
    packing: &Packing,
    bounds: &[usize],
) -> Vec<Vec<&'a mut [F]>> {
    let shards = bounds.len() - 1;
    let mut out: Vec<Vec<&'a mut [F]>> = (0..shards).map(|_| Vec::with_capacity(packing.steps())).collect();
    for t in 0..packing.steps() {
        let n = packing.rows_at(t);
        for (j, shard) in out.iter_mut().enumerate() {
            let len = (bounds[j + 1].min(n) - bounds[j].min(n)) * width;
            let (a, rest) = std::mem::take(&mut buf).split_at_mut(len);
            shard.push(a);
            buf = rest;
        }
    }
    out
}

/// `v[read]` to read and `v[write]` to write (`read != write`).
pub(super) fn read_write<'s, T>(v: &'s mut [&mut [T]], read: usize, write: usize) -> (&'s [T], &'s mut [T]) {
    if read < write {
        let (a, b) = v.split_at_mut(write);
        (&*a[read], &mut *b[0])
    } else {
        let (a, b) = v.split_at_mut(read);
        (&*b[0], &mut *a[write])
    }
}

/// Where one step of a shard stands: the step `t`, its `rows`, the shard's previous step `prev`
/// (none at the first), and how many of the rows carry on from it (`from_prev`).
#[derive(Clone, Copy)]
pub(super) struct ShardStep {
    pub(super) prev: Option<usize>,
    pub(super) t: usize,
    pub(super) from_prev: usize,
    pub(super) rows: usize,
}

/// The state shard step `at.t` (of `at.rows` rows) starts from and its own rows to write, from
/// the shard's per-step rows `v`: step `at.prev`'s rows in place when all carry on, else the
/// `at.from_prev` that do and the initial state's rows `init` for the others, gathered into
/// `gather`.
pub(super) fn shard_state<'s, F: Real>(
    v: &'s mut [&mut [F]],
    gather: &'s mut [F],
    at: ShardStep,
    init: &[F],
    hidden: usize,
) -> (&'s [F], &'s mut [F]) {
    let ShardStep { prev, t, from_prev, rows: m } = at;
    let len = m * hidden;
    match prev {
        Some(q) if from_prev == m => {
            let (a, b) = read_write(v, q, t);
            (&a[..len], b)
        }
        _ => {
            let src: &[F] = prev.map_or(&[], |q| &v[q][..]);
            gather_state(&mut gather[..len], src, from_prev, init, hidden);
            (&gather[..len], &mut *v[t])
        }
    }
}

/// Below this many multiply-adds a step (or a projection) runs on the calling thread: waking a
/// pool thread costs about as much as a few microseconds of products. Any size splits in unit
/// tests.
#[cfg(not(test))]
pub(super) const PARALLEL_STEP_MIN_FLOPS: usize = 1 << 20;
#[cfg(test)]
pub(super) const PARALLEL_STEP_MIN_FLOPS: usize = 1;

/// Runs one step of `n` batch rows, split into blocks of rows over the rayon pool when it is
/// large enough (rows are independent; the blocks are halved recursively with `rayon::join`,
/// which allocates nothing). Each row's arithmetic is the same in any block, so the result does
/// not depend on the number of threads.
pub(super) fn in_row_blocks<S: Send>(
    step: S,
    n: usize,
    flops: usize,
    split: &(dyn Fn(S, usize) -> (S, S) + Sync),
    run: &(dyn Fn(S) -> Result<()> + Sync),
) -> Result<()> {
    if !crate::kernels::threads::can_split() || n < 8 || flops < PARALLEL_STEP_MIN_FLOPS {
        return run(step);
    }
    fn go<S: Send>(
        step: S,
        n: usize,
        parts: usize,
        split: &(dyn Fn(S, usize) -> (S, S) + Sync),
        run: &(dyn Fn(S) -> Result<()> + Sync),
    ) -> Result<()> {
        if parts <= 1 || n < 8 {
            return run(step);
        }
        let left = (n * (parts / 2)).div_ceil(parts).next_multiple_of(4).min(n);
        let (a, b) = split(step, left);
        let (ra, rb) =
            rayon::join(|| go(a, left, parts / 2, split, run), || go(b, n - left, parts - parts / 2, split, run));
        ra.and(rb)
    }
    go(step, n, rayon::current_num_threads(), split, run)
}
