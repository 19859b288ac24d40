#!/usr/bin/env python3
"""Build a wheel of the fasa package with libfasa bundled next to it, using
the standard library only (no setuptools, wheel or network: Debian 12's
python3 is enough).

    python3 examples/python/make_wheel.py --lib build/libfasa.so.0.1.0 --out build/python

The wheel is platform-specific (it carries the shared library built here)
and installs offline into a virtual environment that sees Debian's numpy:

    python3 -m venv --system-site-packages ~/.venvs/fasa
    ~/.venvs/fasa/bin/pip install --no-index build/python/fasa-*.whl
"""
import argparse
import base64
import hashlib
import os
import re
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def version():
    src = open(os.path.join(HERE, "fasa", "_lib.py")).read()
    m = re.search(r"BINDINGS_VERSION = \((\d+), (\d+), (\d+)\)", src)
    return "%s.%s.%s" % m.groups()


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, help="the built libfasa.so.X.Y.Z")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ver = version()
    major = ver.split(".")[0]
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    name = "fasa-%s-py3-none-%s.whl" % (ver, plat)
    dist = "fasa-%s.dist-info" % ver
    files = []
    for fn in sorted(os.listdir(os.path.join(HERE, "fasa"))):
        if fn.endswith(".py"):
            with open(os.path.join(HERE, "fasa", fn), "rb") as f:
                files.append(("fasa/" + fn, f.read(), 0o644))
    with open(a.lib, "rb") as f:
        files.append(("fasa/libfasa.so.%s" % major, f.read(), 0o755))
    readme = open(os.path.join(HERE, "README.md")).read()
    meta = ("Metadata-Version: 2.1\nName: fasa\nVersion: %s\n"
            "Summary: ctypes bindings for libfasa (Frequency-Aware Sparse Attention), "
            "with the library\nLicense: MIT\nRequires-Python: >=3.8\nRequires-Dist: numpy\n"
            "Description-Content-Type: text/markdown\n\n%s" % (ver, readme))
    files.append((dist + "/METADATA", meta.encode(), 0o644))
    files.append((dist + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: fasa make_wheel.py\n"
                                    "Root-Is-Purelib: false\nTag: py3-none-%s\n" % plat).encode(),
                  0o644))
    files.append((dist + "/top_level.txt", b"fasa\n", 0o644))
    record = [record_line(n, d) for n, d, _ in files] + [dist + "/RECORD,,"]
    files.append((dist + "/RECORD", ("\n".join(record) + "\n").encode(), 0o644))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data, mode in files:
            info = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    print(path)


if __name__ == "__main__":
    main()
