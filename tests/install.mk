# tests/install.mk - `make install` as a user would consume it (check-install).
# Included by the top-level Makefile. See docs/bindings.md.
#
# Installs into a DESTDIR with PREFIX=/usr, then through `pkg-config fasa`
# only (PKG_CONFIG_SYSROOT_DIR/PKG_CONFIG_LIBDIR point into the DESTDIR):
#   - builds examples/*.c and tests/install/smoke.c with -std=c11 -Wpedantic
#     -Werror against the shared library and runs them (LD_LIBRARY_PATH into
#     the DESTDIR, checked with ldd), then again with `--static` against
#     libfasa.a (checked: no libfasa.so dependency),
#   - loads the installed libfasa.so.0 from Python ctypes and compares
#     fasa_version_number() with the header, and imports the fasa package
#     (from a `pip install --target` when pip is there) on that library,
#   - runs `make uninstall` and checks that no installed file remains.

INSTALL_TEST_DIR := $(abspath $(BUILD))/install-test
INSTALL_TEST_SRC := $(sort $(wildcard examples/*.c)) tests/install/smoke.c
INSTALL_VERSION_NUMBER := $(shell sed -n 's/^\#define FASA_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' \
    include/fasa.h | tr '\n' ' ' | awk '{print $$1*10000+$$2*100+$$3}')
INSTALL_CFLAGS := -std=c11 -Wall -Wextra -Wpedantic -Werror

check-install: lib bins
	@if ! command -v pkg-config >/dev/null 2>&1; then \
	    echo "SKIP check-install: pkg-config not found"; exit 77; fi; \
	d=$(INSTALL_TEST_DIR); root=$$d/root; pass=0; fail=0; \
	ok()  { echo "  ok   $$1"; pass=$$((pass+1)); }; \
	bad() { echo "  FAIL $$1"; fail=$$((fail+1)); }; \
	rm -rf $$d; mkdir -p $$root $$d/bin; \
	(cd $$root && find . ! -type d | sort) >$$d/before.txt; \
	if $(MAKE) --no-print-directory install DESTDIR=$$root PREFIX=/usr >$$d/install.log 2>&1; \
	then ok "make install DESTDIR=... PREFIX=/usr"; \
	else cat $$d/install.log; bad "make install"; fi; \
	(cd $$root && find . ! -type d | sort) >$$d/installed.txt; \
	echo "  installed: $$(wc -l <$$d/installed.txt) files"; \
	export PKG_CONFIG_SYSROOT_DIR=$$root PKG_CONFIG_LIBDIR=$$root/usr/lib/pkgconfig PKG_CONFIG_PATH=; \
	pre=$$(pkg-config --variable=prefix fasa); \
	if [ "$$pre" = /usr -o "$$pre" = "$$root/usr" ] && \
	   [ "$$(pkg-config --modversion fasa)" = "$(VERSION)" ]; \
	then ok "fasa.pc: prefix /usr, version $(VERSION)"; \
	else bad "fasa.pc: prefix '$$pre' version '$$(pkg-config --modversion fasa)'"; fi; \
	cflags=$$(pkg-config --cflags fasa); libs=$$(pkg-config --libs fasa); \
	slibs=$$(pkg-config --static --libs fasa | sed 's/-lfasa\b/-l:libfasa.a/'); \
	for src in $(INSTALL_TEST_SRC); do \
	    name=$$(basename $$src .c); dyn=$$d/bin/$$name-shared; sta=$$d/bin/$$name-static; \
	    if $(CC) $(INSTALL_CFLAGS) $$cflags $$src -o $$dyn $$libs -lm >$$d/$$name.cc.log 2>&1; \
	    then ok "$$name: builds with pkg-config --cflags --libs"; \
	    else cat $$d/$$name.cc.log; bad "$$name: shared build"; continue; fi; \
	    if LD_LIBRARY_PATH=$$root/usr/lib ldd $$dyn | grep -q "libfasa.so.0 => $$root/usr/lib/"; \
	    then ok "$$name: resolves the installed libfasa.so.0"; \
	    else bad "$$name: does not resolve libfasa.so.0 in DESTDIR"; fi; \
	    if LD_LIBRARY_PATH=$$root/usr/lib $$dyn >$$d/$$name-shared.log 2>&1; \
	    then ok "$$name: runs (shared)"; \
	    else tail -n 20 $$d/$$name-shared.log; bad "$$name: run (shared)"; fi; \
	    if $(CC) $(INSTALL_CFLAGS) $$cflags $$src -o $$sta $$slibs >$$d/$$name.cc-static.log 2>&1 \
	       && ! readelf -d $$sta | grep -q 'NEEDED.*libfasa'; \
	    then ok "$$name: builds with pkg-config --static (libfasa.a)"; \
	    else cat $$d/$$name.cc-static.log; bad "$$name: static build"; continue; fi; \
	    if $$sta >$$d/$$name-static.log 2>&1; then ok "$$name: runs (static)"; \
	    else tail -n 20 $$d/$$name-static.log; bad "$$name: run (static)"; fi; \
	done; \
	got=$$($(PYTHON) -c 'import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); \
	    l.fasa_version_number.restype = ctypes.c_uint; print(l.fasa_version_number())' \
	    $$root/usr/lib/libfasa.so.0 2>&1); \
	if [ "$$got" = "$(INSTALL_VERSION_NUMBER)" ]; \
	then ok "ctypes: installed fasa_version_number() = $$got"; \
	else bad "ctypes: fasa_version_number() gave '$$got', header says $(INSTALL_VERSION_NUMBER)"; fi; \
	if ! $(PYTHON) -c 'import numpy' >/dev/null 2>&1; then \
	    echo "SKIP check-install/python-package: $(PYTHON) cannot import numpy"; \
	else \
	    pydir=$(abspath examples/python); how="from the source tree"; \
	    if $(PYTHON) -m pip --version >/dev/null 2>&1 && $(PYTHON) -c 'import setuptools' 2>/dev/null; then \
	        if $(PYTHON) -m pip install -q --no-build-isolation --no-deps --no-index \
	            --target $$d/py ./examples/python >$$d/pip.log 2>&1; \
	        then ok "pip install --no-build-isolation --no-deps ./examples/python"; \
	            pydir=$$d/py; how="pip-installed"; \
	        else cat $$d/pip.log; bad "pip install ./examples/python"; fi; \
	        rm -rf examples/python/build examples/python/fasa.egg-info; \
	    else echo "SKIP check-install/pip-install: no pip or setuptools for $(PYTHON)"; fi; \
	    if (cd $$d && LD_LIBRARY_PATH=$$root/usr/lib PYTHONPATH=$$pydir PYTHONDONTWRITEBYTECODE=1 \
	        $(PYTHON) -c 'import sys, fasa; \
	            assert fasa.version_number() == int(sys.argv[1]), fasa.version_number(); \
	            maps = open("/proc/self/maps").read(); \
	            assert sys.argv[2] + "/usr/lib/libfasa.so" in maps, "not the installed library"; \
	            assert fasa.__file__.startswith(sys.argv[3]), fasa.__file__' \
	        $(INSTALL_VERSION_NUMBER) $$root $$pydir) >$$d/py.log 2>&1; \
	    then ok "fasa package ($$how) loads the installed library via the system loader"; \
	    else cat $$d/py.log; bad "fasa package on the installed library"; fi; \
	fi; \
	if $(MAKE) --no-print-directory uninstall DESTDIR=$$root PREFIX=/usr >$$d/uninstall.log 2>&1; \
	then ok "make uninstall"; else cat $$d/uninstall.log; bad "make uninstall"; fi; \
	(cd $$root && find . ! -type d | sort) >$$d/after.txt; \
	if cmp -s $$d/before.txt $$d/after.txt; \
	then ok "uninstall removed all $$(wc -l <$$d/installed.txt) installed files"; \
	else echo "  left behind:"; comm -13 $$d/before.txt $$d/after.txt; bad "uninstall left files"; fi; \
	echo "check-install: $$pass passed, $$fail failed"; \
	test $$fail -eq 0

CHECK_TARGETS += check-install
.PHONY: check-install
