// SPDX-License-Identifier: MIT
// Enqueueing inside your own transaction: an order row in your table and the job that
// emails its confirmation commit together or not at all. No order without its email, and
// no email for an order that was rolled back (the "transactional outbox").

#include <jobsched/jobsched.hpp>

#include <sqlite3.h>

#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

// Runs one statement of your own on the scheduler's connection, binding ?1 (text) and ?2
// (integer); throws on failure, as your data layer would.
void run(sqlite3* db, const char* sql, const std::string& text = {}, std::int64_t number = 0) {
  sqlite3_stmt* statement = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &statement, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(statement, 1, text.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(statement, 2, number);
    rc = sqlite3_step(statement);
  }
  sqlite3_finalize(statement);
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(sqlite3_errmsg(db));
}

std::int64_t count_orders(sqlite3* db) {
  sqlite3_stmt* statement = nullptr;
  std::int64_t count = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM orders", -1, &statement, nullptr) == SQLITE_OK &&
      sqlite3_step(statement) == SQLITE_ROW)
    count = sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  return count;
}

// Your business logic: record the order, enqueue its email, take the items from stock.
// Any exception leaves the transaction uncommitted, and its destructor rolls back all three.
void place_order(jobsched::Scheduler& scheduler, const std::string& item, std::int64_t quantity) {
  sqlite3* db = scheduler.handle();
  jobsched::Transaction transaction = scheduler.transaction();  // BEGIN IMMEDIATE
  run(db, "INSERT INTO orders(item, quantity) VALUES (?1, ?2)", item, quantity);
  jobsched::JobOptions email;
  email.queue = "mail";
  scheduler.add_job("confirm order #" + std::to_string(sqlite3_last_insert_rowid(db)), email);
  // The CHECK refuses to go below zero: an order for more than is in stock throws here,
  // after the job was added.
  run(db, "UPDATE stock SET count = count - ?2 WHERE item = ?1", item, quantity);
  transaction.commit();  // the order, the job and the stock change, in one commit
}

}  // namespace

int main() {
  auto scheduler = jobsched::Scheduler::open(":memory:");
  sqlite3* db = scheduler.handle();
  // Your own tables live in the same database as the jobs.
  run(db, "CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT NOT NULL, quantity INTEGER)");
  run(db, "CREATE TABLE stock(item TEXT PRIMARY KEY, count INTEGER NOT NULL CHECK (count >= 0))");
  run(db, "INSERT INTO stock VALUES ('book', 5), ('vase', 1)");

  auto report = [&](const std::string& what) {
    std::cout << what << ": orders " << count_orders(db) << ", emails queued "
              << scheduler.count_pending_jobs() << '\n';
  };

  place_order(scheduler, "book", 2);
  report("ordered 2 books");

  try {
    place_order(scheduler, "vase", 3);
  } catch (const std::exception& e) {
    std::cout << "3 vases refused (" << e.what() << ")\n";
  }
  report("after the refused order");  // neither its order row nor its email is left

  // Your code can also decide to undo, without an exception.
  {
    jobsched::Transaction transaction = scheduler.transaction();
    scheduler.add_job("a newsletter nobody approved");
    transaction.rollback();
  }
  report("after a rollback");

  if (const auto next = scheduler.next_job())
    std::cout << "next job: " << next->data.bytes() << " (queue " << next->queue << ")\n";
}
