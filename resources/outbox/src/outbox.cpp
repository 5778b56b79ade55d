#include <xact/outbox/outbox.hpp>

#include <algorithm>
#include <any>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/manager_binding.hpp>

namespace xact::outbox {
namespace {

std::int64_t micros(Outbox::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

bool valid_identifier(const std::string& s) {
  if (s.empty() || s.size() > 48) return false;
  if (s[0] >= '0' && s[0] <= '9') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The table's DDL per dialect (Connection::dialect()). Payloads are bytes; times are integers
// (µs since the Unix epoch), so every dialect compares them the same way. lease_owner is '' when
// no claim is in force (not NULL: a claim compares it with '=' in every dialect).
std::vector<std::string> create_statements(const std::string& dialect, const std::string& t) {
  if (dialect == "sqlite") {
    return {"CREATE TABLE IF NOT EXISTS " + t +
                " (msg_key TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,"
                " created_us INTEGER NOT NULL, next_us INTEGER NOT NULL,"
                " attempts INTEGER NOT NULL DEFAULT 0, done_us INTEGER, last_error TEXT,"
                " dead_us INTEGER, lease_owner TEXT NOT NULL DEFAULT '')",
            "CREATE INDEX IF NOT EXISTS " + t + "_due ON " + t + " (done_us, dead_us, next_us)"};
  }
  if (dialect == "postgresql") {
    return {"CREATE TABLE IF NOT EXISTS " + t +
                " (msg_key VARCHAR(64) PRIMARY KEY, topic TEXT NOT NULL, payload BYTEA NOT NULL,"
                " created_us BIGINT NOT NULL, next_us BIGINT NOT NULL,"
                " attempts INTEGER NOT NULL DEFAULT 0, done_us BIGINT, last_error TEXT,"
                " dead_us BIGINT, lease_owner VARCHAR(64) NOT NULL DEFAULT '')",
            "CREATE INDEX IF NOT EXISTS " + t + "_due ON " + t + " (done_us, dead_us, next_us)"};
  }
  if (dialect == "mysql") {
    return {"CREATE TABLE IF NOT EXISTS " + t +
            " (msg_key VARCHAR(64) PRIMARY KEY, topic VARCHAR(255) NOT NULL,"
            " payload LONGBLOB NOT NULL, created_us BIGINT NOT NULL, next_us BIGINT NOT NULL,"
            " attempts INT NOT NULL DEFAULT 0, done_us BIGINT NULL, last_error TEXT,"
            " dead_us BIGINT NULL, lease_owner VARCHAR(64) NOT NULL DEFAULT '',"
            " INDEX " +
            t + "_due (done_us, dead_us, next_us)) ENGINE=InnoDB"};
  }
  throw UsageError("xact::outbox: no outbox table for SQL dialect '" + dialect +
                   "' (sqlite, postgresql and mysql have one)");
}

// A table made before the dead state and the leases existed gets their two columns (its index
// stays (done_us, next_us)). One column per statement: SQLite adds one at a time.
std::vector<std::string> upgrade_statements(const std::string& dialect, const std::string& t) {
  const std::string big = dialect == "sqlite" ? "INTEGER" : "BIGINT";
  const std::string text = dialect == "sqlite" ? "TEXT" : "VARCHAR(64)";
  return {"ALTER TABLE " + t + " ADD COLUMN dead_us " + big + " NULL",
          "ALTER TABLE " + t + " ADD COLUMN lease_owner " + text + " NOT NULL DEFAULT ''"};
}

std::string new_key() {
  thread_local boost::uuids::random_generator generator;
  return boost::uuids::to_string(generator());
}

sql::Bytes to_bytes(std::string_view s) { return sql::Bytes(s.begin(), s.end()); }

}  // namespace

std::shared_ptr<Outbox> Outbox::create(std::shared_ptr<sql::SqlResource> store,
                                       OutboxOptions options) {
  if (!store) throw UsageError("xact::outbox::Outbox::create: the store is null");
  if (!valid_identifier(options.table)) {
    throw UsageError("xact::outbox: table name '" + options.table +
                     "' is not an identifier (letters, digits, _; at most 48 bytes)");
  }
  std::string dialect;
  {
    sql::PooledConnection c = store->pool()->acquire();
    dialect = std::string(c->dialect());
    const auto ddl = create_statements(dialect, options.table);
    if (options.create_table) {
      c->execute(ddl[0]);  // the table; then its missing columns; then the index
      bool current = true;
      try {
        c->execute("SELECT dead_us, lease_owner FROM " + options.table + " WHERE 1 = 0");
      } catch (const std::exception&) {
        current = false;
      }
      if (!current) {
        for (const auto& statement : upgrade_statements(dialect, options.table)) {
          c->execute(statement);
        }
      }
      for (std::size_t i = 1; i < ddl.size(); ++i) c->execute(ddl[i]);
    }
  }
  return std::shared_ptr<Outbox>(new Outbox(std::move(store), std::move(options), dialect));
}

Outbox::Outbox(std::shared_ptr<sql::SqlResource> store, OutboxOptions options, std::string dialect)
    : store_(std::move(store)), options_(std::move(options)), dialect_(std::move(dialect)) {
  const std::string& t = options_.table;
  insert_ = "INSERT INTO " + t +
            " (msg_key, topic, payload, created_us, next_us, attempts) VALUES ($1, $2, $3, $4, "
            "$4, 0)";
  const std::string live = " done_us IS NULL AND dead_us IS NULL";
  select_due_ = "SELECT msg_key, topic, payload, attempts, created_us, lease_owner FROM " + t +
                " WHERE" + live + " AND next_us <= $1 ORDER BY next_us, created_us, msg_key LIMIT ";
  // COUNT(dead_us) counts the rows whose dead_us is not NULL.
  count_ = "SELECT COUNT(*) - COUNT(dead_us) AS pending, COUNT(dead_us) AS dead FROM " + t +
           " WHERE done_us IS NULL";
  select_state_ = "SELECT done_us, dead_us FROM " + t + " WHERE msg_key = $1";
  purge_ = "DELETE FROM " + t + " WHERE done_us IS NOT NULL AND done_us < $1";
  // A claim is a compare-and-set on the row as due() read it (attempts, lease_owner) and still
  // due: the database's row lock serializes concurrent claims and the loser matches no row
  // (PostgreSQL at REPEATABLE READ fails it with a serialization failure instead: retried, it
  // matches no row either).
  claim_ = "UPDATE " + t + " SET next_us = $1, lease_owner = $2 WHERE msg_key = $3" +
           " AND lease_owner = '' AND attempts = $4 AND" + live + " AND next_us <= $5";
  claim_expired_ = "UPDATE " + t +
                   " SET next_us = $1, lease_owner = $2, attempts = attempts + 1, last_error = $3"
                   " WHERE msg_key = $4 AND lease_owner = $5 AND attempts = $6 AND" +
                   live + " AND next_us <= $7";
  expire_dead_ = "UPDATE " + t +
                 " SET dead_us = $1, lease_owner = '', attempts = attempts + 1, last_error = $2"
                 " WHERE msg_key = $3 AND lease_owner = $4 AND attempts = $5 AND" +
                 live + " AND next_us <= $1";
  mark_done_ = "UPDATE " + t + " SET done_us = $1, dead_us = NULL, lease_owner = ''" +
               " WHERE msg_key = $2 AND done_us IS NULL";
  mark_failed_ = "UPDATE " + t +
                 " SET attempts = attempts + 1, next_us = $1, last_error = $2, lease_owner = ''"
                 " WHERE msg_key = $3 AND lease_owner = $4 AND" +
                 live;
  mark_dead_ = "UPDATE " + t +
               " SET attempts = attempts + 1, dead_us = $1, last_error = $2, lease_owner = ''"
               " WHERE msg_key = $3 AND lease_owner = $4 AND" +
               live;
  select_dead_ = "SELECT msg_key, topic, payload, attempts, created_us, dead_us, last_error FROM " +
                 t + " WHERE done_us IS NULL AND dead_us IS NOT NULL ORDER BY dead_us, msg_key" +
                 " LIMIT ";
  requeue_ = "UPDATE " + t +
             " SET dead_us = NULL, attempts = 0, next_us = $1, lease_owner = ''"
             " WHERE done_us IS NULL AND dead_us IS NOT NULL";
  requeue_all_ = requeue_;
  requeue_ += " AND msg_key = $2";
  drop_dead_ =
      "DELETE FROM " + t + " WHERE msg_key = $1 AND done_us IS NULL AND dead_us IS NOT NULL";
}

std::string Outbox::post(Transaction& txn, std::string_view topic, std::string_view payload) {
  std::string key = new_key();
  store_->execute(txn, insert_, {key, std::string(topic), to_bytes(payload), micros(Clock::now())});
  // The first post of txn registers the hook that wakes this process's dispatchers once txn
  // committed (a savepoint rollback may have undone the posts: the wake-up is then spurious).
  std::any& slot = txn.data(this);
  if (!slot.has_value()) {
    slot = true;
    txn.add_after_commit_hook([self = weak_from_this()](bool committed) {
      if (!committed) return;
      if (auto outbox = self.lock()) outbox->notify();
    });
  }
  return key;
}

std::string Outbox::post(std::string_view topic, std::string_view payload) {
  return post(current_manager().get(), topic, payload);
}

namespace {

Message read_message(const sql::Row& row) {
  Message m;
  m.key = row.get<std::string>("msg_key");
  m.topic = row.get<std::string>("topic");
  const sql::Bytes payload = row.at("payload").as_bytes();
  m.payload.assign(payload.begin(), payload.end());
  m.attempts = static_cast<std::uint32_t>(row.get<std::int64_t>("attempts"));
  m.created_us = row.get<std::int64_t>("created_us");
  return m;
}

}  // namespace

std::vector<Message> Outbox::due(std::size_t limit, Clock::time_point now) const {
  std::vector<Message> out;
  if (limit == 0) return out;
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(select_due_ + std::to_string(limit), {micros(now)});
  out.reserve(r.size());
  for (const sql::Row& row : r) {
    Message m = read_message(row);
    m.lease_owner = row.get<std::string>("lease_owner");
    out.push_back(std::move(m));
  }
  return out;
}

Outbox::Counts Outbox::counts() const {
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(count_);
  const sql::Row& row = r.one();
  return {static_cast<std::size_t>(row.get<std::int64_t>(0)),
          static_cast<std::size_t>(row.get<std::int64_t>(1))};
}

std::size_t Outbox::pending_count() const { return counts().pending; }

std::size_t Outbox::dead_count() const { return counts().dead; }

bool Outbox::is_done(std::string_view key) const {
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(select_state_, {std::string(key)});
  return !r.empty() && !r[0].at(0).is_null();
}

bool Outbox::is_dead(std::string_view key) const {
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(select_state_, {std::string(key)});
  return !r.empty() && r[0].at(0).is_null() && !r[0].at(1).is_null();
}

std::size_t Outbox::purge_done(Clock::time_point before) {
  sql::PooledConnection c = store_->pool()->acquire();
  return static_cast<std::size_t>(c->execute(purge_, {micros(before)}).affected_rows());
}

std::vector<DeadMessage> Outbox::dead(std::size_t limit) const {
  std::vector<DeadMessage> out;
  if (limit == 0) return out;
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(select_dead_ + std::to_string(limit));
  out.reserve(r.size());
  for (const sql::Row& row : r) {
    DeadMessage d;
    d.message = read_message(row);
    d.dead_us = row.get<std::int64_t>("dead_us");
    if (!row.at("last_error").is_null()) d.last_error = row.get<std::string>("last_error");
    out.push_back(std::move(d));
  }
  return out;
}

bool Outbox::requeue(std::string_view key, Clock::time_point at) {
  bool requeued = false;
  {
    sql::PooledConnection c = store_->pool()->acquire();
    requeued = c->execute(requeue_, {micros(at), std::string(key)}).affected_rows() == 1;
  }
  if (requeued) notify();
  return requeued;
}

std::size_t Outbox::requeue_all_dead(Clock::time_point at) {
  std::size_t n = 0;
  {
    sql::PooledConnection c = store_->pool()->acquire();
    n = static_cast<std::size_t>(c->execute(requeue_all_, {micros(at)}).affected_rows());
  }
  if (n > 0) notify();
  return n;
}

bool Outbox::drop_dead(std::string_view key) {
  sql::PooledConnection c = store_->pool()->acquire();
  return c->execute(drop_dead_, {std::string(key)}).affected_rows() == 1;
}

ClaimResult Outbox::claim(Transaction& txn, const Message& seen, std::string_view token,
                          Clock::time_point lease_end, Clock::time_point now,
                          std::uint32_t max_attempts) {
  const auto attempts = static_cast<std::int64_t>(seen.attempts);
  if (seen.lease_owner.empty()) {
    const auto r = store_->execute(
        txn, claim_, {micros(lease_end), std::string(token), seen.key, attempts, micros(now)});
    return r.affected_rows() == 1 ? ClaimResult::claimed : ClaimResult::taken;
  }
  // The delivery under that claim never finished (its dispatcher died, or overran the lease):
  // it counts as a failed attempt, so a message that kills its dispatcher every time ends dead
  // instead of killing every dispatcher in turn.
  const std::string why = "delivery interrupted: the lease of claim " + seen.lease_owner +
                          " expired before its outcome was recorded";
  if (max_attempts != 0 && seen.attempts + 1 >= max_attempts) {
    const auto r = store_->execute(txn, expire_dead_,
                                   {micros(now), why, seen.key, seen.lease_owner, attempts});
    return r.affected_rows() == 1 ? ClaimResult::dead : ClaimResult::taken;
  }
  const auto r = store_->execute(txn, claim_expired_,
                                 {micros(lease_end), std::string(token), why, seen.key,
                                  seen.lease_owner, attempts, micros(now)});
  return r.affected_rows() == 1 ? ClaimResult::claimed : ClaimResult::taken;
}

bool Outbox::mark_done(Transaction& txn, std::string_view key, Clock::time_point now) {
  return store_->execute(txn, mark_done_, {micros(now), std::string(key)}).affected_rows() == 1;
}

bool Outbox::mark_failed(Transaction& txn, std::string_view key, std::string_view token,
                         Clock::time_point retry_at, std::string_view error) {
  return store_
             ->execute(txn, mark_failed_,
                       {micros(retry_at), std::string(error.substr(0, 1000)), std::string(key),
                        std::string(token)})
             .affected_rows() == 1;
}

bool Outbox::mark_dead(Transaction& txn, std::string_view key, std::string_view token,
                       Clock::time_point now, std::string_view error) {
  return store_
             ->execute(txn, mark_dead_,
                       {micros(now), std::string(error.substr(0, 1000)), std::string(key),
                        std::string(token)})
             .affected_rows() == 1;
}

std::uint64_t Outbox::notifications() const {
  std::lock_guard lock(mutex_);
  return notifications_;
}

std::uint64_t Outbox::wait_for_notification(std::uint64_t seen,
                                            std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return notifications_ > seen; });
  return notifications_;
}

void Outbox::notify() {
  {
    std::lock_guard lock(mutex_);
    ++notifications_;
  }
  cv_.notify_all();
}

}  // namespace xact::outbox
