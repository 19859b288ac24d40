//! `Profile` and `Calibrator`.
use std::ffi::CString;
use std::mem::size_of;
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};

use crate::context::Context;
use crate::error::{check, FasaError, Result};
use crate::ffi;
use crate::view::{Element, View};

/// How grouped-query attention selects tokens (fasa_gqa_mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GqaMode {
    /// One FC set and token set per query head (the paper).
    PerHead = 0,
    /// One per KV head, from the group's summed agreement and query.
    GroupShared = 1,
}

impl GqaMode {
    pub(crate) fn n_sets(self, q_heads: usize, kv_heads: usize) -> usize {
        match self {
            GqaMode::PerHead => q_heads,
            GqaMode::GroupShared => kv_heads,
        }
    }
}

/// Which head dims form FC f (fasa_pair_layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairLayout {
    Interleaved = 0,
    Half = 1,
    Adjacent = 2,
}

/// A model's attention shape (fasa_model_shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape {
    pub n_layers: usize,
    pub n_q_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub pair_layout: PairLayout,
}

impl ModelShape {
    fn raw(&self) -> ffi::fasa_model_shape {
        ffi::fasa_model_shape {
            struct_size: size_of::<ffi::fasa_model_shape>(),
            n_layers: self.n_layers,
            n_q_heads: self.n_q_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            pair_layout: self.pair_layout as i32,
            reserved: 0,
        }
    }

    fn from_raw(s: &ffi::fasa_model_shape) -> ModelShape {
        let pair_layout = match s.pair_layout {
            1 => PairLayout::Half,
            2 => PairLayout::Adjacent,
            _ => PairLayout::Interleaved,
        };
        ModelShape { n_layers: s.n_layers, n_q_heads: s.n_q_heads, n_kv_heads: s.n_kv_heads,
                     head_dim: s.head_dim, pair_layout }
    }
}

/// fasa_profile_info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileInfo {
    pub shape: ModelShape,
    pub n_k: usize,
    pub n_steps: usize,
    pub max_fc: usize,
    pub has_agreement: bool,
    pub selection_k: u32,
}

/// fasa_select_options; `Default` gives the library defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectOptions {
    pub n_fc: u32,
    pub k: u32,
    pub budget_hint: u32,
    pub use_threshold: bool,
    pub threshold_ratio: f32,
    pub min_fc: u32,
    pub max_fc: u32,
}

impl Default for SelectOptions {
    fn default() -> Self {
        let mut o = ffi::fasa_select_options::default();
        unsafe { ffi::fasa_select_options_default(&mut o) };
        SelectOptions { n_fc: o.n_fc, k: o.k, budget_hint: o.budget_hint, use_threshold: o.use_threshold != 0,
                        threshold_ratio: o.threshold_ratio, min_fc: o.min_fc, max_fc: o.max_fc }
    }
}

impl SelectOptions {
    fn raw(&self) -> ffi::fasa_select_options {
        ffi::fasa_select_options {
            struct_size: size_of::<ffi::fasa_select_options>(),
            n_fc: self.n_fc,
            k: self.k,
            budget_hint: self.budget_hint,
            use_threshold: self.use_threshold as u32,
            threshold_ratio: self.threshold_ratio,
            min_fc: self.min_fc,
            max_fc: self.max_fc,
        }
    }
}

fn c_path(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| FasaError::new(ffi::FASA_ERR_INVALID_ARGUMENT, "path contains a NUL byte"))
}

/// A FASA profile. Reads may happen from several threads at once (`Sync`);
/// `select` and `set_dense` take `&mut self`, as the C contract requires
/// that they race with nothing.
pub struct Profile {
    raw: NonNull<ffi::fasa_profile>,
}

// SAFETY: fasa.h documents profile reads as thread-safe with concurrent
// readers, and every mutation here needs `&mut Profile`.
unsafe impl Send for Profile {}
unsafe impl Sync for Profile {}

impl Profile {
    fn wrap(status: ffi::fasa_status, raw: *mut ffi::fasa_profile) -> Result<Profile> {
        check(status)?;
        NonNull::new(raw).map(|raw| Profile { raw })
            .ok_or_else(|| FasaError::new(ffi::FASA_ERR_OUT_OF_MEMORY, "null profile"))
    }

    pub fn as_ptr(&self) -> *mut ffi::fasa_profile {
        self.raw.as_ptr()
    }

