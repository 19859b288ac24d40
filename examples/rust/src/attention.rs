//! The descriptor API of fasa.h: one attention call with per-query
//! visibility (causal, cell ranges, an additive mask), logit parameters,
//! a batch of sequences decoded together over one KV buffer, and plans
//! run on libfasa's threads or the caller's own (`Plan::execute_on_threads`).
//!
//! Every slice handed to C is checked here against the extent C will read
//! or write, so safe code cannot make libfasa leave a slice; the contents
//! (ranges ascending, indices visible, ...) are checked by libfasa before
//! it writes anything.
use std::marker::PhantomData;
use std::mem::size_of;
use std::os::raw::c_void;
use std::ptr;

use crate::cache::LabelCache;
use crate::context::{Context, Selection};
use crate::error::{check, FasaError, Result};
use crate::ffi;
use crate::profile::{GqaMode, Profile};
use crate::view::{Element, View, ViewMut, F16};

/// An additive mask row per query (llama.cpp's KQ_mask, HF's float mask):
/// -inf hides a cell, a finite value is added to its logit.
#[derive(Clone, Copy, Debug)]
pub enum MaskData<'a> {
    F32(&'a [f32]),
    F16(&'a [F16]),
}

/// Which cells each query sees (fasa_visibility).
#[derive(Clone, Copy, Debug, Default)]
pub enum Visibility<'a> {
    /// Query i of n_q sees cells [0, t - n_q + i + 1): the queries are the
    /// last cells of one sequence.
    #[default]
    Causal,
    /// Query i sees the union of `[ranges[2p], ranges[2p+1])` for p in
    /// `range_first[i] .. range_first[i+1]` (ascending, disjoint, non-empty).
    /// A batch decode: each query its own sequence's cells.
    Ranges { ranges: &'a [u32], range_first: &'a [u32] },
    /// Row i of the mask starts at element `i * stride` and has `cells`
    /// (>= t) entries.
    Mask { mask: MaskData<'a>, stride: usize, cells: usize },
}

/// What happens to the logits (fasa_attn_params); `Default` is plain
/// softmax with scale 1/sqrt(head_dim).
#[derive(Clone, Copy, Debug, Default)]
pub struct AttnParams<'a> {
    /// 0 = 1/sqrt(head_dim).
    pub scale: f32,
    /// 0 = off; else x = softcap * tanh(x / softcap).
    pub softcap: f32,
    /// One sink logit per query head (joins the softmax denominator).
    pub sinks: Option<&'a [f32]>,
    /// ALiBi slopes per query head (with `Visibility::Causal`).
    pub alibi_slopes: Option<&'a [f32]>,
    /// Sliding window in cells (`Visibility::Causal` only), 0 = off.
    pub window: u32,
}

/// What the call computes.
#[derive(Debug)]
pub enum Op<'a> {
    /// Softmax attention over every visible cell.
    Dense,
    /// Attention over given token sets (a `Selection`, e.g. from `predict`).
    Sparse(&'a Selection),
    /// TIP then attention over the selected cells, for one layer; dense for
    /// a dense layer and for each query whose visible count fits its budget.
    Fasa {
        profile: &'a Profile,
        layer: usize,
        mode: GqaMode,
        budget: f64,
        /// Scores from the label cache when given (the fast path), else from k.
        cache: Option<&'a mut LabelCache>,
        /// Per-query budgets (each > 0 and <= budget), or None.
        budgets: Option<&'a [f32]>,
        /// Per-query, per-set selection thresholds kept between steps of a
        /// batch ([n_q][n_sets], start with NaN): a speed hint only.
        select_hints: Option<&'a mut [f32]>,
    },
}

/// One attention call: `q [n_q][Hq][d]`, `k`/`v` the `t` cells of the KV
/// buffer, the output `out [n_q][Hq][dv]` and an optional `lse [n_q][Hq]`.
pub struct Attention<'a, Q: Element, K: Element, V: Element, O: Element> {
    pub q: &'a View<'a, Q>,
    pub k: &'a View<'a, K>,
    pub v: &'a View<'a, V>,
    pub out: &'a mut ViewMut<'a, O>,
    pub lse: Option<&'a mut [f32]>,
    pub visibility: Visibility<'a>,
    pub params: AttnParams<'a>,
    pub op: Op<'a>,
}

impl<'a, Q: Element, K: Element, V: Element, O: Element> Attention<'a, Q, K, V, O> {
    /// Dense causal attention; set the other fields as needed.
    pub fn new(q: &'a View<'a, Q>, k: &'a View<'a, K>, v: &'a View<'a, V>,
               out: &'a mut ViewMut<'a, O>) -> Self {
        Attention { q, k, v, out, lse: None, visibility: Visibility::Causal,
                    params: AttnParams::default(), op: Op::Dense }
    }
}

