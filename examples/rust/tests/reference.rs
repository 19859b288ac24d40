//! The safe wrapper against a small Rust reference: TIP top-k with the tie
//! rule in both GQA modes, attention with lse, strided views, label cache,
//! profile round trip and calibration.
mod common;

use common::*;
use fasa::*;

fn profile(rng: &mut Rng, layers: usize, hq: usize, hkv: usize, d: usize, n_fc: usize) -> (Profile, Vec<u32>) {
    let mut fcs = Vec::new();
    for _ in 0..layers * hq {
        let mut row: Vec<u32> = Vec::new();
        while row.len() < n_fc {
            let f = rng.below(d / 2) as u32;
            if !row.contains(&f) {
                row.push(f);
            }
        }
        fcs.extend(row);
    }
    let shape = ModelShape { n_layers: layers, n_q_heads: hq, n_kv_heads: hkv, head_dim: d,
                             pair_layout: PairLayout::Interleaved };
    (Profile::from_fcs(shape, &fcs, n_fc, None).unwrap(), fcs)
}

/// Reference TIP for a dense q [n_q][hq][d] and a key accessor.
#[allow(clippy::too_many_arguments)]
fn tip_ref(prof: &Profile, layer: usize, mode: GqaMode, q: &[f32], n_q: usize, hq: usize, d: usize,
           key: &dyn Fn(usize, usize, usize) -> f64, t: usize, hkv: usize, budget: f64)
           -> Vec<Vec<Vec<u32>>> {
    let group = hq / hkv;
    let n_sets = if mode == GqaMode::PerHead { hq } else { hkv };
    (0..n_q).map(|i| {
        let t_i = t - n_q + i + 1;
        (0..n_sets).map(|s| {
            let dims = fc_dims(&prof.fcs(layer, mode, s).unwrap());
            let (heads, g) = if mode == GqaMode::PerHead { (s..s + 1, s / group) } else { (s * group..(s + 1) * group, s) };
            let scores: Vec<f64> = (0..t_i).map(|j| {
                dims.iter().map(|&c| heads.clone().map(|h| at(q, hq, d, i, h, c)).sum::<f64>() * key(j, g, c)).sum()
            }).collect();
            topk(&scores, budget_count(budget, t_i))
        }).collect()
    }).collect()
}

#[test]
fn version_and_status_names() {
    check_version().unwrap();
    assert_eq!(version_number() / 10000, BINDINGS_VERSION.0);
    assert_eq!(status_name(ffi::FASA_ERR_BAD_STRIDE), "FASA_ERR_BAD_STRIDE");
    assert_eq!(status_name(ffi::FASA_OK), "FASA_OK");
    assert!(kernel_name("no_such_op", ffi::FASA_CPU_AUTO).is_none());
    let _ = cpu_features();
    assert!(cpu_best_level() >= ffi::FASA_CPU_SCALAR);
}

#[test]
fn predict_matches_reference_both_modes() {
    let mut rng = Rng::new(11);
    let (hq, hkv, d, t) = (6, 2, 16, 45);
    let (prof, _) = profile(&mut rng, 2, hq, hkv, d, 4);
    let mut ctx = Context::new().unwrap();
    for &(n_q, budget) in &[(1usize, 7.0f64), (3, 0.2), (2, 100.0)] {
        let q = rng.ints(n_q * hq * d);
        let k = rng.ints(t * hkv * d);
        let qv = View::contiguous(&q, n_q, hq, d).unwrap();
        let kv = View::contiguous(&k, t, hkv, d).unwrap();
        for mode in [GqaMode::PerHead, GqaMode::GroupShared] {
            let sel = ctx.predict(&prof, 1, mode, &qv, &kv, budget, true).unwrap();
            let want = tip_ref(&prof, 1, mode, &q, n_q, hq, d, &|j, g, c| at(&k, hkv, d, j, g, c), t, hkv, budget);
            assert_eq!(sel.index_stride, max_selected(budget, t).unwrap());
            for (i, row) in want.iter().enumerate() {
                for (s, set) in row.iter().enumerate() {
                    assert_eq!(sel.set(i, s), &set[..], "mode {mode:?} n_q {n_q} query {i} set {s}");
                }
            }
            assert!(sel.scores.as_ref().unwrap().len() == n_q * sel.n_sets * t);
        }
    }
}

#[test]
fn ties_go_to_lower_index() {
    let mut rng = Rng::new(3);
    let (prof, _) = profile(&mut rng, 1, 2, 1, 8, 2);
    let q = vec![1.0f32; 16];
    let mut k = vec![1.0f32; 20 * 8];
    k[13 * 8..14 * 8].iter_mut().for_each(|x| *x = 2.0);
    let mut ctx = Context::new().unwrap();
    let sel = ctx.predict(&prof, 0, GqaMode::PerHead, &View::contiguous(&q, 1, 2, 8).unwrap(),
                          &View::contiguous(&k, 20, 1, 8).unwrap(), 5.0, false).unwrap();
    assert_eq!(sel.set(0, 0), &[0, 1, 2, 3, 13]);
    assert!(sel.scores.is_none());
}

