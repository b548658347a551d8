// SPDX-License-Identifier: MIT
// The one Catch2 include for every test: v3 when CMake found it, else v2.
#pragma once

#ifdef JOBSCHED_CATCH2_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
