# examples/bindings.mk - checks of the Python (ctypes) and Rust bindings.
# Included by the top-level Makefile. See docs/bindings.md.
#
#   make check-python    examples/python/tests against $(BUILD)/libfasa.so
#   make check-rust      cargo test of examples/rust (into $(BUILD)/rust-target)
#   make python-wheel    $(BUILD)/python/fasa-*.whl with libfasa bundled
#   make check-python-install   that wheel in a fresh venv, used from /tmp
#   make bench-python    per-call overhead, threads next to torch (timings)
#
# Both are skipped (exit 77, "SKIP <target>: <reason>") when their
# toolchain (numpy, cargo) is missing.

BINDINGS_LIB := $(abspath $(BUILD))/libfasa.so

# Under SAN the library needs the sanitizer runtimes loaded before anything
# else in the (uninstrumented) python / test binary.
BINDINGS_PRELOAD := $(strip \
    $(if $(findstring address,$(SAN)),$(shell $(CC) -print-file-name=libasan.so)) \
    $(if $(findstring undefined,$(SAN)),$(shell $(CC) -print-file-name=libubsan.so)))
BINDINGS_ENV := $(if $(BINDINGS_PRELOAD),LD_PRELOAD="$(BINDINGS_PRELOAD)" \
    ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0,)

# unittest's own summary is not a line CI reads, so the last line is
# rewritten as "check-python: N passed, N failed, N skipped".
# test_hf compares the drop-in with build/llama (skipped when torch or the
# models are absent: SKIP lines in the log).
check-python: $(SHARED) $(BUILD)/libfasa.so $(BUILD)/llama
	@if ! $(PYTHON) -c 'import numpy' >/dev/null 2>&1; then \
	    echo "SKIP check-python: $(PYTHON) cannot import numpy"; exit 77; fi; \
	log=$(BUILD)/check-python.log; \
	$(BINDINGS_ENV) FASA_LIBRARY=$(BINDINGS_LIB) FASA_LLAMA_BIN=$(abspath $(BUILD))/llama \
	    PYTHONDONTWRITEBYTECODE=1 \
	    $(PYTHON) -m unittest discover -s examples/python/tests -v >$$log 2>&1; rc=$$?; \
	cat $$log; \
	ran=$$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' $$log); \
	bad=$$(sed -n 's/^FAILED (\(.*\))/\1/p' $$log | tr ',' '\n' | \
	    sed -n 's/.*\(failures\|errors\)=\([0-9]*\).*/\2/p' | awk '{s+=$$1} END {print s+0}'); \
	skip=$$(grep -o 'skipped=[0-9]*' $$log | tail -n 1 | cut -d= -f2); \
	echo "check-python: $$(( $${ran:-0} - $$bad - $${skip:-0} )) passed, $$bad failed, $${skip:-0} skipped"; \
	if [ "$${skip:-0}" -gt 0 ]; then \
	    echo "SKIP check-python/unittest: $$skip tests skipped (their reasons: $$log)"; fi; \
	test $$rc -eq 0 -a -n "$$ran"

RUST_TARGET := $(abspath $(BUILD))/rust-target

# Not under SAN: the preloaded sanitizer runtime would land in cargo and
# rustc themselves (tests/tests.mk's sanitizer runs cover the C library).
check-rust: $(SHARED) $(STATIC) $(BUILD)/libfasa.so
	@if ! command -v cargo >/dev/null 2>&1; then \
	    echo "SKIP check-rust: cargo not found"; exit 77; fi; \
	if [ -n "$(SAN)" ]; then echo "SKIP check-rust: not under SAN=$(SAN)"; exit 77; fi; \
	cd examples/rust && CARGO_TARGET_DIR=$(RUST_TARGET) \
	    FASA_LIB_DIR=$(abspath $(BUILD)) env -u MAKEFLAGS -u MFLAGS cargo test --offline -q

