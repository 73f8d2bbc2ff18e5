# ctest fixture of the Node.js tests of loom serve: copies the tests and
# package files of tests/serve/js to DST (in the build tree) and runs
# `npm ci` there when node_modules is missing or package-lock.json changed.
#   cmake -DSRC=tests/serve/js -DDST=build/serve-js -DNPM=/usr/bin/npm -P setup.cmake
if(NOT NPM OR NPM MATCHES "NOTFOUND$")
  message(FATAL_ERROR "npm not found: the server's tests need Node.js and npm; run scripts/install-deps.sh")
endif()
file(MAKE_DIRECTORY "${DST}")
file(GLOB files "${SRC}/*.mjs" "${SRC}/package.json" "${SRC}/package-lock.json")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  file(COPY_FILE "${f}" "${DST}/${name}" ONLY_IF_DIFFERENT)
endforeach()
set(stamp "${DST}/node_modules/.loom-package-lock.json")
set(install TRUE)
if(EXISTS "${stamp}")
  file(SHA256 "${stamp}" old)
  file(SHA256 "${SRC}/package-lock.json" new)
  if(old STREQUAL new)
    set(install FALSE)
  endif()
endif()
if(install)
  message(STATUS "npm ci in ${DST}")
  execute_process(COMMAND "${NPM}" ci --no-audit --no-fund --loglevel=error
                  WORKING_DIRECTORY "${DST}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "npm ci failed (${rc}) in ${DST}: the server's Node.js tests need the npm registry once "
                        "(or a filled npm cache)")
  endif()
  file(COPY_FILE "${SRC}/package-lock.json" "${stamp}")
endif()
