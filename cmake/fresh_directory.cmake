# SPDX-License-Identifier: MIT
# Empties (or creates) a directory: cmake -D DIR=<path> -P fresh_directory.cmake
if(NOT DEFINED DIR OR DIR STREQUAL "")
  message(FATAL_ERROR "fresh_directory.cmake: pass -D DIR=<path>")
endif()
file(REMOVE_RECURSE "${DIR}")
file(MAKE_DIRECTORY "${DIR}")