# The crate as a user adds it: `cargo add --path` into a new crate, built
# as build.rs does by default from a build tree (static libfasa.a: the binary
# must not need libfasa.so) and with FASA_STATIC=0 (shared; found through
# LD_LIBRARY_PATH, as after `make install` through ldconfig).
RUST_USER := $(abspath $(BUILD))/rust-user
check-rust-install: $(SHARED) $(STATIC) $(BUILD)/libfasa.so
	@if ! command -v cargo >/dev/null 2>&1; then \
	    echo "SKIP check-rust-install: cargo not found"; \
	    echo "check-rust-install: 0 passed, 0 failed, 1 skipped"; exit 0; fi; \
	if [ -n "$(SAN)" ]; then echo "check-rust-install: SKIPPED under SAN=$(SAN)"; exit 0; fi; \
	rm -rf $(RUST_USER); mkdir -p $(RUST_USER); log=$(RUST_USER).log; pass=0; fail=0; \
	(cd $(RUST_USER) && env -u MAKEFLAGS -u MFLAGS cargo init -q --offline --name fasa_user . && \
	 env -u MAKEFLAGS -u MFLAGS cargo add -q --offline --path $(abspath examples/rust)) >$$log 2>&1 && \
	printf '%s\n' 'fn main() -> Result<(), Box<dyn std::error::Error>> {' \
	    '    let q = vec![1f32; 16]; let k = vec![1f32; 64]; let mut out = vec![0f32; 16];' \
	    '    let (qv, kv) = (fasa::View::contiguous(&q, 1, 2, 8)?, fasa::View::contiguous(&k, 4, 2, 8)?);' \
	    '    let mut ov = fasa::ViewMut::contiguous(&mut out, 1, 2, 8)?;' \
	    '    fasa::Context::new()?.attend_dense(&qv, &kv, &kv, 0.0, &mut ov, None)?;' \
	    '    assert!(out.iter().all(|x| (x - 1.0).abs() < 1e-6)); println!("fasa {}", fasa::version_string()); Ok(()) }' \
	    >$(RUST_USER)/src/main.rs || fail=1; \
	for mode in static shared; do \
	    st=$$( [ $$mode = static ] && echo "-u FASA_STATIC" || echo "FASA_STATIC=0 LD_LIBRARY_PATH=$(abspath $(BUILD))" ); \
	    if (cd $(RUST_USER) && env -u MAKEFLAGS -u MFLAGS $$st FASA_LIB_DIR=$(abspath $(BUILD)) \
	        CARGO_TARGET_DIR=$(RUST_USER)/target-$$mode cargo run -q --offline) >>$$log 2>&1 && \
	       { [ $$mode = shared ] || ! readelf -d $(RUST_USER)/target-$$mode/debug/fasa_user | grep -q 'NEEDED.*libfasa'; }; \
	    then pass=$$((pass+1)); echo "  ok   cargo add --path + cargo run ($$mode libfasa)"; \
	    else fail=$$((fail+1)); tail -n 30 $$log; echo "  FAIL cargo add --path + cargo run ($$mode)"; fi; \
	done; \
	echo "check-rust-install: $$pass passed, $$fail failed"; test $$fail -eq 0

# The wheel: the package plus the shared library next to it, written by a
# standard-library script (no setuptools/wheel/network needed).
PY_WHEEL_DIR := $(BUILD)/python

python-wheel: $(SHARED)
	@rm -f $(PY_WHEEL_DIR)/fasa-*.whl
	$(PYTHON) examples/python/make_wheel.py --lib $(SHARED) --out $(PY_WHEEL_DIR)

# The documented install, as a user runs it: a venv that sees Debian's numpy
# (and torch), pip install of the wheel without network, then the package
# used from another directory with no FASA_* variable set.
check-python-install: python-wheel
	@if ! $(PYTHON) -c 'import numpy, ensurepip' >/dev/null 2>&1; then \
	    echo "SKIP check-python-install: $(PYTHON) lacks numpy or venv/ensurepip (apt-get install python3-venv python3-numpy)"; \
	    echo "check-python-install: 0 passed, 0 failed, 1 skipped"; exit 0; fi; \
	venv=$(abspath $(BUILD))/py-venv; rm -rf $$venv; log=$(abspath $(BUILD))/check-python-install.log; \
	if ! $(PYTHON) -m venv --system-site-packages $$venv >$$log 2>&1 || \
	   ! $$venv/bin/pip install -q --no-index $(abspath $(PY_WHEEL_DIR))/fasa-*.whl >>$$log 2>&1; then \
	    cat $$log; echo "check-python-install: 0 passed, 1 failed, 0 skipped"; exit 1; fi; \
	if (cd /tmp && env -u FASA_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH VENV=$$venv $$venv/bin/python -c \
	    'import os, numpy as np, fasa; d = os.path.dirname(fasa.__file__); \
	     assert fasa.library_path().startswith(d), fasa.library_path(); \
	     assert d.startswith(os.environ["VENV"]), d; \
	     q = np.ones((1, 2, 8), np.float32); k = np.ones((4, 1, 8), np.float32); \
	     assert np.allclose(fasa.attend_dense(q, k, k), 1.0); print(fasa.library_path())' \
	    ) >>$$log 2>&1; then echo "check-python-install: wheel in a venv loads $$(tail -n 1 $$log): 1 passed, 0 failed, 0 skipped"; \
	else cat $$log; echo "check-python-install: 0 passed, 1 failed, 0 skipped"; exit 1; fi

bench-python: $(BUILD)/libfasa.so
	@FASA_LIBRARY=$(BINDINGS_LIB) $(PYTHON) examples/python/bench/bench_overhead.py
	@FASA_LIBRARY=$(BINDINGS_LIB) $(PYTHON) examples/python/bench/bench_threads.py

CHECK_TARGETS += check-python check-rust check-python-install check-rust-install
.PHONY: check-python check-rust python-wheel check-python-install check-rust-install bench-python
