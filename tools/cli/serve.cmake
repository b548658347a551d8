# SPDX-License-Identifier: MIT
# `jobsched serve`, the web dashboard (serve.cpp, dashboard_page.hpp): included by
# tools/cli/CMakeLists.txt once the target jobsched_cli exists. Needs cpp-httplib (Debian's
# libcpp-httplib-dev) and nlohmann-json; without them the tool is built without it, and
# `jobsched serve` says so. Sets JOBSCHED_CLI_HAS_SERVE to ON when it adds the dashboard.

if(NOT TARGET jobsched_cli)
  message(STATUS "jobsched: no dashboard: the jobsched tool (target jobsched_cli) is not built")
  return()
endif()

# Upstream's CMake package gives httplib::httplib; Debian's 0.11 ships a shared library with
# only a pkg-config file (cpp-httplib.pc), whose flags (the OpenSSL, zlib and Brotli support it
# was built with) the header must be compiled with.
if(NOT TARGET httplib::httplib)
  find_package(httplib CONFIG QUIET)
endif()
set(jobsched_httplib_target "")
if(TARGET httplib::httplib)
  set(jobsched_httplib_target httplib::httplib)
else()
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(jobsched_httplib QUIET IMPORTED_TARGET cpp-httplib)
    if(jobsched_httplib_FOUND)
      set(jobsched_httplib_target PkgConfig::jobsched_httplib)
    endif()
  endif()
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3 CONFIG QUIET)
endif()

if(NOT jobsched_httplib_target OR NOT TARGET nlohmann_json::nlohmann_json)
  message(STATUS "jobsched: the jobsched tool has no dashboard (serve): cpp-httplib not found "
                 "(Debian: libcpp-httplib-dev, found through pkg-config or httplibConfig.cmake)")
  return()
endif()

target_sources(jobsched_cli PRIVATE "${CMAKE_CURRENT_LIST_DIR}/serve.cpp")
target_link_libraries(jobsched_cli PRIVATE ${jobsched_httplib_target} nlohmann_json::nlohmann_json)
# main.cpp calls serve() only with it (tools/cli/CMakeLists.txt adds it too, from the variable).
target_compile_definitions(jobsched_cli PRIVATE JOBSCHED_CLI_HAS_SERVE=1)
set(JOBSCHED_CLI_HAS_SERVE ON)
message(STATUS "jobsched: the jobsched tool serves a web dashboard (cpp-httplib)")

# ---- Tests: the API and the page in headless Chromium (skipped without a browser) ----------
if(JOBSCHED_BUILD_TESTS)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(NOT Python3_Interpreter_FOUND)
    message(STATUS "jobsched: not testing the dashboard: no Python 3 interpreter found")
    return()
  endif()
  # Fills a job file with jobs in every state and several queues, and a schedule.
  add_executable(jobsched_dashboard_fixture "${CMAKE_CURRENT_LIST_DIR}/tests/dashboard_fixture.cpp")
  target_link_libraries(jobsched_dashboard_fixture PRIVATE jobsched::jobsched)
  if(DEFINED JOBSCHED_TEST_CXX_STANDARD)
    set(jobsched_dashboard_cxx_standard "${JOBSCHED_TEST_CXX_STANDARD}")
  else()
    set(jobsched_dashboard_cxx_standard 17)
  endif()
  set_target_properties(jobsched_dashboard_fixture PROPERTIES
    CXX_STANDARD "${jobsched_dashboard_cxx_standard}" CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
  find_program(JOBSCHED_CHROMIUM NAMES chromium chromium-browser google-chrome
               DOC "Headless Chromium for the dashboard's browser test")
  # Groups of dashboard_test.py: each its own server and files, so they run in parallel.
  foreach(group IN ITEMS refusals api browser)
    add_test(NAME dashboard_${group}
             COMMAND "${Python3_EXECUTABLE}" "${CMAKE_CURRENT_LIST_DIR}/tests/dashboard_test.py"
                     --jobsched "$<TARGET_FILE:jobsched_cli>"
                     --fixture "$<TARGET_FILE:jobsched_dashboard_fixture>"
                     --chromium "${JOBSCHED_CHROMIUM}"
                     --work "${CMAKE_CURRENT_BINARY_DIR}/dashboard_${group}"
                     ${group})
    # 77: no Chromium, so the browser test is skipped rather than failed.
    set_tests_properties(dashboard_${group} PROPERTIES
      TIMEOUT 120 SKIP_RETURN_CODE 77 LABELS "cli;dashboard")
  endforeach()
endif()
