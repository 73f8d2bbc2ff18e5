# Cross build for 64-bit Arm Linux with Debian's cross compiler
# (g++-aarch64-linux-gnu), tests run under qemu-user (scripts/install-deps.sh
# cross installs both; `make test-arm64` uses this file):
#
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#     -DLOOM_BUILD_TOOLS=OFF -DLOOM_BUILD_BENCH=OFF "-DLOOM_TEST_ROOMS=core;graph;backend"
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Target headers and libraries come from Debian's cross packages only, never
# from the host's /usr/lib; programs (ninja, pkg-config) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Test binaries run through qemu (ctest and gtest_discover_tests use this),
# with the target's libc and libstdc++ from the cross packages. Neoverse N1
# (AWS Graviton2, Ampere Altra) has the dotprod extension, so both NEON kernel
# sets run.
set(LOOM_QEMU_CPU "neoverse-n1" CACHE STRING "CPU that qemu-aarch64 emulates for the tests")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu ${LOOM_QEMU_CPU})

# There are no target (arm64) packages of fmt and GoogleTest without multiarch
# apt: take fmt header-only and build GoogleTest from /usr/src/googletest
# (cmake/cross_deps.cmake).
set(LOOM_CROSS_DEPS_FROM_SOURCE ON CACHE BOOL "Take fmt, nlohmann-json and GoogleTest from host sources")