fn too_small(what: &str, need: usize, have: usize) -> FasaError {
    FasaError::new(ffi::FASA_ERR_BUFFER_TOO_SMALL, format!("{what}: needs {need} elements, has {have}"))
}

/// The C structs of one call, at stable addresses (boxed) for plans.
struct Raw {
    desc: ffi::fasa_attention_desc,
    views: [ffi::fasa_view; 4],
    vis: ffi::fasa_visibility,
    params: ffi::fasa_attn_params,
}

impl<'a, Q: Element, K: Element, V: Element, O: Element> Attention<'a, Q, K, V, O> {
    /// Check every extent C will touch and fill the C structs.
    fn raw(&mut self) -> Result<Box<Raw>> {
        let (qs, ks) = (self.q.shape(), self.k.shape());
        let (n_q, hq, t) = (qs.tokens, qs.heads, ks.tokens);
        let mut r = Box::new(Raw {
            desc: ffi::fasa_attention_desc {
                struct_size: size_of::<ffi::fasa_attention_desc>(), op: ffi::FASA_OP_DENSE, mode: 0,
                q: ptr::null(), k: ptr::null(), v: ptr::null(), out: ptr::null(), lse: ptr::null_mut(),
                visibility: ptr::null(), params: ptr::null(), profile: ptr::null(), layer: 0,
                label_cache: ptr::null_mut(), budget: 0.0, budgets: ptr::null(),
                indices: ptr::null_mut(), index_stride: 0, counts: ptr::null_mut(),
                scores: ptr::null_mut(), select_hints: ptr::null_mut(), n_threads: 0, reserved: 0,
            },
            views: [*self.q.as_raw(), *self.k.as_raw(), *self.v.as_raw(), *self.out.as_raw()],
            vis: ffi::fasa_visibility {
                struct_size: size_of::<ffi::fasa_visibility>(), kind: ffi::FASA_VISIBLE_CAUSAL,
                mask_dtype: 0, ranges: ptr::null(), range_first: ptr::null(), mask: ptr::null(),
                mask_stride: 0, mask_cells: 0,
            },
            params: ffi::fasa_attn_params {
                struct_size: size_of::<ffi::fasa_attn_params>(), scale: self.params.scale,
                softcap: self.params.softcap, sinks: ptr::null(), alibi_slopes: ptr::null(),
                window: self.params.window, reserved: 0,
            },
        });
        if let Some(l) = self.lse.as_deref_mut() {
            if l.len() < n_q * hq {
                return Err(too_small("lse", n_q * hq, l.len()));
            }
            r.desc.lse = l.as_mut_ptr();
        }
        for (name, s) in [("sinks", self.params.sinks), ("alibi_slopes", self.params.alibi_slopes)] {
            if let Some(s) = s {
                if s.len() < hq {
                    return Err(too_small(name, hq, s.len()));
                }
            }
        }
        r.params.sinks = self.params.sinks.map_or(ptr::null(), |s| s.as_ptr());
        r.params.alibi_slopes = self.params.alibi_slopes.map_or(ptr::null(), |s| s.as_ptr());
        match self.visibility {
            Visibility::Causal => {}
            Visibility::Ranges { ranges, range_first } => {
                if range_first.len() != n_q + 1 {
                    return Err(FasaError::new(ffi::FASA_ERR_BAD_SHAPE, format!(
                        "visibility: range_first has {} entries, n_q + 1 = {}", range_first.len(), n_q + 1)));
                }
                if range_first.windows(2).any(|w| w[0] > w[1]) {
                    return Err(FasaError::new(ffi::FASA_ERR_BAD_INDEX, "visibility: range_first decreases"));
                }
                let pairs = range_first[n_q] as usize;
                if ranges.len() < 2 * pairs {
                    return Err(too_small("visibility: ranges", 2 * pairs, ranges.len()));
                }
                r.vis.kind = ffi::FASA_VISIBLE_RANGES;
                r.vis.ranges = ranges.as_ptr();
                r.vis.range_first = range_first.as_ptr();
                r.desc.visibility = &r.vis;
            }
            Visibility::Mask { mask, stride, cells } => {
                let (ptr_, len, dtype) = match mask {
                    MaskData::F32(m) => (m.as_ptr() as *const c_void, m.len(), ffi::FASA_DTYPE_F32),
                    MaskData::F16(m) => (m.as_ptr() as *const c_void, m.len(), ffi::FASA_DTYPE_F16),
                };
                let need = (n_q.saturating_sub(1)).checked_mul(stride).and_then(|x| x.checked_add(cells))
                    .ok_or_else(|| FasaError::new(ffi::FASA_ERR_OVERFLOW, "visibility: mask extent"))?;
                if len < need || cells < t {
                    return Err(too_small("visibility: mask", need.max(t), len));
                }
                r.vis.kind = ffi::FASA_VISIBLE_MASK;
                r.vis.mask_dtype = dtype;
                r.vis.mask = ptr_;
                r.vis.mask_stride = stride;
                r.vis.mask_cells = cells;
                r.desc.visibility = &r.vis;
            }
        }
        match &mut self.op {
            Op::Dense => {}
            Op::Sparse(sel) => {
                if sel.n_q != n_q || sel.n_sets != sel.mode.n_sets(hq, ks.heads)
                    || sel.counts.len() != sel.n_q * sel.n_sets
                    || sel.indices.len() < sel.n_q * sel.n_sets * sel.index_stride
                    || sel.counts.iter().any(|&c| c as usize > sel.index_stride) {
                    return Err(FasaError::new(ffi::FASA_ERR_BUFFER_TOO_SMALL,
                        "attention: the selection does not fit these q/k shapes"));
                }
                r.desc.op = ffi::FASA_OP_SPARSE;
                r.desc.mode = sel.mode as i32;
                r.desc.indices = sel.indices.as_ptr() as *mut u32; // read only for SPARSE
                r.desc.counts = sel.counts.as_ptr() as *mut u32;
                r.desc.index_stride = sel.index_stride;
            }
            Op::Fasa { profile, layer, mode, budget, cache, budgets, select_hints } => {
                r.desc.op = ffi::FASA_OP_FASA;
                r.desc.mode = *mode as i32;
                r.desc.profile = profile.as_ptr();
                r.desc.layer = *layer;
                r.desc.budget = *budget;
                if let Some(c) = cache.as_deref_mut() {
                    if c.mode() != *mode {
                        return Err(FasaError::new(ffi::FASA_ERR_INVALID_ARGUMENT, format!(
                            "attention: mode {:?} but the label cache was made for {:?}", mode, c.mode())));
                    }
                    r.desc.label_cache = c.as_ptr();
                }
                if let Some(b) = budgets {
                    if b.len() < n_q {
                        return Err(too_small("budgets", n_q, b.len()));
                    }
                    r.desc.budgets = b.as_ptr();
                }
                if let Some(h) = select_hints.as_deref_mut() {
                    let need = n_q * mode.n_sets(hq, ks.heads);
                    if h.len() < need {
                        return Err(too_small("select_hints", need, h.len()));
                    }
                    r.desc.select_hints = h.as_mut_ptr();
                }
            }
        }
        let base = r.views.as_ptr();
        // SAFETY: indices 0..4 of a 4-element array inside the box.
        unsafe {
            r.desc.q = base;
            r.desc.k = base.add(1);
            r.desc.v = base.add(2);
            r.desc.out = base.add(3);
        }
        r.desc.params = &r.params;
        Ok(r)
    }
}

