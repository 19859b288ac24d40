//! `LabelCache`: the dominant key dims of one layer in a buffer it owns.
use std::os::raw::{c_int, c_void};
use std::ptr::{self, NonNull};

use crate::error::{check, FasaError, Result};
use crate::ffi;
use crate::profile::{GqaMode, Profile};
use crate::view::{DType, Element, View};

/// fasa_label_cache in a Vec<u8> owned here (the C object holds no
/// pointers and copies the FC sets, so it does not borrow the profile).
/// `Send`, not `Sync`: predict_cached updates it, so it needs `&mut`.
pub struct LabelCache {
    _mem: Vec<u64>,
    raw: NonNull<ffi::fasa_label_cache>,
    mode: GqaMode,
    layer: usize,
}

// SAFETY: the cache is plain bytes inside `_mem`; every mutation takes `&mut self`.
unsafe impl Send for LabelCache {}

impl LabelCache {
    pub fn new(profile: &Profile, layer: usize, mode: GqaMode, dtype: DType, capacity: usize)
               -> Result<LabelCache> {
        let mut bytes = 0usize;
        check(unsafe {
            ffi::fasa_label_cache_size(profile.as_ptr(), layer, mode as c_int, dtype as c_int, capacity,
                                       &mut bytes)
        })?;
        let mut mem = vec![0u64; bytes.div_ceil(8).max(1)];
        let mut out = ptr::null_mut();
        check(unsafe {
            ffi::fasa_label_cache_init(mem.as_mut_ptr() as *mut c_void, bytes, profile.as_ptr(), layer,
                                       mode as c_int, dtype as c_int, capacity, &mut out)
        })?;
        let raw = NonNull::new(out).ok_or_else(|| FasaError::new(ffi::FASA_ERR_OUT_OF_MEMORY, "null cache"))?;
        Ok(LabelCache { _mem: mem, raw, mode, layer })
    }

    pub fn as_ptr(&mut self) -> *mut ffi::fasa_label_cache {
        self.raw.as_ptr()
    }

    pub fn mode(&self) -> GqaMode {
        self.mode
    }

    pub fn layer(&self) -> usize {
        self.layer
    }

    /// Append the keys of new tokens: k [n][Hkv][d].
    pub fn append<K: Element>(&mut self, k: &View<K>) -> Result<()> {
        check(unsafe { ffi::fasa_label_cache_append(self.raw.as_ptr(), k.as_raw()) })
    }

    /// Reset and fill from all tokens of k.
    pub fn build<K: Element>(&mut self, k: &View<K>) -> Result<()> {
        check(unsafe { ffi::fasa_label_cache_build(self.raw.as_ptr(), k.as_raw()) })
    }

    pub fn tokens(&self) -> Result<usize> {
        let mut n = 0usize;
        check(unsafe { ffi::fasa_label_cache_tokens(self.raw.as_ptr(), &mut n) })?;
        Ok(n)
    }

    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { ffi::fasa_label_cache_reset(self.raw.as_ptr()) })
    }
}

impl std::fmt::Debug for LabelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabelCache").field("layer", &self.layer).field("mode", &self.mode)
            .field("tokens", &self.tokens().ok()).finish()
    }
}
