"""Visible skips: every skipped test prints `SKIP <name>: <reason>` (the
project's rule) besides unittest's own count."""
import os
import sys
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
MODELS = os.path.join(os.path.dirname(REPO), "shared", "models")


def skip(name, reason):
    print("SKIP %s: %s" % (name, reason), file=sys.stderr, flush=True)
    raise unittest.SkipTest(reason)


def need_torch(name):
    try:
        import torch
    except ImportError:
        skip(name, "torch is not installed for %s (Debian: apt-get install python3-torch)"
             % sys.executable)
    return torch


def model_dir(name, model):
    path = os.environ.get("FASA_MODELS", MODELS)
    d = os.path.join(path, model)
    if not os.path.exists(os.path.join(d, "config.json")):
        skip(name, "model %s not found under %s" % (model, path))
    return d


def llama_bin(name):
    path = os.environ.get("FASA_LLAMA_BIN", os.path.join(REPO, "build", "llama"))
    if not os.access(path, os.X_OK):
        skip(name, "%s not built (make build/llama)" % path)
    return path
