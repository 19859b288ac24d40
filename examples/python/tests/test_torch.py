"""torch tensors and DLPack objects in place, the [B, H, T, D] batch layout
on the batched API, masks, and the traps of issue 15 that need torch."""
import unittest
import warnings

import numpy as np

import fasa_ref as ref
import fasa
from skips import need_torch
from test_predict import random_profile, spy

HALF = fasa.PAIRS_HALF


class Wrapped:
    """A foreign array that only speaks DLPack."""

    def __init__(self, x):
        self.x = x

    def __dlpack__(self, stream=None):
        return self.x.__dlpack__()

    def __dlpack_device__(self):
        return self.x.__dlpack_device__()


def visible_sets(vis, n_sets):
    return [[np.nonzero(row)[0] for _ in range(n_sets)] for row in vis]


class TestTorch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.torch = need_torch("test_torch")

    def setUp(self):
        self.rng = np.random.default_rng(7)
        self.g = self.torch.Generator().manual_seed(7)

    def randn(self, *shape, dtype=None):
        return self.torch.randn(*shape, generator=self.g, dtype=dtype or self.torch.float32)

    # ------------------------------------------------------ zero copy
    def test_zero_copy_f32_f16_bf16(self):
        torch = self.torch
        for dt in (torch.float32, torch.float16, torch.bfloat16):
            cache_k = self.randn(64, 2, 16).to(dt)   # capacity 64, 40 used
            cache_v = self.randn(64, 2, 16).to(dt)
            q = self.randn(1, 4, 16).to(dt)
            k, v = cache_k[:40], cache_v[:40]
            with spy() as calls:
                out = fasa.attend_dense(q, k, v, out_dtype=dt)
            c = calls[0]
            self.assertEqual(c["q"].data, q.data_ptr())
            self.assertEqual(c["k"].data, cache_k.data_ptr())  # the caller's memory
            self.assertEqual(c["v"].data, cache_v.data_ptr())
            self.assertEqual(c["out"].data, out.data_ptr())
            self.assertIsInstance(out, torch.Tensor)
            self.assertEqual(out.dtype, dt)
            want, _ = ref.attend(q.float().numpy(), k.float().numpy(), v.float().numpy(),
                                 ref.dense_sets(1, 40, 4), fasa.PER_HEAD)
            tol = 1e-5 if dt == torch.float32 else 2e-2
            np.testing.assert_allclose(out.float().numpy(), want, atol=tol, rtol=tol)

    def test_head_major_hf_cache_b1(self):
        # HF DynamicCache layout [1, Hkv, T, D]: zero copy for one sequence
        k = self.randn(1, 2, 30, 16)
        v = self.randn(1, 2, 30, 16)
        q = self.randn(1, 4, 1, 16)
        with spy() as calls:
            out = fasa.attention(q, k, v)
        self.assertEqual(calls[0]["k"].data, k.data_ptr())
        self.assertEqual((calls[0]["k"].token_stride, calls[0]["k"].head_stride), (16, 30 * 16))
        self.assertEqual(tuple(out.shape), (1, 4, 1, 16))
        want, _ = ref.attend(q[0].transpose(0, 1).numpy(), k[0].transpose(0, 1).numpy(),
                             v[0].transpose(0, 1).numpy(), ref.dense_sets(1, 30, 4),
                             fasa.PER_HEAD)
        np.testing.assert_allclose(out[0].transpose(0, 1).numpy(), want, atol=1e-5)

    def test_dlpack_object(self):
        q, k, v = self.randn(1, 4, 16), self.randn(20, 2, 16), self.randn(20, 2, 16)
        with spy() as calls:
            got = fasa.attend_dense(Wrapped(q), Wrapped(k), Wrapped(v))
        self.assertEqual(calls[0]["k"].data, k.data_ptr())
        self.assertIsInstance(got, np.ndarray)  # foreign inputs: numpy outputs
        np.testing.assert_allclose(got, fasa.attend_dense(q, k, v).numpy(), atol=0)

    def test_device_tensors_refused_with_reason(self):
        torch = self.torch
        q = torch.empty(1, 4, 16, device="meta")
        k = torch.empty(20, 2, 16, device="meta")
        with self.assertRaisesRegex(TypeError, "q: tensor on meta.*CPU"):
            fasa.attend_dense(q, k, k)
        if torch.cuda.is_available():
            qc = torch.zeros(1, 4, 16, device="cuda")
            with self.assertRaisesRegex(TypeError, "q: tensor on cuda.*CPU.*x.cpu"):
                fasa.attend_dense(qc, qc, qc)

    def test_unsupported_torch_dtype(self):
        x = self.torch.zeros(4, 2, 8, dtype=self.torch.float64)
        with self.assertRaisesRegex(ValueError, "k: unsupported torch dtype"):
            fasa.attend_dense(self.randn(1, 2, 8), x, x)

    # ------------------------------------------------------- batches
    def test_batch_equals_sequences_alone(self):
        """[B, H, T, D] with a token-major cache is one call over one cell
        axis; each row equals its own single-sequence call (dense and FASA)."""
        B, hq, hkv, d, cap, T = 3, 4, 2, 16, 50, 37  # noqa: N806
        kbuf, vbuf = self.randn(B, cap, hkv, d), self.randn(B, cap, hkv, d)
        q = self.randn(B, 1, hq, d).transpose(1, 2)   # [B, Hq, 1, D] token-major
        k, v = kbuf[:, :T].transpose(1, 2), vbuf[:, :T].transpose(1, 2)
        prof, _ = random_profile(self.rng, 2, hq, hkv, d, 3, HALF)
        with spy() as calls:
            dense = fasa.attention(q, k, v)
            sparse = fasa.attention(q, k, v, profile=prof, layer=1, budget=8, layout=HALF)
        self.assertEqual(len(calls), 2)  # one libfasa call per batch, not per row
        self.assertEqual(calls[0]["k"].data, kbuf.data_ptr())
        self.assertEqual(calls[0]["k"].n_tokens, (B - 1) * cap + T)
        for b in range(B):
            qb, kb, vb = q[b].transpose(0, 1), kbuf[b, :T], vbuf[b, :T]
            np.testing.assert_allclose(dense[b].transpose(0, 1).numpy(),
                                       fasa.attend_dense(qb, kb, vb).numpy(), atol=1e-6)
            alone = fasa.decode_step(prof, 1, qb, kb, vb, 8, layout=HALF)
            np.testing.assert_allclose(sparse[b].transpose(0, 1).numpy(), alone.numpy(),
                                       atol=1e-6)

    def test_batch_prefill_head_major_queries(self):
        # RoPE'd HF queries of a batched prefill are head-major: copied (q only)
        B, hq, hkv, d, T = 2, 4, 2, 8, 12
        kbuf, vbuf = self.randn(B, T, hkv, d), self.randn(B, T, hkv, d)
        q = self.randn(B, hq, T, d)  # contiguous [B, Hq, T, D]
        out = fasa.attention(q, kbuf.transpose(1, 2), vbuf.transpose(1, 2))
        for b in range(B):
            want = fasa.attend_dense(q[b].transpose(0, 1).contiguous(), kbuf[b], vbuf[b])
            np.testing.assert_allclose(out[b].transpose(0, 1).numpy(), want.numpy(), atol=1e-6)

    def test_batch_head_major_cache_is_an_error(self):
        """Today: a [B, H, T, D] tensor was read as one sequence. Now: one call
        over the batch, or a loud error naming the fix, never a silent
        reinterpretation."""
        k = self.randn(2, 2, 30, 16)  # HF DynamicCache: head-major
        q = self.randn(2, 4, 1, 16)
        with self.assertRaisesRegex(ValueError, "k: a \\[batch=2.*token-major"):
            fasa.attention(q, k, k)
        with self.assertRaisesRegex(ValueError, "batch"):
            fasa.predict(random_profile(self.rng, 1, 4, 2, 16, 3, HALF)[0], 0, q, k, 4,
                         layout=HALF)

    def test_masks(self):
        """HF masks: [B, kv] padding, [B, 1, q, kv] float (0 / dtype min) and
        bool, against the reference over the visible cells."""
        torch = self.torch
        B, hq, hkv, d, T, Tq = 2, 4, 2, 8, 20, 3
        kbuf, vbuf = self.randn(B, T, hkv, d), self.randn(B, T, hkv, d)
        k, v = kbuf.transpose(1, 2), vbuf.transpose(1, 2)
        q = self.randn(B, Tq, hq, d).transpose(1, 2)
        pad = torch.ones(B, T, dtype=torch.long)
        pad[1, :5] = 0  # row 1 left-padded by 5
        causal = torch.arange(T)[None, :] <= torch.arange(T - Tq, T)[:, None]
        vis = causal[None] & pad[:, None, :].bool()               # [B, Tq, T]
        fmask = torch.where(vis, 0.0, torch.finfo(torch.float32).min)[:, None]
        for mask in (pad, fmask, vis[:, None]):
            out = fasa.attention(q, k, v, mask=mask)
            for b in range(B):
                want, _ = ref.attend(q[b].transpose(0, 1).numpy(), kbuf[b].numpy(),
                                     vbuf[b].numpy(), visible_sets(vis[b].numpy(), hq),
                                     fasa.PER_HEAD)
                np.testing.assert_allclose(out[b].transpose(0, 1).numpy(), want, atol=1e-5)
        bias = fmask.clone()
        bias[0, 0, 0, 0] = 0.5
        with self.assertRaisesRegex(ValueError, "additive biases"):
            fasa.attention(q, k, v, mask=bias)

    # ---------------------------------------------------- the traps
    def test_layout_is_required_and_checked(self):
        """Trap 1: the layout used to default to INTERLEAVED (an HF model then
        ran +134-152% perplexity, silently)."""
        with self.assertRaisesRegex(TypeError, "pair_layout is required"):
            fasa.Profile.from_fcs(np.array([[[0, 1]] * 4]), 2, 16)
        with self.assertRaises(TypeError):
            fasa.Shape(2, 4, 2, 16)
        prof, _ = random_profile(self.rng, 2, 4, 2, 16, 3, fasa.PAIRS_INTERLEAVED)
        q, k = self.randn(1, 4, 16), self.randn(20, 2, 16)
        with self.assertRaisesRegex(TypeError, "layout= is required.*PAIRS_HALF"):
            fasa.decode_step(prof, 1, q, k, k, 4)
        with self.assertRaisesRegex(ValueError, "layout=PAIRS_HALF but the profile.*"
                                                "PAIRS_INTERLEAVED"):
            fasa.decode_step(prof, 1, q, k, k, 4, layout=fasa.PAIRS_HALF)
        cfg = {"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "hidden_size": 64, "rope_theta": 5e5}
        self.assertEqual(fasa.Shape.from_hf_config(cfg), fasa.Shape(2, 4, 2, 16, HALF))
        self.assertEqual(fasa.read_hf_config(cfg).rope_theta, 5e5)
        self.assertEqual(fasa.Shape.from_hf_config(dict(cfg, model_type="gptj")).pair_layout,
                         fasa.PAIRS_INTERLEAVED)
        with self.assertRaisesRegex(ValueError, "partial rotary"):
            fasa.Shape.from_hf_config(dict(cfg, partial_rotary_factor=0.5))
        with self.assertRaisesRegex(ValueError, "not in fasa's table"):
            fasa.Shape.from_hf_config(dict(cfg, model_type="mystery"))

    def test_no_label_cache_warns(self):
        """Trap 3: a decode step without a label cache is ~5x slower than
        dense at 64k and said nothing; now it says so (once per call site)."""
        prof, _ = random_profile(self.rng, 2, 4, 2, 16, 3, HALF)
        q = self.randn(1, 4, 16)
        k = self.randn(4096, 2, 16)
        with self.assertWarnsRegex(fasa.PerformanceWarning, "no label cache at 4096 cells"):
            fasa.decode_step(prof, 1, q, k, k, 64, layout=HALF)
        cache = fasa.LabelCache(prof, 1, 4096)
        cache.build(k)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fasa.decode_step(prof, 1, q, k, k, 64, layout=HALF, cache=cache)
            fasa.decode_step(prof, 0, q, k, k, 64, layout=HALF)  # dense layer: no TIP
            fasa.decode_step(prof, 1, q, k[:100], k[:100], 64, layout=HALF)  # short

    def test_explicit_mode_against_cache_is_an_error(self):
        """Trap 9: mode=GROUP_SHARED with a PER_HEAD cache was silently run
        PER_HEAD."""
        prof, _ = random_profile(self.rng, 2, 4, 2, 16, 3, HALF)
        q, k = self.randn(1, 4, 16), self.randn(40, 2, 16)
        cache = fasa.LabelCache(prof, 1, 64, mode=fasa.PER_HEAD)
        cache.build(k)
        with self.assertRaisesRegex(ValueError, "mode=GROUP_SHARED but the label cache was "
                                                "made for PER_HEAD"):
            fasa.decode_step(prof, 1, q, k, k, 8, layout=HALF, mode=fasa.GROUP_SHARED,
                             cache=cache)
        with self.assertRaisesRegex(ValueError, "mode="):
            fasa.predict_cached(prof, 1, q, cache, 8, layout=HALF, mode=fasa.GROUP_SHARED)
        fasa.decode_step(prof, 1, q, k, k, 8, layout=HALF, mode=fasa.PER_HEAD, cache=cache)


if __name__ == "__main__":
    unittest.main()
