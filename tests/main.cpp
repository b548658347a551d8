// SPDX-License-Identifier: MIT
// Catch2 v2 only: v3 builds link Catch2::Catch2WithMain instead of this file.
#define CATCH_CONFIG_MAIN
#include "catch.hpp"
