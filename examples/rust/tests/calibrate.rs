//! One-shot calibration (`Profile::calibrate`, fasa_calibrate): it agrees
//! with the streaming `Calibrator`, recovers planted dominant FCs, and bad
//! input comes back as the right `FasaError`, never a panic.
mod common;

use common::*;
use fasa::*;

const LAYOUTS: [PairLayout; 3] = [PairLayout::Interleaved, PairLayout::Half, PairLayout::Adjacent];

/// Dims (d0, d1) of FC f (fasa.h: INTERLEAVED and ADJACENT (2f, 2f+1), HALF (f, f + d/2)).
fn fc_dims(layout: PairLayout, d: usize, f: usize) -> (usize, usize) {
    match layout {
        PairLayout::Half => (f, f + d / 2),
        PairLayout::Interleaved | PairLayout::Adjacent => (2 * f, 2 * f + 1),
    }
}

/// Random data of one step, in every form a test step may take.
struct StepData {
    layer: usize,
    t: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    q16: Vec<F16>,
    kb16: Vec<Bf16>,
    /// k head-major with room for t + 3 tokens.
    k_hm: Vec<f32>,
}

const HM_PAD: usize = 3;

fn step_data(rng: &mut Rng, layer: usize, t: usize, hq: usize, hkv: usize, d: usize, ints: bool) -> StepData {
    let (q, k) = if ints { (rng.ints(hq * d), rng.ints(t * hkv * d)) } else { (rng.uniform(hq * d), rng.uniform(t * hkv * d)) };
    let cap = t + HM_PAD;
    let mut k_hm = vec![f32::NAN; hkv * cap * d]; // padding is never read
    for j in 0..t {
        for g in 0..hkv {
            for i in 0..d {
                k_hm[(g * cap + j) * d + i] = k[(j * hkv + g) * d + i];
            }
        }
    }
    StepData {
        layer, t,
        q16: q.iter().map(|&x| F16::from_f32(x)).collect(),
        kb16: k.iter().map(|&x| Bf16::from_f32(x)).collect(),
        q, k, k_hm,
    }
}

/// Feeds step `i` of `data` to the streaming calibrator and returns the same
/// step for the one-shot call, with the element types and layout variant
/// `i % 4`: f32/f32, f16 q, bf16 k, head-major f32 k.
fn both<'a>(i: usize, s: &'a StepData, shape: ModelShape, cal: &mut Calibrator, ctx: &mut Context) -> CalibStep<'a> {
    let (hq, hkv, d) = (shape.n_q_heads, shape.n_kv_heads, shape.head_dim);
    let q = View::contiguous(&s.q, 1, hq, d).unwrap();
    let k = View::contiguous(&s.k, s.t, hkv, d).unwrap();
    match i % 4 {
        0 => {
            cal.add_step(ctx, s.layer, &q, &k).unwrap();
            CalibStep::new(s.layer, &q, &k)
        }
        1 => {
            let q16 = View::contiguous(&s.q16, 1, hq, d).unwrap();
            cal.add_step(ctx, s.layer, &q16, &k).unwrap();
            CalibStep::new(s.layer, &q16, &k)
        }
        2 => {
            let kb = View::contiguous(&s.kb16, s.t, hkv, d).unwrap();
            cal.add_step(ctx, s.layer, &q, &kb).unwrap();
            CalibStep::new(s.layer, &q, &kb)
        }
        _ => {
            let khm = View::new(&s.k_hm, Shape::head_major(s.t, hkv, d, s.t + HM_PAD)).unwrap();
            cal.add_step(ctx, s.layer, &q, &khm).unwrap();
            CalibStep::new(s.layer, &q, &khm)
        }
    }
}

