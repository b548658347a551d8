// SPDX-License-Identifier: MIT
// `jobsched serve`: the web dashboard. One page (dashboard_page.hpp) over a JSON API that
// calls the same Scheduler functions as the other commands. Every request opens its own
// Scheduler on the file (reads with Options::read_only), so requests on the server's threads
// never share one.

#include "serve.hpp"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <jobsched/jobsched.hpp>
#include <nlohmann/json.hpp>

#include "dashboard_json.hpp"
#include "dashboard_page.hpp"
#include "exit_codes.hpp"

namespace jobsched_cli {
namespace {

using dashboard::counts_json;
using dashboard::job_detail;
using dashboard::job_summary;
using dashboard::seconds_json;
using dashboard::time_json;
using nlohmann::json;

struct ListenAddress {
  std::string host;
  int port = 0;
};

std::optional<ListenAddress> parse_listen(const std::string& text) {
  ListenAddress address;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    address.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon)
      return std::nullopt;
    address.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (address.host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  address.port = std::stoi(port);
  if (address.port > 65535)
    return std::nullopt;
  return address;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost")
    return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

// The host part of a Host header ("127.0.0.1:8080", "[::1]:8080", "localhost").
std::string host_of(const std::string& header) {
  if (!header.empty() && header.front() == '[') {
    const auto close = header.find(']');
    return close == std::string::npos ? std::string() : header.substr(1, close - 1);
  }
  return header.substr(0, header.find(':'));
}

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    difference |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return difference == 0;
}

bool carries_token(const httplib::Request& request, const std::string& token) {
  const std::string authorization = request.get_header_value("Authorization");
  constexpr std::string_view bearer = "Bearer ";
  if (authorization.compare(0, bearer.size(), bearer) == 0 &&
      equal_in_constant_time(std::string_view(authorization).substr(bearer.size()), token))
    return true;
  return request.has_param("token") &&
         equal_in_constant_time(request.get_param_value("token"), token);
}

// A write must come from the dashboard's own page: its Origin (or, without one, its
// Referer) names the server the request was sent to. A request with neither is refused too,
// so a write needs a browser on the page or a client that says where it comes from.
bool same_origin(const httplib::Request& request) {
  const std::string host = request.get_header_value("Host");
  if (host.empty())
    return false;
  const std::string origin = "http://" + host;
  if (request.has_header("Origin"))
    return request.get_header_value("Origin") == origin;
  if (request.has_header("Referer")) {
    const std::string referer = request.get_header_value("Referer");
    return referer == origin || referer.compare(0, origin.size() + 1, origin + "/") == 0;
  }
  return false;
}

std::string url_encoded(std::string_view text) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string encoded;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
        (byte >= '0' && byte <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded += c;
    } else {
      encoded += '%';
      encoded += digits[byte >> 4];
      encoded += digits[byte & 15];
    }
  }
  return encoded;
}

// ---- Requests ----------------------------------------------------------------

// An error the handler answers with a status of its own.
struct HttpError {
  int status;
  std::string message;
};

void send_json(httplib::Response& response, const json& body, int status = 200) {
  response.status = status;
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                       "application/json; charset=utf-8");
}

void send_error(httplib::Response& response, int status, const std::string& message) {
  send_json(response, json{{"error", message}}, status);
}

class Dashboard {
 public:
  explicit Dashboard(ServeOptions options) : options_(std::move(options)) {}

  // Runs `handle(scheduler)` on a Scheduler of its own, answering errors as HTTP statuses.
  template <class Handle>
  void with_scheduler(bool write, httplib::Response& response, Handle handle) const {
    try {
      if (write) {
        // A write never upgrades an old file behind the user's back: `jobsched migrate` does.
        jobsched::Options look;
        look.read_only = true;
        if (jobsched::Scheduler::open(options_.db, look).needs_upgrade())
          throw HttpError{409,
                          "the file is at an older schema version; upgrade it with "
                          "`jobsched migrate` before changing jobs from the dashboard"};
      }
      jobsched::Options scheduler_options;
      scheduler_options.read_only = !write;
      auto scheduler = jobsched::Scheduler::open(options_.db, scheduler_options);
      send_json(response, handle(scheduler));
    } catch (const HttpError& error) {
      send_error(response, error.status, error.message);
    } catch (const jobsched::InvalidArgumentError& error) {
      send_error(response, 400, error.what());
    } catch (const jobsched::BusyError& error) {
      send_error(response, 503, error.what());
    } catch (const jobsched::ReadOnlyError& error) {
      send_error(response, 409, error.what());
    } catch (const std::exception& error) {
      send_error(response, 500, error.what());
    }
  }