#[test]
fn strided_cache_equals_contiguous() {
    let mut rng = Rng::new(5);
    let (hq, hkv, d, t, cap, pad) = (4, 2, 16, 30, 40, 24);
    let (prof, _) = profile(&mut rng, 1, hq, hkv, d, 4);
    // head-major cache with capacity and padded rows: element (t, h, i) at h*cap*pad + t*pad + i
    let mut cache = vec![f32::NAN; hkv * cap * pad];
    let dense = rng.ints(t * hkv * d);
    for j in 0..t {
        for h in 0..hkv {
            for i in 0..d {
                cache[h * cap * pad + j * pad + i] = dense[(j * hkv + h) * d + i];
            }
        }
    }
    let shape = Shape { tokens: t, heads: hkv, head_dim: d, token_stride: pad, head_stride: cap * pad };
    let q = rng.ints(hq * d);
    let qv = View::contiguous(&q, 1, hq, d).unwrap();
    let mut ctx = Context::new().unwrap();
    let a = ctx.predict(&prof, 0, GqaMode::PerHead, &qv, &View::new(&cache, shape).unwrap(), 9.0, true).unwrap();
    let b = ctx.predict(&prof, 0, GqaMode::PerHead, &qv, &View::contiguous(&dense, t, hkv, d).unwrap(), 9.0, true).unwrap();
    assert_eq!(a, b);
    assert!(a.scores.unwrap().iter().all(|s| !s.is_nan()));
}

#[test]
fn attend_and_dense_match_reference() {
    let mut rng = Rng::new(8);
    let (hq, hkv, d, dv, t, n_q) = (4, 2, 16, 8, 33, 2);
    let (prof, _) = profile(&mut rng, 1, hq, hkv, d, 4);
    let q = rng.uniform(n_q * hq * d);
    let k = rng.uniform(t * hkv * d);
    let v = rng.uniform(t * hkv * dv);
    let (qv, kv, vv) = (View::contiguous(&q, n_q, hq, d).unwrap(), View::contiguous(&k, t, hkv, d).unwrap(),
                        View::contiguous(&v, t, hkv, dv).unwrap());
    let mut ctx = Context::new().unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    let vmax = v.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    for mode in [GqaMode::PerHead, GqaMode::GroupShared] {
        let sel = ctx.predict(&prof, 0, mode, &qv, &kv, 6.0, false).unwrap();
        let mut out = vec![0f32; n_q * hq * dv];
        let mut lse = vec![0f32; n_q * hq];
        ctx.attend(&qv, &kv, &vv, &sel, 0.0, &mut ViewMut::contiguous(&mut out, n_q, hq, dv).unwrap(),
                   Some(&mut lse)).unwrap();
        for i in 0..n_q {
            for h in 0..hq {
                let g = h * hkv / hq;
                let s = if mode == GqaMode::PerHead { h } else { g };
                let qrow: Vec<f64> = (0..d).map(|c| at(&q, hq, d, i, h, c)).collect();
                let (want, wl) = attend_row(&qrow, &k, &v, hkv, d, dv, g, sel.set(i, s), scale);
                for c in 0..dv {
                    assert!((out[(i * hq + h) * dv + c] as f64 - want[c]).abs() <= 2e-5 * vmax + 1e-7);
                }
                assert!((lse[i * hq + h] as f64 - wl).abs() <= 1e-5 * (1.0 + wl.abs()));
            }
        }
    }
    // dense causal, output in f16
    let mut out = vec![F16(0); n_q * hq * dv];
    ctx.attend_dense(&qv, &kv, &vv, 0.0, &mut ViewMut::contiguous(&mut out, n_q, hq, dv).unwrap(), None).unwrap();
    for i in 0..n_q {
        let all: Vec<u32> = (0..(t - n_q + i + 1) as u32).collect();
        for h in 0..hq {
            let qrow: Vec<f64> = (0..d).map(|c| at(&q, hq, d, i, h, c)).collect();
            let (want, _) = attend_row(&qrow, &k, &v, hkv, d, dv, h * hkv / hq, &all, scale);
            for c in 0..dv {
                assert!((out[(i * hq + h) * dv + c].to_f32() as f64 - want[c]).abs() <= 1e-3 * vmax);
            }
        }
    }
}

