# examples/bindings.mk - checks of the Python (ctypes) and Rust bindings.
# Included by the top-level Makefile. See docs/bindings.md.
#
#   make check-python    examples/python/tests against $(BUILD)/libfasa.so
#   make check-rust      cargo test of examples/rust (into $(BUILD)/rust-target)
#
# Both skip with a message when their toolchain (numpy, cargo) is missing.

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
	    echo "check-python: SKIPPED: $(PYTHON) cannot import numpy"; exit 0; fi; \
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
	test $$rc -eq 0 -a -n "$$ran"

RUST_TARGET := $(abspath $(BUILD))/rust-target

# Not under SAN: the preloaded sanitizer runtime would land in cargo and
# rustc themselves (tests/tests.mk's sanitizer runs cover the C library).
check-rust: $(SHARED) $(BUILD)/libfasa.so
	@if ! command -v cargo >/dev/null 2>&1; then \
	    echo "check-rust: SKIPPED: cargo not found"; exit 0; fi; \
	if [ -n "$(SAN)" ]; then echo "check-rust: SKIPPED under SAN=$(SAN)"; exit 0; fi; \
	cd examples/rust && CARGO_TARGET_DIR=$(RUST_TARGET) \
	    FASA_LIB_DIR=$(abspath $(BUILD)) env -u MAKEFLAGS -u MFLAGS cargo test --offline -q

CHECK_TARGETS += check-python check-rust
.PHONY: check-python check-rust
