//! `Profile`, `Calibrator` and the one-shot `Profile::calibrate`.
use std::ffi::CString;
use std::marker::PhantomData;
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

/// What to calibrate (fasa_calib_config): the model shape and the K values
/// at which the contextual agreement is measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibConfig {
    pub shape: ModelShape,
    /// Strictly ascending, each >= 1, at most `ffi::FASA_MAX_K_VALUES` (16).
    /// Empty: the library default {64, 128, 256, 512, 1024}.
    pub k_values: Vec<u32>,
}

impl CalibConfig {
    /// `k_values` as for the field (empty = the library default).
    pub fn new(shape: ModelShape, k_values: &[u32]) -> CalibConfig {
        CalibConfig { shape, k_values: k_values.to_vec() }
    }

    /// The C struct. More than 16 K values do not fit it:
    /// `FASA_ERR_INVALID_ARGUMENT`, as libfasa gives for an n_k above 16.
    /// Every other rule is left to libfasa.
    pub(crate) fn raw(&self) -> Result<ffi::fasa_calib_config> {
        let n = self.k_values.len();
        if n > ffi::FASA_MAX_K_VALUES {
            return Err(FasaError::new(ffi::FASA_ERR_INVALID_ARGUMENT,
                format!("calib config: {n} K values, at most {}", ffi::FASA_MAX_K_VALUES)));
        }
        let mut cfg = ffi::fasa_calib_config { struct_size: size_of::<ffi::fasa_calib_config>(),
                                               shape: self.shape.raw(), n_k: n, ..Default::default() };
        cfg.k_values[..n].copy_from_slice(&self.k_values);
        Ok(cfg)
    }
}

/// One decode step for [`Profile::calibrate`] (fasa_calib_step): `layer`,
/// the post-RoPE query `q` of the new token (1 token x Hq heads) and the
/// post-RoPE keys `k` of the t cached tokens including the new one
/// (t tokens x Hkv heads), as for [`Calibrator::add_step`].
///
/// A step keeps a copy of the two view descriptors and borrows their data
/// for `'a`, so the slices cannot change or go away while the step exists.
/// q and k, and different steps, may have different element types.
#[derive(Clone, Copy, Debug)]
pub struct CalibStep<'a> {
    layer: usize,
    q: ffi::fasa_view,
    k: ffi::fasa_view,
    _data: PhantomData<&'a ()>,
}

