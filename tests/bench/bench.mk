# tests/bench/bench.mk - `make bench` (never part of `make check`).
#
#   make bench                          full sweep (< 10 min on 2 cores)
#   make bench BENCH_QUICK=1            t = 4k, 16k; f16; 1 thread
#   make bench BENCH_THREADS=1,2,4,8,16 BENCH_T=65536 BENCH_DTYPES=f16
#   make bench BENCH_SVG=docs/bench-time-vs-t.svg   refresh the doc plot
#   make bench-prefill                  the prefill table alone (tests/bench/prefill.c;
#                                       `make bench` runs it after the decode tables,
#                                       BENCH_PREFILL=0 skips it there)
#
# Results: $(BUILD)/bench/results.csv, topk.csv, prefill.csv, results.md and the SVG plot
# (time per step vs t, dense and FASA) written by tests/bench/plot.py.
# OpenMP threads spin between calls (OMP_WAIT_POLICY=active unless set):
# waking a sleeping worker cost about 8 ms per call on the 2-vCPU VM.

BENCH_DIR := $(BUILD)/bench
BENCH_BIN := $(BENCH_DIR)/bench
PREFILL_BIN := $(BENCH_DIR)/prefill
BENCH_SVG ?= $(BENCH_DIR)/bench-time-vs-t.svg

$(BENCH_BIN): tests/bench/bench.c tests/bench/bench_util.h $(STATIC) include/fasa.h $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

$(PREFILL_BIN): tests/bench/prefill.c tests/bench/bench_util.h $(STATIC) include/fasa.h $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS)

bench: $(BENCH_BIN) $(PREFILL_BIN)
	{ OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-active} BENCH_OUT=$(BENCH_DIR) ./$(BENCH_BIN); \
	  echo $$? > $(BENCH_DIR)/rc; } | tee $(BENCH_DIR)/bench.txt
	@exit $$(cat $(BENCH_DIR)/rc)
	{ OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-active} BENCH_OUT=$(BENCH_DIR) ./$(PREFILL_BIN); \
	  echo $$? > $(BENCH_DIR)/rc; } | tee -a $(BENCH_DIR)/bench.txt
	@exit $$(cat $(BENCH_DIR)/rc)
	$(PYTHON) tests/bench/plot.py $(BENCH_DIR) $(BENCH_SVG)

bench-prefill: $(PREFILL_BIN)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-active} BENCH_OUT=$(BENCH_DIR) ./$(PREFILL_BIN) \
	    | tee $(BENCH_DIR)/prefill.txt

.PHONY: bench bench-prefill

# The runtime-integration figures (batched decode, host threads):
#   make bench-runtime   BENCH_REPS=21 BENCH_SEQ=8 BENCH_TSEQ=4096 BENCH_THOST=16384
BENCH_RT_BIN := $(BENCH_DIR)/bench_runtime

$(BENCH_RT_BIN): tests/bench/bench_runtime.c $(STATIC) include/fasa.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LIBS) -pthread

bench-runtime: $(BENCH_RT_BIN)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-active} ./$(BENCH_RT_BIN) | tee $(BENCH_DIR)/bench_runtime.txt

.PHONY: bench-runtime
