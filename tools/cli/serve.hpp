// SPDX-License-Identifier: MIT
#pragma once

// `jobsched serve`: the web dashboard, built only when cpp-httplib is found (serve.cpp).

#include <string>

namespace jobsched_cli {

struct ServeOptions {
  std::string db;                         // the job file
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  bool allow_remote = false;              // a non-loopback address needs it, and a token
  std::string token;                      // required with allow_remote
  std::string port_file;                  // when set, the bound port is written there
};

// Serves until SIGINT or SIGTERM; returns the process's exit code.
int serve(const ServeOptions& options);

}  // namespace jobsched_cli
