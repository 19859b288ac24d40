//! Small reference of FASA and test data, shared by the test files.
#![allow(dead_code)]

/// xorshift64*: deterministic data without dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Small integers as f32: TIP sums are exact, so ties are real.
    pub fn int(&mut self, lo: i64, hi: i64) -> f32 {
        (lo + (self.next() % (hi - lo + 1) as u64) as i64) as f32
    }
    pub fn ints(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.int(-3, 3)).collect()
    }
    pub fn uniform(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0).collect()
    }
    /// N(0, 1) by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Dims of FC f for the interleaved / adjacent layouts.
pub fn fc_dims(fcs: &[u32]) -> Vec<usize> {
    fcs.iter().flat_map(|&f| [2 * f as usize, 2 * f as usize + 1]).collect()
}

pub fn budget_count(budget: f64, t_i: usize) -> usize {
    let n = if budget >= 1.0 { budget.floor() as usize } else { ((t_i as f64 * budget).floor() as usize).max(1) };
    n.min(t_i)
}

/// Top-n indices by score (larger first, ties: lower index), ascending.
pub fn topk(scores: &[f64], n: usize) -> Vec<u32> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
    let mut sel: Vec<u32> = order[..n].iter().map(|&i| i as u32).collect();
    sel.sort();
    sel
}

/// Element (t, h, i) of a dense [tokens][heads][dim] array.
pub fn at(a: &[f32], heads: usize, dim: usize, t: usize, h: usize, i: usize) -> f64 {
    a[(t * heads + h) * dim + i] as f64
}

/// Softmax attention of query row q over token set `idx` of KV head g.
/// Returns (out [dv], lse).
#[allow(clippy::too_many_arguments)]
pub fn attend_row(q: &[f64], k: &[f32], v: &[f32], hkv: usize, d: usize, dv: usize, g: usize,
                  idx: &[u32], scale: f64) -> (Vec<f64>, f64) {
    if idx.is_empty() {
        return (vec![0.0; dv], f64::NEG_INFINITY);
    }
    let logits: Vec<f64> = idx.iter().map(|&j| {
        scale * (0..d).map(|i| q[i] * at(k, hkv, d, j as usize, g, i)).sum::<f64>()
    }).collect();
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let z: f64 = w.iter().sum();
    let mut out = vec![0.0; dv];
    for (wi, &j) in w.iter().zip(idx) {
        for (c, o) in out.iter_mut().enumerate() {
            *o += wi / z * at(v, hkv, dv, j as usize, g, c);
        }
    }
    (out, m + z.ln())
}
