//! The descriptor API: a batch decoded in one call over one KV buffer
//! (ranges and masks), FASA in a batch, plans on libfasa's threads and on
//! the caller's, and the extents checked before C is called.
mod common;

use common::*;
use fasa::*;

const HQ: usize = 4;
const HKV: usize = 2;
const D: usize = 16;

fn profile() -> Profile {
    let shape = ModelShape { n_layers: 2, n_q_heads: HQ, n_kv_heads: HKV, head_dim: D, pair_layout: PairLayout::Half };
    let fcs: Vec<u32> = (0..2 * HQ).flat_map(|i| [(i % 8) as u32, ((i + 3) % 8) as u32]).collect();
    Profile::from_fcs(shape, &fcs, 2, None).unwrap()
}

/// Three sequences in one token-major buffer [B][cap][Hkv][D].
struct Batch {
    cap: usize,
    lens: Vec<usize>,
    k: Vec<f32>,
    v: Vec<f32>,
    q: Vec<f32>,
}

fn batch() -> Batch {
    let mut rng = Rng::new(3);
    let (cap, lens) = (64usize, vec![40usize, 64, 17]);
    let n = lens.len() * cap * HKV * D;
    Batch { cap, lens, k: rng.uniform(n), v: rng.uniform(n), q: rng.uniform(3 * HQ * D) }
}

fn row<'a>(b: &'a Batch, data: &'a [f32], i: usize) -> View<'a, f32> {
    let start = i * b.cap * HKV * D;
    View::contiguous(&data[start..start + b.lens[i] * HKV * D], b.lens[i], HKV, D).unwrap()
}

