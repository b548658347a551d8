// SPDX-License-Identifier: MIT
#pragma once

/// jobsched: a persistent schedule of jobs in SQLite. Include this header for everything.

#include "adder.hpp"
#include "claim.hpp"
#include "error.hpp"
#include "event.hpp"
#include "job.hpp"
#include "job_context.hpp"
#include "job_state.hpp"
#include "listing.hpp"
#include "migrations.hpp"
#include "options.hpp"
#include "payload.hpp"
#include "retention.hpp"
#include "retry.hpp"
#include "rule.hpp"
#include "schedule.hpp"
#include "scheduler.hpp"
#include "stats.hpp"
#include "time.hpp"
#include "time_zone.hpp"
#include "transaction.hpp"
#include "unique.hpp"
#include "worker.hpp"

#define JOBSCHED_VERSION_MAJOR 0
#define JOBSCHED_VERSION_MINOR 1
#define JOBSCHED_VERSION_PATCH 0
