//! What the binding's model objects share: the native state behind a lock, a busy flag set while
//! a task is queued or running (other calls are refused with `GYRE_BUSY`), a disposed flag, the
//! native memory reported to V8, and one asynchronous task type that runs a closure on the state
//! off the JavaScript thread and settles its Promise on it.

use crate::error::{contain, BindingError, Failure, Result};
use crate::model::report;
use gyre_core::threads;
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{Env, Task};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A model object's native state.
pub trait Native: Send + 'static {
    /// What a refused call is told while a task runs.
    const BUSY: &'static str;
    /// Native bytes held, reported to V8.
    fn bytes(&self) -> i64;
}

/// The state of one JavaScript object and its flags.
pub(crate) struct Shared<S> {
    pub(crate) inner: Arc<Mutex<S>>,
    pub(crate) busy: Arc<AtomicBool>,
    pub(crate) disposed: Arc<AtomicBool>,
    pub(crate) reported: Arc<AtomicI64>,
}

impl<S: Native> Shared<S> {
    pub(crate) fn new(env: &Env, s: S) -> Self {
        let bytes = s.bytes();
        let shared = Shared {
            inner: Arc::new(Mutex::new(s)),
            busy: Arc::new(AtomicBool::new(false)),
            disposed: Arc::new(AtomicBool::new(false)),
            reported: Arc::new(AtomicI64::new(0)),
        };
        report(env, &shared.reported, bytes);
        shared
    }

    /// The state, unless disposed or busy.
    pub(crate) fn held(&self) -> Result<MutexGuard<'_, S>> {
        if self.disposed.load(Ordering::SeqCst) {
            return Err(BindingError::disposed());
        }
        if self.busy.load(Ordering::SeqCst) {
            return Err(BindingError::busy_with(S::BUSY));
        }
        self.inner.try_lock().map_err(|e| match e {
            std::sync::TryLockError::WouldBlock => BindingError::busy_with(S::BUSY),
            std::sync::TryLockError::Poisoned(_) => BindingError::internal("the model's lock was poisoned"),
        })
    }

    /// Marks the object busy for a task running `f` (refused when it already is).
    pub(crate) fn task<T, J>(
        &self,
        f: impl FnOnce(&mut S) -> gyre_core::Result<T> + Send + 'static,
        to_js: fn(T) -> J,
    ) -> Result<Call<S, T, J>> {
        drop(self.held()?);
        self.busy.store(true, Ordering::SeqCst);
        Ok(Call {
            inner: self.inner.clone(),
            busy: self.busy.clone(),
            reported: self.reported.clone(),
            failure: Failure::default(),
            f: Some(Box::new(f)),
            to_js,
        })
    }

    /// Marks the object disposed: later calls fail with `GYRE_DISPOSED`.
    pub(crate) fn dispose(&self, env: &Env) -> Result<()> {
        let s = self.held()?;
        self.disposed.store(true, Ordering::SeqCst);
        drop(s);
        report(env, &self.reported, 0);
        Ok(())
    }
}

type Work<S, T> = Box<dyn FnOnce(&mut S) -> gyre_core::Result<T> + Send>;

/// An asynchronous task: `f` runs on a libuv worker inside gyre's thread pool, holding the
/// state; its result becomes JavaScript's through `to_js`; the busy flag clears when it settles.
pub struct Call<S, T, J> {
    inner: Arc<Mutex<S>>,
    busy: Arc<AtomicBool>,
    reported: Arc<AtomicI64>,
    failure: Failure,
    f: Option<Work<S, T>>,
    to_js: fn(T) -> J,
}

impl<S: Native, T: Send + 'static, J: ToNapiValue + TypeName> Call<S, T, J> {
    fn settle(&mut self, env: &Env) {
        self.busy.store(false, Ordering::SeqCst);
        if let Ok(s) = self.inner.lock() {
            report(env, &self.reported, s.bytes());
        }
    }
}

impl<S: Native, T: Send + 'static, J: ToNapiValue + TypeName> Task for Call<S, T, J> {
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<T> {
        let inner = self.inner.clone();
        let f = self.f.take();
        let r = contain(|| {
            let f = f.ok_or_else(|| BindingError::internal("a task ran twice"))?;
            let mut guard = inner.lock().map_err(|_| BindingError::internal("the model's lock was poisoned"))?;
            let state = &mut *guard;
            Ok(threads::install(|| f(state))??)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<J> {
        self.settle(&env);
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, env: Env, out: T) -> napi::Result<J> {
        self.settle(&env);
        Ok((self.to_js)(out))
    }
}
