# examples/examples.mk - the standalone decode-step demo (included by the
# top-level Makefile).
#
#   make demo     build $(BUILD)/examples/decode_step and run it
#
# The demo uses only the public header; it is built with -Wpedantic -Werror
# to keep it a clean C11 example. It is not a test (tests/ owns make check).

DEMO_BIN := $(BUILD)/examples/decode_step
BIN_TARGETS += $(DEMO_BIN)

$(DEMO_BIN): examples/decode_step.c include/fasa.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wpedantic -Werror $< -o $@ $(STATIC) $(LIBS)

demo: $(DEMO_BIN)
	$(DEMO_BIN)
