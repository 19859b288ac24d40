# examples/llama/llama.mk - the llama runtime on libfasa (included by the
# top-level Makefile).
#
#   make $(BUILD)/llama     the runtime (also built by `make`)
#   make check-llama        correctness tests against the numpy reference and
#                           stories260K (skipped when the models are absent)
#   make study              the FASA quality study -> $(BUILD)/study, see
#                           docs/results.md (long: not part of make check)

LLAMA_SRC     := $(sort $(wildcard examples/llama/*.c))
LLAMA_OBJ     := $(LLAMA_SRC:examples/llama/%.c=$(BUILD)/llama-obj/%.o)
LLAMA_BIN     := $(BUILD)/llama
LLAMA_MODEL   ?= ../shared/models/llama-28m
LLAMA_STORIES ?= ../shared/real_data/llama2c_stories260K/stories260K.bin

$(BUILD)/llama-obj/%.o: examples/llama/%.c $(wildcard examples/llama/*.h) include/fasa.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LLAMA_BIN): $(LLAMA_OBJ) $(STATIC)
	$(CC) $(ALL_CFLAGS) -o $@ $(LLAMA_OBJ) $(STATIC) $(LIBS)

BIN_TARGETS  += $(LLAMA_BIN)
INSTALL_BINS += $(LLAMA_BIN)

check-llama: $(LLAMA_BIN)
	@PYTHON=$(PYTHON) sh examples/llama/test_llama.sh $(LLAMA_BIN) $(LLAMA_MODEL) \
	    $(LLAMA_STORIES) $(BUILD)/llama-test

study: $(LLAMA_BIN)
	nice -n 10 sh examples/llama/study.sh $(LLAMA_BIN) $(LLAMA_MODEL) $(BUILD)/study

CHECK_TARGETS += check-llama
.PHONY: check-llama study