  void route(httplib::Server& server) const {
    server.Get("/", [this](const httplib::Request&, httplib::Response& response) {
      std::string page = dashboard::html;
      const std::string query =
          options_.token.empty() ? "" : "?token=" + url_encoded(options_.token);
      for (auto at = page.find("{{QUERY}}"); at != std::string::npos; at = page.find("{{QUERY}}"))
        page.replace(at, 9, query);
      response.set_content(page, "text/html; charset=utf-8");
    });
    server.Get("/dashboard.css", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(dashboard::css, "text/css; charset=utf-8");
    });
    server.Get("/dashboard.js", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(dashboard::js, "text/javascript; charset=utf-8");
    });

    server.Get("/api/stats", [this](const httplib::Request&, httplib::Response& response) {
      with_scheduler(false, response, [this](jobsched::Scheduler& scheduler) {
        const jobsched::Stats stats = scheduler.stats();
        const std::vector<std::string> paused = scheduler.paused_queues();
        auto is_paused = [&](const std::string& queue) {
          return std::find(paused.begin(), paused.end(), queue) != paused.end();
        };
        json queues = json::array();
        std::optional<jobsched::Seconds> oldest_due;
        for (const jobsched::QueueStats& queue : stats.queues) {
          const auto late = oldest_due_of(scheduler, queue, stats.at);
          if (late && (!oldest_due || *late > *oldest_due))
            oldest_due = late;
          queues.push_back({{"queue", queue.queue},
                            {"jobs", counts_json(queue.jobs)},
                            {"oldest_due", seconds_json(late)},
                            {"paused", is_paused(queue.queue)}});
        }
        // A paused queue with no jobs is listed too, so that it can be resumed.
        for (const std::string& queue : paused) {
          const bool listed =
              std::any_of(stats.queues.begin(), stats.queues.end(),
                          [&](const jobsched::QueueStats& q) { return q.queue == queue; });
          if (!listed) {
            queues.push_back({{"queue", queue},
                              {"jobs", counts_json({})},
                              {"oldest_due", nullptr},
                              {"paused", true}});
          }
        }
        return json{{"db", options_.db},
                    {"at", jobsched::to_unix_seconds(stats.at)},
                    {"schema_version", stats.schema_version},
                    {"needs_upgrade", scheduler.needs_upgrade()},
                    {"schedules", stats.schedules},
                    {"totals", counts_json(stats.totals)},
                    {"oldest_due", seconds_json(oldest_due)},
                    {"queues", queues},
                    {"paused_queues", paused}};
      });
    });

    server.Get("/api/jobs", [this](const httplib::Request& request, httplib::Response& response) {
      with_scheduler(false, response, [&](jobsched::Scheduler& scheduler) {
        jobsched::JobQuery query;
        if (request.has_param("state") && !request.get_param_value("state").empty())
          query.state = jobsched::parse_job_state(request.get_param_value("state"));
        // An empty `queue=` is the default queue; no `queue` at all is every queue.
        if (request.has_param("queue"))
          query.queue = request.get_param_value("queue");
        if (request.has_param("order")) {
          const std::string order = request.get_param_value("order");
          if (order == "newest")
            query.order = jobsched::ListOrder::newest_first;
          else if (order != "oldest")
            throw HttpError{400, "order must be 'oldest' or 'newest', not '" + order + "'"};
        }
        if (request.has_param("after"))
          query.after = whole_number(request.get_param_value("after"), "after");
        if (request.has_param("limit")) {
          const std::int64_t limit = whole_number(request.get_param_value("limit"), "limit");
          if (limit < 1 || limit > static_cast<std::int64_t>(jobsched::max_page_size))
            throw HttpError{400, "limit must be 1 to " + std::to_string(jobsched::max_page_size)};
          query.limit = static_cast<std::size_t>(limit);
        }
        const jobsched::JobPage page = scheduler.list_jobs(query);
        json jobs = json::array();
        for (const jobsched::Job& job : page.jobs)
          jobs.push_back(job_summary(job, page.at));
        return json{{"at", jobsched::to_unix_seconds(page.at)},
                    {"jobs", jobs},
                    {"next_after", page.next_after ? json(*page.next_after) : json(nullptr)}};
      });
    });

    server.Get(R"(/api/jobs/(-?\d+))",
               [this](const httplib::Request& request, httplib::Response& response) {
                 with_scheduler(false, response, [&](jobsched::Scheduler& scheduler) {
                   const std::int64_t id = whole_number(request.matches[1].str(), "job id");
                   const jobsched::TimePoint at = scheduler.now();
                   const auto job = scheduler.get_job(id, at);
                   if (!job)
                     throw HttpError{404, "no job " + std::to_string(id)};
                   return job_detail(*job, at);
                 });
               });

    server.Get("/api/schedules", [this](const httplib::Request&, httplib::Response& response) {
      with_scheduler(false, response, [](jobsched::Scheduler& scheduler) {
        json schedules = json::array();
        for (const jobsched::Schedule& schedule : scheduler.schedules()) {
          schedules.push_back({{"name", schedule.name},
                               {"rule", schedule.rule.to_string()},
                               {"queue", schedule.options.queue},
                               {"priority", schedule.options.priority},
                               {"paused", schedule.paused},
                               {"next_fire", time_json(schedule.next_fire)},
                               {"last_fire", time_json(schedule.last_fire)}});
        }
        return json{{"at", jobsched::to_unix_seconds(scheduler.now())}, {"schedules", schedules}};
      });
    });

    server.Post(
        R"(/api/jobs/(-?\d+)/(retry|cancel|delete))",
        [this](const httplib::Request& request, httplib::Response& response) {
          const std::string action = request.matches[2].str();
          with_scheduler(true, response, [&](jobsched::Scheduler& scheduler) {
            const std::int64_t id = whole_number(request.matches[1].str(), "job id");
            const std::string name = "job " + std::to_string(id);
            if (!scheduler.get_job(id))
              throw HttpError{404, "no " + name};
            if (action == "retry" && !scheduler.retry_job(id))
              throw HttpError{409, name + " is not failed or cancelled, so not retried"};
            if (action == "cancel" && !scheduler.cancel_job(id, "cancelled from the dashboard"))
              throw HttpError{409, name + " is completed, failed or expired, so not cancelled"};
            if (action == "delete" && !scheduler.delete_job(id))
              throw HttpError{404, "no " + name};
            const jobsched::TimePoint at = scheduler.now();
            const auto job = scheduler.get_job(id, at);
            return json{{"ok", true}, {"job", job ? job_detail(*job, at) : json(nullptr)}};
          });
        });

    server.Post(R"(/api/queues/(.*)/(pause|resume))", [this](const httplib::Request& request,
                                                             httplib::Response& response) {
      const std::string queue = request.matches[1].str();
      const bool pause = request.matches[2].str() == "pause";
      with_scheduler(true, response, [&](jobsched::Scheduler& scheduler) {
        const bool changed = pause ? scheduler.pause_queue(queue) : scheduler.resume_queue(queue);
        return json{{"ok", true}, {"queue", queue}, {"changed", changed}, {"paused", pause}};
      });
    });

    // Writes are POST only: a GET (a link, an image, a prefetch) changes nothing.
    auto post_only = [](const httplib::Request&, httplib::Response& response) {
      response.set_header("Allow", "POST");
      send_error(response, 405, "use POST");
    };
    server.Get(R"(/api/jobs/(-?\d+)/(retry|cancel|delete))", post_only);
    server.Get(R"(/api/queues/(.*)/(pause|resume))", post_only);
  }

  // Token, Host and Origin checks, before any route runs.
  httplib::Server::HandlerResponse check(const httplib::Request& request,
                                         httplib::Response& response) const {
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_header("X-Frame-Options", "DENY");
    response.set_header("Referrer-Policy", "no-referrer");
    response.set_header("Cache-Control", "no-store");
    response.set_header("Content-Security-Policy",
                        "default-src 'none'; script-src 'self'; style-src 'self'; "
                        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                        "form-action 'none'; frame-ancestors 'none'");
    if (!options_.token.empty()) {
      if (!carries_token(request, options_.token)) {
        response.set_header("WWW-Authenticate", "Bearer");
        send_error(response, 401,
                   "this dashboard needs its token: ?token=... or "
                   "Authorization: Bearer ...");
        return httplib::Server::HandlerResponse::Handled;
      }
    } else if (!is_loopback(host_of(request.get_header_value("Host")))) {
      // Without a token only loopback names are served, so a page elsewhere cannot reach
      // the dashboard through a DNS name that points at 127.0.0.1 (DNS rebinding).
      send_error(response, 403, "this dashboard answers only to a loopback Host");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (request.method != "GET" && request.method != "HEAD" && !same_origin(request)) {
      send_error(response, 403, "a write must come from the dashboard's own page (Origin)");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

 private:
  // How late the queue's oldest available job is. QueueStats::oldest_due is not used: in
  // Scheduler::stats every queue's is the oldest of all queues (the library's bug, reported);
  // the first available job in start order is the same figure, for this queue alone.
  static std::optional<jobsched::Seconds> oldest_due_of(jobsched::Scheduler& scheduler,
                                                        const jobsched::QueueStats& queue,
                                                        jobsched::TimePoint at) {
    if (queue.jobs.available == 0)
      return std::nullopt;
    jobsched::JobQuery query;
    query.state = jobsched::JobState::available;
    query.queue = queue.queue;
    query.limit = 1;
    const jobsched::JobPage page = scheduler.list_jobs(query, at);
    if (page.jobs.empty() || page.jobs.front().starts_at > at)
      return std::nullopt;
    return jobsched::Seconds{at - page.jobs.front().starts_at};
  }

  static std::int64_t whole_number(const std::string& text, const char* name) {
    try {
      std::size_t used = 0;
      const long long value = std::stoll(text, &used);
      if (used == text.size())
        return value;
    } catch (const std::exception&) {
    }
    throw HttpError{400, std::string(name) + " must be a whole number, not '" + text + "'"};
  }

  ServeOptions options_;
};

bool write_port_file(const std::string& path, int port) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << '\n';
    if (!out.flush())
      return false;
  }
  return std::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace

int serve(const ServeOptions& options) {
  const auto address = parse_listen(options.listen);
  if (!address) {
    std::cerr << "jobsched serve: --listen wants HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), "
                 "not '"
              << options.listen << "'\n";
    return exit_usage;
  }
  const bool loopback = is_loopback(address->host);
  if (!loopback && !options.allow_remote) {
    std::cerr << "jobsched serve: " << address->host
              << " is not a loopback address; serving the dashboard to other machines needs "
                 "--allow-remote and --token\n";
    return exit_usage;
  }
  if (!loopback && options.token.empty()) {
    std::cerr << "jobsched serve: --allow-remote needs a non-empty --token, which every "
                 "request must carry (?token=... or Authorization: Bearer ...)\n";
    return exit_usage;
  }
  std::error_code ignored;
  if (!std::filesystem::exists(options.db, ignored)) {
    std::cerr << "jobsched serve: no such file '" << options.db
              << "' (give another with --db or $JOBSCHED_DB)\n";
    return exit_bad_file;
  }
  try {
    jobsched::Options look;
    look.read_only = true;
    const auto scheduler = jobsched::Scheduler::open(options.db, look);
    if (scheduler.needs_upgrade()) {
      std::cerr << "jobsched serve: " << options.db << " is at schema version "
                << scheduler.schema_version()
                << "; shown read as upgraded, and changes are refused until `jobsched migrate`\n";
    }
  } catch (const std::exception& error) {
    std::cerr << "jobsched serve: " << error.what() << '\n';
    return exit_bad_file;
  }

  // SIGINT and SIGTERM are taken by one thread (blocked in all others, the server's threads
  // included, which inherit this mask), which stops the server.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &signals, &previous);

  const Dashboard dashboard(options);
  httplib::Server server;
  server.set_pre_routing_handler(
      [&dashboard](const httplib::Request& request, httplib::Response& response) {
        return dashboard.check(request, response);
      });
  dashboard.route(server);
  // Every route answers its own errors (with_scheduler); this is for anything that escapes.
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        send_error(response, 500, "the dashboard failed to answer this request");
      });
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second dashboard
  // would bind the same port and take half of the requests instead of being refused.
  server.set_socket_options([](socket_t socket) {
    const int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.set_payload_max_length(64 * 1024);  // no request needs a body
  server.set_read_timeout(std::chrono::seconds(10));
  server.set_write_timeout(std::chrono::seconds(10));

  int port = address->port;
  bool bound = false;
  if (port == 0) {
    port = server.bind_to_any_port(address->host);
    bound = port > 0;
  } else {
    bound = server.bind_to_port(address->host, port);
  }
  if (!bound) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    std::cerr << "jobsched serve: cannot listen on " << options.listen
              << " (in use, or not an address of this machine)\n";
    return exit_io;
  }
  if (!options.port_file.empty() && !write_port_file(options.port_file, port)) {
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    std::cerr << "jobsched serve: cannot write the port to " << options.port_file << '\n';
    return exit_io;
  }

  std::atomic<bool> listening_done{false};
  std::atomic<bool> woken{false};
  std::thread stopper([&] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    woken = true;
    // stop() is lost when it comes before the listen loop starts: repeat until it ends.
    while (!listening_done.load()) {
      server.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  const std::string shown_host =
      address->host.find(':') != std::string::npos ? "[" + address->host + "]" : address->host;
  std::cerr << "jobsched serve: the dashboard of " << options.db << " is at http://" << shown_host
            << ':' << port << "/" << (options.token.empty() ? "" : "?token=<your token>")
            << " (Ctrl-C stops it)\n";
  const bool ok = server.listen_after_bind();
  listening_done = true;
  if (!woken.exchange(true))
    pthread_kill(stopper.native_handle(), SIGUSR1);  // wakes the stopper when no signal came
  stopper.join();
  // The signals stay blocked: one that came while stopping stays pending, unseen, as the
  // process ends.
  if (!ok) {
    std::cerr << "jobsched serve: the server stopped with an error\n";
    return exit_io;
  }
  std::cerr << "jobsched serve: stopped\n";
  return 0;
}

}  // namespace jobsched_cli
