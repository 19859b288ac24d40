# tests/neon.mk - check-neon: the kernel tests on AArch64 under qemu-aarch64.
# Cross-compiles the library sources, tests/test_kernels.c,
# tests/test_attn_tile.c and tests/util.c statically into $(BUILD)/aarch64/
# (no OpenMP) and runs both programs, plus the FASA_CPU cap checks (the
# program cannot spawn itself under qemu).
# Skipped (exit 77) when aarch64-linux-gnu-gcc or qemu-aarch64 is absent.

NEON_CC     ?= aarch64-linux-gnu-gcc
NEON_QEMU   ?= qemu-aarch64
NEON_DIR    := $(BUILD)/aarch64
NEON_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARNINGS) -Wno-unknown-pragmas \
               -Iinclude -Isrc -O2
NEON_SRC    := $(LIB_SRC) $(wildcard tests/util.c)
NEON_OBJ    := $(NEON_SRC:%.c=$(NEON_DIR)/obj/%.o)
NEON_HAVE   := $(shell command -v $(NEON_CC) >/dev/null 2>&1 && \
                       command -v $(NEON_QEMU) >/dev/null 2>&1 && echo 1)

$(NEON_DIR)/obj/%.o: %.c include/fasa.h $(wildcard src/*.h src/*.def src/*/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(NEON_CC) $(NEON_CFLAGS) -c $< -o $@

$(NEON_DIR)/test_%: $(NEON_DIR)/obj/tests/test_%.o $(NEON_OBJ)
	$(NEON_CC) -static -o $@ $^ -lm
# objects reached through the pattern rule are kept (not intermediate)
.SECONDARY: $(NEON_OBJ) $(NEON_DIR)/obj/tests/test_kernels.o $(NEON_DIR)/obj/tests/test_attn_tile.o

.PHONY: check-neon
ifeq ($(NEON_HAVE),1)
CHECK_BUILD += $(NEON_DIR)/test_kernels $(NEON_DIR)/test_attn_tile
check-neon: $(NEON_DIR)/test_kernels $(NEON_DIR)/test_attn_tile
	$(NEON_QEMU) $(NEON_DIR)/test_kernels --no-spawn
	$(NEON_QEMU) $(NEON_DIR)/test_attn_tile
	FASA_CPU=scalar $(NEON_QEMU) $(NEON_DIR)/test_kernels --cap-check scalar
	FASA_CPU=neon $(NEON_QEMU) $(NEON_DIR)/test_kernels --cap-check neon
else
check-neon:
	@echo "SKIP check-neon: $(NEON_CC) or $(NEON_QEMU) not found"; exit 77
endif
CHECK_TARGETS += check-neon
