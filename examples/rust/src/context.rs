//! `Context`: a fasa_ctx plus the workspace reused by the calls made
//! through it. Every operation is a `&mut self` method, which gives the C
//! rule "one context per thread at a time" for free; a Context may move
//! between threads (`Send`) but is not `Sync`.
use std::os::raw::c_void;
use std::ptr::{self, NonNull};

use crate::cache::LabelCache;
use crate::error::{check, check_with, cstr, FasaError, Result};
use crate::ffi;
use crate::profile::{GqaMode, Profile};
use crate::view::{Element, View, ViewMut};

/// Token sets chosen by `Context::predict`, in the C output layout: set
/// (i, s) is `indices[(i*n_sets + s)*index_stride ..][..counts[i*n_sets + s]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub mode: GqaMode,
    pub n_q: usize,
    pub n_sets: usize,
    pub index_stride: usize,
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
    /// Raw TIP scores [n_q][n_sets][t] when requested (-inf past the causal edge).
    pub scores: Option<Vec<f32>>,
}

impl Selection {
    /// Build from parts (e.g. a selection computed elsewhere). Checks the
    /// lengths and that no count exceeds `index_stride`, so libfasa cannot
    /// read outside `indices`.
    pub fn from_parts(mode: GqaMode, n_q: usize, n_sets: usize, index_stride: usize,
                      indices: Vec<u32>, counts: Vec<u32>) -> Result<Selection> {
        let sets = n_q.checked_mul(n_sets);
        let need = sets.and_then(|s| s.checked_mul(index_stride));
        if sets != Some(counts.len()) || need.is_none_or(|n| indices.len() < n) {
            return Err(FasaError::new(ffi::FASA_ERR_BUFFER_TOO_SMALL,
                "selection: indices must hold n_q*n_sets*index_stride and counts n_q*n_sets"));
        }
        if counts.iter().any(|&c| c as usize > index_stride) {
            return Err(FasaError::new(ffi::FASA_ERR_BAD_INDEX, "selection: a count exceeds index_stride"));
        }
        Ok(Selection { mode, n_q, n_sets, index_stride, indices, counts, scores: None })
    }

    /// Token indices of set `s` of query `i` (ascending).
    pub fn set(&self, i: usize, s: usize) -> &[u32] {
        let row = i * self.n_sets + s;
        let start = row * self.index_stride;
        &self.indices[start..start + self.counts[row] as usize]
    }
}

/// The largest count any set can have for this budget and t.
pub fn max_selected(budget: f64, t: usize) -> Result<usize> {
    let mut n = 0usize;
    check(unsafe { ffi::fasa_predict_max_selected(budget, t, &mut n) })?;
    Ok(n)
}

const WS_ALIGN: usize = 64;

pub struct Context {
    raw: NonNull<ffi::fasa_ctx>,
    workspace: Vec<u8>,
}

// SAFETY: a fasa_ctx holds only options and an error buffer; it may be used
// from any thread as long as one thread uses it at a time, which `&mut self`
// on every call enforces. No `Sync`: `last_error(&self)` would race.
unsafe impl Send for Context {}

impl Context {
    /// Defaults: one thread, best CPU kernels.
    pub fn new() -> Result<Context> {
        Context::with_options(1, ffi::FASA_CPU_AUTO)
    }

    /// `threads`: OpenMP threads per call; 0 = `FASA_NUM_THREADS` from the
    /// environment, else 1. Clamped by libfasa to the CPUs online (and to 1
    /// in a build without OpenMP): `threads()` tells the count in effect.
    /// Negative counts are `FASA_ERR_INVALID_ARGUMENT`. `cpu_level` caps the
    /// kernels (ffi::FASA_CPU_*).
    pub fn with_options(threads: i32, cpu_level: i32) -> Result<Context> {
        let mut opts = ffi::fasa_ctx_options { struct_size: 0, n_threads: 0, cpu_level: 0 };
        unsafe { ffi::fasa_ctx_options_default(&mut opts) };
        opts.n_threads = threads;
        opts.cpu_level = cpu_level;
        let mut raw = ptr::null_mut();
        check(unsafe { ffi::fasa_ctx_create(&opts, &mut raw) })?;
        let raw = NonNull::new(raw).ok_or_else(|| FasaError::new(ffi::FASA_ERR_OUT_OF_MEMORY, ""))?;
        Ok(Context { raw, workspace: Vec::new() })
    }

    pub fn as_ptr(&mut self) -> *mut ffi::fasa_ctx {
        self.raw.as_ptr()
    }

    /// Effective thread count.
    pub fn threads(&self) -> i32 {
        unsafe { ffi::fasa_ctx_threads(self.raw.as_ptr()) }
    }

    /// Detail of the last failed call made with this context.
    pub fn last_error(&self) -> String {
        cstr(unsafe { ffi::fasa_ctx_last_error(self.raw.as_ptr()) })
    }

