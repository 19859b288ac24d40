//! Errors: C statuses arrive as FasaError with name and message; the safe
//! layer refuses views and selections that would reach outside a slice.
mod common;

use common::*;
use fasa::*;

fn setup() -> (Profile, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(9);
    let shape = ModelShape { n_layers: 2, n_q_heads: 4, n_kv_heads: 2, head_dim: 16, pair_layout: PairLayout::Half };
    let fcs: Vec<u32> = (0..2 * 4).flat_map(|i| [(i % 8) as u32, 7 - (i % 4) as u32]).collect();
    let fcs: Vec<u32> = fcs.chunks(2).flat_map(|c| if c[0] == c[1] { vec![c[0], (c[0] + 1) % 8] } else { c.to_vec() }).collect();
    (Profile::from_fcs(shape, &fcs, 2, None).unwrap(), rng.ints(4 * 16), rng.ints(20 * 2 * 16))
}

#[test]
fn bad_budget_has_name_and_context_message() {
    let (prof, q, k) = setup();
    let mut ctx = Context::new().unwrap();
    for budget in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = ctx.predict(&prof, 1, GqaMode::PerHead, &View::contiguous(&q, 1, 4, 16).unwrap(),
                              &View::contiguous(&k, 20, 2, 16).unwrap(), budget, false).unwrap_err();
        assert_eq!(err.name, "FASA_ERR_BAD_BUDGET");
        assert_eq!(err.status, ffi::FASA_ERR_BAD_BUDGET);
        assert_eq!(err.message, ctx.last_error());
        assert!(!err.message.is_empty());
        assert!(err.to_string().starts_with("FASA_ERR_BAD_BUDGET"));
    }
}

#[test]
fn shape_and_profile_mismatch() {
    let (prof, q, k) = setup();
    let mut ctx = Context::new().unwrap();
    let qv = View::contiguous(&q, 1, 4, 16).unwrap();
    let kv = View::contiguous(&k, 20, 2, 16).unwrap();
    let err = ctx.predict(&prof, 5, GqaMode::PerHead, &qv, &kv, 4.0, false).unwrap_err();
    assert_eq!(err.name, "FASA_ERR_PROFILE_MISMATCH");
    let k3 = View::new(&k, Shape::contiguous(10, 3, 16)).unwrap();
    let mut out = vec![0f32; 4 * 16];
    let err = ctx.attend_dense(&qv, &k3, &k3, 0.0, &mut ViewMut::contiguous(&mut out, 1, 4, 16).unwrap(), None)
        .unwrap_err();
    assert_eq!(err.name, "FASA_ERR_BAD_SHAPE");
}

#[test]
fn views_cannot_leave_the_slice() {
    let data = vec![0f32; 100];
    let err = View::contiguous(&data, 10, 1, 11).unwrap_err();
    assert_eq!(err.name, "FASA_ERR_BUFFER_TOO_SMALL");
    let huge = Shape { tokens: usize::MAX / 2, heads: 1, head_dim: 4, token_stride: 8, head_stride: 4 };
    assert_eq!(View::new(&data, huge).unwrap_err().name, "FASA_ERR_OVERFLOW");
    // exactly fitting strided view is fine
    let s = Shape { tokens: 4, heads: 2, head_dim: 4, token_stride: 30, head_stride: 10 };
    assert_eq!(s.extent(), Some(104));
    assert!(View::new(&data, s).is_err());
    let s = Shape { tokens: 4, heads: 2, head_dim: 4, token_stride: 30, head_stride: 6 };
    assert!(View::new(&data, s).is_ok());
}

#[test]
fn overlapping_rows_rejected_by_c() {
    let (prof, q, k) = setup();
    let mut ctx = Context::new().unwrap();
    let s = Shape { tokens: 20, heads: 2, head_dim: 16, token_stride: 0, head_stride: 16 };
    let err = ctx.predict(&prof, 1, GqaMode::PerHead, &View::contiguous(&q, 1, 4, 16).unwrap(),
                          &View::new(&k, s).unwrap(), 4.0, false).unwrap_err();
    assert_eq!(err.name, "FASA_ERR_BAD_STRIDE");
}

#[test]
fn bad_selections() {
    let (_, q, k) = setup();
    assert_eq!(Selection::from_parts(GqaMode::PerHead, 1, 4, 3, vec![0; 12], vec![4, 0, 0, 0]).unwrap_err().name,
               "FASA_ERR_BAD_INDEX");
    assert!(Selection::from_parts(GqaMode::PerHead, 1, 4, 3, vec![0; 11], vec![0; 4]).is_err());
    let mut ctx = Context::new().unwrap();
    let qv = View::contiguous(&q, 1, 4, 16).unwrap();
    let kv = View::contiguous(&k, 20, 2, 16).unwrap();
    let mut out = vec![0f32; 4 * 16];
    let mut ov = ViewMut::contiguous(&mut out, 1, 4, 16).unwrap();
    let sel = Selection::from_parts(GqaMode::PerHead, 1, 4, 2, vec![3, 3, 0, 1, 0, 1, 0, 1], vec![2; 4]).unwrap();
    assert_eq!(ctx.attend(&qv, &kv, &kv, &sel, 0.0, &mut ov, None).unwrap_err().name, "FASA_ERR_BAD_INDEX");
    let sel = Selection::from_parts(GqaMode::PerHead, 1, 4, 2, vec![0, 20, 0, 1, 0, 1, 0, 1], vec![2; 4]).unwrap();
    assert_eq!(ctx.attend(&qv, &kv, &kv, &sel, 0.0, &mut ov, None).unwrap_err().name, "FASA_ERR_BAD_INDEX");
    let wrong = Selection::from_parts(GqaMode::GroupShared, 1, 4, 2, vec![0; 8], vec![0; 4]).unwrap();
    assert_eq!(ctx.attend(&qv, &kv, &kv, &wrong, 0.0, &mut ov, None).unwrap_err().name, "FASA_ERR_BAD_SHAPE");
    let mut short_lse = vec![0f32; 3];
    let ok = Selection::from_parts(GqaMode::PerHead, 1, 4, 2, vec![0, 1, 0, 1, 0, 1, 0, 1], vec![2; 4]).unwrap();
    assert_eq!(ctx.attend(&qv, &kv, &kv, &ok, 0.0, &mut ov, Some(&mut short_lse)).unwrap_err().name,
               "FASA_ERR_BUFFER_TOO_SMALL");
}

#[test]
fn files_and_caches() {
    let (prof, _, k) = setup();
    let err = Profile::load("/nonexistent/dir/p.fasa").unwrap_err();
    assert_eq!(err.name, "FASA_ERR_IO");
    let mut bytes = prof.to_bytes().unwrap();
    assert!(Profile::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let err = Profile::from_bytes(&bytes).unwrap_err();
    assert!(err.name == "FASA_ERR_CHECKSUM" || err.name == "FASA_ERR_BAD_FILE", "{err}");
    let mut cache = LabelCache::new(&prof, 1, GqaMode::PerHead, DType::F16, 10).unwrap();
    let err = cache.append(&View::contiguous(&k, 20, 2, 16).unwrap()).unwrap_err();
    assert_eq!(err.name, "FASA_ERR_BUFFER_TOO_SMALL");
    assert_eq!(cache.tokens().unwrap(), 0);
    let mut p2 = prof.try_clone().unwrap();
    assert_eq!(p2.select(&SelectOptions::default()).unwrap_err().name, "FASA_ERR_BAD_STATE");
}