impl Context {
    /// Validate, plan and run one attention call on this context's threads.
    pub fn attention<Q: Element, K: Element, V: Element, O: Element>(
        &mut self, call: &mut Attention<'_, Q, K, V, O>) -> Result<()> {
        let r = call.raw()?;
        let mut bytes = 0usize;
        let ctx = self.as_ptr();
        let st = unsafe { ffi::fasa_attention_workspace_size(ctx, &r.desc, &mut bytes) };
        self.status_of(st)?;
        let (ws, size) = self.workspace_ptr(bytes);
        let st = unsafe { ffi::fasa_attention(ctx, &r.desc, ws, size) };
        self.status_of(st)
    }

    /// Validate a call into a plan (every shape, option and extent error is
    /// reported here), to run any number of times. The plan borrows the
    /// call's data for its lifetime.
    pub fn plan<'a, Q: Element, K: Element, V: Element, O: Element>(
        &mut self, mut call: Attention<'a, Q, K, V, O>, n_threads: usize) -> Result<Plan<'a>> {
        let mut raw = call.raw()?;
        raw.desc.n_threads = n_threads.min(i32::MAX as usize) as i32;
        let mut bytes = 0usize;
        check(unsafe { ffi::fasa_plan_size(&mut bytes) })?;
        let mut mem = vec![0u64; bytes.div_ceil(8)];
        let mut plan = ptr::null_mut();
        let ctx = self.as_ptr();
        let st = unsafe { ffi::fasa_plan_init(ctx, &raw.desc, mem.as_mut_ptr() as *mut c_void, bytes, &mut plan) };
        self.status_of(st)?;
        let mut ws = 0usize;
        let mut phases = 0u32;
        check(unsafe { ffi::fasa_plan_workspace_size(plan, &mut ws) })?;
        check(unsafe { ffi::fasa_plan_phases(plan, &mut phases) })?;
        Ok(Plan { _raw: raw, _mem: mem, plan, workspace: vec![0u8; ws.max(1)], phases,
                  threads: n_threads.max(1), _data: PhantomData })
    }
}

