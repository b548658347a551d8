# SPDX-License-Identifier: MIT
# CTest tests that build tiny consumer projects against jobsched, proving that
# jobsched::jobsched works through find_package, add_subdirectory and
# FetchContent. Included from tests/CMakeLists.txt.

set(jobsched_consumer_options
  "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
  "-DJOBSCHED_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
if(CMAKE_BUILD_TYPE)
  list(APPEND jobsched_consumer_options "-DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}")
endif()

set(jobsched_consumer_generator_args --build-generator "${CMAKE_GENERATOR}")
if(CMAKE_GENERATOR_PLATFORM)
  list(APPEND jobsched_consumer_generator_args
       --build-generator-platform "${CMAKE_GENERATOR_PLATFORM}")
endif()
if(CMAKE_GENERATOR_TOOLSET)
  list(APPEND jobsched_consumer_generator_args
       --build-generator-toolset "${CMAKE_GENERATOR_TOOLSET}")
endif()
if(CMAKE_MAKE_PROGRAM)
  list(APPEND jobsched_consumer_generator_args
       --build-makeprogram "${CMAKE_MAKE_PROGRAM}")
endif()

# jobsched_add_consumer_test(<name> [OPTIONS -D...] [FIXTURES fixture...])
# builds tests/<name>/ in <build>/tests/<name>/ and runs its executable.
function(jobsched_add_consumer_test name)
  cmake_parse_arguments(arg "" "" "OPTIONS;FIXTURES" ${ARGN})
  set(source_dir "${CMAKE_CURRENT_SOURCE_DIR}/${name}")
  set(binary_dir "${CMAKE_CURRENT_BINARY_DIR}/${name}")
  add_test(
    NAME "${name}"
    COMMAND "${CMAKE_CTEST_COMMAND}"
      --build-and-test "${source_dir}" "${binary_dir}"
      ${jobsched_consumer_generator_args}
      --build-project jobsched_consumer
      --build-options ${jobsched_consumer_options} ${arg_OPTIONS}
      --test-command jobsched_consumer)
  set_tests_properties("${name}" PROPERTIES TIMEOUT 600 LABELS packaging)
  if(arg_FIXTURES)
    set_tests_properties("${name}" PROPERTIES FIXTURES_REQUIRED "${arg_FIXTURES}")
  endif()
endfunction()

# find_package: install this build tree into <build>/tests/install_tree first.
if(JOBSCHED_INSTALL)
  set(jobsched_install_tree "${CMAKE_CURRENT_BINARY_DIR}/install_tree")
  add_test(NAME cmake_install_tree_clean
           COMMAND "${CMAKE_COMMAND}" -E remove_directory "${jobsched_install_tree}")
  add_test(NAME cmake_install_tree
           COMMAND "${CMAKE_COMMAND}" --install "${PROJECT_BINARY_DIR}"
                   --prefix "${jobsched_install_tree}")
  set_tests_properties(cmake_install_tree_clean PROPERTIES
    FIXTURES_SETUP jobsched_installed LABELS packaging)
  set_tests_properties(cmake_install_tree PROPERTIES
    FIXTURES_SETUP jobsched_installed
    DEPENDS cmake_install_tree_clean
    LABELS packaging)

  jobsched_add_consumer_test(cmake_find_package
    OPTIONS "-DCMAKE_PREFIX_PATH=${jobsched_install_tree}"
    FIXTURES jobsched_installed)

  # pkg-config: a program built with `pkg-config --cflags --libs jobsched` alone.
  find_program(JOBSCHED_PKG_CONFIG NAMES pkg-config pkgconf)
  mark_as_advanced(JOBSCHED_PKG_CONFIG)
  if(JOBSCHED_PKG_CONFIG)
    add_test(NAME pkg_config_consumer
             COMMAND "${CMAKE_COMMAND}" -D "PKG_CONFIG=${JOBSCHED_PKG_CONFIG}"
                     -D "CXX=${CMAKE_CXX_COMPILER}" -D "PREFIX=${jobsched_install_tree}"
                     -D "PCDIR=${JOBSCHED_INSTALL_PKGCONFIGDIR}"
                     -D "WORK=${CMAKE_CURRENT_BINARY_DIR}/pkg_config_consumer"
                     -P "${CMAKE_CURRENT_SOURCE_DIR}/pkg_config/build_and_run.cmake")
    set_tests_properties(pkg_config_consumer PROPERTIES
      FIXTURES_REQUIRED jobsched_installed TIMEOUT 300 LABELS packaging)
  else()
    message(STATUS "jobsched: no pkg-config (Debian: pkgconf); jobsched.pc is installed but not tested")
  endif()
endif()

jobsched_add_consumer_test(cmake_add_subdirectory)
jobsched_add_consumer_test(cmake_fetchcontent)

# Without Catch2, configuring the tests is an error that says what to install, never a
# suite that passes with its tests skipped.
add_test(NAME cmake_without_catch2
         COMMAND "${CMAKE_COMMAND}" -S "${PROJECT_SOURCE_DIR}"
                 -B "${CMAKE_CURRENT_BINARY_DIR}/without_catch2"
                 "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
                 -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DJOBSCHED_BUILD_TESTS=ON)
set_tests_properties(cmake_without_catch2 PROPERTIES
  TIMEOUT 120 LABELS packaging
  PASS_REGULAR_EXPRESSION "tests need Catch2.*apt-get install catch2")