#[test]
fn decode_step_and_label_cache() {
    let mut rng = Rng::new(21);
    let (hq, hkv, d, t) = (4, 2, 16, 70);
    let (prof, _) = profile(&mut rng, 2, hq, hkv, d, 4);
    let q = rng.ints(hq * d);
    let k = rng.ints(t * hkv * d);
    let v = rng.uniform(t * hkv * d);
    let (qv, kv, vv) = (View::contiguous(&q, 1, hq, d).unwrap(), View::contiguous(&k, t, hkv, d).unwrap(),
                        View::contiguous(&v, t, hkv, d).unwrap());
    let mut ctx = Context::new().unwrap();
    let mut dense = vec![0f32; hq * d];
    ctx.attend_dense(&qv, &kv, &vv, 0.0, &mut ViewMut::contiguous(&mut dense, 1, hq, d).unwrap(), None).unwrap();
    let mut out = vec![0f32; hq * d];
    ctx.decode_step(&prof, 1, GqaMode::PerHead, &qv, &kv, &vv, None, t as f64, 0.0,
                    &mut ViewMut::contiguous(&mut out, 1, hq, d).unwrap(), None).unwrap();
    assert_eq!(out, dense, "budget >= t must give exactly the dense result");
    for mode in [GqaMode::PerHead, GqaMode::GroupShared] {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let mut cache = LabelCache::new(&prof, 1, mode, dtype, 80).unwrap();
            cache.build(&View::contiguous(&k[..40 * hkv * d], 40, hkv, d).unwrap()).unwrap();
            cache.append(&View::contiguous(&k[40 * hkv * d..], t - 40, hkv, d).unwrap()).unwrap();
            assert_eq!(cache.tokens().unwrap(), t);
            let want = ctx.predict(&prof, 1, mode, &qv, &kv, 12.0, false).unwrap();
            let got = ctx.predict_cached(&prof, 1, &qv, &mut cache, 12.0, false).unwrap();
            assert_eq!(got, want, "{mode:?} {dtype:?}"); // small integers are exact in f16/bf16
            let mut a = vec![0f32; hq * d];
            let mut b = vec![0f32; hq * d];
            ctx.decode_step(&prof, 1, mode, &qv, &kv, &vv, Some(&mut cache), 12.0, 0.0,
                            &mut ViewMut::contiguous(&mut a, 1, hq, d).unwrap(), None).unwrap();
            ctx.attend(&qv, &kv, &vv, &want, 0.0, &mut ViewMut::contiguous(&mut b, 1, hq, d).unwrap(), None).unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-6);
            }
            cache.reset().unwrap();
            assert_eq!(cache.tokens().unwrap(), 0);
        }
    }
}

#[test]
fn profile_round_trip_and_calibration() {
    let mut rng = Rng::new(2);
    let shape = ModelShape { n_layers: 2, n_q_heads: 2, n_kv_heads: 1, head_dim: 8, pair_layout: PairLayout::Interleaved };
    let mut cal = Calibrator::new(shape, &[2, 4]).unwrap();
    let mut ctx = Context::new().unwrap();
    let mut steps = Vec::new();
    for layer in 0..2 {
        for &t in &[5usize, 11] {
            let q = rng.uniform(2 * 8);
            let k = rng.uniform(t * 8);
            cal.add_step(&mut ctx, layer, &View::contiguous(&q, 1, 2, 8).unwrap(),
                         &View::contiguous(&k, t, 1, 8).unwrap()).unwrap();
            steps.push((layer, q, k, t));
        }
    }
    let opts = SelectOptions { n_fc: 2, k: 2, ..SelectOptions::default() };
    let mut prof = cal.finish(Some(&opts)).unwrap();
    let info = prof.info().unwrap();
    assert!(info.has_agreement);
    assert_eq!(prof.k_values().unwrap(), vec![2, 4]);
    // reference agreement at K = 2 for layer 1
    let mut want = vec![0f64; 2 * 4];
    for (layer, q, k, t) in steps.iter().filter(|s| s.0 == 1) {
        let _ = layer;
        for h in 0..2 {
            let full: Vec<f64> = (0..*t).map(|j| (0..8).map(|c| q[h * 8 + c] as f64 * k[j * 8 + c] as f64).sum()).collect();
            for f in 0..4 {
                let part: Vec<f64> = (0..*t).map(|j| (2 * f..2 * f + 2).map(|c| q[h * 8 + c] as f64 * k[j * 8 + c] as f64).sum()).collect();
                let a = topk(&full, 2);
                let b = topk(&part, 2);
                want[h * 4 + f] += a.iter().filter(|x| b.contains(x)).count() as f64 / 2.0 / 2.0;
            }
        }
    }
    let got = prof.agreement(1, 0).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-6, "agreement {got:?} vs {want:?}");
    }
    for h in 0..2 {
        let scores: Vec<f64> = want[h * 4..h * 4 + 4].to_vec();
        assert_eq!(prof.fcs(1, GqaMode::PerHead, h).unwrap(), topk(&scores, 2));
    }
    prof.set_dense(1, true).unwrap();
    let bytes = prof.to_bytes().unwrap();
    let back = Profile::from_bytes(&bytes).unwrap();
    assert_eq!(back.info().unwrap(), prof.info().unwrap());
    assert!(back.is_dense(1).unwrap());
    assert_eq!(back.agreement(1, 1).unwrap(), prof.agreement(1, 1).unwrap());
    let path = std::env::temp_dir().join(format!("fasa-rust-{}.fasa", std::process::id()));
    back.save(&path).unwrap();
    let again = Profile::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(again.to_bytes().unwrap(), bytes);
    let copy = again.try_clone().unwrap();
    drop(again);
    assert_eq!(copy.fcs(0, GqaMode::GroupShared, 0).unwrap(), prof.fcs(0, GqaMode::GroupShared, 0).unwrap());
    assert!(!copy.describe().unwrap().is_empty());
}