/// Every observable of two profiles is equal.
fn assert_same(a: &Profile, b: &Profile, what: &str) {
    let info = a.info().unwrap();
    assert_eq!(info, b.info().unwrap(), "{what}: info");
    let s = info.shape;
    for l in 0..s.n_layers {
        for h in 0..s.n_q_heads {
            assert_eq!(a.fcs(l, GqaMode::PerHead, h).unwrap(), b.fcs(l, GqaMode::PerHead, h).unwrap(),
                       "{what}: layer {l} head {h}");
        }
        for g in 0..s.n_kv_heads {
            assert_eq!(a.fcs(l, GqaMode::GroupShared, g).unwrap(), b.fcs(l, GqaMode::GroupShared, g).unwrap(),
                       "{what}: layer {l} group {g}");
        }
        for ki in 0..info.n_k {
            assert_eq!(a.agreement(l, ki).unwrap(), b.agreement(l, ki).unwrap(), "{what}: agreement {l} {ki}");
        }
    }
    assert_eq!(a.k_values().unwrap(), b.k_values().unwrap(), "{what}: K values");
    assert_eq!(a.describe().unwrap(), b.describe().unwrap(), "{what}: describe");
    assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap(), "{what}: profile bytes");
}

#[test]
fn one_shot_equals_streaming_calibrator() {
    let mut rng = Rng::new(31);
    let (hq, hkv, d) = (4, 2, 16);
    let layer_order = [0usize, 1, 2, 2, 0, 1, 1, 0, 2, 0];
    let opts = [
        None,
        Some(SelectOptions { n_fc: 3, k: 8, ..SelectOptions::default() }),
        Some(SelectOptions { use_threshold: true, threshold_ratio: 0.6, min_fc: 2, max_fc: 5, budget_hint: 30,
                             ..SelectOptions::default() }),
    ];
    for layout in LAYOUTS {
        let shape = ModelShape { n_layers: 3, n_q_heads: hq, n_kv_heads: hkv, head_dim: d, pair_layout: layout };
        let config = CalibConfig::new(shape, &[3, 8, 20]);
        let data: Vec<StepData> = layer_order.iter().enumerate()
            .map(|(i, &l)| { let t = 5 + rng.below(50); step_data(&mut rng, l, t, hq, hkv, d, i % 3 == 0) })
            .collect();
        let mut cal = Calibrator::from_config(&config).unwrap();
        let mut ctx = Context::with_options(2, ffi::FASA_CPU_AUTO).unwrap();
        let steps: Vec<CalibStep> = data.iter().enumerate()
            .map(|(i, s)| both(i, s, shape, &mut cal, &mut ctx)).collect();
        assert_eq!(steps.iter().map(|s| s.layer()).collect::<Vec<_>>(), layer_order);
        for o in &opts {
            let one = Profile::calibrate(&config, &steps, o.as_ref()).unwrap();
            let streamed = cal.finish(o.as_ref()).unwrap();
            let what = format!("{layout:?} {o:?}");
            assert_same(&one, &streamed, &what);
            let info = one.info().unwrap();
            assert!(info.has_agreement && info.n_k == 3 && info.n_steps == 4, "{what}: {info:?}");
            // the comparison can tell profiles apart: the agreement varies,
            // and one step less changes the profile
            let a = one.agreement(2, 1).unwrap();
            assert!(a.iter().any(|&x| x != a[0]), "{what}: flat agreement {a:?}");
            let fewer = Profile::calibrate(&config, &steps[1..], o.as_ref()).unwrap();
            assert_ne!(fewer.to_bytes().unwrap(), one.to_bytes().unwrap(), "{what}");
        }
        // the library default K values when none are given
        let dflt = CalibConfig::new(shape, &[]);
        let one = Profile::calibrate(&dflt, &steps, None).unwrap();
        let mut cal = Calibrator::from_config(&dflt).unwrap();
        for (i, s) in data.iter().enumerate() {
            both(i, s, shape, &mut cal, &mut ctx);
        }
        assert_same(&one, &cal.finish(None).unwrap(), &format!("{layout:?} default K"));
        assert_eq!(one.k_values().unwrap(), vec![64, 128, 256, 512, 1024]);
    }
}