    /// From FC lists: `fcs` is [n_layers][n_q_heads][n_fc]; `group_fcs`
    /// optional [n_layers][n_kv_heads][n_fc] (None: derived by vote).
    pub fn from_fcs(shape: ModelShape, fcs: &[u32], n_fc: usize, group_fcs: Option<&[u32]>) -> Result<Profile> {
        let rows = shape.n_layers.checked_mul(shape.n_q_heads).and_then(|r| r.checked_mul(n_fc));
        if rows != Some(fcs.len()) {
            return Err(FasaError::new(ffi::FASA_ERR_BAD_SHAPE, "fcs must hold n_layers*n_q_heads*n_fc values"));
        }
        let gptr = match group_fcs {
            None => ptr::null(),
            Some(g) if Some(g.len()) == shape.n_layers.checked_mul(shape.n_kv_heads)
                .and_then(|r| r.checked_mul(n_fc)) => g.as_ptr(),
            Some(_) => return Err(FasaError::new(ffi::FASA_ERR_BAD_SHAPE,
                "group_fcs must hold n_layers*n_kv_heads*n_fc values")),
        };
        let raw_shape = shape.raw();
        let mut out = ptr::null_mut();
        let st = unsafe { ffi::fasa_profile_create(&raw_shape, fcs.as_ptr(), n_fc, gptr, &mut out) };
        Profile::wrap(st, out)
    }

    /// Read a profile file.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile> {
        let p = c_path(path.as_ref())?;
        let mut out = ptr::null_mut();
        let st = unsafe { ffi::fasa_profile_load(p.as_ptr(), &mut out) };
        Profile::wrap(st, out)
    }

    /// Parse a profile from memory.
    pub fn from_bytes(data: &[u8]) -> Result<Profile> {
        let mut out = ptr::null_mut();
        let st = unsafe { ffi::fasa_profile_load_buffer(data.as_ptr() as *const c_void, data.len(), &mut out) };
        Profile::wrap(st, out)
    }

    /// Deep copy.
    pub fn try_clone(&self) -> Result<Profile> {
        let mut out = ptr::null_mut();
        let st = unsafe { ffi::fasa_profile_clone(self.as_ptr(), &mut out) };
        Profile::wrap(st, out)
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let p = c_path(path.as_ref())?;
        check(unsafe { ffi::fasa_profile_save(self.as_ptr(), p.as_ptr()) })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut size = 0usize;
        check(unsafe { ffi::fasa_profile_save_buffer(self.as_ptr(), ptr::null_mut(), 0, &mut size) })?;
        let mut buf = vec![0u8; size];
        check(unsafe {
            ffi::fasa_profile_save_buffer(self.as_ptr(), buf.as_mut_ptr() as *mut c_void, buf.len(), &mut size)
        })?;
        buf.truncate(size);
        Ok(buf)
    }

    pub fn describe(&self) -> Result<String> {
        let mut len = 0usize;
        check(unsafe { ffi::fasa_profile_describe(self.as_ptr(), ptr::null_mut(), 0, &mut len) })?;
        let mut buf = vec![0u8; len + 1];
        check(unsafe {
            ffi::fasa_profile_describe(self.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len)
        })?;
        buf.truncate(len.min(buf.len() - 1));
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    pub fn info(&self) -> Result<ProfileInfo> {
        let mut i = ffi::fasa_profile_info { struct_size: size_of::<ffi::fasa_profile_info>(),
                                             ..Default::default() };
        check(unsafe { ffi::fasa_profile_get_info(self.as_ptr(), &mut i) })?;
        Ok(ProfileInfo { shape: ModelShape::from_raw(&i.shape), n_k: i.n_k, n_steps: i.n_steps,
                         max_fc: i.max_fc, has_agreement: i.has_agreement != 0, selection_k: i.selection_k })
    }

    pub fn shape(&self) -> Result<ModelShape> {
        Ok(self.info()?.shape)
    }

    pub fn k_values(&self) -> Result<Vec<u32>> {
        let n = self.info()?.n_k;
        let mut out = vec![0u32; n.max(1)];
        check(unsafe { ffi::fasa_profile_get_k_values(self.as_ptr(), out.as_mut_ptr(), out.len()) })?;
        out.truncate(n);
        Ok(out)
    }

    /// Mean agreement of `layer` at K index `k_index`: [n_q_heads][head_dim/2].
    pub fn agreement(&self, layer: usize, k_index: usize) -> Result<Vec<f32>> {
        let s = self.shape()?;
        let mut out = vec![0f32; s.n_q_heads * (s.head_dim / 2)];
        check(unsafe {
            ffi::fasa_profile_get_agreement(self.as_ptr(), layer, k_index, out.as_mut_ptr(), out.len())
        })?;
        Ok(out)
    }

    /// Dominant FCs (ascending) of query head (PerHead) or KV head (GroupShared) `head`.
    pub fn fcs(&self, layer: usize, mode: GqaMode, head: usize) -> Result<Vec<u32>> {
        let cap = (self.shape()?.head_dim / 2).max(1);
        let mut out = vec![0u32; cap];
        let mut n = 0usize;
        check(unsafe {
            ffi::fasa_profile_get_fcs(self.as_ptr(), layer, mode as c_int, head, out.as_mut_ptr(), cap, &mut n)
        })?;
        out.truncate(n.min(cap));
        Ok(out)
    }

    pub fn is_dense(&self, layer: usize) -> Result<bool> {
        let mut d: c_int = 0;
        check(unsafe { ffi::fasa_profile_get_dense_layer(self.as_ptr(), layer, &mut d) })?;
        Ok(d != 0)
    }

    pub fn set_dense(&mut self, layer: usize, dense: bool) -> Result<()> {
        check(unsafe { ffi::fasa_profile_set_dense_layer(self.as_ptr(), layer, dense as c_int) })
    }

    /// Re-derive the dominant sets from the stored agreement.
    pub fn select(&mut self, options: &SelectOptions) -> Result<()> {
        let o = options.raw();
        check(unsafe { ffi::fasa_profile_select(self.as_ptr(), &o) })
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        unsafe { ffi::fasa_profile_destroy(self.raw.as_ptr()) }
    }
}

