//! The binding's one error type, [`BindingError`]: a code of gyre's one table of codes
//! ([`ErrorCode`], in gyre-core) and a message. Exports return [`Result`], so `?` converts a
//! [`CoreError`] on the way; the JavaScript error napi-rs throws carries the code as its `code`
//! property (`napi_create_error` sets it), never inside the message.
//!
//! An asynchronous task's `compute` must return napi's own error, which has no room for the
//! code: [`Failure`] keeps the task's error until `reject`, on the JavaScript thread, rejects
//! the Promise with a JavaScript error built with its `code`.

use gyre_core::{CoreError, ErrorCode};
use napi::bindgen_prelude::JsError;
use napi::{Env, Status};

/// An error of the binding, as JavaScript receives it: `code` becomes the error's `code`
/// property, `message` its message.
#[derive(Debug)]
pub struct BindingError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the argument and the value.
    pub message: String,
}

/// The result of every fallible export and helper of the binding.
pub type Result<T> = std::result::Result<T, BindingError>;

impl BindingError {
    /// The model is training (or a training call is pending) and cannot serve the call.
    pub fn busy() -> Self {
        BindingError {
            code: ErrorCode::Busy,
            message: "the model is training; wait for fit() to settle (or abort it) before this call".into(),
        }
    }

    /// The object is running another call and cannot serve this one (`what` says which).
    pub fn busy_with(what: &str) -> Self {
        BindingError { code: ErrorCode::Busy, message: format!("{what}; await it before this call") }
    }

    /// The model was disposed.
    pub fn disposed() -> Self {
        BindingError { code: ErrorCode::Disposed, message: "the model was disposed; its weights are gone".into() }
    }

    /// A failure that is not the caller's input.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        BindingError { code: ErrorCode::Internal, message: message.to_string() }
    }
}

impl From<CoreError> for BindingError {
    fn from(e: CoreError) -> Self {
        BindingError { code: e.code(), message: e.to_string() }
    }
}

/// A napi call that failed inside the binding (not a conversion of an argument, which napi-rs
/// reports before the export runs).
impl From<napi::Error> for BindingError {
    fn from(e: napi::Error) -> Self {
        BindingError::internal(format!("{}: {}", e.status, e.reason))
    }
}

/// What napi-rs throws for an export's `Err`: a JavaScript `Error` with `code` set.
impl From<BindingError> for JsError<ErrorCode> {
    fn from(e: BindingError) -> Self {
        JsError::from(napi::Error::new(e.code, e.message))
    }
}

/// Runs `f`, turning a panic into a `GYRE_INTERNAL` error instead of unwinding into Node: the
/// body of every export, and every task's work off the JavaScript thread.
pub(crate) fn contain<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(BindingError::internal(format!("panic: {msg}")))
    })
}

/// An asynchronous task's error, kept from `compute` (off the JavaScript thread) to `reject`.
#[derive(Default)]
pub(crate) struct Failure(Option<BindingError>);

impl Failure {
    /// The result for `Task::compute`: an error is kept here, napi gets its message.
    pub(crate) fn keep<T>(&mut self, r: Result<T>) -> napi::Result<T> {
        r.map_err(|e| {
            let reason = e.message.clone();
            self.0 = Some(e);
            napi::Error::new(Status::GenericFailure, reason)
        })
    }

    /// For `Task::reject`: rejects with a JavaScript error whose `code` is the kept error's (an
    /// error napi made itself is internal).
    pub(crate) fn reject<T>(&mut self, env: Env, err: napi::Error) -> napi::Result<T> {
        let e = self.0.take().unwrap_or_else(|| BindingError::from(err));
        #[cfg(target_family = "wasm")]
        {
            // In the WebAssembly build napi-rs does not hand a retained JavaScript value back
            // from a task (it makes a fresh `Error` with code `GenericFailure`): the code
            // travels at the head of the message instead, and the TypeScript layer's
            // `fromNative` moves it back to `code`.
            let _ = env;
            Err(napi::Error::new(Status::GenericFailure, format!("[{}] {}", e.code.as_str(), e.message)))
        }
        #[cfg(not(target_family = "wasm"))]
        {
            let value = JsError::from(e).into_unknown(env);
            // An `Error` made from a JavaScript value rejects the Promise with that very value.
            Err(napi::Error::from(value))
        }
    }
}

/// The table of codes, for a test that the TypeScript layer knows each one.
#[napi_derive::napi(catch_unwind)]
pub fn error_codes() -> Result<Vec<String>> {
    contain(|| Ok(ErrorCode::ALL.iter().map(|c| c.as_str().to_string()).collect()))
}
