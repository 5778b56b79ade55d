// Outbox: side effects (an e-mail, a call to another service) written as messages in the same
// transaction as the application's data, and delivered only after that transaction committed.
//
//   auto store = xact::sqlite::SqliteResource::create({.path = "/var/lib/app/app.db"});
//   auto outbox = xact::outbox::Outbox::create(store);      // creates table xact_outbox
//   xact::run(tm, [&](xact::Transaction& txn) {
//     store->execute(txn, "INSERT INTO orders (item) VALUES ($1)", {"book"});
//     outbox->post(txn, "mail.order_placed", R"({"item": "book"})");
//   });
//   xact::outbox::Dispatcher dispatcher(outbox, [](const xact::outbox::Message& m) {
//     send_mail(m.payload, /*idempotency key*/ m.key);       // throws: retried later
//   });
//   dispatcher.start();                                       // or dispatcher.dispatch_once()
//
// post() inserts one row into the outbox table through the store's branch of the transaction
// (an xact::sql::SqlResource: SQLite, PostgreSQL or MariaDB/MySQL), so the message exists
// exactly when the transaction committed: an aborted or retried attempt, or a rollback to a
// savepoint taken before the post, leaves no message; a committed one survives a crash. The
// transaction may have other participants (the object store, another database): the outbox's
// store is one more participant of the same atomic commit.
//
// Each message gets a unique idempotency key (a random UUID, its text form) at post(). A
// Dispatcher (<xact/outbox/dispatcher.hpp>) delivers committed messages and marks each done in a
// transaction of its own, after the delivery: a crash between the delivery and the mark delivers
// the message again, with the same key (at least once). Receivers deduplicate by the key.
//
// Why SQL: an insert per message conflicts with nothing (an object-store container of messages
// would make every posting transaction conflict on it), rows are read and marked by key, and the
// same code runs on the three SQL adapters. The table (created by create() when missing):
//
//   msg_key     the idempotency key (primary key)     next_us     not delivered before (µs)
//   topic       what the message is about              attempts    failed deliveries so far
//   payload     bytes                                  done_us     when marked done; NULL before
//   created_us  post() time, µs since the Unix epoch   last_error  the last delivery's error
//
// Thread-safety: thread-safe; share one Outbox per table.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/sql/sql_resource.hpp>
#include <xact/transaction.hpp>

namespace xact::outbox {

/// One message as a dispatcher hands it to the handler.
struct Message {
  std::string key;  ///< the idempotency key: the same on every delivery of this message
  std::string topic;
  std::string payload;
  std::uint32_t attempts = 0;  ///< failed deliveries before this one
  std::int64_t created_us = 0;
};

struct OutboxOptions {
  /// The table (an identifier: letters, digits, _; at most 48 bytes).
  std::string table = "xact_outbox";
  /// create() runs CREATE TABLE IF NOT EXISTS (outside any transaction). Off: the table must be
  /// there (schema managed by the application's migrations).
  bool create_table = true;
};

class Outbox : public std::enable_shared_from_this<Outbox> {
 public:
  using Clock = std::chrono::system_clock;

  /// An outbox in `store`'s database (its dialect decides the table's column types). Throws
  /// UsageError for a null store, a bad table name or an unknown dialect; the store's mapped
  /// errors when the table cannot be created.
  static std::shared_ptr<Outbox> create(std::shared_ptr<sql::SqlResource> store,
                                        OutboxOptions options = {});

  /// Writes one message in txn's branch of the store (joining txn) and returns its key. The
  /// message becomes visible to dispatchers when txn commits; dispatchers of this Outbox in this
  /// process are woken then. Throws what the store's execute() throws.
  std::string post(Transaction& txn, std::string_view topic, std::string_view payload);
  /// The same in the current transaction of current_manager().
  std::string post(std::string_view topic, std::string_view payload);

  // --- for dispatchers and operators (each runs on a pooled connection, outside transactions) --
  /// Undelivered messages due at `now` (next_us <= now), oldest first, at most `limit`.
  std::vector<Message> due(std::size_t limit, Clock::time_point now = Clock::now()) const;
  /// Messages not marked done yet (due or backing off).
  std::size_t pending_count() const;
  /// Whether message `key` is marked done (false also when there is no such message).
  bool is_done(std::string_view key) const;
  /// Deletes messages marked done before `before`; returns how many.
  std::size_t purge_done(Clock::time_point before);

  /// Marks `key` done / records a failed delivery, in txn's branch (the dispatcher's own
  /// transaction). mark_done returns false when the message was already marked (or is gone).
  bool mark_done(Transaction& txn, std::string_view key, Clock::time_point now);
  void mark_failed(Transaction& txn, std::string_view key, Clock::time_point retry_at,
                   std::string_view error);

  /// Wake-ups for dispatchers in this process: a counter bumped once by every transaction that
  /// committed posts here, and by notify(). wait_for_notification() waits until it exceeds
  /// `seen` or `timeout` passes, and returns it.
  std::uint64_t notifications() const;
  std::uint64_t wait_for_notification(std::uint64_t seen, std::chrono::milliseconds timeout) const;
  void notify();

  const std::shared_ptr<sql::SqlResource>& store() const noexcept { return store_; }
  const std::string& table() const noexcept { return options_.table; }

 private:
  Outbox(std::shared_ptr<sql::SqlResource> store, OutboxOptions options, std::string dialect);

  std::shared_ptr<sql::SqlResource> store_;
  OutboxOptions options_;
  std::string dialect_;
  std::string insert_, select_due_, count_pending_, select_done_, purge_, mark_done_, mark_failed_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::uint64_t notifications_ = 0;
};

}  // namespace xact::outbox
