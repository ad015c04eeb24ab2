//! The one error type of gyre-core.

use thiserror::Error;

/// Everything that can go wrong in gyre-core. Each variant carries the names and numbers a
/// user needs to find the mistake; the Node binding maps each to a stable error `code`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CoreError {
    /// An array does not have the shape (or number of elements) it must have.
    #[error("{what} must have shape {expected}, got {got}")]
    ShapeMismatch {
        /// The argument, named as the user wrote it (`weight_ih_l0`, `h0`, ...).
        what: String,
        /// The expected shape, with dimensions written out.
        expected: String,
        /// What was received.
        got: String,
    },
    /// A size or option has a value outside its domain.
    #[error("{what} must be {expected}, got {got}")]
    InvalidArgument {
        /// The option, named as the user wrote it.
        what: String,
        /// The rule the value must follow.
        expected: String,
        /// The value received.
        got: String,
    },
    /// Training produced a NaN or infinite loss or gradient; the update was not applied.
    #[error("the {what} became {value} in epoch {epoch}, batch {batch}; the weights were left as they were before that batch")]
    NonFinite {
        /// `"loss"` or `"gradient norm"`.
        what: String,
        /// The offending value (NaN or ±inf).
        value: String,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
    },
    /// A file or buffer is not a valid gyre model / safetensors file; `what` names the part
    /// (`header`, `tensor "0.weight"`, ...).
    #[error("invalid model file: {what}: {detail}")]
    Format {
        /// The part of the file that is wrong.
        what: String,
        /// What is wrong with it, with the numbers.
        detail: String,
    },
    /// A required tensor or option is absent.
    #[error("{what} is required {context}")]
    Missing {
        /// The absent argument.
        what: String,
        /// When it is required (e.g. "for an LSTM").
        context: String,
    },
}

impl CoreError {
    /// A stable, machine-readable code for the variant, used as the JavaScript error's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::ShapeMismatch { .. } => "GYRE_SHAPE_MISMATCH",
            CoreError::InvalidArgument { .. } => "GYRE_INVALID_ARGUMENT",
            CoreError::Missing { .. } => "GYRE_MISSING_ARGUMENT",
            CoreError::NonFinite { .. } => "GYRE_NON_FINITE",
            CoreError::Format { .. } => "GYRE_BAD_FILE",
        }
    }

    pub(crate) fn shape(what: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Self {
        CoreError::ShapeMismatch { what: what.into(), expected: expected.into(), got: got.into() }
    }

    pub(crate) fn invalid(what: impl Into<String>, expected: impl Into<String>, got: impl ToString) -> Self {
        CoreError::InvalidArgument { what: what.into(), expected: expected.into(), got: got.to_string() }
    }
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;
