# tests/fuzz/fuzz.mk - fuzz targets and the corpus replay (the valgrind runs
# and tests/test_determinism.c are ordinary items of tests/tests.mk).
# Included by the top-level Makefile. See docs/testing.md, "Fuzzing and
# reliability".
#
#   make fuzz               libFuzzer binaries $(BUILD)/fuzz/fuzz_<target>
#                           (clang -fsanitize=fuzzer,address,undefined)
#   make check-fuzz-replay  every file of tests/fuzz/corpus/<target>/ through
#                           its entry point, built with $(CC) + ASan/UBSan and
#                           no libFuzzer (part of make check)
#
# Targets: profile (fasa_profile_load_buffer), views (validation of every
# public call's views, budgets, strides and sizes against small buffers),
# npy (calib/npy.c), safetensors (examples/llama/safetensors.c).
# A campaign:  make fuzz && nice -n 10 $(BUILD)/fuzz/fuzz_npy \
#                  -max_total_time=300 $(BUILD)/fuzz/work-npy tests/fuzz/corpus/npy
# or all targets with a corpus merge: tests/fuzz/campaign.sh.

FUZZ_TARGETS := profile views npy safetensors
FUZZ_CC      ?= clang
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARNINGS) -Wno-unknown-pragmas \
                -Iinclude -Isrc -Icalib -Iexamples/llama -O1 -g $(FUZZ_SAN)
FUZZ_HDRS    := include/fasa.h $(wildcard src/*.h src/*.def src/*/*.h calib/*.h examples/llama/*.h)
# Reader sources of other components each entry point compiles in.
FUZZ_EXTRA_npy         := calib/npy.c
FUZZ_EXTRA_safetensors := examples/llama/json.c
FUZZ_DEPS_safetensors  := examples/llama/safetensors.c

# --- libFuzzer binaries (clang): library instrumented for coverage too.
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)

$(FUZZ_DIR)/obj/%.o: %.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# One link rule per target (explicit, so no .SECONDEXPANSION is needed).
define FUZZ_RULES
$$(FUZZ_DIR)/fuzz_$(1): $$(FUZZ_DIR)/obj/tests/fuzz/fuzz_$(1).o \
        $$(FUZZ_EXTRA_$(1):%.c=$$(FUZZ_DIR)/obj/%.o) $$(FUZZ_LIB_OBJ)
	$$(FUZZ_CC) -fsanitize=fuzzer $$(FUZZ_SAN) -o $$@ $$^ -lm

$$(BUILD)/replay_$(1): $$(FUZZ_RSRC_OBJ)/tests/fuzz/replay.o $$(FUZZ_RSRC_OBJ)/tests/fuzz/fuzz_$(1).o \
        $$(FUZZ_EXTRA_$(1):%.c=$$(FUZZ_RSRC_OBJ)/%.o) $$(STATIC)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $$^ $$(LIBS)
endef

$(FUZZ_DIR)/obj/tests/fuzz/fuzz_safetensors.o: $(FUZZ_DEPS_safetensors)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

# --- Replay drivers: $(CC), ASan+UBSan, no OpenMP: the ASan build of
# tests/tests.mk (BUILD=$(ASAN_BUILD)), whose one sub-make builds them with
# the test programs (ASAN_BINS) before make check runs any item.
FUZZ_RBUILD  := $(ASAN_BUILD)
ASAN_BINS    += $(FUZZ_TARGETS:%=$(FUZZ_RBUILD)/replay_%)
FUZZ_RSRC_OBJ := $(BUILD)/fobj
FUZZ_REPLAY_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
                   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

$(FUZZ_RSRC_OBJ)/%.o: %.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icalib -Iexamples/llama -c $< -o $@

$(FUZZ_RSRC_OBJ)/tests/fuzz/fuzz_safetensors.o: $(FUZZ_DEPS_safetensors)

$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULES,$(t))))

fuzz-replay-run: $(FUZZ_TARGETS:%=$(BUILD)/replay_%)
	@pass=0; fail=0; \
	for t in $(FUZZ_TARGETS); do \
	    if $(FUZZ_REPLAY_ENV) $(BUILD)/replay_$$t tests/fuzz/corpus/$$t >$(BUILD)/replay_$$t.log 2>&1; then \
	        echo "PASS replay_$$t: $$(tail -n 1 $(BUILD)/replay_$$t.log)"; pass=$$((pass+1)); \
	    else \
	        tail -n 40 $(BUILD)/replay_$$t.log; \
	        echo "FAIL replay_$$t (log $(BUILD)/replay_$$t.log; REPLAY_VERBOSE=1 names each input)"; \
	        fail=$$((fail+1)); \
	    fi; \
	done; \
	echo "check-fuzz-replay: $$pass passed, $$fail failed"; test $$fail -eq 0

check-fuzz-replay:
	@$(MAKE) --no-print-directory -s BUILD=$(FUZZ_RBUILD) SAN=address,undefined OPT=-O1 \
	    OPENMP=0 fuzz-replay-run

CHECK_TARGETS += check-fuzz-replay
.PHONY: fuzz check-fuzz-replay fuzz-replay-run
