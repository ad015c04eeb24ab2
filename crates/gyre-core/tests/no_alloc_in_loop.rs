//! The time loop allocates nothing: a forward and backward call make the same number of heap
//! allocations for 2 steps as for 60 (buffers are sized once per call, before the loop).
//! Sizes stay below the thread-pool thresholds, so all the work runs on the calling thread,
//! and only that thread's allocations are counted (the test harness's own are not).
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::{random_problem, CELLS};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of(cell: &str, steps: usize) -> usize {
    let p = random_problem(cell, 3, steps, 4, 5, 99);
    let (w, init, grads) = (p.weights(), p.initial(), p.output_grads());
    let before = ALLOCATIONS.with(Cell::get);
    let out = gyre_core::forward(p.kind, &w, p.x.view(), &init).expect("forward");
    let g = gyre_core::backward(p.kind, &w, p.x.view(), &init, &grads).expect("backward");
    let after = ALLOCATIONS.with(Cell::get);
    drop((out, g));
    after - before
}

#[test]
fn allocation_count_does_not_grow_with_the_number_of_steps() {
    for cell in CELLS {
        // Passes of 3 steps or more also make one transposed copy of W_hh (before the loop).
        allocations_of(cell, 3); // warm-up: lazily initialised state, if any
        let short = allocations_of(cell, 3);
        let long = allocations_of(cell, 60);
        assert_eq!(short, long, "{cell}: {short} allocations for 3 steps, {long} for 60");
    }
}
