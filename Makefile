# Tessera — two commands matter: `make serve` and `make test`.
BUILD      ?= build
JOBS       ?= $(shell nproc)
MODEL      ?= models/SmolLM2-135M-Instruct-Q4_1.gguf
HOST       ?= 127.0.0.1
PORT       ?= 8080
APT_DEPS   := cmake ninja-build g++ pkg-config nlohmann-json3-dev libcli11-dev libpcre2-dev \
              libutf8proc-dev libcpp-httplib-dev libboost-dev libgtest-dev libbenchmark-dev \
              python3-jinja2 unzip tmux chromium chromium-driver python3-dev python3-venv \
              clang-format ccache openmpi-bin libopenmpi-dev
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PYVENV     := $(BUILD)/pyvenv
# ccache, once `deps` has installed it (evaluated where used, after the deps rule ran). Every
# build goes through it with one compiler, g++ (the Python build's, from Python's
# sysconfig, and Make's default CXX), so the Python build's compile of tessera_core is a
# cache hit of the CLI build's.
CCACHE      = $(shell command -v ccache)
LAUNCHER    = -DCMAKE_CXX_COMPILER=$(CXX) \
              $(if $(CCACHE),-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE) -DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE))

.PHONY: all deps venv python build checked model serve test test-asan clean bench-models bench-kernels

all: build

# Installs the Debian packages that are missing (nothing when all are present).
deps:
	@missing=""; for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(LAUNCHER)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# Python tools for the end-to-end tests (pytest; the openai client for server tests).
venv: .venv/.stamp
.venv/.stamp: requirements-test.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r requirements-test.txt
	touch $@

# The Python package (pyproject.toml) installed into a venv of its own under the build tree,
# as `pip install .` does but without build isolation, so that its CMake build directory
# (build/python/) is reused and a rebuild compiles only what changed.
python: deps $(PYVENV)/.stamp
	CXX=$(CXX) $(if $(CCACHE),CMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE)) CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	  $(PYVENV)/bin/pip install -q --no-build-isolation .

$(PYVENV)/.stamp: python/requirements-build.txt
	python3 -m venv $(PYVENV)
	$(PYVENV)/bin/pip install -q -r python/requirements-build.txt
	touch $@

model:
	scripts/fetch_model.sh smollm2
	scripts/fetch_model.sh gemma3
	scripts/fetch_model.sh minilm

serve: build model
	$(BUILD)/tessera serve -m $(MODEL) --host $(HOST) --port $(PORT)

# The checked tiers of scripts/run_tests.sh: a Debug build (asserts on) with ASan + UBSan,
# and a TSan build, each of the CLI and the unit tests.
checked: deps
	cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DTESSERA_SANITIZE=address,undefined $(LAUNCHER)
	cmake --build $(BUILD)-asan -j $(JOBS) --target tessera tessera_tests
	cmake -S . -B $(BUILD)-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTESSERA_SANITIZE=thread \
	  $(LAUNCHER)
	cmake --build $(BUILD)-tsan -j $(JOBS) --target tessera tessera_tests

# The whole suite: the Release build's tests and the checked tiers, which must be there
# (scripts/run_tests.sh).
test: build checked model venv python
	TESSERA_REQUIRE_CHECKED=1 scripts/run_tests.sh $(BUILD)

# The server of the ASan + UBSan tree ($(BUILD)-asan) driven by the hostile-client suite and
# the whole server API suite; any sanitizer report fails the server, and so the tests.
test-asan: checked model venv
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  TESSERA_SANITIZED=1 TESSERA_BIN=$(BUILD)-asan/tessera .venv/bin/python -m pytest -q \
	  tests/e2e/test_http_hostile.py tests/e2e/test_server.py

# Google Benchmark micro-benchmarks of the CPU kernels (one thread; bench/README.md).
bench-kernels: build
	$(BUILD)/bench_kernels

# Random-weight GGUF models of real shapes (bench/configs/) in models/, for speed tests.
bench-models: build
	bench/make_synth_models.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan
