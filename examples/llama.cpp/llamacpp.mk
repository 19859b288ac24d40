# examples/llama.cpp/llamacpp.mk - libfasa inside llama.cpp (included by the
# top-level Makefile). See examples/llama.cpp/README.md.
#
#   make llamacpp          unpack + patch + build the pinned llama.cpp snapshot
#                          in build/llama.cpp/ and convert the models to GGUF
#   make check-llamacpp    that, then the integration tests (skipped with a
#                          visible SKIP line when the snapshot, the model,
#                          cmake, c++ or numpy are missing)
#   make bench-llamacpp    decode speed: llama.cpp flash attention vs FASA
#
# Only BUILD=build is supported (the llama.cpp build links build/libfasa.a).

LLAMACPP_TARBALL ?= ../shared/third_party/llama.cpp-c392e50.tar.xz
LLAMACPP_MODEL   ?= ../shared/models/llama-28m

# Empty when everything is there, else the reason for the SKIP line.
llamacpp_missing = $(strip \
    $(if $(wildcard $(LLAMACPP_TARBALL)),,snapshot $(LLAMACPP_TARBALL) not found) \
    $(if $(wildcard $(LLAMACPP_MODEL)/config.json),,model $(LLAMACPP_MODEL) not found) \
    $(if $(shell command -v cmake),,cmake not installed) \
    $(if $(shell command -v $(CXX)),,$(CXX) not installed) \
    $(if $(shell $(PYTHON) -c 'import numpy' 2>/dev/null && echo y),,numpy missing for $(PYTHON)))

llamacpp: $(STATIC)
	nice -n 10 sh examples/llama.cpp/build.sh $(LLAMACPP_TARBALL)

check-llamacpp: $(STATIC) $(BUILD)/llama
	@if [ -n "$(llamacpp_missing)" ]; then \
	    echo "SKIP check-llamacpp: $(llamacpp_missing)"; exit 77; \
	else \
	    nice -n 10 sh examples/llama.cpp/build.sh $(LLAMACPP_TARBALL) && \
	    LLAMACPP_MODEL_DIR=$(LLAMACPP_MODEL) PYTHON=$(PYTHON) \
	        sh examples/llama.cpp/test_llamacpp.sh $(BUILD)/llama $(BUILD)/llamacpp-test; \
	fi

bench-llamacpp: llamacpp
	nice -n 10 sh examples/llama.cpp/bench.sh

CHECK_TARGETS += check-llamacpp
.PHONY: llamacpp check-llamacpp bench-llamacpp

# The build alone takes ~5 min of CPU on 2 cores: more than the default
# per-item limit of tests/check_run.sh.
$(CHECK_DIR)/check-llamacpp.res: export CHECK_TIMEOUT := 1500