#[test]
fn batch_in_one_call_equals_each_sequence() {
    let b = batch();
    let prof = profile();
    let mut ctx = Context::new().unwrap();
    let t = (b.lens.len() - 1) * b.cap + b.lens[2];
    let k = View::contiguous(&b.k, t, HKV, D).unwrap();
    let v = View::contiguous(&b.v, t, HKV, D).unwrap();
    let q = View::contiguous(&b.q, 3, HQ, D).unwrap();
    let (ranges, first) = batch_ranges(b.cap, &b.lens);
    for fasa_op in [false, true] {
        let mut out = vec![0f32; 3 * HQ * D];
        {
            let mut ov = ViewMut::contiguous(&mut out, 3, HQ, D).unwrap();
            let mut call = Attention::new(&q, &k, &v, &mut ov);
            call.visibility = Visibility::Ranges { ranges: &ranges, range_first: &first };
            if fasa_op {
                call.op = Op::Fasa { profile: &prof, layer: 1, mode: GqaMode::PerHead, budget: 8.0,
                                     cache: None, budgets: None, select_hints: None };
            }
            ctx.attention(&mut call).unwrap();
        }
        for i in 0..3 {
            let qi = View::contiguous(&b.q[i * HQ * D..(i + 1) * HQ * D], 1, HQ, D).unwrap();
            let mut want = vec![0f32; HQ * D];
            let mut wv = ViewMut::contiguous(&mut want, 1, HQ, D).unwrap();
            if fasa_op {
                ctx.decode_step(&prof, 1, GqaMode::PerHead, &qi, &row(&b, &b.k, i), &row(&b, &b.v, i), None,
                                8.0, 0.0, &mut wv, None).unwrap();
            } else {
                ctx.attend_dense(&qi, &row(&b, &b.k, i), &row(&b, &b.v, i), 0.0, &mut wv, None).unwrap();
            }
            for (x, y) in out[i * HQ * D..(i + 1) * HQ * D].iter().zip(&want) {
                assert!((x - y).abs() <= 1e-6, "row {i} fasa {fasa_op}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn mask_equals_ranges() {
    let b = batch();
    let mut ctx = Context::new().unwrap();
    let t = (b.lens.len() - 1) * b.cap + b.lens[2];
    let k = View::contiguous(&b.k, t, HKV, D).unwrap();
    let v = View::contiguous(&b.v, t, HKV, D).unwrap();
    let q = View::contiguous(&b.q, 3, HQ, D).unwrap();
    let (ranges, first) = batch_ranges(b.cap, &b.lens);
    let mut mask = vec![f32::NEG_INFINITY; 3 * t];
    let mut mask16 = vec![F16::from_f32(f32::NEG_INFINITY); 3 * t];
    for (i, &n) in b.lens.iter().enumerate() {
        for j in i * b.cap..i * b.cap + n {
            mask[i * t + j] = 0.0;
            mask16[i * t + j] = F16::from_f32(0.0);
        }
    }
    let mut outs = Vec::new();
    for vis in [Visibility::Ranges { ranges: &ranges, range_first: &first },
                Visibility::Mask { mask: MaskData::F32(&mask), stride: t, cells: t },
                Visibility::Mask { mask: MaskData::F16(&mask16), stride: t, cells: t }] {
        let mut out = vec![0f32; 3 * HQ * D];
        let mut ov = ViewMut::contiguous(&mut out, 3, HQ, D).unwrap();
        let mut call = Attention::new(&q, &k, &v, &mut ov);
        call.visibility = vis;
        ctx.attention(&mut call).unwrap();
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
}

#[test]
fn plans_on_libfasa_and_host_threads_give_the_same_bits() {
    let b = batch();
    let prof = profile();
    let mut ctx = Context::new().unwrap();
    let t = (b.lens.len() - 1) * b.cap + b.lens[2];
    let k = View::contiguous(&b.k, t, HKV, D).unwrap();
    let v = View::contiguous(&b.v, t, HKV, D).unwrap();
    let q = View::contiguous(&b.q, 3, HQ, D).unwrap();
    let (ranges, first) = batch_ranges(b.cap, &b.lens);
    let mut want = vec![0f32; 3 * HQ * D];
    {
        let mut ov = ViewMut::contiguous(&mut want, 3, HQ, D).unwrap();
        let mut call = Attention::new(&q, &k, &v, &mut ov);
        call.visibility = Visibility::Ranges { ranges: &ranges, range_first: &first };
        call.op = Op::Fasa { profile: &prof, layer: 1, mode: GqaMode::GroupShared, budget: 8.0,
                             cache: None, budgets: None, select_hints: None };
        ctx.attention(&mut call).unwrap();
    }
    for nth in 1..=3 {
        let mut got = vec![0f32; 3 * HQ * D];
        let mut hints = vec![f32::NAN; 3 * HKV];
        {
            let mut ov = ViewMut::contiguous(&mut got, 3, HQ, D).unwrap();
            let mut call = Attention::new(&q, &k, &v, &mut ov);
            call.visibility = Visibility::Ranges { ranges: &ranges, range_first: &first };
            call.op = Op::Fasa { profile: &prof, layer: 1, mode: GqaMode::GroupShared, budget: 8.0,
                                 cache: None, budgets: None, select_hints: Some(&mut hints) };
            let mut plan = ctx.plan(call, 3).unwrap();
            assert!(plan.phases() >= 1);
            plan.execute_on_threads(&mut ctx, nth).unwrap();
            plan.execute(&mut ctx).unwrap();
            assert_eq!(plan.execute_on_threads(&mut ctx, 4).unwrap_err().name, "FASA_ERR_INVALID_ARGUMENT");
        }
        assert_eq!(got, want, "{nth} host threads");
    }
}

#[test]
fn extents_are_checked_before_c() {
    let b = batch();
    let prof = profile();
    let mut ctx = Context::new().unwrap();
    let k = View::contiguous(&b.k, 40, HKV, D).unwrap();
    let q = View::contiguous(&b.q, 3, HQ, D).unwrap();
    let mut out = vec![0f32; 3 * HQ * D];
    let mut ov = ViewMut::contiguous(&mut out, 3, HQ, D).unwrap();
    let ranges = [0u32, 10, 0, 10];
    let first = [0u32, 1, 2, 3]; // 3 pairs, only 2 given
    let mut call = Attention::new(&q, &k, &k, &mut ov);
    call.visibility = Visibility::Ranges { ranges: &ranges, range_first: &first };
    assert_eq!(ctx.attention(&mut call).unwrap_err().name, "FASA_ERR_BUFFER_TOO_SMALL");
    let mut lse = vec![0f32; 5];
    call.visibility = Visibility::Causal;
    call.lse = Some(&mut lse);
    assert_eq!(ctx.attention(&mut call).unwrap_err().name, "FASA_ERR_BUFFER_TOO_SMALL");
    call.lse = None;
    let mut cache = LabelCache::new(&prof, 1, GqaMode::PerHead, DType::F32, 64).unwrap();
    cache.build(&k).unwrap();
    call.op = Op::Fasa { profile: &prof, layer: 1, mode: GqaMode::GroupShared, budget: 8.0,
                         cache: Some(&mut cache), budgets: None, select_hints: None };
    let err = ctx.attention(&mut call).unwrap_err();
    assert!(err.message.contains("label cache was made for PerHead"), "{err}");
    let short = vec![0f32; 10];
    call.op = Op::Dense;
    call.visibility = Visibility::Mask { mask: MaskData::F32(&short), stride: 40, cells: 40 };
    assert_eq!(ctx.attention(&mut call).unwrap_err().name, "FASA_ERR_BUFFER_TOO_SMALL");
    // errors are std::error::Error values with the C message
    call.visibility = Visibility::Causal;
    call.params.softcap = -1.0;
    let err: Box<dyn std::error::Error> = Box::new(ctx.attention(&mut call).unwrap_err());
    assert!(err.to_string().contains("softcap"), "{err}");
}
