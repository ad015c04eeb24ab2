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
    /// An option that does not suit the model, e.g. a loss its last layer cannot feed.
    #[error("{what} needs {needs}, got {got}")]
    Unsuited {
        /// The option and its value (`loss crossEntropy`).
        what: String,
        /// What the model must have for it.
        needs: String,
        /// What the model has.
        got: String,
    },
    /// An option the object it is in does not have.
    #[error("unknown option {what}; expected {expected}")]
    UnknownOption {
        /// The option, by its path (`optimizer.learning_rate`).
        what: String,
        /// The options there are (`one of learningRate, beta1, ...`).
        expected: String,
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

/// The table of gyre's stable error codes: every code an error of the native library carries
/// (the JavaScript error's `code` property). [`CoreError::code`] gives a core error's; the Node
/// binding adds the ones of its own state (a busy or disposed model, a caught panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// An array does not have the shape it must have ([`CoreError::ShapeMismatch`]).
    ShapeMismatch,
    /// A size or option outside its domain ([`CoreError::InvalidArgument`]).
    InvalidArgument,
    /// A required argument is absent ([`CoreError::Missing`]).
    MissingArgument,
    /// Training produced a NaN or infinite value ([`CoreError::NonFinite`]).
    NonFinite,
    /// A malformed model file ([`CoreError::Format`]).
    BadFile,
    /// The model is training and cannot serve the call.
    Busy,
    /// The model was disposed.
    Disposed,
    /// A failure that is not the caller's input (a caught panic).
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of the table.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::ShapeMismatch,
        ErrorCode::InvalidArgument,
        ErrorCode::MissingArgument,
        ErrorCode::NonFinite,
        ErrorCode::BadFile,
        ErrorCode::Busy,
        ErrorCode::Disposed,
        ErrorCode::Internal,
    ];

    /// The code as JavaScript sees it (`GYRE_SHAPE_MISMATCH`, ...); stable across versions.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ShapeMismatch => "GYRE_SHAPE_MISMATCH",
            ErrorCode::InvalidArgument => "GYRE_INVALID_ARGUMENT",
            ErrorCode::MissingArgument => "GYRE_MISSING_ARGUMENT",
            ErrorCode::NonFinite => "GYRE_NON_FINITE",
            ErrorCode::BadFile => "GYRE_BAD_FILE",
            ErrorCode::Busy => "GYRE_BUSY",
            ErrorCode::Disposed => "GYRE_DISPOSED",
            ErrorCode::Internal => "GYRE_INTERNAL",
        }
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CoreError {
    /// The stable code of the variant, from the one table [`ErrorCode`].
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::ShapeMismatch { .. } => ErrorCode::ShapeMismatch,
            CoreError::InvalidArgument { .. } | CoreError::Unsuited { .. } | CoreError::UnknownOption { .. } => {
                ErrorCode::InvalidArgument
            }
            CoreError::Missing { .. } => ErrorCode::MissingArgument,
            CoreError::NonFinite { .. } => ErrorCode::NonFinite,
            CoreError::Format { .. } => ErrorCode::BadFile,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_every_core_error_has_one_of_the_table() {
        let names: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(names.iter().all(|n| n.starts_with("GYRE_")));
        let e = CoreError::invalid("x", "positive", -1);
        assert!(ErrorCode::ALL.contains(&e.code()));
        assert_eq!(e.code().as_ref(), "GYRE_INVALID_ARGUMENT");
    }
}