/// As tests/test_calibrate.c: every query head has its own planted FCs where
/// q is large (elsewhere 1e-3 noise), keys are N(0, 1), so the full logit is
/// essentially the planted FCs' sum and calibration must find them.
fn planted(layout: PairLayout, hq: usize, hkv: usize, f16: bool, seed: u64) {
    const L: usize = 2;
    const D: usize = 32;
    const NFC: usize = D / 2;
    const N_PLANT: usize = 3;
    const T: usize = 160;
    const N_STEPS: usize = 6;
    let mut rng = Rng::new(seed);
    let shape = ModelShape { n_layers: L, n_q_heads: hq, n_kv_heads: hkv, head_dim: D, pair_layout: layout };
    let config = CalibConfig::new(shape, &[16, 48]);
    let plant: Vec<Vec<usize>> = (0..L * hq).map(|_| {
        let mut p = Vec::new();
        while p.len() < N_PLANT {
            let f = rng.below(NFC);
            if !p.contains(&f) {
                p.push(f);
            }
        }
        p
    }).collect();
    let mut data = Vec::new();
    for _ in 0..N_STEPS {
        for l in 0..L {
            let k: Vec<f32> = (0..T * hkv * D).map(|_| rng.normal() as f32).collect();
            let mut q: Vec<f32> = (0..hq * D).map(|_| (1e-3 * rng.normal()) as f32).collect();
            for h in 0..hq {
                for &f in &plant[l * hq + h] {
                    let (d0, d1) = fc_dims(layout, D, f);
                    let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
                    q[h * D + d0] = sign * (2.0 + rng.uniform(1)[0].abs());
                    q[h * D + d1] = -sign * (2.0 + rng.uniform(1)[0].abs());
                }
            }
            let q16: Vec<F16> = q.iter().map(|&x| F16::from_f32(x)).collect();
            let k16: Vec<F16> = k.iter().map(|&x| F16::from_f32(x)).collect();
            data.push((l, q, k, q16, k16));
        }
    }
    let steps: Vec<CalibStep> = data.iter().map(|(l, q, k, q16, k16)| {
        if f16 {
            CalibStep::new(*l, &View::contiguous(q16, 1, hq, D).unwrap(), &View::contiguous(k16, T, hkv, D).unwrap())
        } else {
            CalibStep::new(*l, &View::contiguous(q, 1, hq, D).unwrap(), &View::contiguous(k, T, hkv, D).unwrap())
        }
    }).collect();
    let opts = SelectOptions { n_fc: N_PLANT as u32, budget_hint: 40, ..SelectOptions::default() }; // -> K = 48
    let prof = Profile::calibrate(&config, &steps, Some(&opts)).unwrap();
    let what = format!("{layout:?} Hq {hq} Hkv {hkv} f16 {f16}");
    let info = prof.info().unwrap();
    assert_eq!((info.selection_k, info.max_fc, info.n_steps), (48, N_PLANT, N_STEPS), "{what}");
    let g_size = hq / hkv;
    for l in 0..L {
        for h in 0..hq {
            let mut want: Vec<u32> = plant[l * hq + h].iter().map(|&f| f as u32).collect();
            want.sort();
            assert_eq!(prof.fcs(l, GqaMode::PerHead, h).unwrap(), want, "{what}: layer {l} head {h}");
        }
        // a group set holds only FCs planted in some head of its group
        for g in 0..hkv {
            let set = prof.fcs(l, GqaMode::GroupShared, g).unwrap();
            assert_eq!(set.len(), N_PLANT, "{what}");
            for f in set {
                assert!((g * g_size..(g + 1) * g_size).any(|h| plant[l * hq + h].contains(&(f as usize))),
                        "{what}: layer {l} group {g}: FC {f} was not planted");
            }
        }
        // at the larger K the agreement separates planted from other FCs
        let a = prof.agreement(l, 1).unwrap();
        let (mut lo_planted, mut hi_other) = (1f32, 0f32);
        for h in 0..hq {
            for f in 0..NFC {
                if plant[l * hq + h].contains(&f) {
                    lo_planted = lo_planted.min(a[h * NFC + f]);
                } else {
                    hi_other = hi_other.max(a[h * NFC + f]);
                }
            }
        }
        assert!(lo_planted > hi_other, "{what}: layer {l}: planted min CA {lo_planted} <= other max {hi_other}");
    }
}

