// SPDX-License-Identifier: GPL-2.0

//! One error type for the whole crate: a message that says what was being
//! done and why it failed (the errno text included).

use std::fmt;
use std::io;

/// An error with the full context, ready to print as a KTAP diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error(e.to_string())
    }
}

/// Builds an [`Error`] from a format string.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::error::Error(format!($($arg)*)) };
}

/// Adds "what was being done" to an error.
pub trait Context<T> {
    /// Prefixes the error with `what`.
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error(format!("{what}: {}", e.into())))
    }
}

/// The last OS error as an [`Error`] prefixed with `what`.
pub fn last_os(what: impl fmt::Display) -> Error {
    Error(format!("{what}: {}", io::Error::last_os_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes() {
        const EINVAL: i32 = 22; // the same on every Linux architecture
        let r: std::result::Result<(), io::Error> = Err(io::Error::from_raw_os_error(EINVAL));
        let e = r.ctx("mmap BAR0").unwrap_err();
        assert!(e.0.starts_with("mmap BAR0: Invalid argument"), "{e}");
    }
}
