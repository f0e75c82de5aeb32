# kickmail — build, run, test.  See README.md.
#
#   make            build kickmaild and kickq into build/
#   make run        build and start kickmaild on loopback with conf/dev.conf
#   make check      build and run every test (unit, integration; also under ASan+UBSan;
#                   each fuzz target over its seed corpus for a few seconds)
#   make fuzz       build the libFuzzer targets (clang) into build-fuzz/
#   make fuzz-long  run each fuzz target for FUZZ_SECONDS (60) seconds
#   make bench      benchmarks against Postfix (tests/bench)

PREFIX  ?= /usr/local
LIBEXECDIR ?= $(PREFIX)/libexec/kickmail
PPPDIR  ?= /etc/ppp
PPP_HOOKS := ip-up ip-down auth-up auth-down
BUILD   ?= build
CC      ?= cc
PKGS    := libevent libevent_openssl libevent_pthreads libconfuse openssl sqlite3 zlib libcares
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
           -DKM_VERSION='"$(VERSION)"' -DKM_SYSCONFDIR='"$(PREFIX)/etc/kickmail"' \
           -DKM_LIBEXECDIR='"$(LIBEXECDIR)"'
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcrypt -lpthread
LDFLAGS += -Wl,--as-needed      # link only the libraries a program uses
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