#[test]
fn planted_dominant_fcs_are_recovered() {
    let mut seed = 100;
    for layout in LAYOUTS {
        for (hq, hkv) in [(4, 2), (2, 2), (4, 1)] {
            seed += 1;
            planted(layout, hq, hkv, false, seed);
        }
        seed += 1;
        planted(layout, 4, 2, true, seed);
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut rng = Rng::new(77);
    let (hq, hkv, d, t) = (4, 2, 16, 12);
    let shape = ModelShape { n_layers: 2, n_q_heads: hq, n_kv_heads: hkv, head_dim: d, pair_layout: PairLayout::Half };
    let config = CalibConfig::new(shape, &[2, 4]);
    let q = rng.uniform(hq * d);
    let k = rng.uniform(t * hkv * d);
    let qv = View::contiguous(&q, 1, hq, d).unwrap();
    let kv = View::contiguous(&k, t, hkv, d).unwrap();
    let good = [CalibStep::new(0, &qv, &kv), CalibStep::new(1, &qv, &kv)];
    let expect = |r: Result<Profile>, status: i32, what: &str| -> FasaError {
        let err = r.expect_err(what);
        assert_eq!(err.status, status, "{what}: {err}");
        assert_eq!(err.name, status_name(status), "{what}");
        assert!(!err.message.is_empty(), "{what}");
        err
    };
    let cal = |steps: &[CalibStep]| Profile::calibrate(&config, steps, None);

    // no step for a layer
    let err = expect(cal(&[]), ffi::FASA_ERR_BAD_STATE, "no steps");
    assert!(err.message.contains("[0, 1]"), "{err}");
    let err = expect(cal(&good[..1]), ffi::FASA_ERR_BAD_STATE, "layer 1 without steps");
    assert!(err.message.contains("[1]"), "{err}");
    expect(cal(&[good[0], good[0]]), ffi::FASA_ERR_BAD_STATE, "layer 0 twice");
    expect(cal(&[good[0], good[1], CalibStep::new(2, &qv, &kv)]), ffi::FASA_ERR_BAD_INDEX, "layer 2 of 2");
    expect(cal(&[CalibStep::new(usize::MAX, &qv, &kv)]), ffi::FASA_ERR_BAD_INDEX, "layer usize::MAX");

    // shapes that do not fit the config or each other
    let q2 = rng.uniform(2 * hq * d);
    let bad_q = [
        (View::contiguous(&q2, 2, hq, d).unwrap(), "q with 2 tokens"),
        (View::contiguous(&q2, 1, 2 * hq, d).unwrap(), "q with 2*Hq heads"),
        (View::contiguous(&q, 1, hq / 2, d).unwrap(), "q with Hq/2 heads"),
        (View::contiguous(&q, 1, hq, d / 2).unwrap(), "q with head_dim/2"),
    ];
    for (v, what) in &bad_q {
        expect(cal(&[CalibStep::new(0, v, &kv), good[1]]), ffi::FASA_ERR_BAD_SHAPE, what);
    }
    let bad_k = [
        (View::contiguous(&k, t / 2, 2 * hkv, d).unwrap(), "k with 2*Hkv heads"),
        (View::contiguous(&k, t, 1, d).unwrap(), "k with 1 head"),
        (View::contiguous(&k, 2 * t, hkv, d / 2).unwrap(), "k with head_dim/2"),
    ];
    for (v, what) in &bad_k {
        expect(cal(&[good[0], CalibStep::new(1, &qv, v)]), ffi::FASA_ERR_BAD_SHAPE, what);
    }
    let overlap = View::new(&k, Shape { tokens: t, heads: hkv, head_dim: d, token_stride: 0, head_stride: d }).unwrap();
    expect(cal(&[good[0], CalibStep::new(1, &qv, &overlap)]), ffi::FASA_ERR_BAD_STRIDE, "overlapping k rows");

    // NaN / Inf in q or k, in every element type, and the first bad step wins
    for (pos, x) in [(0, f32::NAN), (hq * d - 1, f32::INFINITY), (17, f32::NEG_INFINITY)] {
        let mut qn = q.clone();
        qn[pos] = x;
        let qn16: Vec<F16> = qn.iter().map(|&v| F16::from_f32(v)).collect();
        let what = format!("q[{pos}] = {x}");
        expect(cal(&[good[0], CalibStep::new(1, &View::contiguous(&qn, 1, hq, d).unwrap(), &kv)]),
               ffi::FASA_ERR_NONFINITE, &what);
        expect(cal(&[CalibStep::new(0, &View::contiguous(&qn16, 1, hq, d).unwrap(), &kv), good[1]]),
               ffi::FASA_ERR_NONFINITE, &format!("f16 {what}"));
        let mut kn = k.clone();
        kn[k.len() - 1 - pos] = x;
        let knb: Vec<Bf16> = kn.iter().map(|&v| Bf16::from_f32(v)).collect();
        expect(cal(&[good[0], CalibStep::new(1, &qv, &View::contiguous(&kn, t, hkv, d).unwrap())]),
               ffi::FASA_ERR_NONFINITE, &format!("k {what}"));
        expect(cal(&[good[0], CalibStep::new(1, &qv, &View::contiguous(&knb, t, hkv, d).unwrap())]),
               ffi::FASA_ERR_NONFINITE, &format!("bf16 k {what}"));
        // steps are checked in order: a bad layer before the NaN step is reported
        expect(cal(&[CalibStep::new(5, &qv, &kv), CalibStep::new(1, &View::contiguous(&qn, 1, hq, d).unwrap(), &kv)]),
               ffi::FASA_ERR_BAD_INDEX, &format!("bad layer before {what}"));
    }

    // bad configs
    let with_k = |ks: &[u32]| CalibConfig::new(shape, ks);
    for ks in [&[4u32, 2][..], &[0, 2], &[2, 2]] {
        expect(Profile::calibrate(&with_k(ks), &good, None), ffi::FASA_ERR_INVALID_ARGUMENT, &format!("K {ks:?}"));
        assert_eq!(Calibrator::new(shape, ks).unwrap_err().status, ffi::FASA_ERR_INVALID_ARGUMENT);
    }
    let seventeen: Vec<u32> = (1..=17).collect();
    expect(Profile::calibrate(&with_k(&seventeen), &good, None), ffi::FASA_ERR_INVALID_ARGUMENT, "17 K values");
    assert_eq!(Calibrator::new(shape, &seventeen).unwrap_err().status, ffi::FASA_ERR_INVALID_ARGUMENT);
    assert!(Profile::calibrate(&with_k(&seventeen[..16]), &good, None).is_ok(), "16 K values are fine");
    let bad_shapes = [
        (ModelShape { n_layers: 0, ..shape }, ffi::FASA_ERR_ZERO_SIZE, "0 layers"),
        (ModelShape { n_kv_heads: 3, ..shape }, ffi::FASA_ERR_BAD_SHAPE, "Hkv 3 of Hq 4"),
        (ModelShape { head_dim: 15, ..shape }, ffi::FASA_ERR_BAD_SHAPE, "odd head_dim"),
    ];
    for (s, status, what) in bad_shapes {
        expect(Profile::calibrate(&CalibConfig::new(s, &[2, 4]), &good, None), status, what);
    }

    // bad selection options
    let bad_opts = [
        SelectOptions { n_fc: 0, ..SelectOptions::default() },
        SelectOptions { n_fc: (d / 2 + 1) as u32, ..SelectOptions::default() },
        SelectOptions { n_fc: 2, k: 3, ..SelectOptions::default() },
        SelectOptions { use_threshold: true, threshold_ratio: f32::NAN, min_fc: 1, max_fc: 4, ..SelectOptions::default() },
        SelectOptions { use_threshold: true, threshold_ratio: 0.5, min_fc: 5, max_fc: 4, ..SelectOptions::default() },
    ];
    for o in &bad_opts {
        expect(Profile::calibrate(&config, &good, Some(o)), ffi::FASA_ERR_INVALID_ARGUMENT, &format!("{o:?}"));
    }

    // and the good input still calibrates
    let prof = Profile::calibrate(&config, &good, Some(&SelectOptions { n_fc: 2, ..SelectOptions::default() })).unwrap();
    assert_eq!(prof.info().unwrap().max_fc, 2);
}

#[test]
fn calibrate_runs_on_several_threads_at_once() {
    let mut rng = Rng::new(5);
    let shape = ModelShape { n_layers: 1, n_q_heads: 2, n_kv_heads: 1, head_dim: 8, pair_layout: PairLayout::Interleaved };
    let config = CalibConfig::new(shape, &[2, 5]);
    let data: Vec<(Vec<f32>, Vec<f32>)> = (0..4).map(|_| (rng.uniform(2 * 8), rng.uniform(30 * 8))).collect();
    let run = || {
        let steps: Vec<CalibStep> = data.iter()
            .map(|(q, k)| CalibStep::new(0, &View::contiguous(q, 1, 2, 8).unwrap(), &View::contiguous(k, 30, 1, 8).unwrap()))
            .collect();
        Profile::calibrate(&config, &steps, None).unwrap().to_bytes().unwrap()
    };
    let alone = run();
    let together: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(run)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for bytes in together {
        assert_eq!(bytes, alone);
    }
}

#[test]
fn calib_config_struct_size_is_checked_by_c() {
    use std::mem::size_of;
    let q = vec![1f32; 16];
    let k = vec![1f32; 3 * 8];
    let qv = View::contiguous(&q, 1, 2, 8).unwrap();
    let kv = View::contiguous(&k, 3, 1, 8).unwrap();
    let step = ffi::fasa_calib_step { layer: 0, q: qv.as_raw(), k: kv.as_raw() };
    let mut shape_raw = ffi::fasa_model_shape {
        struct_size: size_of::<ffi::fasa_model_shape>(), n_layers: 1, n_q_heads: 2, n_kv_heads: 1, head_dim: 8,
        pair_layout: ffi::FASA_PAIRS_HALF, reserved: 0,
    };
    // struct_size is "at least the fields libfasa knows": smaller is an
    // error; larger is accepted when the bytes past them are zero (a newer
    // caller's fields this library cannot honour must be unset).
    #[repr(C)]
    struct Larger {
        cfg: ffi::fasa_calib_config,
        tail: u64,
    }
    for (delta, tail, want) in [(0isize, 0u64, ffi::FASA_OK), (-8, 0, ffi::FASA_ERR_INVALID_ARGUMENT),
                                (8, 0, ffi::FASA_OK), (8, 1, ffi::FASA_ERR_UNSUPPORTED)] {
        let mut big = Larger {
            cfg: ffi::fasa_calib_config {
                struct_size: (size_of::<ffi::fasa_calib_config>() as isize + delta) as usize,
                shape: shape_raw, n_k: 2, ..Default::default()
            },
            tail,
        };
        big.cfg.k_values[..2].copy_from_slice(&[1, 2]);
        let mut out = std::ptr::null_mut();
        let st = unsafe { ffi::fasa_calibrate(&big.cfg, &step, 1, std::ptr::null(), &mut out) };
        assert_eq!(st, want, "struct_size delta {delta}, tail {tail}");
        assert_eq!(out.is_null(), want != ffi::FASA_OK);
        unsafe { ffi::fasa_profile_destroy(out) };
    }
    // A nested shape claiming 8 more bytes: they are the config's next field
    // (n_k), accepted while zero, refused when set.
    shape_raw.struct_size += 8;
    for (n_k, want) in [(0usize, ffi::FASA_OK), (2, ffi::FASA_ERR_UNSUPPORTED)] {
        let mut cfg = ffi::fasa_calib_config { struct_size: size_of::<ffi::fasa_calib_config>(), shape: shape_raw,
                                               n_k, ..Default::default() };
        cfg.k_values[..2].copy_from_slice(&[1, 2]);
        let mut out = std::ptr::null_mut();
        assert_eq!(unsafe { ffi::fasa_calibrate(&cfg, &step, 1, std::ptr::null(), &mut out) }, want, "n_k {n_k}");
        unsafe { ffi::fasa_profile_destroy(out) };
    }
}
