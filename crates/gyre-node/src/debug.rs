//! Hooks that inject panics, compiled into debug builds only (`cfg(debug_assertions)`), so a
//! test can prove that a panic on any path — a synchronous call, an asynchronous task, a call
//! that runs a JavaScript callback, a training progress event — reaches JavaScript as an error
//! and never takes the process down. Release builds (what ships) have none of this.
#![allow(clippy::panic)] // injecting panics is the point

use crate::error::{contain, Failure, Result};
use napi::bindgen_prelude::{AsyncTask, Function};
use napi::{Env, Task};
use napi_derive::napi;

/// Panics on the calling thread, inside the guard every export's body runs in.
#[napi(catch_unwind)]
pub fn debug_panic_sync() -> Result<()> {
    contain(|| panic!("injected panic (sync)"))
}

/// Background task whose computation panics.
#[derive(Default)]
pub struct PanicTask {
    failure: Failure,
}

impl Task for PanicTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        let r = contain(|| panic!("injected panic (async)"));
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<()> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, _: ()) -> napi::Result<()> {
        Ok(())
    }
}

/// A Promise whose native computation panics.
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn debug_panic_async() -> AsyncTask<PanicTask> {
    AsyncTask::new(PanicTask::default())
}

/// Calls `callback`, then panics, inside the guard every export's body runs in.
#[napi(catch_unwind)]
pub fn debug_panic_after_callback(callback: Function<(), ()>) -> Result<()> {
    contain(|| {
        callback.call(())?;
        panic!("injected panic (callback)")
    })
}

/// Whether the hook for training progress events is armed (`GYRE_DEBUG_PANIC=progress`).
pub(crate) fn panic_in_progress() {
    if std::env::var("GYRE_DEBUG_PANIC").as_deref() == Ok("progress") {
        panic!("injected panic (training progress callback)")
    }
}