/// Streaming calibration. `Send` but not `Sync`: one thread at a time.
pub struct Calibrator {
    raw: NonNull<ffi::fasa_calibrator>,
}

// SAFETY: the calibrator is plain heap state; `&mut self` on add_step and
// the missing Sync keep it to one thread at a time.
unsafe impl Send for Calibrator {}

impl Calibrator {
    /// `k_values`: ascending, at most 16; empty = the library default.
    pub fn new(shape: ModelShape, k_values: &[u32]) -> Result<Calibrator> {
        if k_values.len() > ffi::FASA_MAX_K_VALUES {
            return Err(FasaError::new(ffi::FASA_ERR_INVALID_ARGUMENT, "at most 16 K values"));
        }
        let mut cfg = ffi::fasa_calib_config { struct_size: size_of::<ffi::fasa_calib_config>(),
                                               shape: shape.raw(), n_k: k_values.len(),
                                               ..Default::default() };
        cfg.k_values[..k_values.len()].copy_from_slice(k_values);
        let mut out = ptr::null_mut();
        check(unsafe { ffi::fasa_calibrator_create(&cfg, &mut out) })?;
        NonNull::new(out).map(|raw| Calibrator { raw })
            .ok_or_else(|| FasaError::new(ffi::FASA_ERR_OUT_OF_MEMORY, "null calibrator"))
    }

    /// One decode step of `layer`: q [1][Hq][d], k [t][Hkv][d] (post-RoPE).
    pub fn add_step<Q: Element, K: Element>(&mut self, ctx: &mut Context, layer: usize, q: &View<Q>,
                                            k: &View<K>) -> Result<()> {
        let st = unsafe { ffi::fasa_calibrator_add_step(self.raw.as_ptr(), ctx.as_ptr(), layer, q.as_raw(),
                                                        k.as_raw()) };
        crate::error::check_with(st, || ctx.last_error())
    }

    /// A profile from the steps so far (None: default selection options).
    pub fn finish(&self, options: Option<&SelectOptions>) -> Result<Profile> {
        let o = options.map(|o| o.raw());
        let optr = o.as_ref().map_or(ptr::null(), |o| o as *const _);
        let mut out = ptr::null_mut();
        let st = unsafe { ffi::fasa_calibrator_finish(self.raw.as_ptr(), optr, &mut out) };
        Profile::wrap(st, out)
    }
}

impl Drop for Calibrator {
    fn drop(&mut self) {
        unsafe { ffi::fasa_calibrator_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile").field("info", &self.info().ok()).finish()
    }
}

impl std::fmt::Debug for Calibrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calibrator").finish_non_exhaustive()
    }
}