/// A validated attention call (fasa_plan) with its workspace. It holds the
/// borrows of the call (`'a`), so the data cannot change under it.
pub struct Plan<'a> {
    _raw: Box<Raw>,
    _mem: Vec<u64>,
    plan: *mut ffi::fasa_plan,
    workspace: Vec<u8>,
    phases: u32,
    threads: usize,
    _data: PhantomData<&'a mut ()>,
}

// SAFETY: the plan is plain memory owned here; executing it needs `&mut self`.
unsafe impl Send for Plan<'_> {}

struct Shared(*const ffi::fasa_plan, *mut c_void);
// SAFETY: shares of one phase touch disjoint parts of the workspace and the
// outputs (fasa.h: fasa_execute_share); phases are separated by a barrier.
unsafe impl Sync for Shared {}

impl Plan<'_> {
    /// Number of phases of the plan.
    pub fn phases(&self) -> u32 {
        self.phases
    }

    /// Run every phase on the context's OpenMP threads.
    pub fn execute(&mut self, ctx: &mut Context) -> Result<()> {
        let c = ctx.as_ptr();
        let st = unsafe {
            ffi::fasa_execute(c, self.plan, ptr::null(), self.workspace.as_mut_ptr() as *mut c_void,
                              self.workspace.len())
        };
        ctx.status_of(st)
    }

    /// Run on `nth` threads of the caller's (scoped std threads here; a
    /// runtime uses its own pool the same way): each phase's shares on
    /// every thread, a barrier between phases, no OpenMP. `nth` is at most
    /// the thread count the plan was made for. The results are the same
    /// bits for every `nth`.
    pub fn execute_on_threads(&mut self, ctx: &mut Context, nth: usize) -> Result<()> {
        if nth == 0 || nth > self.threads {
            return Err(FasaError::new(ffi::FASA_ERR_INVALID_ARGUMENT, format!(
                "execute_on_threads: nth {nth} not in 1..={}", self.threads)));
        }
        let c = ctx.as_ptr();
        let st = unsafe {
            ffi::fasa_execute_check(c, self.plan, ptr::null(), self.workspace.as_mut_ptr() as *mut c_void,
                                    self.workspace.len())
        };
        ctx.status_of(st)?;
        let shared = Shared(self.plan, self.workspace.as_mut_ptr() as *mut c_void);
        let barrier = std::sync::Barrier::new(nth);
        let phases = self.phases;
        let run = |ith: usize| -> ffi::fasa_status {
            let mut worst = ffi::FASA_OK;
            for ph in 0..phases {
                let sh = &shared;
                let st = unsafe { ffi::fasa_execute_share(sh.0, ptr::null(), sh.1, ph, ith as u32, nth as u32) };
                if st != ffi::FASA_OK {
                    worst = st;
                }
                barrier.wait();
            }
            worst
        };
        let statuses: Vec<ffi::fasa_status> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..nth).map(|i| { let run = &run; s.spawn(move || run(i)) }).collect();
            let mut v = vec![run(0)];
            v.extend(handles.into_iter().map(|h| h.join().unwrap_or(ffi::FASA_ERR_BAD_STATE)));
            v
        });
        match statuses.into_iter().find(|&s| s != ffi::FASA_OK) {
            Some(st) => check(st),
            None => Ok(()),
        }
    }
}

/// RANGES visibility of a batch of `rows` sequences decoding one query
/// each, row b owning cells `[b * row_cells, b * row_cells + lens[b])`:
/// (ranges, range_first) for `Visibility::Ranges`.
pub fn batch_ranges(row_cells: usize, lens: &[usize]) -> (Vec<u32>, Vec<u32>) {
    let mut ranges = Vec::with_capacity(2 * lens.len());
    let mut first = Vec::with_capacity(lens.len() + 1);
    first.push(0u32);
    for (b, &n) in lens.iter().enumerate() {
        if n > 0 {
            ranges.push((b * row_cells) as u32);
            ranges.push((b * row_cells + n) as u32);
        }
        first.push((ranges.len() / 2) as u32);
    }
    (ranges, first)
}
