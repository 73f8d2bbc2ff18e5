# Libraries for a cross build (LOOM_CROSS_DEPS_FROM_SOURCE, set by
# cmake/aarch64-linux-gnu.cmake) without target packages of them, so no
# multiarch apt set-up is needed:
#   fmt           header-only (FMT_HEADER_ONLY) from the host's libfmt-dev
#   nlohmann_json the host's nlohmann-json3-dev (header-only anyway)
#   GTest         built from the sources of Debian's googletest package
# PCRE2 and utf8proc (tokenizer) have no such form: a cross build compiles
# and tests only the rooms below tokenizer (LOOM_TEST_ROOMS=core;graph;backend).
set(LOOM_HOST_INCLUDE_DIR /usr/include CACHE PATH "Host headers of fmt and nlohmann-json")
set(LOOM_GOOGLETEST_SOURCE_DIR /usr/src/googletest/googletest CACHE PATH "GoogleTest sources")

# Only those two header folders reach the target compiler (through links in
# the build tree): all of the host's /usr/include would shadow the target's
# libc headers.
set(cross_include ${CMAKE_BINARY_DIR}/cross-include)
file(MAKE_DIRECTORY ${cross_include})
foreach(dir fmt nlohmann)
  if(NOT EXISTS ${LOOM_HOST_INCLUDE_DIR}/${dir})
    message(FATAL_ERROR "[cross] ${LOOM_HOST_INCLUDE_DIR}/${dir} not found: run scripts/install-deps.sh cross")
  endif()
  file(CREATE_LINK ${LOOM_HOST_INCLUDE_DIR}/${dir} ${cross_include}/${dir} SYMBOLIC)
endforeach()

add_library(loom_cross_fmt INTERFACE)
target_include_directories(loom_cross_fmt SYSTEM INTERFACE ${cross_include})
target_compile_definitions(loom_cross_fmt INTERFACE FMT_HEADER_ONLY=1)
add_library(fmt::fmt ALIAS loom_cross_fmt)

add_library(loom_cross_json INTERFACE)
target_include_directories(loom_cross_json SYSTEM INTERFACE ${cross_include})
add_library(nlohmann_json::nlohmann_json ALIAS loom_cross_json)

if(LOOM_BUILD_TESTS)
  if(NOT EXISTS ${LOOM_GOOGLETEST_SOURCE_DIR}/CMakeLists.txt)
    message(FATAL_ERROR "[cross] ${LOOM_GOOGLETEST_SOURCE_DIR} not found: run scripts/install-deps.sh cross")
  endif()
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  add_subdirectory(${LOOM_GOOGLETEST_SOURCE_DIR} ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL SYSTEM)
  if(NOT TARGET GTest::gtest_main)  # (GoogleTest 1.12 defines these names itself)
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
endif()