impl<'a> CalibStep<'a> {
    pub fn new<Q: Element, K: Element>(layer: usize, q: &View<'a, Q>, k: &View<'a, K>) -> CalibStep<'a> {
        CalibStep { layer, q: *q.as_raw(), k: *k.as_raw(), _data: PhantomData }
    }

    pub fn layer(&self) -> usize {
        self.layer
    }
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

    /// One-shot calibration (fasa_calibrate): the profile that a
    /// [`Calibrator`] made from `config` gives after `add_step` of every
    /// step in order and `finish(options)` (`None`: the default selection
    /// options, fitted to small heads).
    ///
    /// For every step, query head and FC the contextual agreement
    /// `|TopK'(s) & TopK'(s^f)| / K'` with `K' = min(K, t)` is computed
    /// (raw dot products in double, ties to the lower token index) and
    /// averaged per layer; the dominant FC sets are then selected from it.
    ///
    /// Errors (`FasaError::status`), the first problem in this order:
    /// - the config: `FASA_ERR_INVALID_ARGUMENT` (K values not ascending,
    ///   0, more than 16; unknown layout), `FASA_ERR_ZERO_SIZE`,
    ///   `FASA_ERR_BAD_SHAPE` (Hkv does not divide Hq, odd head_dim);
    /// - each step in turn: `FASA_ERR_BAD_INDEX` (layer out of range), the
    ///   view errors (e.g. `FASA_ERR_BAD_STRIDE` for overlapping rows),
    ///   `FASA_ERR_BAD_SHAPE` (q not 1 x Hq x d, k not t x Hkv x d),
    ///   `FASA_ERR_NONFINITE` (NaN or Inf anywhere in q or k);
    /// - `FASA_ERR_BAD_STATE` when a layer has no step (so also for no
    ///   steps at all); the message names the layers;
    /// - `FASA_ERR_INVALID_ARGUMENT` for invalid `options`;
    /// - `FASA_ERR_OUT_OF_MEMORY`.
    ///
    /// fasa_calibrate takes no context: it runs on the calling thread only
    /// and its messages are the status strings. Use a [`Calibrator`] with a
    /// [`Context`] for threads or for the library's detail on a bad step.
    /// It builds a private calibrator and only reads the steps, so it may
    /// run on several threads at once (all arguments are shared borrows).
    ///
    /// ```
    /// use fasa::{ffi, CalibConfig, CalibStep, GqaMode, ModelShape, PairLayout, Profile, SelectOptions, View};
    /// # fn main() -> fasa::Result<()> {
    /// // HALF layout, head_dim 8: FC f is dims (f, f + 4).
    /// let shape = ModelShape { n_layers: 1, n_q_heads: 2, n_kv_heads: 1, head_dim: 8,
    ///                          pair_layout: PairLayout::Half };
    /// let config = CalibConfig::new(shape, &[2, 4]);
    /// // Query head 0 looks only at FC 1, head 1 only at FC 3, so those
    /// // FCs rank the 6 keys exactly like the full dot product.
    /// let mut q = vec![0f32; 2 * 8];
    /// q[1] = 1.0; q[5] = 0.5;                 // head 0, FC 1
    /// q[8 + 3] = -1.0; q[8 + 7] = 2.0;        // head 1, FC 3
    /// // Keys grow with the token index (dim 3 shrinks): tokens 2..5 rank first
    /// // for both heads, while an FC the query ignores ties everywhere and
    /// // picks tokens 0..3.
    /// let k: Vec<f32> = (0..6 * 8)
    ///     .map(|i| if i % 8 == 3 { -((i / 8) as f32) } else { (i / 8) as f32 })
    ///     .collect();
    /// let steps = [CalibStep::new(0, &View::contiguous(&q, 1, 2, 8)?,
    ///                             &View::contiguous(&k, 6, 1, 8)?)];
    /// let options = SelectOptions { n_fc: 1, k: 4, ..SelectOptions::default() };
    /// let prof = Profile::calibrate(&config, &steps, Some(&options))?;
    /// assert_eq!(prof.k_values()?, vec![2, 4]);
    /// assert_eq!(prof.fcs(0, GqaMode::PerHead, 0)?, vec![1]);
    /// assert_eq!(prof.fcs(0, GqaMode::PerHead, 1)?, vec![3]);
    ///
    /// // Every layer needs a step.
    /// let err = Profile::calibrate(&config, &[], None).unwrap_err();
    /// assert_eq!(err.status, ffi::FASA_ERR_BAD_STATE);
    /// # Ok(())
    /// # }
    /// ```
    pub fn calibrate(config: &CalibConfig, steps: &[CalibStep<'_>], options: Option<&SelectOptions>)
        -> Result<Profile> {
        let cfg = config.raw()?;
        // Pointers into `steps`, which outlives the call; the views were
        // checked against their slices when they were built.
        let raw: Vec<ffi::fasa_calib_step> = steps.iter()
            .map(|s| ffi::fasa_calib_step { layer: s.layer, q: &s.q, k: &s.k })
            .collect();
        let o = options.map(|o| o.raw());
        let optr = o.as_ref().map_or(ptr::null(), |o| o as *const _);
        let mut out = ptr::null_mut();
        let st = unsafe { ffi::fasa_calibrate(&cfg, raw.as_ptr(), raw.len(), optr, &mut out) };
        if st == ffi::FASA_ERR_BAD_STATE {
            // fasa_calibrate has no ctx for a message: name the layers here.
            let mut seen = vec![false; config.shape.n_layers];
            for s in steps {
                if let Some(x) = seen.get_mut(s.layer) {
                    *x = true;
                }
            }
            let missing: Vec<usize> = (0..seen.len()).filter(|&l| !seen[l]).collect();
            if !missing.is_empty() {
                let more = missing.len().saturating_sub(8);
                return Err(FasaError::new(st, format!(
                    "calibration: {} step(s), no step for layer {:?}{}", steps.len(),
                    &missing[..missing.len() - more],
                    if more > 0 { format!(" and {more} more") } else { String::new() })));
            }
        }
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
        Calibrator::from_config(&CalibConfig::new(shape, k_values))
    }

    /// The same configuration `Profile::calibrate` takes.
    pub fn from_config(config: &CalibConfig) -> Result<Calibrator> {
        let cfg = config.raw()?;
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
