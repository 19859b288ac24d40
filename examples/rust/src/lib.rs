//! Rust bindings for libfasa (Frequency-Aware Sparse Attention).
//!
//! `ffi` holds the raw declarations of fasa.h; the rest is a safe layer:
//! views that borrow slices and cannot address memory outside them,
//! owned handles freed on `Drop`, `Result<_, FasaError>` for every status,
//! and `Send`/`Sync` only where the C contract allows:
//!
//! | type        | Send | Sync | why                                              |
//! |-------------|------|------|--------------------------------------------------|
//! | Profile     | yes  | yes  | concurrent reads are allowed; mutation is `&mut` |
//! | Context     | yes  | no   | one thread at a time per fasa_ctx                |
//! | LabelCache  | yes  | no   | predict_cached updates it                        |
//! | Calibrator  | yes  | no   | one thread at a time                             |
//!
//! ```compile_fail
//! fn need_sync<T: Sync>() {}
//! need_sync::<fasa::Context>();
//! ```
//! ```compile_fail
//! fn need_sync<T: Sync>() {}
//! need_sync::<fasa::LabelCache>();
//! ```
pub mod ffi;

mod cache;
mod context;
mod error;
mod profile;
mod view;

pub use cache::LabelCache;
pub use context::{max_selected, Context, Selection};
pub use error::{status_name, status_string, FasaError, Result};
pub use profile::{CalibConfig, CalibStep, Calibrator, GqaMode, ModelShape, PairLayout, Profile, ProfileInfo, SelectOptions};
pub use view::{Bf16, DType, Element, Shape, View, ViewMut, F16};

/// The fasa.h version these bindings were written for.
pub const BINDINGS_VERSION: (u32, u32, u32) =
    (ffi::FASA_VERSION_MAJOR, ffi::FASA_VERSION_MINOR, ffi::FASA_VERSION_PATCH);

/// fasa_version_number() of the linked library.
pub fn version_number() -> u32 {
    unsafe { ffi::fasa_version_number() }
}

/// fasa_version_string() of the linked library.
pub fn version_string() -> String {
    error::cstr(unsafe { ffi::fasa_version_string() })
}

/// Ok when the linked library's major version is the one of these bindings.
pub fn check_version() -> Result<()> {
    let n = version_number();
    if n / 10000 == BINDINGS_VERSION.0 {
        Ok(())
    } else {
        Err(FasaError::new(ffi::FASA_ERR_BAD_VERSION,
            format!("libfasa {} linked, bindings need major {}", version_string(), BINDINGS_VERSION.0)))
    }
}

/// fasa_cpu_features() bits (ffi::FASA_CPU_FEATURE_*).
pub fn cpu_features() -> u32 {
    unsafe { ffi::fasa_cpu_features() }
}

/// Highest kernel level usable by default (ffi::FASA_CPU_*).
pub fn cpu_best_level() -> i32 {
    unsafe { ffi::fasa_cpu_best_level() }
}

/// Kernel chosen for an internal op at a level; None for an unknown op.
pub fn kernel_name(op: &str, cpu_level: i32) -> Option<String> {
    let op = std::ffi::CString::new(op).ok()?;
    let p = unsafe { ffi::fasa_kernel_name(op.as_ptr(), cpu_level) };
    if p.is_null() { None } else { Some(error::cstr(p)) }
}
