//! fasa_status -> `FasaError`.
use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_char;

use crate::ffi;

/// A libfasa call failed (or the wrapper refused arguments that would let C
/// read or write outside the given slices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FasaError {
    /// The fasa_status value.
    pub status: i32,
    /// Its stable identifier, e.g. "FASA_ERR_BAD_STRIDE" (fasa_status_name).
    pub name: String,
    /// Detail: fasa_ctx_last_error of the context used, or the status
    /// description for calls without a context.
    pub message: String,
}

pub type Result<T> = std::result::Result<T, FasaError>;

pub(crate) fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libfasa returns NUL-terminated static or ctx-owned strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// fasa_status_name of a status.
pub fn status_name(status: i32) -> String {
    cstr(unsafe { ffi::fasa_status_name(status) })
}

/// fasa_status_string of a status.
pub fn status_string(status: i32) -> String {
    cstr(unsafe { ffi::fasa_status_string(status) })
}

impl FasaError {
    pub fn new(status: i32, message: impl Into<String>) -> FasaError {
        let mut message = message.into();
        if message.is_empty() {
            message = status_string(status);
        }
        FasaError { status, name: status_name(status), message }
    }
}

impl fmt::Display for FasaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for FasaError {}

/// Ok for FASA_OK, else the error with `message()` as detail.
pub(crate) fn check_with(status: ffi::fasa_status, message: impl FnOnce() -> String) -> Result<()> {
    if status == ffi::FASA_OK {
        Ok(())
    } else {
        Err(FasaError::new(status, message()))
    }
}

pub(crate) fn check(status: ffi::fasa_status) -> Result<()> {
    check_with(status, String::new)
}