    fn status(&self, status: ffi::fasa_status) -> Result<()> {
        check_with(status, || self.last_error())
    }

    pub(crate) fn status_of(&self, status: ffi::fasa_status) -> Result<()> {
        self.status(status)
    }

    pub(crate) fn workspace_ptr(&mut self, bytes: usize) -> (*mut c_void, usize) {
        self.workspace(bytes)
    }

    /// 64-byte aligned scratch of at least `bytes`, reused between calls.
    fn workspace(&mut self, bytes: usize) -> (*mut c_void, usize) {
        let want = bytes.max(1) + WS_ALIGN;
        if self.workspace.len() < want {
            self.workspace = vec![0u8; want];
        }
        let base = self.workspace.as_mut_ptr();
        let off = base.align_offset(WS_ALIGN);
        // SAFETY: off < WS_ALIGN <= want - bytes
        (unsafe { base.add(off) } as *mut c_void, self.workspace.len() - off)
    }

    fn lse_ptr(lse: Option<&mut [f32]>, n: usize) -> Result<*mut f32> {
        match lse {
            None => Ok(ptr::null_mut()),
            Some(s) if s.len() >= n => Ok(s.as_mut_ptr()),
            Some(s) => Err(FasaError::new(ffi::FASA_ERR_BUFFER_TOO_SMALL,
                format!("lse: needs {n} floats, has {}", s.len()))),
        }
    }

    fn new_selection(&self, mode: GqaMode, n_q: usize, n_sets: usize, t: usize, budget: f64,
                     scores: bool) -> Result<Selection> {
        // A bad budget is left to the main call so its message reaches last_error.
        let stride = max_selected(budget, t).unwrap_or(1).max(1);
        let sets = n_q * n_sets;
        Ok(Selection {
            mode, n_q, n_sets, index_stride: stride,
            indices: vec![0; sets * stride],
            counts: vec![0; sets],
            scores: if scores { Some(vec![0.0; sets * t]) } else { None },
        })
    }

    /// fasa_view_validate: strides, row overlap and extent as libfasa sees them.
    pub fn validate<T: Element>(&mut self, view: &View<T>) -> Result<()> {
        let ctx = self.as_ptr();
        self.status(unsafe { ffi::fasa_view_validate(ctx, view.as_raw()) })
    }

    /// TIP over the t = k.tokens cached keys with the dominant FCs of
    /// `layer`: the top-n tokens per set (ties: lower index).
    /// q: [n_q][Hq][d], the last n_q tokens; k: [t][Hkv][d].
    #[allow(clippy::too_many_arguments)]
    pub fn predict<Q: Element, K: Element>(&mut self, profile: &Profile, layer: usize, mode: GqaMode,
                                           q: &View<Q>, k: &View<K>, budget: f64, scores: bool)
                                           -> Result<Selection> {
        let (qs, ks) = (q.shape(), k.shape());
        let n_sets = mode.n_sets(qs.heads, ks.heads);
        let mut sel = self.new_selection(mode, qs.tokens, n_sets, ks.tokens, budget, scores)?;
        let mut bytes = 0usize;
        let ctx = self.as_ptr();
        self.status(unsafe { ffi::fasa_predict_workspace_size(ctx, profile.as_ptr(), q.as_raw(), ks.tokens,
                                                              mode as i32, &mut bytes) })?;
        let (ws, ws_size) = self.workspace(bytes);
        let sp = sel.scores.as_mut().map_or(ptr::null_mut(), |s| s.as_mut_ptr());
        self.status(unsafe {
            ffi::fasa_predict(ctx, profile.as_ptr(), layer, mode as i32, q.as_raw(), k.as_raw(), budget,
                              sel.indices.as_mut_ptr(), sel.index_stride, sel.counts.as_mut_ptr(), sp,
                              ws, ws_size)
        })?;
        Ok(sel)
    }

    /// TIP from a label cache (t = cache.tokens(), mode = cache.mode()).
    pub fn predict_cached<Q: Element>(&mut self, profile: &Profile, layer: usize, q: &View<Q>,
                                      cache: &mut LabelCache, budget: f64, scores: bool)
                                      -> Result<Selection> {
        let qs = q.shape();
        let t = cache.tokens()?;
        let mode = cache.mode();
        let n_sets = mode.n_sets(qs.heads, profile.shape()?.n_kv_heads);
        let mut sel = self.new_selection(mode, qs.tokens, n_sets, t, budget, scores)?;
        let mut bytes = 0usize;
        let ctx = self.as_ptr();
        self.status(unsafe { ffi::fasa_predict_workspace_size(ctx, profile.as_ptr(), q.as_raw(), t,
                                                              mode as i32, &mut bytes) })?;
        let (ws, ws_size) = self.workspace(bytes);
        let sp = sel.scores.as_mut().map_or(ptr::null_mut(), |s| s.as_mut_ptr());
        self.status(unsafe {
            ffi::fasa_predict_cached(ctx, profile.as_ptr(), layer, mode as i32, q.as_raw(), cache.as_ptr(),
                                     budget, sel.indices.as_mut_ptr(), sel.index_stride,
                                     sel.counts.as_mut_ptr(), sp, ws, ws_size)
        })?;
        Ok(sel)
    }

