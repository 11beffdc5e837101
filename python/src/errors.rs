//! The core's errors as Python exceptions: bad input is a ValueError, a
//! file that cannot be read or written an OSError, with the core's message.

use convexformer::Error;
use pyo3::exceptions::{PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Invalid(msg) => PyValueError::new_err(msg),
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        Error::Format { .. } => PyValueError::new_err(e.to_string()),
        Error::TooLarge(msg) => PyMemoryError::new_err(msg),
        // Variants of features this module does not enable (a workspace
        // build may unify them in).
        #[allow(unreachable_patterns)]
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// `?` on a core result inside a binding.
pub trait IntoPy<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for convexformer::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
