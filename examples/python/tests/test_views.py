"""numpy -> fasa_view mapping: strides, dtypes, zero copy, clear errors."""
import unittest

import numpy as np

import fasa_ref
import fasa


class TestViews(unittest.TestCase):
    def test_contiguous(self):
        a = np.zeros((5, 3, 8), np.float32)
        v = fasa.as_view(a)
        self.assertEqual(v.data, a.ctypes.data)
        self.assertEqual((v.n_tokens, v.n_heads, v.head_dim), (5, 3, 8))
        self.assertEqual((v.token_stride, v.head_stride), (24, 8))
        self.assertEqual(v.dtype, fasa.DTYPE_F32)

    def test_padded_token_major_slice(self):
        # a llama.cpp-like cache: capacity 10 tokens, 4 heads, 16 dims + 8 padding
        cache = np.zeros((10, 4, 24), np.float16)
        k = cache[2:7, 1:3, :16]
        v = fasa.as_view(k)
        self.assertEqual(v.data, k.ctypes.data)
        self.assertEqual(v.data, cache.ctypes.data + (2 * 96 + 24) * 2)
        self.assertEqual((v.token_stride, v.head_stride, v.head_dim), (96, 24, 16))
        self.assertEqual(v.dtype, fasa.DTYPE_F16)

    def test_head_major(self):
        hf = np.zeros((4, 12, 8), np.float32)  # [heads, tokens, dim]
        k = hf.transpose(1, 0, 2)
        v = fasa.as_view(k)
        self.assertEqual(v.data, hf.ctypes.data)
        self.assertEqual((v.token_stride, v.head_stride), (8, 96))

    def test_bf16(self):
        raw = np.zeros((2, 2, 4), np.uint16)
        with self.assertRaisesRegex(ValueError, "bf16"):
            fasa.as_view(raw)
        self.assertEqual(fasa.as_view(raw, "bf16").dtype, fasa.DTYPE_BF16)
        with self.assertRaises(ValueError):
            fasa.as_view(np.zeros((2, 2, 4), np.float32), "bf16")

    def test_rejections(self):
        a = np.zeros((4, 2, 8), np.float32)
        with self.assertRaisesRegex(ValueError, "negative stride"):
            fasa.as_view(a[::-1])
        with self.assertRaisesRegex(ValueError, "contiguous"):
            fasa.as_view(a[:, :, ::2])
        raw = np.zeros(4 * 2 * 8 * 4 + 64, np.uint8)
        odd = np.ndarray((4, 2, 8), np.float32, raw, strides=(66, 32, 4))
        with self.assertRaisesRegex(ValueError, "multiple of the item size"):
            fasa.as_view(odd)
        with self.assertRaises(ValueError):
            fasa.as_view(np.zeros((4, 8), np.float32))
        with self.assertRaises(ValueError):
            fasa.as_view(np.zeros((4, 2, 8), np.float64))
        with self.assertRaises(TypeError):
            fasa.as_view([[[1.0]]])
        ro = np.zeros((1, 1, 4), np.float32)
        ro.flags.writeable = False
        fasa.as_view(ro)  # fine as an input
        with self.assertRaisesRegex(ValueError, "read-only"):
            fasa.as_view(ro, writable=True)

    def test_size_one_axes_ignore_strides(self):
        a = np.zeros((3, 5, 8), np.float32)
        one = a[1:2, ::-1][:, 2:3]  # size-1 axes with a negative stride are fine
        v = fasa.as_view(one)
        self.assertEqual(v.data, one.ctypes.data)
        self.assertEqual((v.n_tokens, v.n_heads), (1, 1))


if __name__ == "__main__":
    unittest.main()
