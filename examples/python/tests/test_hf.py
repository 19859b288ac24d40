"""The Hugging Face drop-in (fasa.hf) on the repository's torch Llama with
the real checkpoints: dense equals torch's attention, FASA@256 equals the C
runtime (build/llama ppl) on the same protocol and profile, batches decode in
one call, and the traps of attach (layout, budget re-selection)."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import fasa_ref  # noqa: F401  (import path)
import fasa
from skips import llama_bin, model_dir, need_torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A short version of the README protocol (make check must stay fast):
# calibration on the first 1024 tokens of window 0 (positions 768, 800, ...),
# perplexity on window 4: dense prefill of PREFILL tokens, DECODE predictions.
CAL_TOKENS, CAL_START, CAL_STRIDE = 1024, 768, 32
PPL_WINDOW, PREFILL, DECODE, BUDGET = 4, 768, 32, 256
TOLERANCE = 5e-4  # 0.05% of the perplexity (issue 15's target)


def c_ppl(llama, model, profile_path, methods):
    r = subprocess.run([llama, "ppl", "--model", model, "--windows", str(PPL_WINDOW),
                        "--prefill", str(PREFILL), "--decode", str(DECODE), "--methods",
                        methods, "--profile", profile_path], capture_output=True, text=True)
    if r.returncode:
        raise AssertionError("build/llama ppl failed: %s" % r.stderr[-2000:])
    ppl = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+)\s+\S+\s+([0-9.]+)\s+[-0-9.]+\s+[-0-9.]+$", line)
        if m:
            ppl[m.group(1)] = float(m.group(2))
    return ppl


class TestHF(unittest.TestCase):
    models = {}

    @classmethod
    def setUpClass(cls):
        cls.torch = need_torch("test_hf")
        import llama_torch
        cls.L = llama_torch

    def model(self, name):
        path = model_dir("test_hf." + self._testMethodName, name)
        if name not in self.models:
            self.torch.manual_seed(0)
            self.models[name] = self.L.LlamaForCausalLM.from_pretrained(path)
        m = self.models[name]
        fasa.hf.detach(m)
        m.config._attn_implementation = "sdpa"
        return m, path

    def calibrated(self, m, path):
        window = self.L.window_tokens(path, 0)[:CAL_TOKENS]
        return fasa.hf.calibrate(m, [window], start=CAL_START, stride=CAL_STRIDE)

    def test_dense_equals_torch_attention(self):
        torch = self.torch
        m, path = self.model("llama-28m")
        tok = self.L.window_tokens(path, 1)[:300]

        def run():
            cache = self.L.DynamicCache()
            outs = [m(tok[None, :290], past_key_values=cache).logits[0, -1]]
            for s in range(290, 300):
                outs.append(m(tok[None, s:s + 1], past_key_values=cache).logits[0, -1])
            return torch.stack(outs)

        with torch.no_grad():
            want = run()
            prof = fasa.Profile.from_fcs(np.array([[[0, 1]] * 4] * 8), 2, 128, fasa.PAIRS_HALF)
            st = fasa.hf.attach(m, prof, budget=100000)  # every step within budget: dense
            got = run()
        self.assertEqual(st.stats["fasa"], 0)
        self.assertGreater(st.stats["dense"], 0)
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-3, rtol=0)

    def test_fasa_matches_c_runtime(self):
        """FASA@256 through the drop-in = build/llama ppl within 0.05%, with a
        profile calibrated by the model's own forward (fasa.hf.calibrate)."""
        for name in ("llama-28m", "llama-32m-16k"):
            with self.subTest(model=name):
                llama = llama_bin("test_hf.test_fasa_matches_c_runtime")
                m, path = self.model(name)
                prof = self.calibrated(m, path)
                with tempfile.TemporaryDirectory() as d:
                    ppath = os.path.join(d, "p.fasa")
                    prof.save(ppath)
                    want = c_ppl(llama, path, ppath, "full,fasa:%d" % BUDGET)
                    full = self.L.perplexity(*self.L.ppl_run(m, path, [PPL_WINDOW], PREFILL,
                                                             DECODE))
                    st = fasa.hf.attach(m, fasa.Profile.load(ppath), BUDGET)
                    got = self.L.perplexity(*self.L.ppl_run(m, path, [PPL_WINDOW], PREFILL,
                                                            DECODE))
                self.assertGreater(st.stats["fasa"], 0)  # the sparse path ran
                print("%s: ppl full torch %.6f C %.6f; fasa@%d drop-in %.6f C %.6f"
                      % (name, full, want["full"], BUDGET, got, want["fasa:%d" % BUDGET]),
                      file=sys.stderr)
                self.assertLess(abs(full / want["full"] - 1), TOLERANCE)
                self.assertLess(abs(got / want["fasa:%d" % BUDGET] - 1), TOLERANCE)
                self.assertNotEqual(got, full)

    def test_batch_decodes_in_one_call(self):
        """B = 2 sequences through FasaCache: each row's logits equal its own
        B = 1 run, and each layer's decode is one libfasa call."""
        torch = self.torch
        m, path = self.model("llama-28m")
        prof = fasa.Profile.from_fcs(
            np.stack([np.stack([np.random.default_rng(l * 4 + h).choice(64, 16, replace=False)
                                for h in range(4)]) for l in range(8)]), 2, 128,
            fasa.PAIRS_HALF)
        toks = torch.stack([self.L.window_tokens(path, w)[:200] for w in (2, 3)])
        fasa.hf.attach(m, prof, budget=48, label_cache=False)

        def run(ids):
            cache = fasa.hf.FasaCache(256)
            outs = [m(ids[:, :190], past_key_values=cache).logits[:, -1]]
            for s in range(190, 200):
                outs.append(m(ids[:, s:s + 1], past_key_values=cache).logits[:, -1])
            return torch.stack(outs, 1)

        from test_predict import spy
        with torch.no_grad():
            with spy() as calls:
                both = run(toks)
            # 8 layers x (prefill + 10 steps), one call each for both rows (a
            # call per row would be twice as many); a call that meets a
            # workspace too small for it is retried once after growing it
            self.assertGreaterEqual(len(calls), 8 * 11)
            self.assertLess(len(calls), 8 * 11 + 8 + 1)
            for b in range(2):
                alone = run(toks[b:b + 1])
                np.testing.assert_allclose(both[b].numpy(), alone[0].numpy(), atol=1e-4)
            dyn = self.L.DynamicCache()
            m(toks[:, :20], past_key_values=dyn)  # RoPE output keeps [B, T, H, D] memory
            with self.assertRaisesRegex(ValueError, "token-major.*FasaCache"):
                m(toks[:, 20:21], past_key_values=dyn)  # torch.cat: head-major

    def test_attach_checks_layout_and_reselects_for_budget(self):
        """Trap 1 at the model: an INTERLEAVED profile on a rotate-half model
        is refused. Trap 2: attach re-selects the FCs for its budget (the
        caller's profile is left as it was)."""
        m, path = self.model("llama-28m")
        wrong = fasa.Profile.from_fcs(np.array([[[0, 1]] * 4] * 8), 2, 128,
                                      fasa.PAIRS_INTERLEAVED)
        with self.assertRaisesRegex(ValueError, "PAIRS_INTERLEAVED pairs but .*PAIRS_HALF"):
            fasa.hf.attach(m, wrong, 256)
        prof = self.calibrated(m, path)
        self.assertEqual(prof.info.selection_k, 256)
        st = fasa.hf.attach(m, prof, budget=64)
        self.assertEqual(st.profile.info.selection_k, 64)
        self.assertEqual(prof.info.selection_k, 256)
        self.assertEqual(prof.for_budget(1000).info.selection_k, 1024)


if __name__ == "__main__":
    unittest.main()
