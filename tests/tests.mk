# tests/tests.mk - the test programs in every configuration `make check`
# runs, and the header check. Included by the top-level Makefile, whose
# check machinery (check_group, CHECK_RUN) runs each item. See
# docs/testing.md for what runs where.
#
#   make check-unit      every tests/test_*.c program, native build (TESTS=...)
#   make check-scalar    the accuracy programs at FASA_TEST_LEVEL=scalar
#   make check-asan      ASan+UBSan build: LEVEL_TESTS at every CPU level of
#                        this host (src/levels.def), the other programs once
#   make check-valgrind  VALGRIND_QUICK under memcheck (check-full: all)
#   make tsan            ThreadSanitizer build: TSAN_TESTS (pthreads)
#   make check-cxx       fasa.h compiles as C++11 and as pedantic C11
#
# Every tests/test_*.c is a standalone program (exit 0 = pass, 77 = skipped)
# linked with tests/util.c, tests/ref_double.c and the static library.

TEST_SRC    := $(sort $(wildcard tests/test_*.c))
TEST_ALL    := $(TEST_SRC:tests/%.c=%)
TESTS       ?= $(TEST_ALL)
TEST_DIR    := $(BUILD)/tests
TEST_COMMON := $(TEST_DIR)/obj/util.o $(TEST_DIR)/obj/ref_double.o
TEST_HDRS   := tests/util.h tests/ref_double.h include/fasa.h $(wildcard src/*.h src/*.def)

$(TEST_DIR)/obj/%.o: tests/%.c $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(TEST_DIR)/test_%: $(TEST_DIR)/obj/test_%.o $(TEST_COMMON) $(STATIC)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_COMMON) $(STATIC) $(LIBS) -pthread

test-bins: $(TESTS:%=$(TEST_DIR)/%)

# --- Which programs run where. Programs whose results depend on the kernel
# level (they go through the dispatch table): run once per CPU level under
# the sanitizers. The others do not depend on it (or loop over the levels
# themselves, as test_determinism does) and run once.
LEVEL_TESTS  ?= test_api_basic test_predict test_attend test_decode_step test_guard \
                test_label_cache test_kernels test_attn_kernels test_visibility
SCALAR_TESTS ?= test_api_basic test_predict test_attend test_decode_step test_guard
# Cheap enough under valgrind for every `make check`; each public entry
# point and every dtype path (at the AVX2 level) is in one of them.
VALGRIND_QUICK ?= test_api_basic test_bad_input test_calibrate test_decode_step test_guard \
                  test_label_cache test_profile test_views
# Programs that drive several pthreads through the library at once.
TSAN_TESTS  ?= test_threads test_api_basic test_visibility

# CPU levels of this host's architecture, from src/levels.def (name, arch).
HOST_ARCH  := $(shell $(CC) -dumpmachine 2>/dev/null | \
                sed -e 's/^\(x86_64\|i[3-6]86\)-.*/x86/' -e 's/^aarch64-.*/arm/')
# (The first four fields sit on the FASA_LEVEL line; "(" is a variable
# because make counts parentheses in function arguments.)
LPAREN     := (
CPU_LEVELS := $(shell sed -n 's/^FASA_LEVEL$(LPAREN)[^,]*, *\([a-z0-9_]*\), *[^,]*, *\([a-z0-9]*\),.*/\1 \2/p' \
                src/levels.def | awk '$$2 == "any" || $$2 == "$(HOST_ARCH)" {print $$1}')

# --- Builds of the other configurations (directories: top-level Makefile),
# each by one sub-make so that its objects are never written by two makes
# at once. Fragments add binaries of the ASan build to ASAN_BINS (e.g.
# tests/fuzz/fuzz.mk, the corpus replays).
# OpenMP runtimes are not sanitizer-instrumented (false reports), so the
# sanitizer builds use OPENMP=0; valgrind reports libgomp's pool as lost.
ASAN_MAKE     = $(MAKE) --no-print-directory -s BUILD=$(ASAN_BUILD) SAN=address,undefined OPT=-O1 OPENMP=0
VALGRIND_MAKE = $(MAKE) --no-print-directory -s BUILD=$(VALGRIND_BUILD) OPT=-O1 OPENMP=0
TSAN_MAKE     = $(MAKE) --no-print-directory -s BUILD=$(TSAN_BUILD) SAN=thread OPT=-O1 OPENMP=0
ASAN_BINS    += $(TESTS:%=$(ASAN_BUILD)/tests/%)

build-asan:
	+@$(ASAN_MAKE) $(ASAN_BINS)
build-valgrind:
	+@$(VALGRIND_MAKE) $(TESTS:%=$(VALGRIND_BUILD)/tests/%)
build-tsan:
	+@$(TSAN_MAKE) $(TSAN_TESTS:%=$(TSAN_BUILD)/tests/%)
.PHONY: test-bins build-asan build-valgrind build-tsan

# --- One item per program and configuration (tests/check_run.sh). The seed
# is in the command so that a failure's replay line repeats the run.
TEST_ENV := env FASA_TEST_SEED=$(FASA_TEST_SEED) OMP_WAIT_POLICY=passive
SAN_ENV  := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
VALGRIND       ?= valgrind
VALGRIND_FLAGS ?= --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible \
                  --quiet

$(CHECK_DIR)/unit/%.res: FORCE
	+@$(CHECK_RUN) -b "$(MAKE) --no-print-directory -s $(TEST_DIR)/$*" -- \
	    $(TEST_ENV) $(TEST_DIR)/$*
$(CHECK_DIR)/unit-scalar/%.res: FORCE
	+@$(CHECK_RUN) -b "$(MAKE) --no-print-directory -s $(TEST_DIR)/$*" -- \
	    $(TEST_ENV) FASA_TEST_LEVEL=scalar $(TEST_DIR)/$*
$(CHECK_DIR)/asan/%.res: FORCE
	+@$(CHECK_RUN) -b "$(ASAN_MAKE) $(ASAN_BUILD)/tests/$*" -- \
	    $(TEST_ENV) $(SAN_ENV) $(ASAN_BUILD)/tests/$*
define ASAN_LEVEL_RULE
$$(CHECK_DIR)/asan-$(1)/%.res: FORCE
	+@$$(CHECK_RUN) -b "$$(ASAN_MAKE) $$(ASAN_BUILD)/tests/$$*" -- \
	    $$(TEST_ENV) FASA_TEST_LEVEL=$(1) $$(SAN_ENV) $$(ASAN_BUILD)/tests/$$*
endef
$(foreach l,$(CPU_LEVELS),$(eval $(call ASAN_LEVEL_RULE,$(l))))
# valgrind 3.19 has no AVX-512 decoder: the FASA_CPU cap keeps the kernels
# at AVX2 at most (a cap, not FASA_TEST_LEVEL: a CPU without AVX2 runs too).
$(CHECK_DIR)/valgrind/%.res: FORCE
	+@$(CHECK_RUN) -r $(VALGRIND) -b "$(VALGRIND_MAKE) $(VALGRIND_BUILD)/tests/$*" -- \
	    $(TEST_ENV) FASA_CPU=avx2 $(VALGRIND) $(VALGRIND_FLAGS) $(VALGRIND_BUILD)/tests/$*
$(CHECK_DIR)/tsan/%.res: FORCE
	+@$(CHECK_RUN) -b "$(TSAN_MAKE) $(TSAN_BUILD)/tests/$*" -- \
	    $(TEST_ENV) $(SAN_ENV) $(TSAN_BUILD)/tests/$*

# Slowest first, so that two jobs finish together.
ITEMS_UNIT     := $(TESTS:%=$(CHECK_DIR)/unit/%.res)
ITEMS_SCALAR   := $(patsubst %,$(CHECK_DIR)/unit-scalar/%.res,$(filter $(TESTS),$(SCALAR_TESTS)))
ITEMS_ASAN     := $(foreach l,$(CPU_LEVELS),\
                    $(patsubst %,$(CHECK_DIR)/asan-$(l)/%.res,$(filter $(TESTS),$(LEVEL_TESTS)))) \
                  $(patsubst %,$(CHECK_DIR)/asan/%.res,$(filter-out $(LEVEL_TESTS),$(TESTS)))
ITEMS_VALGRIND := $(patsubst %,$(CHECK_DIR)/valgrind/%.res,$(filter $(TESTS),$(VALGRIND_QUICK)))
ITEMS_VALGRIND_FULL := $(TESTS:%=$(CHECK_DIR)/valgrind/%.res)
ITEMS_TSAN     := $(patsubst %,$(CHECK_DIR)/tsan/%.res,$(filter $(TESTS),$(TSAN_TESTS)))

check-unit:
	$(call check_group,$@,$(ITEMS_UNIT),test-bins)
check-scalar:
	$(call check_group,$@,$(ITEMS_SCALAR),test-bins)
check-asan:
	$(call check_group,$@,$(ITEMS_ASAN),build-asan)
check-valgrind:
	$(call check_group,$@,$(ITEMS_VALGRIND),build-valgrind)
valgrind:
	$(call check_group,$@,$(ITEMS_VALGRIND_FULL),build-valgrind)
tsan:
	$(call check_group,$@,$(ITEMS_TSAN),build-tsan)

CHECK_ITEMS      += $(ITEMS_VALGRIND) $(ITEMS_ASAN) $(ITEMS_UNIT) $(ITEMS_SCALAR) $(ITEMS_TSAN)
CHECK_FULL_ITEMS += $(filter-out $(ITEMS_VALGRIND),$(ITEMS_VALGRIND_FULL))
CHECK_BUILD      += test-bins build-asan build-valgrind build-tsan

# The header alone, as C++11 (linked and run, so extern "C" is proven) and
# as pedantic C11.
CXX_HDR_FLAGS := -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude
C_HDR_FLAGS   := -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude
check-cxx: $(STATIC)
	@mkdir -p $(TEST_DIR)
	$(CXX) $(CXX_HDR_FLAGS) -o $(TEST_DIR)/header_cxx tests/test_header_cxx.cpp $(STATIC) $(LIBS)
	$(CC) $(C_HDR_FLAGS) -x c -c tests/test_header_cxx.cpp -o $(TEST_DIR)/header_c.o
	@$(TEST_DIR)/header_cxx && echo "check-cxx: fasa.h builds as C++11 and C11"

CHECK_TARGETS += check-cxx
.PHONY: check-unit check-scalar check-asan check-valgrind valgrind tsan check-cxx
