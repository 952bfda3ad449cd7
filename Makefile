# Each target installs what it needs, so a fresh Debian machine (as root) only needs `make`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
DEB_STAMP := $(VENV)/.debs
# libvirt for the interop tests (tests/test_libvirt_interop.py): these three packages ship
# no init script or unit and no maintainer script, so installing them starts no daemon;
# the tests start their own private one (tests/support/libvirt_lab.py).
DEBS := qemu-system-x86 qemu-utils libxml2-utils libvirt-daemon libvirt-daemon-driver-qemu \
	libvirt-clients strace

.PHONY: test lint demo bench fuzz debs venv clean

$(STAMP): pyproject.toml
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

venv: $(STAMP)

# The peers of the benchmark; lint needs them too, to type-check bench/.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,lint,bench]'
	touch $@

# QEMU (for the real-QEMU tests and the demo), xmllint, libvirt and strace (a save killed
# at each of its system calls: tests/test_store_syscalls.py) come from Debian.
$(DEB_STAMP): Makefile | $(STAMP)
	@if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null \
	    || ! command -v xmllint >/dev/null || ! command -v virsh >/dev/null \
	    || ! test -x /usr/sbin/libvirtd || ! command -v strace >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $(DEBS); \
	fi
	touch $@

debs: $(DEB_STAMP)

test: $(STAMP) $(DEB_STAMP)
	$(PY) -m pytest -q -rs

lint: $(BENCH_STAMP)
	$(VENV)/bin/ruff check blockjob tests bench
	$(VENV)/bin/mypy --strict

demo: $(STAMP) $(DEB_STAMP)
	$(PY) -m blockjob demo

fuzz: $(STAMP) $(DEB_STAMP)
	BLOCKJOB_FUZZ_EXAMPLES=20000 BLOCKJOB_TORN_READS=120000 BLOCKJOB_LOST_UPDATE_CHANGES=2000 \
	  BLOCKJOB_SYSCALL_FULL=1 BLOCKJOB_ORACLE_SEEDS=300 \
	  BLOCKJOB_SCALE_ROUNDS=10 BLOCKJOB_CONCURRENT_RUNS=20 \
	  $(PY) -m pytest -q -m fuzz tests

bench: $(BENCH_STAMP) $(DEB_STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
