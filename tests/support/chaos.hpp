// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos, shared by tests/test_crash_chaos.cpp (short runs in the unit suite) and
// tools/chaos.cpp (long runs). Real processes share one file while the parent SIGKILLs one
// of them at random moments and forks a replacement:
// - a producer adds the jobs (after a few the parent added first) and reports each id once
//   add_job returned; it is killed and replaced like the rest, and adds until the file holds
//   Config::jobs ids;
// - plain worker processes run several threads, each with its own Scheduler: claim, then
//   complete, fail, release, or extend (a heartbeat, sometimes a shorter one) before
//   completing, or sleep past the lease; every call is reported before it is made (its
//   "intent") and once it returned (its result);
// - processes running a real jobsched::Worker (threads and heartbeat): the handler reports
//   each start and whether it will return or throw; the Worker completes or fails inside,
//   so those outcomes are read from the final file;
// - with Config::rogue_deletes, a rogue process deletes random rows: the harness's own test
//   that a vanished job shows as lost.
// Jobs have few attempts (RetryPolicy and JobOptions::max_attempts) and short backoffs, so
// failures and leases running out end jobs failed. The run ends when the producer finished
// and count_pending_jobs() is 0; then run_chaos checks the promises of DESIGN.md
// ("Semantics", "Concurrency and delivery") against the reports and the final file: every
// added id is there, completed (one accepted completion) or failed (none, all attempts
// used, failed at its lease end or its fail), no two live leases, no stale or late call
// accepted, an intact file. See Result for every count.
//
// Times: records carry wall-clock times (CLOCK_REALTIME, the clock the scheduler uses,
// shared by all processes) taken just before a call and just after it returned, and the
// `now` each call compared leases with (a claim's is its locked_at; others are passed in).
// A commit happened between its call's `before` and `after`, so two events are ordered only
// when those windows say so; ambiguous pairs are never counted as violations.
//
// Every wait has a bound: the parent's (Config::time_limit, reaping, draining) count as
// timed_out or harness_errors; each child dies by alarm() soon after the time limit, and
// leaves with _exit() when its parent is gone. Children never return into a test framework.
//
// The parts, under support/chaos/:
// - config.hpp: Config, and the scheduler and job settings derived from it;
// - result.hpp: Result, every figure and count of a run;
// - records.hpp: the records a child writes to its pipe;
// - roles.hpp: each child's process body (producer, rogue, plain worker, jobsched::Worker);
// - run.hpp: run_chaos(), the parent's kill-and-replace loop;
// - reports.hpp: the parent's log sorted out into ids and claims;
// - final_file.hpp: the file as the run left it;
// - check.hpp: the checks, from the reports and the final file to Result's counts.

#include "chaos/config.hpp"
#include "chaos/result.hpp"
#include "chaos/run.hpp"
