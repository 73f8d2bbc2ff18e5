# loom's front door. On a fresh Debian 12 machine:
#   make run     installs what is missing, builds, and serves the default model
#                (OpenAI-compatible API + chat page; PORT=8080 HOST=127.0.0.1)
#   make test    installs what is missing, builds, and runs every test
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
ARM64_BUILD ?= build-arm64
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=
# `make run PORT=9000 HOST=0.0.0.0` (":=": a HOST or PORT in the environment,
# such as zsh's HOST, is not taken for the address)
HOST := 127.0.0.1
PORT := 8080
SERVE_FLAGS ?=

.PHONY: all deps build run test test-asan test-arm64 fuzz clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD)

run: build
	$(BUILD)/bin/loom serve --host $(HOST) --port $(PORT) $(SERVE_FLAGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j2

# Sanitizers (ASan + UBSan) on the library tests; the long end-to-end tests of
# the command line run in `make test`.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLOOM_BUILD_TOOLS=OFF \
	  -DLOOM_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS=-O1 \
	  "-DLOOM_TEST_ROOMS=core;backend;graph;quant;format;tokenizer;model;sample;engine;train"
	cmake --build $(ASAN_BUILD)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j2

# The kernel, conformance, core and graph tests cross-compiled for AArch64
# and run under qemu-user, which emulates a CPU with dotprod, so the scalar,
# NEON and NEON+dotprod kernels all run (cmake/aarch64-linux-gnu.cmake). The
# CPU backend's tests pick the best set (NEON+dotprod), then run again on NEON.
test-arm64:
	@scripts/install-deps.sh cross
	cmake -S . -B $(ARM64_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/aarch64-linux-gnu.cmake \
	  -DLOOM_BUILD_TOOLS=OFF -DLOOM_BUILD_BENCH=OFF "-DLOOM_TEST_ROOMS=core;graph;backend"
	cmake --build $(ARM64_BUILD) --target test_core test_graph test_backend
	cd $(ARM64_BUILD) && ctest --output-on-failure -j2
	cd $(ARM64_BUILD) && LOOM_CPU_ISA=neon ctest --output-on-failure -j2 -R /cpu

fuzz:
	@scripts/install-deps.sh fuzz
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_FUZZ=ON \
	  -DLOOM_BUILD_TESTS=OFF -DLOOM_BUILD_TOOLS=OFF -DLOOM_SANITIZE=address,undefined
	cmake --build $(FUZZ_BUILD) --target fuzz_model_readers fuzz_tokenizer_readers fuzz_make_seeds
	scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(ARM64_BUILD)
