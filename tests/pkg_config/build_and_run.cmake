# SPDX-License-Identifier: MIT
# Builds main.cpp against an installed jobsched with pkg-config alone, then runs it:
#   cmake -D PKG_CONFIG=... -D CXX=... -D PREFIX=<install tree> -D PCDIR=<dir of jobsched.pc>
#         -D WORK=<scratch dir> -P build_and_run.cmake
foreach(var PKG_CONFIG CXX PREFIX PCDIR WORK)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "build_and_run.cmake: pass -D ${var}=...")
  endif()
endforeach()

# Only the installed tree's jobsched.pc, found where `cmake --install` put it.
if(IS_ABSOLUTE "${PCDIR}")
  set(ENV{PKG_CONFIG_PATH} "${PCDIR}")
else()
  set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${PCDIR}")
endif()
function(pkg_config out)
  execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE output ERROR_VARIABLE error OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config ${ARGN} failed (${rc}): ${error}")
  endif()
  set(${out} "${output}" PARENT_SCOPE)
endfunction()

pkg_config(ignored --validate jobsched)
pkg_config(version --modversion jobsched)
pkg_config(flags --cflags --libs jobsched)
message(STATUS "jobsched.pc: version ${version}, flags: ${flags}")
if(NOT flags MATCHES "-I[^ ]*include" OR NOT flags MATCHES "-lsqlite3")
  message(FATAL_ERROR "pkg-config --cflags --libs jobsched lacks the include dir or -lsqlite3: ${flags}")
endif()

# The include dir must be the installed tree's, not the source tree's.
string(REGEX MATCH "-I([^ ]*include)" ignored "${flags}")
if(NOT EXISTS "${CMAKE_MATCH_1}/jobsched/jobsched.hpp")
  message(FATAL_ERROR "${CMAKE_MATCH_1} (from jobsched.pc) has no jobsched/jobsched.hpp")
endif()
get_filename_component(include_dir "${CMAKE_MATCH_1}" REALPATH)
get_filename_component(prefix_dir "${PREFIX}" REALPATH)
string(FIND "${include_dir}" "${prefix_dir}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "jobsched.pc points at ${include_dir}, outside the installed tree ${prefix_dir}")
endif()

separate_arguments(flag_list UNIX_COMMAND "${flags}")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(
  COMMAND "${CXX}" -std=c++17 "${CMAKE_CURRENT_LIST_DIR}/main.cpp" ${flag_list}
          -o "${WORK}/pkg_config_consumer"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "compiling with `pkg-config --cflags --libs jobsched` failed (${rc})")
endif()
execute_process(COMMAND "${WORK}/pkg_config_consumer" RESULT_VARIABLE rc OUTPUT_VARIABLE output)
message(STATUS "${output}")
if(NOT rc EQUAL 0 OR NOT output MATCHES "pkg-config consumer: 1 pending job")
  message(FATAL_ERROR "the pkg-config consumer failed (${rc})")
endif()
