# tests/tests.mk - unit tests, sanitizer runs and the header check.
# Included by the top-level Makefile. See docs/testing.md.
#
#   make check-unit             every tests/test_*.c program (TESTS=... to pick)
#   make check-scalar           accuracy tests again with FASA_CPU=scalar
#   make check-asan             the same under ASan+UBSan (build/asan, -O1)
#   make asan | ubsan | tsan    standalone sanitizer runs
#   make check-cxx              fasa.h compiles as C++11 and as pedantic C11
#
# Every tests/test_*.c is a standalone program (exit 0 = pass) linked with
# tests/util.c, tests/ref_double.c and the static library.

TEST_SRC    := $(sort $(wildcard tests/test_*.c))
TEST_ALL    := $(TEST_SRC:tests/%.c=%)
TESTS       ?= $(TEST_ALL)
TEST_DIR    := $(BUILD)/tests
TEST_BINS   := $(TESTS:%=$(TEST_DIR)/%)
TEST_COMMON := $(TEST_DIR)/obj/util.o $(TEST_DIR)/obj/ref_double.o
TEST_HDRS   := tests/util.h tests/ref_double.h include/fasa.h $(wildcard src/*.h)
# A hung test must not hang `make check` (timeout from coreutils, if present).
TEST_TIMEOUT := $(shell command -v timeout >/dev/null 2>&1 && echo "timeout 600")
# Cheap enough to run under ThreadSanitizer.
TSAN_TESTS  ?= test_threads test_api_basic

SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
           TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

$(TEST_DIR)/obj/%.o: tests/%.c $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(TEST_DIR)/test_%: $(TEST_DIR)/obj/test_%.o $(TEST_COMMON) $(STATIC)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(TEST_COMMON) $(STATIC) $(LIBS) -pthread

# Each program is built by its own sub-make so that one program that does
# not compile is reported as a failure without stopping the others.
check-unit: $(STATIC) $(TEST_COMMON)
	@mkdir -p $(TEST_DIR); pass=0; fail=0; failed=""; \
	for t in $(TESTS); do \
	    bin=$(TEST_DIR)/$$t; log=$$bin.log; \
	    if ! $(MAKE) --no-print-directory -s $$bin >$$log.build 2>&1; then \
	        cat $$log.build; echo "FAIL $$t (does not build)"; \
	        fail=$$((fail+1)); failed="$$failed $$t"; continue; \
	    fi; \
	    if $(TEST_TIMEOUT) $$bin >$$log 2>&1; then \
	        echo "PASS $$t: $$(tail -n 1 $$log)"; pass=$$((pass+1)); \
	    else \
	        rc=$$?; tail -n 60 $$log; echo "FAIL $$t (exit $$rc, full log $$log)"; \
	        fail=$$((fail+1)); failed="$$failed $$t"; \
	    fi; \
	done; \
	echo "check-unit$(if $(SAN), [$(SAN)],)$(if $(FASA_CPU), [FASA_CPU=$(FASA_CPU)],): $$pass passed, $$fail failed$${failed:+ (failed:$$failed)}"; \
	test $$fail -eq 0

# OpenMP runtimes are not sanitizer-instrumented (false reports), so the
# sanitizer builds use OPENMP=0.
check-asan:
	@$(SAN_ENV) $(MAKE) --no-print-directory BUILD=build/asan SAN=address,undefined \
	    OPT=-O1 OPENMP=0 check-unit

asan:
	@$(SAN_ENV) $(MAKE) --no-print-directory BUILD=build/san-address SAN=address \
	    OPT=-O1 OPENMP=0 check-unit

ubsan:
	@$(SAN_ENV) $(MAKE) --no-print-directory BUILD=build/san-undefined SAN=undefined \
	    OPT=-O1 OPENMP=0 check-unit

tsan:
	@$(SAN_ENV) $(MAKE) --no-print-directory BUILD=build/tsan SAN=thread \
	    OPT=-O1 OPENMP=0 TESTS="$(TSAN_TESTS)" check-unit

# The accuracy suite again on the portable scalar kernels only.
SCALAR_TESTS ?= test_api_basic test_predict test_attend test_decode_step test_guard
# After check-unit: both would otherwise build the same binaries at once.
check-scalar: check-unit
	@FASA_CPU=scalar $(MAKE) --no-print-directory TESTS="$(SCALAR_TESTS)" check-unit

# The header alone, as C++11 (linked and run, so extern "C" is proven) and
# as pedantic C11.
CXX_HDR_FLAGS := -std=c++11 -Wall -Wextra -Werror -pedantic -Iinclude
C_HDR_FLAGS   := -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude
check-cxx: $(STATIC)
	@mkdir -p $(TEST_DIR)
	$(CXX) $(CXX_HDR_FLAGS) -o $(TEST_DIR)/header_cxx tests/test_header_cxx.cpp $(STATIC) $(LIBS)
	$(CC) $(C_HDR_FLAGS) -x c -c tests/test_header_cxx.cpp -o $(TEST_DIR)/header_c.o
	@$(TEST_DIR)/header_cxx && echo "check-cxx: fasa.h builds as C++11 and C11: 1 passed, 0 failed"

CHECK_TARGETS += check-cxx check-unit check-scalar check-asan
.PHONY: check-unit check-scalar check-asan asan ubsan tsan check-cxx
