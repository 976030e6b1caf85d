# The README's two commands: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest workers for make test. Most of the suite waits on the wall clock (servers' poll rates,
# controls running in real time, the conformance cases' scripted homes): with 4 workers a run
# kept 2 cores 17 % busy (5.5 min of CPU in 16 min). More workers overlap more of the waiting.
# TEST_WORKERS=0 runs in one process (a debugger, -x, -s).
TEST_WORKERS ?= 8

.PHONY: demo test lock lint typecheck contracts unit peers peers-lock browser bench bench-ab soak clean cactus-server conformance

# The lock file holds the exact version (and hashes) of every package that CI tested, for every
# Python from 3.11 on. A new upstream release cannot reach a fresh clone until `make lock` takes it
# and `make test` passes with it (an unpinned cryptography broke a fresh clone once). The venv is
# built anew whenever the lock or pyproject.toml changes, so it holds exactly what the lock says.
LOCK := requirements.lock
# The image's (docker/Dockerfile): the runtime dependencies alone, at the lock's versions.
RUNTIME_LOCK := requirements-runtime.lock
# uv resolves the lock (fast, and --universal writes one file with markers for every Python and
# platform); pip installs from it, so building the venv needs nothing beyond Python itself.
UV_VERSION := 0.13.10
LOCK_VENV := .venv-lock

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Refresh the lock to the newest releases the pyproject.toml ranges admit; then run make test.
lock:
	test -x $(LOCK_VENV)/bin/uv || ($(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION))
	printf 'setuptools>=77\nwheel\n' > $(LOCK_VENV)/build.in
	$(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		--upgrade pyproject.toml $(LOCK_VENV)/build.in --extra test -o $(LOCK) \
		--custom-compile-command 'make lock'
	$(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		pyproject.toml $(LOCK_VENV)/build.in -c $(LOCK) -o $(RUNTIME_LOCK) \
		--custom-compile-command 'make lock'

# The whole installation on loopback playing an evening, with a live timeline (docs/demo.md);
# demo-scenarios runs the older single-purpose ones.
demo: $(STAMP)
	$(BIN)/gateway demo

.PHONY: demo-scenarios
demo-scenarios: $(STAMP)
	$(BIN)/gateway demo site
	$(BIN)/gateway demo evening --modbus
	$(BIN)/gateway demo utility

test: lint typecheck contracts peers browser unit

# Debian's Chromium, for the dashboard's test in a real headless browser (Playwright drives it
# with executable_path=/usr/bin/chromium and never downloads a browser). Installed once; if
# apt cannot, the test is skipped with that reason, never failed.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			$$SUDO apt-get install -y -qq chromium >/dev/null) || \
		echo "browser: Debian's chromium could not be installed: the dashboard test is skipped"; \
	fi

# Third-party peers the tests run against our simulators. openadr3-client needs Python >= 3.12
# (this project's lock is for 3.11 on): when such an interpreter is here (PATH or pyenv), it gets
# its own venv from its own hash-pinned lock, and the peer test uses it; when none is, `peers`
# says so and the test is skipped with that reason (never a failure of make test).
#
# cactus-test-definitions' CSIP-AUS client procedures (YAML), read as data by
# `gateway conformance run --suite csip-aus`: the hash-pinned wheel is downloaded, never installed
# (it needs Python >= 3.12), into .peers/, where the suite finds it.
DEFS_PIN := tests/peers/cactus-test-definitions.txt
DEFS_WHEEL := .peers/cactus_test_definitions-1.18.2-py3-none-any.whl
PEER_LOCK := tests/peers/openadr3-client.lock
PEER_VENV := .venv-openadr3-client
PEER_PYTHON ?= $(firstword $(foreach p,python3.13 python3.12 \
	$(sort $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python)),\
	$(shell $(p) -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && echo $(p))))

CACTUS_LOCK := tests/peers/cactus-client.lock
CACTUS_VENV := .venv-cactus-client
# cactus-client-notifications, the webhook relay of its pub/sub procedures: it pins
# cactus-schema<1 and cactus-client >=1.3, so it has a venv and lock of its own.
NOTIFY_LOCK := tests/peers/cactus-client-notifications.lock
NOTIFY_VENV := .venv-cactus-notifications
peers: $(PEER_VENV)/.installed $(DEFS_WHEEL) $(CACTUS_VENV)/.installed $(NOTIFY_VENV)/.installed
$(PEER_VENV)/.installed: $(PEER_LOCK)
	@if [ -z "$(PEER_PYTHON)" ]; then \
		echo "peers: no Python >= 3.12 here: the openadr3-client peer test will be skipped"; \
	else \
		rm -rf $(PEER_VENV) && $(PEER_PYTHON) -m venv $(PEER_VENV) && \
		$(PEER_VENV)/bin/python -m pip install --quiet --require-hashes -r $(PEER_LOCK) && \
		touch $@; \
	fi

$(DEFS_WHEEL): $(DEFS_PIN)
	$(PYTHON) -m pip download --quiet --no-deps --require-hashes --python-version 3.12 \
		--only-binary=:all: -r $(DEFS_PIN) -d .peers/
	touch $@

# cactus-client (BSGIP), which tests a CSIP-AUS *server*, with our admin plugin
# (conformance/cactus_admin), in its own Python >= 3.12 venv from its own hash-pinned lock; the
# peer test runs a few of its server procedures against `gateway simulate utility`, and
# `make cactus-server` runs them all and prints the counts.
$(CACTUS_VENV)/.installed: $(CACTUS_LOCK) conformance/cactus_admin/pyproject.toml \
		$(wildcard conformance/cactus_admin/src/gateway_cactus_admin/*.py)
	@if [ -z "$(PEER_PYTHON)" ]; then \
		echo "peers: no Python >= 3.12 here: the cactus-client peer test will be skipped"; \
	else \
		rm -rf $(CACTUS_VENV) && $(PEER_PYTHON) -m venv $(CACTUS_VENV) && \
		$(CACTUS_VENV)/bin/python -m pip install --quiet --require-hashes -r $(CACTUS_LOCK) && \
		$(CACTUS_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation \
			./conformance/cactus_admin && \
		touch $@; \
	fi

$(NOTIFY_VENV)/.installed: $(NOTIFY_LOCK)
	@if [ -n "$(PEER_PYTHON)" ]; then \
		rm -rf $(NOTIFY_VENV) && $(PEER_PYTHON) -m venv $(NOTIFY_VENV) && \
		$(NOTIFY_VENV)/bin/python -m pip install --quiet --require-hashes -r $(NOTIFY_LOCK) && \
		touch $@; \
	fi

cactus-server: $(STAMP) peers
	@test -x $(CACTUS_VENV)/bin/cactus || { echo "cactus-server: no $(CACTUS_VENV) (needs Python >= 3.12)"; exit 1; }
	$(CACTUS_VENV)/bin/python conformance/cactus_admin/run_procedures.py --gateway $(BIN)/gateway \
		--notifications $(NOTIFY_VENV)/bin/python --out build/cactus-server \
		--timeout 1800 $(CACTUS_ARGS)

# Every case of the suites that judge this gateway, in-process (make test runs a
# representative part of csip-aus and csip, and the mutation checks): about an hour. The
# reports go to build/conformance/<suite>/; the exit status is make's: any FAIL or PARTIAL.
CONFORMANCE_SUITES ?= v2h csip-aus csip openadr2 openadr3
conformance: $(STAMP) peers
	@status=0; for s in $(CONFORMANCE_SUITES); do \
		$(BIN)/gateway conformance run --suite $$s --report build/conformance/$$s || status=1; \
	done; exit $$status

peers-lock:
	test -x $(LOCK_VENV)/bin/uv || ($(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION))
	$(LOCK_VENV)/bin/uv pip compile --quiet --python-version 3.12 --generate-hashes --upgrade \
		tests/peers/openadr3-client.in -o $(PEER_LOCK) --custom-compile-command 'make peers-lock'
	$(LOCK_VENV)/bin/uv pip compile --quiet --python-version 3.12 --generate-hashes --upgrade \
		tests/peers/cactus-client.in -o $(CACTUS_LOCK) --custom-compile-command 'make peers-lock'
	$(LOCK_VENV)/bin/uv pip compile --quiet --python-version 3.12 --generate-hashes --upgrade \
		tests/peers/cactus-client-notifications.in -o $(NOTIFY_LOCK) \
		--custom-compile-command 'make peers-lock'

lint: $(STAMP)
	$(BIN)/ruff check src tests bench conformance
	$(BIN)/ruff format --check src tests bench conformance
	$(BIN)/hadolint docker/Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q -rs -p no:cacheprovider -n $(TEST_WORKERS) --durations=15

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(LOCK) 'envoy-schema>=2.7,<3'
	$(BIN)/python -m bench

# The notification path's latency, this tree against REF, runs interleaved (bench/notify_ab.py):
# on a shared VM only an interleaved comparison can show a change of a few per cent.
REF ?= HEAD
bench-ab: $(STAMP)
	$(BIN)/python -m bench.notify_ab $(REF)

# Long property runs, kept out of make test: the whole-site state machine with random draws.
soak: $(STAMP)
	SITE_EXAMPLES=$${SITE_EXAMPLES:-200} $(BIN)/pytest -q -p no:cacheprovider --timeout=0 \
		tests/integration/south/test_site_stateful.py
	SEP2_SOAK_DAYS=$${SEP2_SOAK_DAYS:-30} $(BIN)/pytest -q -p no:cacheprovider --timeout=0 \
		tests/integration/north/test_sep2_extended_operation.py -k soak

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(PEER_VENV) $(CACTUS_VENV) $(NOTIFY_VENV) .peers build *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