    /// FAC: softmax attention of each query head over its selected tokens.
    /// out: [n_q][Hq][dv]; lse: optional [n_q][Hq]; scale 0 = 1/sqrt(d).
    #[allow(clippy::too_many_arguments)]
    pub fn attend<Q: Element, K: Element, V: Element, O: Element>(
        &mut self, q: &View<Q>, k: &View<K>, v: &View<V>, sel: &Selection, scale: f32,
        out: &mut ViewMut<O>, lse: Option<&mut [f32]>) -> Result<()> {
        let qs = q.shape();
        if sel.n_q != qs.tokens || sel.n_sets != sel.mode.n_sets(qs.heads, k.shape().heads) {
            return Err(FasaError::new(ffi::FASA_ERR_BAD_SHAPE,
                "attend: the selection was made for other q/k shapes"));
        }
        // fields are public: re-check what bounds the C reads
        if sel.counts.len() != sel.n_q * sel.n_sets
            || sel.indices.len() < sel.n_q * sel.n_sets * sel.index_stride
            || sel.counts.iter().any(|&c| c as usize > sel.index_stride) {
            return Err(FasaError::new(ffi::FASA_ERR_BUFFER_TOO_SMALL, "attend: inconsistent selection"));
        }
        let lse = Self::lse_ptr(lse, qs.tokens * qs.heads)?;
        let mut bytes = 0usize;
        let ctx = self.as_ptr();
        self.status(unsafe { ffi::fasa_attend_workspace_size(ctx, q.as_raw(), k.as_raw(), v.as_raw(),
                                                             sel.mode as i32, sel.index_stride, &mut bytes) })?;
        let (ws, ws_size) = self.workspace(bytes);
        self.status(unsafe {
            ffi::fasa_attend(ctx, sel.mode as i32, q.as_raw(), k.as_raw(), v.as_raw(), sel.indices.as_ptr(),
                             sel.index_stride, sel.counts.as_ptr(), scale, out.as_raw(), lse, ws, ws_size)
        })
    }

    /// Ordinary causal attention over all visible tokens.
    pub fn attend_dense<Q: Element, K: Element, V: Element, O: Element>(
        &mut self, q: &View<Q>, k: &View<K>, v: &View<V>, scale: f32, out: &mut ViewMut<O>,
        lse: Option<&mut [f32]>) -> Result<()> {
        let qs = q.shape();
        let lse = Self::lse_ptr(lse, qs.tokens * qs.heads)?;
        let mut bytes = 0usize;
        let ctx = self.as_ptr();
        self.status(unsafe { ffi::fasa_attend_dense_workspace_size(ctx, q.as_raw(), k.as_raw(), v.as_raw(),
                                                                   &mut bytes) })?;
        let (ws, ws_size) = self.workspace(bytes);
        self.status(unsafe {
            ffi::fasa_attend_dense(ctx, q.as_raw(), k.as_raw(), v.as_raw(), scale, out.as_raw(), lse, ws,
                                   ws_size)
        })
    }

    /// One layer of one decode step: predict (from `cache` when given) and
    /// attend; dense when the layer is dense or t <= budget.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_step<Q: Element, K: Element, V: Element, O: Element>(
        &mut self, profile: &Profile, layer: usize, mode: GqaMode, q: &View<Q>, k: &View<K>,
        v: &View<V>, cache: Option<&mut LabelCache>, budget: f64, scale: f32, out: &mut ViewMut<O>,
        lse: Option<&mut [f32]>) -> Result<()> {
        let qs = q.shape();
        let lse = Self::lse_ptr(lse, qs.tokens * qs.heads)?;
        let cache_ptr = cache.map_or(ptr::null_mut(), |c| c.as_ptr());
        let mut bytes = 0usize;
        let ctx = self.as_ptr();
        self.status(unsafe {
            ffi::fasa_decode_step_workspace_size(ctx, profile.as_ptr(), q.as_raw(), k.as_raw(), v.as_raw(),
                                                 mode as i32, budget, &mut bytes)
        })?;
        let (ws, ws_size) = self.workspace(bytes);
        self.status(unsafe {
            ffi::fasa_decode_step(ctx, profile.as_ptr(), layer, mode as i32, q.as_raw(), k.as_raw(),
                                  v.as_raw(), cache_ptr, budget, scale, out.as_raw(), lse, ws, ws_size)
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        unsafe { ffi::fasa_ctx_destroy(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("threads", &self.threads()).finish_non_exhaustive()
    }
}
