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
// (µs since the Unix epoch), so every dialect compares them the same way.
std::vector<std::string> create_statements(const std::string& dialect, const std::string& t) {
  if (dialect == "sqlite") {
    return {"CREATE TABLE IF NOT EXISTS " + t +
                " (msg_key TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,"
                " created_us INTEGER NOT NULL, next_us INTEGER NOT NULL,"
                " attempts INTEGER NOT NULL DEFAULT 0, done_us INTEGER, last_error TEXT)",
            "CREATE INDEX IF NOT EXISTS " + t + "_due ON " + t + " (done_us, next_us)"};
  }
  if (dialect == "postgresql") {
    return {"CREATE TABLE IF NOT EXISTS " + t +
                " (msg_key VARCHAR(64) PRIMARY KEY, topic TEXT NOT NULL, payload BYTEA NOT NULL,"
                " created_us BIGINT NOT NULL, next_us BIGINT NOT NULL,"
                " attempts INTEGER NOT NULL DEFAULT 0, done_us BIGINT, last_error TEXT)",
            "CREATE INDEX IF NOT EXISTS " + t + "_due ON " + t + " (done_us, next_us)"};
  }
  if (dialect == "mysql") {
    return {"CREATE TABLE IF NOT EXISTS " + t +
            " (msg_key VARCHAR(64) PRIMARY KEY, topic VARCHAR(255) NOT NULL,"
            " payload LONGBLOB NOT NULL, created_us BIGINT NOT NULL, next_us BIGINT NOT NULL,"
            " attempts INT NOT NULL DEFAULT 0, done_us BIGINT NULL, last_error TEXT,"
            " INDEX " +
            t + "_due (done_us, next_us)) ENGINE=InnoDB"};
  }
  throw UsageError("xact::outbox: no outbox table for SQL dialect '" + dialect +
                   "' (sqlite, postgresql and mysql have one)");
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
      for (const auto& statement : ddl) c->execute(statement);
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
  select_due_ = "SELECT msg_key, topic, payload, attempts, created_us FROM " + t +
                " WHERE done_us IS NULL AND next_us <= $1 ORDER BY next_us, created_us, msg_key"
                " LIMIT ";
  count_pending_ = "SELECT COUNT(*) AS n FROM " + t + " WHERE done_us IS NULL";
  select_done_ = "SELECT done_us FROM " + t + " WHERE msg_key = $1";
  purge_ = "DELETE FROM " + t + " WHERE done_us IS NOT NULL AND done_us < $1";
  mark_done_ = "UPDATE " + t + " SET done_us = $1 WHERE msg_key = $2 AND done_us IS NULL";
  mark_failed_ = "UPDATE " + t +
                 " SET attempts = attempts + 1, next_us = $1, last_error = $2"
                 " WHERE msg_key = $3 AND done_us IS NULL";
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

std::vector<Message> Outbox::due(std::size_t limit, Clock::time_point now) const {
  std::vector<Message> out;
  if (limit == 0) return out;
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(select_due_ + std::to_string(limit), {micros(now)});
  out.reserve(r.size());
  for (const sql::Row& row : r) {
    Message m;
    m.key = row.get<std::string>("msg_key");
    m.topic = row.get<std::string>("topic");
    const sql::Bytes payload = row.at("payload").as_bytes();
    m.payload.assign(payload.begin(), payload.end());
    m.attempts = static_cast<std::uint32_t>(row.get<std::int64_t>("attempts"));
    m.created_us = row.get<std::int64_t>("created_us");
    out.push_back(std::move(m));
  }
  return out;
}

std::size_t Outbox::pending_count() const {
  sql::PooledConnection c = store_->pool()->acquire();
  return static_cast<std::size_t>(c->execute(count_pending_).one().get<std::int64_t>(0));
}

bool Outbox::is_done(std::string_view key) const {
  sql::PooledConnection c = store_->pool()->acquire();
  const sql::Result r = c->execute(select_done_, {std::string(key)});
  return !r.empty() && !r[0].at(0).is_null();
}

std::size_t Outbox::purge_done(Clock::time_point before) {
  sql::PooledConnection c = store_->pool()->acquire();
  return static_cast<std::size_t>(c->execute(purge_, {micros(before)}).affected_rows());
}

bool Outbox::mark_done(Transaction& txn, std::string_view key, Clock::time_point now) {
  return store_->execute(txn, mark_done_, {micros(now), std::string(key)}).affected_rows() == 1;
}

void Outbox::mark_failed(Transaction& txn, std::string_view key, Clock::time_point retry_at,
                         std::string_view error) {
  store_->execute(txn, mark_failed_,
                  {micros(retry_at), std::string(error.substr(0, 1000)), std::string(key)});
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
