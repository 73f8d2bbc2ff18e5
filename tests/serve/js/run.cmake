# Runs one Node.js test file of loom serve with `node --test`; fails loudly
# (does not skip) when Node.js is missing, since install-deps.sh installs it.
#   cmake -DNODE=/usr/bin/node -DSCRIPT=build/serve-js/openai.test.mjs -P run.cmake
if(NOT NODE OR NODE MATCHES "NOTFOUND$")
  message(FATAL_ERROR "node not found: the server's tests need Node.js; run scripts/install-deps.sh")
endif()
execute_process(COMMAND "${NODE}" --test --test-reporter=spec "${SCRIPT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed (${rc})")
endif()