ifeq ($(SAN),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# kickq is started for every operator command and by ppp hooks, so its
# start-up is part of every kick's latency.  build/kickq is a small static
# program built with musl-gcc (Debian's musl-tools) that handles -s itself:
# glibc's start-up alone costs ~0.3 ms on a VM where CPUID traps to the
# hypervisor (glibc runs CPUID dozens of times to pick its string functions
# and size its caches), musl's none.  When the configuration has to be read
# (-c or the default file) it execs build/kickq-config, the full kickq: static
# glibc with libconfuse (installed in LIBEXECDIR).  Under the sanitizers, or
# with `make MUSL_CC=`, build/kickq is that full kickq alone.
MUSL_CC     ?= musl-gcc
MUSL_CFLAGS ?= -O2 -g
KICKQ_SRC   := src/ctl/kickq.c src/ctl/ctl_cmd.c
ifeq ($(SAN),1)
KICKQ_FULL_LINK := -Wl,-Bstatic -lconfuse -Wl,-Bdynamic -lcrypt
KICKQ_FRONT :=
else
KICKQ_FULL_LINK := -static -lconfuse -lcrypt
KICKQ_FRONT := $(MUSL_CC)
endif
ifneq ($(KICKQ_FRONT),)
KICKQ_BINS  := $(BUILD)/kickq $(BUILD)/kickq-config
else
KICKQ_BINS  := $(BUILD)/kickq
endif

MAINS   := src/kickmaild.c src/ctl/kickq.c
LIBSRC  := $(filter-out $(MAINS),$(wildcard src/*/*.c))
LIBOBJ  := $(LIBSRC:%.c=$(BUILD)/%.o)
UNITSRC := $(wildcard tests/unit/test_*.c)
UNITBIN := $(UNITSRC:tests/unit/%.c=$(BUILD)/tests/%)
PYTEST  := /usr/bin/python3 -m pytest
# make check compiles JOBS files at a time (the CPUs) before it runs anything.
JOBS    ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: all deps run check check-build check-suites check-suite-normal check-suite-asan \
        unit-build structure unit integration check-asan fuzz \
        fuzz-check fuzz-long bench clean install uninstall

all: deps-ok $(BUILD)/kickmaild $(KICKQ_BINS)

# Installs missing Debian packages (as root) or prints the command to do so.
deps-ok: scripts/install-deps
	@scripts/install-deps
deps: deps-ok

$(BUILD)/%.o: %.c $(wildcard include/*/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libkm.a: $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kickmaild: $(BUILD)/src/kickmaild.o $(BUILD)/libkm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

ifneq ($(SAN),1)
$(BUILD)/src/ctl/kickq.o: CFLAGS += -DKICKQ_STATIC_GLIBC
endif
ifneq ($(KICKQ_FRONT),)
$(BUILD)/kickq: $(KICKQ_SRC) include/ctl/ctl.h
	@mkdir -p $(dir $@)
	$(KICKQ_FRONT) -static -std=c11 -D_GNU_SOURCE $(MUSL_CFLAGS) -Wall -Wextra -Werror \
	  -Wshadow -Wno-unused-parameter -Iinclude -DKICKQ_CONFIG_EXEC \
	  -DKM_SYSCONFDIR='"$(PREFIX)/etc/kickmail"' -DKM_LIBEXECDIR='"$(LIBEXECDIR)"' \
	  -o $@ $(KICKQ_SRC)

$(BUILD)/kickq-config: $(BUILD)/src/ctl/kickq.o $(BUILD)/libkm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(KICKQ_FULL_LINK)
else
$(BUILD)/kickq: $(BUILD)/src/ctl/kickq.o $(BUILD)/libkm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(KICKQ_FULL_LINK)
endif

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libkm.a $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter-out %.h,$^) $(LDLIBS) -lcmocka

run: all
	@scripts/dev-run $(BUILD)

unit-build: all $(UNITBIN)

unit: all $(UNITBIN)
	@set -e; for t in $(UNITBIN); do echo "== $$t"; $$t; done

integration: all
	KICKMAIL_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -p no:cacheprovider tests/integration

# The tiers of src/ (README, "Source layout"), read from the #include lines.
structure:
	$(PYTEST) -q -p no:cacheprovider tests/structure

check-asan:
	$(MAKE) BUILD=build-asan SAN=1 unit integration

# The integration suites mostly wait (timers, peers, daemons starting), so
# with two CPUs or more make check runs the normal and the ASan suites side
# by side, each taking its ports from its own range (tests/integration/
# ports.py); JOBS=1 runs them one after the other.
SUITES_J = $(if $(filter 1,$(JOBS)),-j1,-j2)
check-suites: check-suite-normal check-suite-asan
check-suite-normal:
	@KICKMAIL_TEST_PORTS=10000-20999 $(MAKE) --no-print-directory -j1 integration
check-suite-asan:
	@KICKMAIL_TEST_PORTS=21000-31999 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) --no-print-directory -j1 check-asan

# What make check runs is built first, JOBS compilers at a time: the normal
# and the ASan trees (the fuzz targets are built by fuzz-check, likewise).
# The packages are checked once before, so no compiler runs while
# install-deps installs.  Under make -jN the jobserver's N is used instead.
JFLAG    = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(JOBS))
check-build: deps-ok
	@$(MAKE) --no-print-directory $(JFLAG) unit-build
	@$(MAKE) --no-print-directory $(JFLAG) BUILD=build-asan SAN=1 unit-build

check: check-build
	@$(MAKE) --no-print-directory -j1 structure unit
	@echo "make check: the integration suites (normal; ASan+UBSan), each printed when it ends"
	@$(MAKE) --no-print-directory $(SUITES_J) -Orecurse check-suites
	@$(MAKE) --no-print-directory $(JFLAG) fuzz-check
	@echo "make check: all suites passed"

fuzz:
	$(MAKE) -C tests/fuzz

# Every fuzz target over its seed corpus (tests/fuzz/corpus/NAME/) and
# FUZZ_CHECK_SECONDS (1) of fuzzing; skipped with a message without clang.
fuzz-check:
	@$(MAKE) --no-print-directory -C tests/fuzz check

# Every fuzz target (or FUZZ_TARGETS) for FUZZ_SECONDS (60) each; the corpus
# grows in build-fuzz/corpus/NAME/, crashes land in build-fuzz/NAME-crash-*.
fuzz-long:
	$(MAKE) -C tests/fuzz long

