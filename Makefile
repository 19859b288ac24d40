# libfasa - top-level Makefile (GNU make).
#
#   make                 static + shared library, fasa-calib, into $(BUILD)/
#   make check           every test (also under ASan+UBSan), see docs/testing.md
#   make demo            build and run examples/decode_step.c
#   make bench           benchmarks (never part of check)
#   make install / uninstall   PREFIX, DESTDIR, LIBDIR, INCLUDEDIR, PKGCONFIGDIR
#   make OPENMP=0        build without OpenMP
#
# Sub-directories add their own targets through */*.mk fragments included at
# the end; each fragment appends to CHECK_TARGETS, BIN_TARGETS, CLEAN_FILES.

VERSION   := $(shell sed -n 's/^\#define FASA_VERSION_STRING "\(.*\)"/\1/p' include/fasa.h)
ABI_MAJOR := $(shell sed -n 's/^\#define FASA_VERSION_MAJOR \([0-9]*\)/\1/p' include/fasa.h)

CC      ?= cc
CXX     ?= c++
AR      ?= ar
PYTHON  ?= /usr/bin/python3
OPENMP  ?= 1
BUILD   ?= build
SAN     ?=

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
BINDIR       ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

WARNINGS := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow -Wvla -Wundef
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
BASEFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARNINGS) -Iinclude -Isrc
ifneq ($(SAN),)
BASEFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
SANLDFLAGS := -fsanitize=$(SAN)
endif
ifeq ($(OPENMP),1)
OMPFLAGS := -fopenmp
BASEFLAGS += -DFASA_OPENMP=1
else
OMPFLAGS :=
BASEFLAGS += -Wno-unknown-pragmas
endif
ALL_CFLAGS  = $(BASEFLAGS) $(OMPFLAGS) $(CFLAGS)
LIB_CFLAGS  = $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LIBS        = -lm $(OMPFLAGS) $(SANLDFLAGS)

LIB_SRC  := $(sort $(wildcard src/*.c src/ref/*.c src/x86/*.c src/arm/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
STATIC   := $(BUILD)/libfasa.a
SONAME   := libfasa.so.$(ABI_MAJOR)
SHARED   := $(BUILD)/libfasa.so.$(VERSION)

CHECK_TARGETS :=
BIN_TARGETS   :=
CLEAN_FILES   :=

.PHONY: all lib check demo bench install uninstall clean check-symbols
.DEFAULT_GOAL := all

all: lib bins
lib: $(STATIC) $(SHARED) $(BUILD)/libfasa.so $(BUILD)/fasa.pc

$(BUILD)/obj/%.o: %.c include/fasa.h $(wildcard src/*.h src/*.def src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined -Wl,-z,noexecstack \
	    -o $@ $^ $(LIBS)

$(BUILD)/libfasa.so: $(SHARED)
	ln -sf libfasa.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf libfasa.so.$(VERSION) $@

# pkg-config file: paths relative to ${prefix}; OpenMP only in Libs.private.
$(BUILD)/fasa.pc: pkgconfig/fasa.pc.in include/fasa.h Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@OPENMP_LIBS@|$(OMPFLAGS)|' $< > $@

# Only fasa_* may be exported from the shared library.
check-symbols: $(SHARED)
	@bad=$$(nm -D --defined-only $(SHARED) | awk '{print $$3}' | grep -v '^fasa_' | grep -v '^_' ); \
	if [ -n "$$bad" ]; then echo "non-fasa_ exported symbols: $$bad"; exit 1; fi; \
	n=$$(nm -D --defined-only $(SHARED) | grep -c ' T fasa_'); \
	echo "check-symbols: $$n fasa_* functions exported, nothing else: 1 passed, 0 failed"
CHECK_TARGETS += check-symbols

install: lib bins
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/fasa.h $(DESTDIR)$(INCLUDEDIR)/fasa.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libfasa.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libfasa.so.$(VERSION)
	ln -sf libfasa.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf libfasa.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libfasa.so
	install -m 644 $(BUILD)/fasa.pc $(DESTDIR)$(PKGCONFIGDIR)/fasa.pc
	$(foreach b,$(INSTALL_BINS),install -m 755 $(b) $(DESTDIR)$(BINDIR)/$(notdir $(b));)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/fasa.h $(DESTDIR)$(LIBDIR)/libfasa.a \
	      $(DESTDIR)$(LIBDIR)/libfasa.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libfasa.so $(DESTDIR)$(PKGCONFIGDIR)/fasa.pc
	$(foreach b,$(INSTALL_BINS),rm -f $(DESTDIR)$(BINDIR)/$(notdir $(b));)

clean:
	rm -rf build $(CLEAN_FILES)

# Fragments: tests/tests.mk, examples/examples.mk, calib/calib.mk, ...
-include $(sort $(wildcard */*.mk */*/*.mk))

bins: $(BIN_TARGETS)
.PHONY: bins

check: $(CHECK_TARGETS)
	@echo "make check: all test targets passed"
