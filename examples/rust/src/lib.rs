//! Rust bindings for libfasa (Frequency-Aware Sparse Attention).
//!
//! `ffi` holds the raw declarations of fasa.h; the rest is a safe layer:
//! views that borrow slices (`f32`, [`F16`], [`Bf16`]) and cannot address
//! memory outside them, owned handles freed on `Drop`, `Result<_, FasaError>`
//! for every status ([`FasaError`] implements `std::error::Error`), and
//! `Send`/`Sync` only where the C contract allows.
//!
//! ```
//! use fasa::*;
//!
//! fn main() -> Result<()> {
//!     // A profile: the dominant frequency chunks of each head, for a model
//!     // whose q/k use rotate-half RoPE pairs (Hugging Face Llama).
//!     let shape = ModelShape { n_layers: 2, n_q_heads: 4, n_kv_heads: 2, head_dim: 16,
//!                              pair_layout: PairLayout::Half };
//!     let fcs: Vec<u32> = (0..2 * 4).flat_map(|h| [h % 8, (h + 1) % 8]).collect();
//!     let profile = Profile::from_fcs(shape, &fcs, 2, None)?;
//!
//!     // Two sequences in one token-major KV buffer [2][64 cells][2 heads][16].
//!     let cells = 64;
//!     let k: Vec<f32> = (0..2 * cells * 2 * 16).map(|i| ((i * 7919) % 97) as f32 / 97.0).collect();
//!     let v = k.clone();
//!     let q = vec![0.5f32; 2 * 4 * 16]; // one query per sequence
//!     let lens = [40, 64];              // cells each sequence holds
//!     let t = cells + lens[1];
//!     let (ranges, first) = batch_ranges(cells, &lens);
//!
//!     let mut ctx = Context::new()?;
//!     let (qv, kv, vv) = (View::contiguous(&q, 2, 4, 16)?, View::contiguous(&k, t, 2, 16)?,
//!                         View::contiguous(&v, t, 2, 16)?);
//!     let mut out = vec![0f32; 2 * 4 * 16];
//!     let mut ov = ViewMut::contiguous(&mut out, 2, 4, 16)?;
//!     // Both sequences' decode step in one call: FASA with 8 tokens each.
//!     let mut call = Attention::new(&qv, &kv, &vv, &mut ov);
//!     call.visibility = Visibility::Ranges { ranges: &ranges, range_first: &first };
//!     call.op = Op::Fasa { profile: &profile, layer: 1, mode: GqaMode::PerHead, budget: 8.0,
//!                          cache: None, budgets: None, select_hints: None };
//!     ctx.attention(&mut call)?;
//!     assert!(out.iter().all(|x| x.is_finite()));
//!     Ok(())
//! }
//! ```
//!
//! | type        | Send | Sync | why                                              |
//! |-------------|------|------|--------------------------------------------------|
//! | Profile     | yes  | yes  | concurrent reads are allowed; mutation is `&mut` |
//! | Context     | yes  | no   | one thread at a time per fasa_ctx                |
//! | LabelCache  | yes  | no   | predict_cached updates it                        |
//! | Calibrator  | yes  | no   | one thread at a time                             |
//! | Plan        | yes  | no   | executions take `&mut`; host threads run shares  |
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

mod attention;
mod cache;
mod context;
mod error;
mod profile;
mod view;

pub use attention::{batch_ranges, Attention, AttnParams, MaskData, Op, Plan, Visibility};
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
