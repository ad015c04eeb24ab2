//! The thread pool every native call runs in. Its size is set by [`set_num_threads`], or
//! by the `GYRE_NUM_THREADS` environment variable read when the pool is first used; the
//! default is the number of logical CPUs. Results do not depend on it (see `kernels::linalg`).

use crate::error::{CoreError, Result};
use std::sync::{Arc, Mutex};

static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);

fn build(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gyre-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| CoreError::invalid("threads", "a thread pool the system can start", e.to_string()))
}

fn default_threads() -> Result<usize> {
    match std::env::var("GYRE_NUM_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(CoreError::invalid("GYRE_NUM_THREADS", "a positive integer", format!("{v:?}"))),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

fn pool() -> Result<Arc<rayon::ThreadPool>> {
    let mut guard = POOL.lock().map_err(|_| CoreError::invalid("thread pool", "usable", "poisoned"))?;
    if let Some(p) = guard.as_ref() {
        return Ok(p.clone());
    }
    let p = build(default_threads()?)?;
    *guard = Some(p.clone());
    Ok(p)
}

/// WebAssembly without threads (the browser build for pages that are not cross-origin
/// isolated): no pool; every call runs on the calling thread.
const THREADLESS: bool = cfg!(all(target_family = "wasm", not(gyre_wasm_threads)));

/// Sets the number of threads of later calls (calls already running keep theirs).
pub fn set_num_threads(threads: usize) -> Result<()> {
    crate::kernels::tensor::positive("threads", threads)?;
    if THREADLESS {
        return match threads {
            1 => Ok(()),
            _ => Err(CoreError::invalid("threads", "1 (this WebAssembly build has no threads)", threads)),
        };
    }
    let p = build(threads)?;
    let mut guard = POOL.lock().map_err(|_| CoreError::invalid("thread pool", "usable", "poisoned"))?;
    *guard = Some(p);
    Ok(())
}

/// The number of threads calls run on.
pub fn num_threads() -> Result<usize> {
    if THREADLESS {
        return Ok(1);
    }
    Ok(pool()?.current_num_threads())
}

/// Runs `f` on the pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    if THREADLESS {
        return Ok(f());
    }
    let pool = pool()?;
    #[cfg(gyre_wasm_threads)]
    {
        // Every pool thread, then the caller, sees the memory as large as it now is (below).
        pool.broadcast(|_| refresh_memory_size());
        let r = pool.install(f);
        refresh_memory_size();
        Ok(r)
    }
    #[cfg(not(gyre_wasm_threads))]
    Ok(pool.install(f))
}

/// WebAssembly with threads: makes this thread see the shared memory's current size. V8
/// updates a memory's size only on the thread that grew it; another thread bounds-checks its
/// atomics, `memory.fill` and `memory.copy` against its old size (and traps on pages grown
/// since) until it runs `memory.grow(0)`, which reloads the size (the V8 bug napi-rs works
/// around in its allocator and scheduler, fixed in later V8: v8/v8@34241014). gyre runs it on
/// every pool thread before a call's work and on the caller after it.
#[cfg(gyre_wasm_threads)]
pub fn refresh_memory_size() {
    core::arch::wasm32::memory_grow::<0>(0);
}

/// Runs `f` on the pool, or right here when `work` (multiply-adds, roughly) is too small to
/// repay handing it to another thread: waking a pool thread and waiting for it costs tens of
/// microseconds, more than a small stream step. Work that small never splits over threads.
pub fn install_sized<R: Send>(work: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    if work < INLINE_MAX_WORK {
        return Ok(f());
    }
    install(f)
}

/// Largest work [`install_sized`] runs on the calling thread.
pub const INLINE_MAX_WORK: usize = 1 << 20;

/// Whether work can be split here: on a pool thread (small calls run on the caller's thread
/// never spill onto rayon's global pool) of a pool with more than one thread.
pub(crate) fn can_split() -> bool {
    rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1 && !kept_whole()
}

