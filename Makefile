# SPDX-License-Identifier: GPL-2.0
#
# Top-level entry points. 'make run' is the demonstration, 'make check' the
# tests; both do all set-up. See README.md.

CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/vfio-revoke
export CACHE_DIR

SCRIPTS := $(CURDIR)/scripts
MODULES := mock-pci vfio-variant
# KDIR=/path builds against an existing Rust-enabled kernel build tree;
# otherwise 'make kernel' builds the project's kernel into CACHE_DIR and
# records its path in build/kdir.
#
# DEBUG=1 selects the debug kernel instead (KASAN, KFENCE, lockdep,
# kmemleak, PREEMPT: kernel/debug.fragment), cached on its own; the modules
# are then built in build/debug, so that the two builds never mix, and
# every guest fails on any sanitizer, lockdep or kmemleak report.
DEBUG ?=
FLAVOR := $(if $(DEBUG),debug,main)
KDIR_FILE := $(CURDIR)/build/kdir$(if $(DEBUG),-debug)
KDIR_OF = $(if $(KDIR),$(KDIR),$(shell cat $(KDIR_FILE) 2>/dev/null))
MODDIR := $(if $(DEBUG),$(CURDIR)/build/debug,$(CURDIR))
# scripts/vm-run loads the modules from here.
export VM_MODDIR := $(MODDIR)
# The debug kernel boots and runs 5 to 10 times slower under TCG (the
# selftests' guest needed more than 40 minutes at a host load of 9).
export VM_TIMEOUT_SCALE := $(if $(DEBUG),8,1)

.PHONY: all deps kernel modules kunit mock-pci-check vfio-selftests selftest stress stress-short fork-race mutants bench lint fmt check run vm-shell clean distclean help

all: modules

help:
	@echo "make run        boot a guest and show the fork/revoke demonstration"
	@echo "make check      run every test (deps, kernel, modules, lint, kunit, selftests, fork-race)"
	@echo "  DEBUG=1       any target on the debug kernel (KASAN, KFENCE, lockdep, kmemleak, PREEMPT)"
	@echo "make deps       install the tools (Debian packages, virtme-ng, bindgen)"
	@echo "make kernel     fetch, patch, configure and build the guest kernel (cached)"
	@echo "make modules    build the out-of-tree modules"
	@echo "make kunit      run every KUnit suite of the project in one guest"
	@echo "make mock-pci-check  in-guest checks of the mock devices"
	@echo "make vfio-selftests  the kernel's own VFIO selftests on mock-pci devices, against selftests/vfio-upstream/expected"
	@echo "make selftest   run the fork/revoke selftest in three configurations"
	@echo "make stress     races, unplug, load/unload, config fuzz, bad input (STRESS=short: the check version; STRESS_PARTS='fuzz ...': some parts)"
	@echo "make fork-race  the copy_huge_pmd() fork race on kernels without and with the fix"
	@echo "make mutants    deliberate bugs in the modules that the tests must catch (MUTANTS=a,b for a subset)"
	@echo "make bench      fault, fork and revoke cost: fixed vs stock vs legacy, 2 MiB to 1 GiB BARs"
	@echo "make lint       rustfmt and clippy on the modules; shellcheck of every script, SPDX lines, host tests of scripts/"
	@echo "make vm-shell   interactive guest with the modules loaded"
	@echo "make distclean  also remove the kernel cache ($(CACHE_DIR))"

deps:
	@$(SCRIPTS)/deps

kernel: deps
ifeq ($(KDIR),)
	@mkdir -p build
	@$(SCRIPTS)/build-kernel $(CACHE_DIR) $(FLAVOR) | tail -n1 > $(KDIR_FILE).new
	@mv $(KDIR_FILE).new $(KDIR_FILE)
else
	@$(SCRIPTS)/check-kdir $(KDIR)
endif

modules: kernel
	@for m in $(MODULES); do \
		if [ -n "$(DEBUG)" ]; then \
			mkdir -p $(MODDIR)/$$m && \
			rsync -a --delete --exclude='*.ko' --exclude='*.o' --exclude='.*.cmd' $(CURDIR)/$$m/ $(MODDIR)/$$m/ || exit 1; \
		fi; \
		$(SCRIPTS)/kmake $(KDIR_OF) M=$(MODDIR)/$$m -s modules || exit 1; \
	done

# scripts/test-scripts: shellcheck of every shell script, an SPDX line in
# every file, host-side tests of vm-run (no guest).
lint: kernel
	@$(SCRIPTS)/test-scripts
	@$(SCRIPTS)/lint $(KDIR_OF) $(MODULES)
	@$(MAKE) -s modules

fmt: kernel
	@$(SCRIPTS)/lint $(KDIR_OF) --fix $(MODULES)

kunit: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/kunit/run

# The userspace selftest against the fixed variant, stock vfio-pci and legacy
# mode, in one guest; see selftests/README.md.
selftest: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/selftests/run

# The copy_huge_pmd() fork race (kernel/patches/0006) on a kernel without
# the fix (built and cached on its own) and on the project's kernel, side by
# side; fails unless the test catches the escape there and sees none here.
fork-race: deps
	@$(CURDIR)/selftests/fork-race

# Deliberate bugs (selftests/mutants/*.patch), one guest each: every one
# must be killed by KUnit or the fixed-configuration selftests. Not part of
# 'make check' (about half an hour). MUTANTS=name1,name2 runs a subset.
mutants: modules
	@KDIR=$(KDIR_OF) MUTANTS="$(MUTANTS)" $(CURDIR)/selftests/mutants/run

# Races, unplug, load/unload cycles, config fuzz and bad input, counting
# escapes and kernel reports (selftests/stress; STRESS=short is the version
# 'make check' runs).
stress: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/selftests/stress $(STRESS_PARTS)

stress-short: modules
	@KDIR=$(KDIR_OF) STRESS=short $(CURDIR)/selftests/stress

# Fault, fork and revoke cost side by side (build/bench.{json,svg,log}).
bench: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/selftests/bench

# lspci, /proc/iomem, stock vfio-pci round trip, hot reset, bad uAPI input
# against stock vfio-pci, hotplug, bad module input: mock-pci/tests/run.
mock-pci-check: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/mock-pci/tests/run

# The kernel's own VFIO selftests (tools/testing/selftests/vfio, copied and
# built in build/vfio-selftests) on mock-pci devices in one guest, judged
# against selftests/vfio-upstream/expected.
vfio-selftests: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/selftests/vfio-upstream/run

# With KDIR= the fork-race comparison (two project kernels) is left out;
# with DEBUG=1 also lint (the same sources as without it).
check: deps kernel modules $(if $(DEBUG),,lint) kunit mock-pci-check selftest vfio-selftests stress-short $(if $(KDIR)$(DEBUG),,fork-race)
	@echo "check: all passed"

run: modules
	@KDIR=$(KDIR_OF) $(CURDIR)/selftests/demo

vm-shell: modules
	@KDIR=$(KDIR_OF) $(SCRIPTS)/vm-run --interactive

clean:
	@for m in $(MODULES); do \
		[ -z "$(KDIR_OF)" ] || $(SCRIPTS)/kmake $(KDIR_OF) M=$(CURDIR)/$$m -s clean; \
	done
	rm -rf build

distclean: clean
	rm -rf $(CACHE_DIR)
