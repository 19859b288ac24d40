//! Raw declarations of include/fasa.h (0.1.0, with the descriptor API), one to one. C enums passed
//! by value are `c_int`; enum-typed struct fields are `i32` as in the header.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::os::raw::{c_char, c_int, c_uint, c_void};

pub const FASA_VERSION_MAJOR: u32 = 0;
pub const FASA_VERSION_MINOR: u32 = 1;
pub const FASA_VERSION_PATCH: u32 = 0;

pub type fasa_status = c_int;
pub const FASA_OK: fasa_status = 0;
pub const FASA_ERR_NULL_POINTER: fasa_status = 1;
pub const FASA_ERR_INVALID_ARGUMENT: fasa_status = 2;
pub const FASA_ERR_ZERO_SIZE: fasa_status = 3;
pub const FASA_ERR_OVERFLOW: fasa_status = 4;
pub const FASA_ERR_BAD_SHAPE: fasa_status = 5;
pub const FASA_ERR_BAD_STRIDE: fasa_status = 6;
pub const FASA_ERR_BAD_DTYPE: fasa_status = 7;
pub const FASA_ERR_BAD_BUDGET: fasa_status = 8;
pub const FASA_ERR_PROFILE_MISMATCH: fasa_status = 9;
pub const FASA_ERR_WORKSPACE_TOO_SMALL: fasa_status = 10;
pub const FASA_ERR_BUFFER_TOO_SMALL: fasa_status = 11;
pub const FASA_ERR_BAD_INDEX: fasa_status = 12;
pub const FASA_ERR_NONFINITE: fasa_status = 13;
pub const FASA_ERR_ALIASING: fasa_status = 14;
pub const FASA_ERR_OUT_OF_MEMORY: fasa_status = 15;
pub const FASA_ERR_IO: fasa_status = 16;
pub const FASA_ERR_BAD_FILE: fasa_status = 17;
pub const FASA_ERR_BAD_VERSION: fasa_status = 18;
pub const FASA_ERR_CHECKSUM: fasa_status = 19;
pub const FASA_ERR_BAD_STATE: fasa_status = 20;
pub const FASA_ERR_UNSUPPORTED: fasa_status = 21;
pub const FASA_ERR_MISALIGNED: fasa_status = 22;

pub const FASA_DTYPE_F32: i32 = 0;
pub const FASA_DTYPE_F16: i32 = 1;
pub const FASA_DTYPE_BF16: i32 = 2;

pub const FASA_PAIRS_INTERLEAVED: i32 = 0;
pub const FASA_PAIRS_HALF: i32 = 1;
pub const FASA_PAIRS_ADJACENT: i32 = 2;

pub const FASA_GQA_PER_HEAD: c_int = 0;
pub const FASA_GQA_GROUP_SHARED: c_int = 1;

pub const FASA_CPU_AUTO: c_int = -1;
pub const FASA_CPU_SCALAR: c_int = 0;
pub const FASA_CPU_AVX2: c_int = 1;
pub const FASA_CPU_AVX512: c_int = 2;
pub const FASA_CPU_AVX512_BF16: c_int = 3;
pub const FASA_CPU_NEON: c_int = 4;

pub const FASA_CPU_FEATURE_AVX2: u32 = 1 << 0;
pub const FASA_CPU_FEATURE_AVX512: u32 = 1 << 1;
pub const FASA_CPU_FEATURE_AVX512BF16: u32 = 1 << 2;
pub const FASA_CPU_FEATURE_NEON: u32 = 1 << 3;
pub const FASA_CPU_FEATURE_NEON_FP16: u32 = 1 << 4;
pub const FASA_CPU_FEATURE_NEON_BF16: u32 = 1 << 5;

pub const FASA_MAX_K_VALUES: usize = 16;