thread_local! {
    /// Set while this thread runs one of the units of work [`side_by_side`] keeps whole.
    static WHOLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside a unit of work [`side_by_side`] keeps whole, which does not split.
pub(crate) fn kept_whole() -> bool {
    WHOLE.with(std::cell::Cell::get)
}

/// Whether `units` independent units of work of about the same size (the batches of one
/// `predict` or `evaluate` call) fill the pool's threads evenly, a multiple of their number:
/// then [`side_by_side`] runs each whole on one thread rather than splitting its steps' rows
/// over the pool as well. Otherwise the threads left without a unit at the end help the others
/// through those splits.
pub(crate) fn fills_pool(units: usize) -> bool {
    let threads = rayon::current_num_threads();
    threads > 1 && units >= threads && units.is_multiple_of(threads)
}

/// `f(item)` for each item, the items side by side on the pool, results in order. When they
/// fill the pool evenly ([`fills_pool`]) each call runs whole on one thread, splitting nothing
/// further ([`can_split`] is false inside it), so that nothing in it waits on another thread's
/// share of a step. Measured with another process on one of two cores (`predict` at AVX2, two
/// threads): lstm-m 28–33% and lstm-l 1–11% faster than with each step's rows split again; the
/// same within noise on an idle machine (`benchmark/gemm.md`).
pub(crate) fn side_by_side<T: Send, R: Send>(
    items: impl rayon::iter::IndexedParallelIterator<Item = T>,
    f: impl Fn(T) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::iter::ParallelIterator;
    if !fills_pool(items.len()) {
        return items.map(f).collect();
    }
    items
        .map(|item| {
            struct Restore(bool);
            impl Drop for Restore {
                fn drop(&mut self) {
                    WHOLE.with(|w| w.set(self.0));
                }
            }
            let _restore = Restore(WHOLE.with(|w| w.replace(true)));
            f(item)
        })
        .collect()
}

/// Buffers of at least this many values are filled or copied by every thread of the pool.
const PARALLEL_FILL_MIN: usize = 1 << 20;

/// `len` zeros; a large buffer is zeroed (and its pages first touched) by every thread of the
/// pool when called inside it, not only by the calling thread.
pub(crate) fn zeroed<F: Copy + Default + Send + Sync>(len: usize) -> Vec<F> {
    if len >= PARALLEL_FILL_MIN && can_split() {
        use rayon::iter::IndexedParallelIterator;
        let mut v = Vec::new();
        rayon::iter::repeat_n(F::default(), len).collect_into_vec(&mut v);
        return v;
    }
    vec![F::default(); len]
}

/// A copy of `src`; a large one is copied by every thread of the configured pool.
pub fn copied<T: Copy + Send + Sync>(src: &[T]) -> Result<Vec<T>> {
    // In the WebAssembly build a pool copy of a caller's (JavaScript's) input came back the
    // wrong length; there it copies on the calling thread (as the input scan does: scan.rs).
    if src.len() < PARALLEL_FILL_MIN || cfg!(target_family = "wasm") {
        return Ok(src.to_vec());
    }
    install(|| {
        use rayon::prelude::*;
        let mut v = Vec::new();
        src.par_iter().copied().collect_into_vec(&mut v);
        v
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn batches_run_whole_only_when_they_fill_the_pool_evenly() {
        let on = |threads: usize, units: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool").install(|| fills_pool(units))
        };
        assert!(on(2, 2) && on(2, 4) && on(2, 8) && on(3, 6));
        assert!(!on(2, 1) && !on(2, 3) && !on(2, 9) && !on(3, 4) && !on(1, 4));
    }

    #[test]
    fn a_whole_unit_does_not_split_and_the_pool_splits_again_after_it() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
        pool.install(|| {
            use rayon::prelude::*;
            assert!(can_split() && !kept_whole());
            let inside = side_by_side((0..4usize).into_par_iter(), |i| (i, can_split(), kept_whole()));
            assert_eq!(inside, (0..4).map(|i| (i, false, true)).collect::<Vec<_>>(), "in order, none splitting");
            assert!(can_split() && !kept_whole());
            // Three units do not fill two threads evenly: each may split.
            let uneven = side_by_side((0..3usize).into_par_iter(), |i| (i, can_split(), kept_whole()));
            assert_eq!(uneven, (0..3).map(|i| (i, true, false)).collect::<Vec<_>>(), "in order, splitting");
            // Also after a unit that panicked: the flag is restored as its stack unwinds.
            let caught = std::panic::catch_unwind(|| side_by_side((0..2usize).into_par_iter(), |_| panic!("unit")));
            assert!(caught.is_err());
            assert!((0..2usize).into_par_iter().map(|_| kept_whole()).collect::<Vec<_>>().iter().all(|&k| !k));
        });
    }
}