bench: all
	tests/bench/run $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/etc/kickmail \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/kickmail
	install -m 755 $(BUILD)/kickmaild $(BUILD)/kickq $(DESTDIR)$(PREFIX)/sbin/
	if [ -e $(BUILD)/kickq-config ]; then install -d $(DESTDIR)$(LIBEXECDIR) && \
	  install -m 755 $(BUILD)/kickq-config $(DESTDIR)$(LIBEXECDIR)/; fi
	install -m 644 doc/kickmaild.8 doc/kickq.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 doc/kickmail.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 conf/customers.sql $(DESTDIR)$(PREFIX)/share/kickmail/
	test -e $(DESTDIR)$(PREFIX)/etc/kickmail/kickmail.conf || \
	  install -m 640 conf/kickmail.conf $(DESTDIR)$(PREFIX)/etc/kickmail/
	@# the ppp hooks (scripts/ppp), calling the installed kickq by its path:
	@# ip-up/ip-down for Debian's run-parts directories; auth-up/auth-down
	@# (ipppd) as /etc/ppp/auth-up and auth-down unless those exist
	@mkdir -p $(BUILD)/ppp
	install -d $(DESTDIR)$(LIBEXECDIR)/ppp $(DESTDIR)$(PPPDIR)/ip-up.d $(DESTDIR)$(PPPDIR)/ip-down.d
	set -e; for h in $(PPP_HOOKS); do \
	  sed 's|^KICKQ_DEFAULT=kickq |KICKQ_DEFAULT=$(PREFIX)/sbin/kickq |' scripts/ppp/$$h >$(BUILD)/ppp/$$h; \
	  install -m 755 $(BUILD)/ppp/$$h $(DESTDIR)$(LIBEXECDIR)/ppp/; done
	install -m 755 $(BUILD)/ppp/ip-up $(DESTDIR)$(PPPDIR)/ip-up.d/kickmail
	install -m 755 $(BUILD)/ppp/ip-down $(DESTDIR)$(PPPDIR)/ip-down.d/kickmail
	set -e; for h in auth-up auth-down; do \
	  if [ -e $(DESTDIR)$(PPPDIR)/$$h ]; then \
	    echo "$(PPPDIR)/$$h exists: for ipppd, call $(LIBEXECDIR)/ppp/$$h \"\$$@\" from it"; \
	  else install -m 755 $(BUILD)/ppp/$$h $(DESTDIR)$(PPPDIR)/$$h; fi; done

# Removes what install put; the configuration file and /etc/ppp/auth-up and
# auth-down only when they are unchanged.
uninstall:
	for h in auth-up auth-down; do \
	  if cmp -s $(DESTDIR)$(PPPDIR)/$$h $(DESTDIR)$(LIBEXECDIR)/ppp/$$h; then \
	    rm -f $(DESTDIR)$(PPPDIR)/$$h; fi; done
	rm -f $(DESTDIR)$(PPPDIR)/ip-up.d/kickmail $(DESTDIR)$(PPPDIR)/ip-down.d/kickmail
	rm -f $(addprefix $(DESTDIR)$(LIBEXECDIR)/ppp/,$(PPP_HOOKS)) $(DESTDIR)$(LIBEXECDIR)/kickq-config
	rm -f $(DESTDIR)$(PREFIX)/sbin/kickmaild $(DESTDIR)$(PREFIX)/sbin/kickq
	rm -f $(DESTDIR)$(PREFIX)/share/man/man8/kickmaild.8 $(DESTDIR)$(PREFIX)/share/man/man8/kickq.8
	rm -f $(DESTDIR)$(PREFIX)/share/man/man5/kickmail.conf.5
	rm -f $(DESTDIR)$(PREFIX)/share/kickmail/customers.sql
	if cmp -s $(DESTDIR)$(PREFIX)/etc/kickmail/kickmail.conf conf/kickmail.conf; then \
	  rm -f $(DESTDIR)$(PREFIX)/etc/kickmail/kickmail.conf; fi
	-rmdir $(DESTDIR)$(LIBEXECDIR)/ppp $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(PREFIX)/share/kickmail \
	  $(DESTDIR)$(PREFIX)/etc/kickmail 2>/dev/null

clean:
	rm -rf build build-asan build-fuzz var