#[test]
fn profile_is_shared_across_threads() {
    let mut rng = Rng::new(4);
    let (prof, _) = profile(&mut rng, 1, 2, 1, 8, 2);
    let q = rng.ints(2 * 8);
    let k = rng.ints(30 * 8);
    let prof = &prof;
    let results: Vec<Selection> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2).map(|_| s.spawn(|| {
            let mut ctx = Context::new().unwrap(); // one context per thread
            ctx.predict(prof, 0, GqaMode::PerHead, &View::contiguous(&q, 1, 2, 8).unwrap(),
                        &View::contiguous(&k, 30, 1, 8).unwrap(), 4.0, false).unwrap()
        })).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0], results[1]);
}

#[test]
fn half_conversions() {
    for &x in &[0.0f32, 1.0, -2.5, 65504.0, 1e-7, 1.337, -0.0] {
        let h = F16::from_f32(x);
        assert!((h.to_f32() - x).abs() <= x.abs() * 1e-3 + 6e-8, "{x} -> {}", h.to_f32());
        let b = Bf16::from_f32(x);
        assert!((b.to_f32() - x).abs() <= x.abs() * 4e-3, "{x} -> {}", b.to_f32());
    }
    assert_eq!(F16::from_f32(1.0).0, 0x3c00);
    assert_eq!(F16::from_f32(1e6).0, 0x7c00);
    assert_eq!(Bf16::from_f32(1.0).0, 0x3f80);
}

#[test]
fn thread_traits_follow_the_c_contract() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Profile>();
    sync::<Profile>();
    send::<Context>();
    send::<LabelCache>();
    send::<Calibrator>();
    // Context, LabelCache and Calibrator are !Sync: see the compile_fail doc tests in lib.rs
}

#[test]
fn struct_layouts_match_c() {
    use std::mem::size_of;
    let data = [0f32; 24];
    let mut v = std::mem::MaybeUninit::<ffi::fasa_view>::zeroed();
    let st = unsafe { ffi::fasa_view_make(v.as_mut_ptr(), data.as_ptr() as *const _, ffi::FASA_DTYPE_F16, 2, 3, 4, 12, 4) };
    assert_eq!(st, ffi::FASA_OK);
    let v = unsafe { v.assume_init() };
    assert_eq!(v.struct_size, size_of::<ffi::fasa_view>());
    assert_eq!((v.data as usize, v.dtype, v.kind, v.n_tokens, v.n_heads, v.head_dim, v.token_stride, v.head_stride),
               (data.as_ptr() as usize, ffi::FASA_DTYPE_F16, 0, 2, 3, 4, 12, 4));
    let mut o = ffi::fasa_ctx_options { struct_size: 0, n_threads: -5, cpu_level: -5 };
    unsafe { ffi::fasa_ctx_options_default(&mut o) };
    assert_eq!((o.struct_size, o.n_threads, o.cpu_level), (size_of::<ffi::fasa_ctx_options>(), 1, ffi::FASA_CPU_AUTO));
    let mut s = ffi::fasa_select_options::default();
    unsafe { ffi::fasa_select_options_default(&mut s) };
    assert_eq!(s.struct_size, size_of::<ffi::fasa_select_options>());
    assert_eq!(s.n_fc, 16);
}

#[test]
fn validate_reports_overlap() {
    let data = vec![0f32; 64];
    let mut ctx = Context::new().unwrap();
    ctx.validate(&View::contiguous(&data, 4, 2, 8).unwrap()).unwrap();
    let s = Shape { tokens: 4, heads: 2, head_dim: 8, token_stride: 4, head_stride: 8 };
    let err = ctx.validate(&View::new(&data, s).unwrap()).unwrap_err();
    assert_eq!(err.name, "FASA_ERR_BAD_STRIDE");
    assert_eq!(err.message, ctx.last_error());
}
