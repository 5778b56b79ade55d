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
// Dispatcher (<xact/outbox/dispatcher.hpp>) claims a due message (a lease), delivers it and marks
// it done in a transaction of its own, after the delivery: a crash between the delivery and the
// mark delivers the message again, with the same key (at least once). Receivers deduplicate by
// the key. A message whose deliveries keep failing ends in the dead state (kept, listed by
// dead(), never delivered until an operator calls requeue(); or deleted by drop_dead()).
//
// Why SQL: an insert per message conflicts with nothing (an object-store container of messages
// would make every posting transaction conflict on it), rows are read, claimed and marked by key
// with conditional UPDATEs (the database's own row locking makes a claim atomic), and the same
// code runs on the three SQL adapters. The table (created by create() when missing):
//
//   msg_key     the idempotency key (primary key)     next_us     not delivered before (µs):
//   topic       what the message is about                          back-off, or a lease's end
//   payload     bytes                                  attempts    failed deliveries so far
//   created_us  post() time, µs since the Unix epoch   done_us     when marked done; NULL before
//   last_error  the last failed delivery's error       dead_us     when it went dead; NULL else
//   lease_owner the claim of the delivery in progress ('' when none)
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
  std::uint32_t attempts = 0;  ///< failed (or interrupted) deliveries before this one
  std::int64_t created_us = 0;
  /// The claim of an earlier delivery that never finished (its dispatcher died or overran its
  /// lease, which has expired; that delivery may have reached the receiver); empty otherwise.
  std::string lease_owner;
};

/// A message in the dead state, as Outbox::dead() lists it.
struct DeadMessage {
  Message message;           ///< attempts: the failed deliveries (the last one included)
  std::int64_t dead_us = 0;  ///< when it went dead, µs since the Unix epoch
  std::string last_error;    ///< the last attempt's error
};

/// What Outbox::claim() did.
enum class ClaimResult {
  claimed,  ///< the message is leased to the caller until the lease's end: deliver it
  taken,    ///< another dispatcher claimed it, or it changed since it was read: skip it
  dead,     ///< its expired lease was its last allowed attempt: moved to the dead state
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
  /// Messages due at `now` (not done, not dead, next_us <= now: no back-off or lease in force),
  /// oldest first, at most `limit`. Reading them claims nothing: see claim().
  std::vector<Message> due(std::size_t limit, Clock::time_point now = Clock::now()) const;
  /// Messages not done and not dead (due, backing off or leased).
  std::size_t pending_count() const;
  /// Messages in the dead state.
  std::size_t dead_count() const;
  struct Counts {
    std::size_t pending = 0;
    std::size_t dead = 0;
  };
  /// Both, in one query.
  Counts counts() const;
  /// Whether message `key` is marked done (false also when there is no such message).
  bool is_done(std::string_view key) const;
  /// Whether message `key` is in the dead state.
  bool is_dead(std::string_view key) const;
  /// Deletes messages marked done before `before`; returns how many.
  std::size_t purge_done(Clock::time_point before);

  // --- operators: the dead state ---------------------------------------------------------------
  /// Dead messages, oldest death first, at most `limit`.
  std::vector<DeadMessage> dead(std::size_t limit = 1000) const;
  /// Takes dead message `key` out of the dead state: due at `at`, its attempts back to 0 (a full
  /// set of retries), last_error kept. Returns false when `key` is not dead. Wakes this process's
  /// dispatchers.
  bool requeue(std::string_view key, Clock::time_point at = Clock::now());
  /// The same for every dead message; returns how many.
  std::size_t requeue_all_dead(Clock::time_point at = Clock::now());
  /// Deletes dead message `key` (it will never be delivered). Returns false when it is not dead.
  bool drop_dead(std::string_view key);

  // --- the dispatcher's steps, each in txn's branch (the dispatcher's own transaction) --------
  /// Claims message `seen` (as due() read it) for the holder of `token` until `lease_end`: one
  /// conditional UPDATE that succeeds only when the row is still as read (same attempts and
  /// lease_owner, not done, not dead, due at `now`), so of several dispatchers exactly one gets
  /// it. When `seen.lease_owner` is set (an earlier delivery was interrupted: its lease expired)
  /// the interruption counts as a failed attempt; if that reaches `max_attempts` (0: no limit)
  /// the message goes dead instead of being claimed.
  ClaimResult claim(Transaction& txn, const Message& seen, std::string_view token,
                    Clock::time_point lease_end, Clock::time_point now, std::uint32_t max_attempts);
  /// Marks `key` done (whoever holds its lease: it was delivered). Returns false when the message
  /// was already marked (or is gone).
  bool mark_done(Transaction& txn, std::string_view key, Clock::time_point now);
  /// Records a failed delivery by the holder of `token`: due again at `retry_at`. Returns false
  /// (and changes nothing) when the claim was lost (the lease expired and another claimed it).
  bool mark_failed(Transaction& txn, std::string_view key, std::string_view token,
                   Clock::time_point retry_at, std::string_view error);
  /// Records a failed delivery by the holder of `token` and moves the message to the dead state.
  /// Returns false when the claim was lost.
  bool mark_dead(Transaction& txn, std::string_view key, std::string_view token,
                 Clock::time_point now, std::string_view error);

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
  std::string insert_, select_due_, count_, select_state_, purge_, mark_done_, mark_failed_,
      mark_dead_, claim_, claim_expired_, expire_dead_, select_dead_, requeue_, requeue_all_,
      drop_dead_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::uint64_t notifications_ = 0;
};

}  // namespace xact::outbox
