# calib/calib.mk - fasa-calib, its tests and the shipped llama-28m profile.
# Included by the top-level Makefile.
#
#   make check-calib            tool tests on synthetic dumps (malformed .npy,
#                               run/show/plot/diff/select, SVG rendering)
#   make check-calib-llama28m   re-create calib/profiles/llama-28m.fasa from
#                               the model and compare it bit for bit
#   make calib-regen            rewrite the shipped profile and its map
#                               (docs/llama-28m-agreement.svg)

CALIB_SRC := $(sort $(wildcard calib/*.c))
CALIB_OBJ := $(CALIB_SRC:calib/%.c=$(BUILD)/calib/%.o)
CALIB_BIN := $(BUILD)/fasa-calib

$(BUILD)/calib/%.o: calib/%.c $(wildcard calib/*.h) include/fasa.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CALIB_BIN): $(CALIB_OBJ) $(STATIC)
	$(CC) $(ALL_CFLAGS) -o $@ $(CALIB_OBJ) $(STATIC) $(LIBS)

BIN_TARGETS  += $(CALIB_BIN)
INSTALL_BINS += $(CALIB_BIN)

check-calib: $(CALIB_BIN)
	@PYTHON=$(PYTHON) sh tests/test_calib_tool.sh $(CALIB_BIN) $(BUILD)/calib-test

# The shipped profile: windows 0-3 of llama-28m, default positions, HALF.
CALIB_MODEL   := ../shared/models/llama-28m
CALIB_LLAMA   := $(BUILD)/llama
CALIB_WINDOWS := 0 1 2 3
CALIB_PROFILE := calib/profiles/llama-28m.fasa
# Threads for the runtime's dumps and the calibration; the profile does not
# depend on them (checked: 1 and 2 give identical dumps and profiles).
CALIB_THREADS ?= 1
# Build the runtime first when its fragment is in the tree.
CALIB_LLAMA_DEP := $(if $(wildcard examples/llama/llama.mk),$(CALIB_LLAMA))

check-calib-llama28m: $(CALIB_BIN) $(CALIB_LLAMA_DEP)
	@CALIB_THREADS=$(CALIB_THREADS) sh tests/test_calib_llama28m.sh $(CALIB_BIN) $(CALIB_LLAMA) \
	    $(CALIB_MODEL) $(BUILD)/calib-check $(CALIB_PROFILE) "$(CALIB_WINDOWS)"

calib-regen: $(CALIB_BIN) $(CALIB_LLAMA)
	@CALIB_REGEN=1 CALIB_THREADS=$(CALIB_THREADS) sh tests/test_calib_llama28m.sh $(CALIB_BIN) \
	    $(CALIB_LLAMA) $(CALIB_MODEL) $(BUILD)/calib-check $(CALIB_PROFILE) "$(CALIB_WINDOWS)"
	$(CALIB_BIN) plot $(CALIB_PROFILE) -o docs/llama-28m-agreement.svg

CHECK_TARGETS += check-calib check-calib-llama28m
.PHONY: check-calib check-calib-llama28m calib-regen
