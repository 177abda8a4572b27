# The two commands of the README: `make demo` and `make test`. Both install missing Debian
# packages first, so they work on a fresh Debian 12 machine.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

DEBIAN_PACKAGES := cmake g++ make pkg-config libboost1.81-dev libboost-url1.81-dev \
    nlohmann-json3-dev doctest-dev libssl-dev libsimdjson-dev libcli11-dev \
    json-schema-test-suite curl ca-certificates openssl clang-14 libclang-rt-14-dev libre2-dev \
    libsqlite3-dev libtomlplusplus-dev libedit-dev tmux libpq-dev postgresql

.PHONY: all deps build test unit-test asan-test install-test demo bench format clean

all: build

deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

CONFIGURE_RELEASE = cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DWAFER_WERROR=ON $(CMAKE_ARGS)

build: deps
	$(CONFIGURE_RELEASE)
	cmake --build $(BUILD) -j$(JOBS)

# Every test: the suite, the suite again under ASan+UBSan, then an install + find_package consumer.
# The sanitizer build is unoptimised: GCC takes 3-4 times as long to optimise instrumented code,
# and the suite runs in seconds either way.
test: unit-test asan-test install-test fault-test fuzz-test

unit-test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# UBSan without its vptr, alignment and null checks: GCC instruments every member access for
# them, which makes the sanitizer build a third slower to compile. A null dereference still
# faults under ASan (a failed test with its stack), x86 tolerates misalignment, and the fuzz
# build (clang, tests/fuzz) keeps every UBSan check on the parsers. ASAN_SKIP= keeps them all.
ASAN_SKIP ?= vptr,alignment,null
asan-test: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1 -O0" \
	    -DWAFER_WERROR=ON -DWAFER_SANITIZE=address,undefined -DWAFER_SANITIZE_SKIP=$(ASAN_SKIP) \
	    -DWAFER_BUILD_EXAMPLES=OFF -DWAFER_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target wafer_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

install-test: build
	rm -rf $(BUILD)/prefix $(BUILD)/consumer
	cmake --install $(BUILD) --prefix $(CURDIR)/$(BUILD)/prefix
	cmake -S tests/cmake_install_test -B $(BUILD)/consumer -DCMAKE_PREFIX_PATH=$(CURDIR)/$(BUILD)/prefix
	cmake --build $(BUILD)/consumer -j$(JOBS)
	$(BUILD)/consumer/wafer_consumer

# The fault matrix: the client against real peers on 127.0.0.1 (toxy, nginx TLS, tinyproxy,
# nghttpd) started from ../shared/peers (copied to $(BUILD)/peers; `npm ci` there once).
PEER_PACKAGES := nginx-light tinyproxy nghttp2-server
.PHONY: fault-test
fault-test: build
	bash tests/peers/install-peers.sh $(PEER_PACKAGES)
	bash tests/peers/run-fault-matrix.sh $(BUILD)

# libFuzzer harnesses (tests/fuzz/README.md), built with clang under ASan+UBSan in $(FUZZ_BUILD)/.
# `make fuzz FUZZ_SECONDS=N` fuzzes each harness N seconds; `make test` runs FUZZ_TEST_SECONDS each
# (a finding fails it).
FUZZ_CXX          ?= clang++-14
FUZZ_SECONDS      ?= 300
FUZZ_TEST_SECONDS ?= 10
.PHONY: fuzz fuzz-build fuzz-test
fuzz-build: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_CXX_COMPILER=$(FUZZ_CXX) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DWAFER_BUILD_FUZZ=ON -DWAFER_BUILD_TESTS=OFF \
	    -DWAFER_BUILD_EXAMPLES=OFF -DWAFER_BUILD_CLI=OFF -DWAFER_BUILD_BENCH=OFF -DWAFER_INSTALL=OFF \
	    $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target wafer_fuzz

fuzz: fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-test: fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)

# `wafer run` on a copy of examples/sample_repo with the offline stand-in (a key in the environment
# is ignored): parallel reads, an edit, the tests, a security critic and the summary, then the diff.
# It builds the wafer program only (the libraries and the CLI), not the test suite.
DEMO_TASK ?= Fix the failing test in this repository: find the bug, fix it and run the tests.
demo: deps
	$(CONFIGURE_RELEASE)
	cmake --build $(BUILD) -j$(JOBS) --target wafer_cli
	@ws=$$(mktemp -d) && trap 'rm -rf "$$ws"' EXIT && \
	cp -R examples/sample_repo/. "$$ws" && \
	env -u CEREBRAS_API_KEY -u CEREBRAS_BASE_URL $(BUILD)/examples/cli/wafer run \
	    --workspace "$$ws" --critic security --yes "$(DEMO_TASK)" && \
	echo && echo "== the change, as the agent made it:" && \
	{ diff -u --label before/stats.sh --label after/stats.sh \
	    examples/sample_repo/stats.sh "$$ws/stats.sh" || true; }

bench: build
	bash bench/run.sh $(BUILD)

format:
	find agent tools tests examples bench -name '*.hpp' -o -name '*.cpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