macro_rules! opaque {
    ($($name:ident),*) => {$(
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}
opaque!(fasa_ctx, fasa_profile, fasa_calibrator, fasa_label_cache, fasa_plan);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_view {
    pub struct_size: usize,
    pub data: *mut c_void,
    pub dtype: i32,
    pub kind: i32,
    pub n_tokens: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub token_stride: usize,
    pub head_stride: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_ctx_options {
    pub struct_size: usize,
    pub n_threads: i32,
    pub cpu_level: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct fasa_model_shape {
    pub struct_size: usize,
    pub n_layers: usize,
    pub n_q_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub pair_layout: i32,
    pub reserved: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fasa_profile_info {
    pub struct_size: usize,
    pub shape: fasa_model_shape,
    pub n_k: usize,
    pub n_steps: usize,
    pub max_fc: usize,
    pub has_agreement: u32,
    pub selection_k: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fasa_select_options {
    pub struct_size: usize,
    pub n_fc: u32,
    pub k: u32,
    pub budget_hint: u32,
    pub use_threshold: u32,
    pub threshold_ratio: f32,
    pub min_fc: u32,
    pub max_fc: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct fasa_calib_config {
    pub struct_size: usize,
    pub shape: fasa_model_shape,
    pub n_k: usize,
    pub k_values: [u32; FASA_MAX_K_VALUES],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_calib_step {
    pub layer: usize,
    pub q: *const fasa_view,
    pub k: *const fasa_view,
}

pub const FASA_VISIBLE_CAUSAL: i32 = 0;
pub const FASA_VISIBLE_RANGES: i32 = 1;
pub const FASA_VISIBLE_MASK: i32 = 2;

pub const FASA_OP_DENSE: i32 = 0;
pub const FASA_OP_SPARSE: i32 = 1;
pub const FASA_OP_PREDICT: i32 = 2;
pub const FASA_OP_FASA: i32 = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_visibility {
    pub struct_size: usize,
    pub kind: i32,
    pub mask_dtype: i32,
    pub ranges: *const u32,
    pub range_first: *const u32,
    pub mask: *const c_void,
    pub mask_stride: usize,
    pub mask_cells: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_attn_params {
    pub struct_size: usize,
    pub scale: f32,
    pub softcap: f32,
    pub sinks: *const f32,
    pub alibi_slopes: *const f32,
    pub window: u32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_attention_desc {
    pub struct_size: usize,
    pub op: i32,
    pub mode: i32,
    pub q: *const fasa_view,
    pub k: *const fasa_view,
    pub v: *const fasa_view,
    pub out: *const fasa_view,
    pub lse: *mut f32,
    pub visibility: *const fasa_visibility,
    pub params: *const fasa_attn_params,
    pub profile: *const fasa_profile,
    pub layer: usize,
    pub label_cache: *mut fasa_label_cache,
    pub budget: f64,
    pub budgets: *const f32,
    pub indices: *mut u32,
    pub index_stride: usize,
    pub counts: *mut u32,
    pub scores: *mut f32,
    pub select_hints: *mut f32,
    pub n_threads: i32,
    pub reserved: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fasa_attention_data {
    pub struct_size: usize,
    pub q: *const c_void,
    pub k: *const c_void,
    pub v: *const c_void,
    pub out: *mut c_void,
    pub lse: *mut f32,
    pub mask: *const c_void,
    pub ranges: *const u32,
    pub range_first: *const u32,
    pub budgets: *const f32,
    pub indices: *mut u32,
    pub counts: *mut u32,
    pub scores: *mut f32,
    pub label_cache: *mut fasa_label_cache,
    pub select_hints: *mut f32,
}

extern "C" {
    pub fn fasa_version_number() -> c_uint;
    pub fn fasa_version_string() -> *const c_char;
    pub fn fasa_status_string(status: fasa_status) -> *const c_char;
    pub fn fasa_status_name(status: fasa_status) -> *const c_char;

    pub fn fasa_view_make(view: *mut fasa_view, data: *const c_void, dtype: c_int,
                          n_tokens: usize, n_heads: usize, head_dim: usize,
                          token_stride: usize, head_stride: usize) -> fasa_status;
    pub fn fasa_view_validate(ctx: *mut fasa_ctx, view: *const fasa_view) -> fasa_status;

    pub fn fasa_ctx_options_default(options: *mut fasa_ctx_options);
    pub fn fasa_ctx_create(options: *const fasa_ctx_options, out: *mut *mut fasa_ctx)
        -> fasa_status;
    pub fn fasa_ctx_destroy(ctx: *mut fasa_ctx);
    pub fn fasa_ctx_last_error(ctx: *const fasa_ctx) -> *const c_char;
    pub fn fasa_ctx_threads(ctx: *const fasa_ctx) -> c_int;

    pub fn fasa_cpu_features() -> u32;
    pub fn fasa_cpu_best_level() -> c_int;
    pub fn fasa_kernel_name(op: *const c_char, cpu_level: c_int) -> *const c_char;

    pub fn fasa_profile_create(shape: *const fasa_model_shape, fcs: *const u32, n_fc: usize,
                               group_fcs: *const u32, out: *mut *mut fasa_profile)
        -> fasa_status;
    pub fn fasa_profile_destroy(profile: *mut fasa_profile);
    pub fn fasa_profile_clone(src: *const fasa_profile, out: *mut *mut fasa_profile)
        -> fasa_status;
    pub fn fasa_profile_get_info(profile: *const fasa_profile, info: *mut fasa_profile_info)
        -> fasa_status;
    pub fn fasa_profile_get_k_values(profile: *const fasa_profile, k_values: *mut u32,
                                     capacity: usize) -> fasa_status;
    pub fn fasa_profile_get_agreement(profile: *const fasa_profile, layer: usize,
                                      k_index: usize, out: *mut f32, capacity: usize)
        -> fasa_status;
    pub fn fasa_profile_get_fcs(profile: *const fasa_profile, layer: usize, mode: c_int,
                                head: usize, fcs: *mut u32, capacity: usize, n_fc: *mut usize)
        -> fasa_status;
    pub fn fasa_profile_get_dense_layer(profile: *const fasa_profile, layer: usize,
                                        dense: *mut c_int) -> fasa_status;
    pub fn fasa_profile_set_dense_layer(profile: *mut fasa_profile, layer: usize, dense: c_int)
        -> fasa_status;
    pub fn fasa_select_options_default(options: *mut fasa_select_options);
    pub fn fasa_profile_select(profile: *mut fasa_profile, options: *const fasa_select_options)
        -> fasa_status;
    pub fn fasa_profile_save(profile: *const fasa_profile, path: *const c_char) -> fasa_status;
    pub fn fasa_profile_save_buffer(profile: *const fasa_profile, buf: *mut c_void,
                                    capacity: usize, size: *mut usize) -> fasa_status;
    pub fn fasa_profile_load(path: *const c_char, out: *mut *mut fasa_profile) -> fasa_status;
    pub fn fasa_profile_load_buffer(buf: *const c_void, size: usize,
                                    out: *mut *mut fasa_profile) -> fasa_status;
    pub fn fasa_profile_describe(profile: *const fasa_profile, text: *mut c_char,
                                 capacity: usize, length: *mut usize) -> fasa_status;

    pub fn fasa_calibrator_create(config: *const fasa_calib_config,
                                  out: *mut *mut fasa_calibrator) -> fasa_status;
    pub fn fasa_calibrator_destroy(cal: *mut fasa_calibrator);
    pub fn fasa_calibrator_add_step(cal: *mut fasa_calibrator, ctx: *mut fasa_ctx, layer: usize,
                                    q: *const fasa_view, k: *const fasa_view) -> fasa_status;
    pub fn fasa_calibrator_finish(cal: *const fasa_calibrator,
                                  options: *const fasa_select_options,
                                  out: *mut *mut fasa_profile) -> fasa_status;
    pub fn fasa_calibrate(config: *const fasa_calib_config, steps: *const fasa_calib_step,
                          n_steps: usize, options: *const fasa_select_options,
                          out: *mut *mut fasa_profile) -> fasa_status;

    pub fn fasa_label_cache_size(profile: *const fasa_profile, layer: usize, mode: c_int,
                                 dtype: c_int, capacity_tokens: usize, bytes: *mut usize)
        -> fasa_status;
    pub fn fasa_label_cache_init(mem: *mut c_void, bytes: usize, profile: *const fasa_profile,
                                 layer: usize, mode: c_int, dtype: c_int,
                                 capacity_tokens: usize, out: *mut *mut fasa_label_cache)
        -> fasa_status;
    pub fn fasa_label_cache_append(cache: *mut fasa_label_cache, k: *const fasa_view)
        -> fasa_status;
    pub fn fasa_label_cache_build(cache: *mut fasa_label_cache, k: *const fasa_view)
        -> fasa_status;
    pub fn fasa_label_cache_tokens(cache: *const fasa_label_cache, n_tokens: *mut usize)
        -> fasa_status;
    pub fn fasa_label_cache_reset(cache: *mut fasa_label_cache) -> fasa_status;

    pub fn fasa_predict_max_selected(budget: f64, t: usize, max_selected: *mut usize)
        -> fasa_status;
    pub fn fasa_predict_workspace_size(ctx: *mut fasa_ctx, profile: *const fasa_profile,
                                       q: *const fasa_view, t: usize, mode: c_int,
                                       bytes: *mut usize) -> fasa_status;
    pub fn fasa_predict(ctx: *mut fasa_ctx, profile: *const fasa_profile, layer: usize,
                        mode: c_int, q: *const fasa_view, k: *const fasa_view, budget: f64,
                        indices: *mut u32, index_stride: usize, counts: *mut u32,
                        scores: *mut f32, workspace: *mut c_void, workspace_size: usize)
        -> fasa_status;
    pub fn fasa_predict_cached(ctx: *mut fasa_ctx, profile: *const fasa_profile, layer: usize,
                               mode: c_int, q: *const fasa_view, cache: *mut fasa_label_cache,
                               budget: f64, indices: *mut u32, index_stride: usize,
                               counts: *mut u32, scores: *mut f32, workspace: *mut c_void,
                               workspace_size: usize) -> fasa_status;

    pub fn fasa_attend_workspace_size(ctx: *mut fasa_ctx, q: *const fasa_view,
                                      k: *const fasa_view, v: *const fasa_view, mode: c_int,
                                      index_stride: usize, bytes: *mut usize) -> fasa_status;
    pub fn fasa_attend(ctx: *mut fasa_ctx, mode: c_int, q: *const fasa_view, k: *const fasa_view,
                       v: *const fasa_view, indices: *const u32, index_stride: usize,
                       counts: *const u32, scale: f32, out: *const fasa_view, lse: *mut f32,
                       workspace: *mut c_void, workspace_size: usize) -> fasa_status;
    pub fn fasa_attend_dense_workspace_size(ctx: *mut fasa_ctx, q: *const fasa_view,
                                            k: *const fasa_view, v: *const fasa_view,
                                            bytes: *mut usize) -> fasa_status;
    pub fn fasa_attend_dense(ctx: *mut fasa_ctx, q: *const fasa_view, k: *const fasa_view,
                             v: *const fasa_view, scale: f32, out: *const fasa_view,
                             lse: *mut f32, workspace: *mut c_void, workspace_size: usize)
        -> fasa_status;

    pub fn fasa_decode_step_workspace_size(ctx: *mut fasa_ctx, profile: *const fasa_profile,
                                           q: *const fasa_view, k: *const fasa_view,
                                           v: *const fasa_view, mode: c_int, budget: f64,
                                           bytes: *mut usize) -> fasa_status;
    pub fn fasa_decode_step(ctx: *mut fasa_ctx, profile: *const fasa_profile, layer: usize,
                            mode: c_int, q: *const fasa_view, k: *const fasa_view,
                            v: *const fasa_view, cache: *mut fasa_label_cache, budget: f64,
                            scale: f32, out: *const fasa_view, lse: *mut f32,
                            workspace: *mut c_void, workspace_size: usize) -> fasa_status;

    pub fn fasa_attention_workspace_size(ctx: *mut fasa_ctx, desc: *const fasa_attention_desc,
                                         bytes: *mut usize) -> fasa_status;
    pub fn fasa_attention(ctx: *mut fasa_ctx, desc: *const fasa_attention_desc,
                          workspace: *mut c_void, workspace_size: usize) -> fasa_status;
    pub fn fasa_plan_size(bytes: *mut usize) -> fasa_status;
    pub fn fasa_plan_init(ctx: *mut fasa_ctx, desc: *const fasa_attention_desc, mem: *mut c_void,
                          bytes: usize, out: *mut *mut fasa_plan) -> fasa_status;
    pub fn fasa_plan_workspace_size(plan: *const fasa_plan, bytes: *mut usize) -> fasa_status;
    pub fn fasa_plan_phases(plan: *const fasa_plan, n_phases: *mut u32) -> fasa_status;
    pub fn fasa_execute(ctx: *mut fasa_ctx, plan: *const fasa_plan,
                        data: *const fasa_attention_data, workspace: *mut c_void,
                        workspace_size: usize) -> fasa_status;
    pub fn fasa_execute_check(ctx: *mut fasa_ctx, plan: *const fasa_plan,
                              data: *const fasa_attention_data, workspace: *mut c_void,
                              workspace_size: usize) -> fasa_status;
    pub fn fasa_execute_share(plan: *const fasa_plan, data: *const fasa_attention_data,
                              workspace: *mut c_void, phase: u32, ith: u32, nth: u32)
        -> fasa_status;
}
