//! Borrowed strided views over slices. A `View` can only be built when
//! every element it addresses lies inside the slice, so safe code cannot
//! hand libfasa an out-of-bounds view.
use std::marker::PhantomData;
use std::mem::size_of;
use std::os::raw::c_void;

use crate::error::{FasaError, Result};
use crate::ffi;

/// Element types libfasa reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32 = 0,
    F16 = 1,
    BF16 = 2,
}

/// IEEE binary16 bits.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct F16(pub u16);

/// bfloat16 bits.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// Round to nearest even (NaN stays NaN).
    pub fn from_f32(x: f32) -> Bf16 {
        let b = x.to_bits();
        if x.is_nan() {
            return Bf16(((b >> 16) | 0x40) as u16);
        }
        Bf16(((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16)
    }
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

impl F16 {
    /// Round to nearest even; overflow gives infinity.
    pub fn from_f32(x: f32) -> F16 {
        let b = x.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let a = b & 0x7fff_ffff;
        if a >= 0x7f80_0000 {
            return F16(sign | 0x7c00 | if a > 0x7f80_0000 { 0x200 } else { 0 });
        }
        if a >= 0x477f_f000 {
            return F16(sign | 0x7c00);
        }
        if a < 0x3880_0000 {
            // subnormal half: scale so the ulp is 2^-24 and round in f32
            let m = f32::from_bits(a) * 16_777_216.0; // 2^24
            return F16(sign | m.round_ties_even() as u16);
        }
        let r = a + 0xfff + ((a >> 13) & 1) - 0x3800_0000;
        F16(sign | (r >> 13) as u16)
    }
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let man = h & 0x3ff;
        let mag = match exp {
            0 => (man as f32) / 16_777_216.0,
            0x1f => f32::from_bits(0x7f80_0000 | (man << 13)),
            _ => f32::from_bits(((exp + 112) << 23) | (man << 13)),
        };
        f32::from_bits(mag.to_bits() | sign)
    }
}

/// Types a view can hold; implemented for f32, F16 and Bf16 only.
pub trait Element: Copy + sealed::Sealed {
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for F16 {
    const DTYPE: DType = DType::F16;
}
impl Element for Bf16 {
    const DTYPE: DType = DType::BF16;
}
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::F16 {}
    impl Sealed for super::Bf16 {}
}

/// Shape and element strides of a [tokens][heads][head_dim] tensor:
/// element (t, h, i) is at t*token_stride + h*head_stride + i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub token_stride: usize,
    pub head_stride: usize,
}

impl Shape {
    /// Dense token-major layout: [tokens][heads][head_dim].
    pub fn contiguous(tokens: usize, heads: usize, head_dim: usize) -> Shape {
        Shape { tokens, heads, head_dim, token_stride: heads * head_dim, head_stride: head_dim }
    }

    /// Head-major cache with room for `max_tokens`: [heads][max_tokens][head_dim].
    pub fn head_major(tokens: usize, heads: usize, head_dim: usize, max_tokens: usize) -> Shape {
        Shape { tokens, heads, head_dim, token_stride: head_dim, head_stride: max_tokens * head_dim }
    }

    /// Elements a slice must hold: one past the last addressed element
    /// (0 when a size is 0: libfasa rejects such a view without reading).
    pub fn extent(&self) -> Option<usize> {
        if self.tokens == 0 || self.heads == 0 || self.head_dim == 0 {
            return Some(0);
        }
        let a = (self.tokens - 1).checked_mul(self.token_stride)?;
        let b = (self.heads - 1).checked_mul(self.head_stride)?;
        a.checked_add(b)?.checked_add(self.head_dim)
    }

    fn check_len(&self, len: usize, what: &str) -> Result<()> {
        match self.extent() {
            None => Err(FasaError::new(ffi::FASA_ERR_OVERFLOW, format!("{what}: extent overflows"))),
            Some(n) if n.checked_mul(8).is_none() => Err(FasaError::new(
                ffi::FASA_ERR_OVERFLOW, format!("{what}: byte size overflows"))),
            Some(n) if n > len => Err(FasaError::new(
                ffi::FASA_ERR_BUFFER_TOO_SMALL,
                format!("{what}: shape {:?} needs {n} elements, slice has {len}", self))),
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn raw(&self, data: *const c_void, dtype: DType) -> ffi::fasa_view {
        ffi::fasa_view {
            struct_size: size_of::<ffi::fasa_view>(),
            data: data as *mut c_void,
            dtype: dtype as i32,
            kind: 0,
            n_tokens: self.tokens,
            n_heads: self.heads,
            head_dim: self.head_dim,
            token_stride: self.token_stride,
            head_stride: self.head_stride,
        }
    }
}

/// A read-only strided view of a slice (an input of libfasa).
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T: Element> {
    raw: ffi::fasa_view,
    _data: PhantomData<&'a [T]>,
}

impl<'a, T: Element> View<'a, T> {
    /// Fails when `shape` addresses elements past the end of `data`.
    pub fn new(data: &'a [T], shape: Shape) -> Result<Self> {
        shape.check_len(data.len(), "view")?;
        Ok(View { raw: shape.raw(data.as_ptr() as *const c_void, T::DTYPE), _data: PhantomData })
    }

    /// A dense [tokens][heads][head_dim] view.
    pub fn contiguous(data: &'a [T], tokens: usize, heads: usize, head_dim: usize) -> Result<Self> {
        Self::new(data, Shape::contiguous(tokens, heads, head_dim))
    }

    pub fn shape(&self) -> Shape {
        Shape {
            tokens: self.raw.n_tokens,
            heads: self.raw.n_heads,
            head_dim: self.raw.head_dim,
            token_stride: self.raw.token_stride,
            head_stride: self.raw.head_stride,
        }
    }

    pub fn as_raw(&self) -> &ffi::fasa_view {
        &self.raw
    }
}

/// A writable strided view of a slice (an output of libfasa).
#[derive(Debug)]
pub struct ViewMut<'a, T: Element> {
    raw: ffi::fasa_view,
    _data: PhantomData<&'a mut [T]>,
}

impl<'a, T: Element> ViewMut<'a, T> {
    /// Fails when `shape` addresses elements past the end of `data`.
    pub fn new(data: &'a mut [T], shape: Shape) -> Result<Self> {
        shape.check_len(data.len(), "output view")?;
        Ok(ViewMut { raw: shape.raw(data.as_mut_ptr() as *const c_void, T::DTYPE), _data: PhantomData })
    }

    pub fn contiguous(data: &'a mut [T], tokens: usize, heads: usize, head_dim: usize) -> Result<Self> {
        Self::new(data, Shape::contiguous(tokens, heads, head_dim))
    }

    pub fn shape(&self) -> Shape {
        Shape {
            tokens: self.raw.n_tokens,
            heads: self.raw.n_heads,
            head_dim: self.raw.head_dim,
            token_stride: self.raw.token_stride,
            head_stride: self.raw.head_stride,
        }
    }

    pub fn as_raw(&self) -> &ffi::fasa_view {
        &self.raw
    }
}
