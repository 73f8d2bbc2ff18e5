# loom's front door. On a fresh Debian 12 machine:
#   make run     installs what is missing, builds, and runs the main job
#   make test    installs what is missing, builds, and runs every test
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: all deps build run test test-asan fuzz clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD)

run: build
	$(BUILD)/bin/loom run -p "Once upon a time" -n 200

test: build
	cd $(BUILD) && ctest --output-on-failure -j2

# Sanitizers (ASan + UBSan) on the library tests; the long end-to-end tests of
# the command line run in `make test`.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLOOM_BUILD_TOOLS=OFF \
	  -DLOOM_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS=-O1 \
	  "-DLOOM_TEST_ROOMS=core;backend;graph;quant;format;tokenizer;model;sample;engine"
	cmake --build $(ASAN_BUILD)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j2

fuzz:
	@scripts/install-deps.sh fuzz
	CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_FUZZ=ON \
	  -DLOOM_BUILD_TESTS=OFF -DLOOM_BUILD_TOOLS=OFF -DLOOM_SANITIZE=address,undefined
	cmake --build $(FUZZ_BUILD) --target fuzz_model_readers fuzz_make_seeds
	scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
