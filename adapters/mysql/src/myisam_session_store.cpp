#include <xact/mysql/myisam_session_store.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include <xact/errors.hpp>
#include <xact/sql/errors.hpp>
#include <xact/sql/pool.hpp>

namespace xact::mysql {
namespace {

using sessions::Entry;
using sessions::Fence;
using sessions::FencedEntry;
using sessions::wall_clock_us;

sql::Bytes bytes(const std::string& s) { return sql::Bytes(s.begin(), s.end()); }

// Keys (session id, name, owner node and transaction id) are sent as string parameters, values
// as Bytes. Connector/C++ sends every Bytes parameter as a separate long-data packet before
// the statement (setBlob), 5-10 µs each on loopback: a blind write had ten of them. A
// string parameter rides in the execute packet, and the server stores and compares its bytes
// unchanged in these binary columns (MySqlSessions.BinaryKeysRoundTrip).
sql::Value key(std::string_view s) { return sql::Value(s); }
sql::Value key(const NodeId& n) {
  return sql::Value(
      std::string_view(reinterpret_cast<const char*>(n.bytes.data()), n.bytes.size()));
}

sql::Value opt_bytes(const std::optional<std::string>& s) {
  std::optional<sql::Bytes> b;
  if (s) b = bytes(*s);
  return sql::Value(b);
}

std::string text(const sql::Value& v) {
  if (const sql::Bytes* b = v.if_bytes()) return std::string(b->begin(), b->end());
  return v.as_string();
}

std::optional<std::string> opt_text(const sql::Value& v) {
  if (v.is_null()) return std::nullopt;
  return text(v);
}

std::int64_t i64(std::uint64_t v) { return static_cast<std::int64_t>(v); }

// The columns every entry read selects, in this order, after any leading ones.
constexpr const char* kEntryColumns =
    "value, version, expires_us, owner_gtrid, owner_version, before_value, before_version, "
    "fenced_at_us";

Entry parse_entry(const sql::Row& row, std::size_t at) {
  Entry e;
  e.value = opt_text(row[at]);
  e.version = static_cast<std::uint64_t>(row[at + 1].as_int64());
  e.expires_us = row[at + 2].as_int64();
  if (!row[at + 3].is_null()) {
    Fence f;
    std::optional<Gtrid> g = Gtrid::from_bytes(text(row[at + 3]));
    if (!g) throw StorageError("session table: an owner_gtrid that is not 28 bytes");
    f.owner = *g;
    f.owner_version = static_cast<std::uint64_t>(row[at + 4].as_int64());
    f.before_value = opt_text(row[at + 5]);
    f.before_version =
        row[at + 6].is_null() ? 0 : static_cast<std::uint64_t>(row[at + 6].as_int64());
    f.fenced_at_us = row[at + 7].is_null() ? 0 : row[at + 7].as_int64();
    e.fence = std::move(f);
  }
  return e;
}

void check_table_name(const std::string& t) {
  const bool ok = !t.empty() && t.size() <= 64 && std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!ok) {
    throw UsageError("MyIsamSessionStore: table name '" + t +
                     "' must be 1 to 64 letters, digits or underscores");
  }
}

// "$a, $b, ..." for an IN list whose parameters start at `first`.
std::string in_list(std::size_t first, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += (i ? ", $" : "$") + std::to_string(first + i);
  return s;
}

// write_fenced's statement on a server with RETURNING (built once, at open).
std::string write_fenced_statement(const std::string& table) {
  // One statement: a new row, an expired one replaced, or a live one that is unfenced or fenced
  // by `owner` written; any other row left as it is. Assignments run left to right, each seeing
  // the columns assigned before it, so the before-image comes first and owner_gtrid and
  // expires_us, which the conditions test, last. RETURNING shows the row as it then is.
  //   $1 sid, $2 name, $3 value, $4 new expiry, $5 owner node, $6 owner gtrid, $7 fenced_at,
  //   $8 the clock (expired: expires_us <= $8)
  const std::string expired = "expires_us <= $8";
  const std::string free =
      "(" + expired + " OR owner_gtrid IS NULL OR owner_gtrid = VALUES(owner_gtrid))";
  return "INSERT INTO " + table +
         " (sid, name, value, version, expires_us, owner_node, owner_gtrid, owner_version, "
         "before_value, before_version, fenced_at_us) VALUES ($1, $2, $3, 1, $4, $5, $6, 1, "
         "NULL, NULL, $7) ON DUPLICATE KEY UPDATE "
         "before_value = IF(" +
         expired +
         ", NULL, IF(owner_gtrid IS NULL, value, before_value)), "
         "before_version = IF(" +
         expired +
         ", NULL, "
         "IF(owner_gtrid IS NULL, version, before_version)), "
         "fenced_at_us = IF(" +
         expired +
         " OR owner_gtrid IS NULL, $7, fenced_at_us), "
         "value = IF(" +
         free +
         ", VALUES(value), value), "
         "version = IF(" +
         expired + ", 1, IF(" + free +
         ", version + 1, version)), "
         "owner_version = IF(" +
         free +
         ", version, owner_version), "
         "owner_node = IF(" +
         free +
         ", VALUES(owner_node), owner_node), "
         "owner_gtrid = IF(" +
         free +
         ", VALUES(owner_gtrid), owner_gtrid), "
         "expires_us = IF(" +
         expired +
         ", VALUES(expires_us), expires_us) "
         "RETURNING " +
         kEntryColumns;
}

}  // namespace

bool is_crashed_table_error(int native_code, const std::string& message) noexcept {
  switch (native_code) {
    case 126:   // HA_ERR_CRASHED: index file is crashed
    case 127:   // HA_ERR_WRONG_IN_RECORD: record file is crashed
    case 130:   // HA_ERR_NOT_A_TABLE: incorrect file format
    case 145:   // HA_ERR_CRASHED_ON_USAGE
    case 1034:  // ER_NOT_KEYFILE: incorrect key file, try to repair it
    case 1194:  // ER_CRASHED_ON_USAGE: table is marked as crashed and should be repaired
    case 1195:  // ER_CRASHED_ON_REPAIR: ... last (automatic?) repair failed
      return true;
    case 1030:  // ER_GET_ERRNO: "Got error N from storage engine"
      for (const char* n : {" 126 ", " 127 ", " 130 ", " 145 "}) {
        if (message.find(n) != std::string::npos) return true;
      }
      return false;
    default: return false;
  }
}

struct MyIsamSessionStore::Impl {
  MyIsamSessionStoreOptions options;
  std::string qualified;  // `db`.`table`, for messages
  std::shared_ptr<sql::ConnectionPool> pool;
  bool returning = false;        // the server has INSERT ... RETURNING (MariaDB 10.5+)
  std::string write_fenced_sql;  // write_fenced's statement, when `returning`

  std::int64_t idle() const { return options.idle_timeout.count(); }

  sql::Result run(const std::string& statement, const sql::Params& params) {
    sql::PooledConnection conn = pool->acquire();
    try {
      return conn->execute(statement, params);
    } catch (const sql::SqlError& e) {
      if (is_crashed_table_error(e.native_code(), e.what())) {
        throw ResourceError("session table " + qualified +
                            " is crashed or damaged (MyISAM is not crash-safe; error " +
                            std::to_string(e.native_code()) + ": " + e.what() +
                            "): run `REPAIR TABLE " + qualified +
                            "` (or myisamchk -r with the server stopped), then check the "
                            "sessions; xact does not repair it on its own");
      }
      throw;
    } catch (...) {
      if (conn && conn->broken()) conn.discard();
      throw;
    }
  }

  // Parameters of the fence columns (owner_node, owner_gtrid, owner_version, before_value,
  // before_version, fenced_at_us) of an entry.
  static void fence_params(sql::Params& p, const std::optional<Fence>& f) {
    if (!f) {
      static const sql::Value null;
      for (int i = 0; i < 6; ++i) p.add(null);
      return;
    }
    p.add(key(f->owner.node())).add(key(f->owner.bytes())).add(i64(f->owner_version));
    if (f->before_value) {
      p.add(bytes(*f->before_value)).add(i64(f->before_version));
    } else {
      p.add(sql::Value()).add(sql::Value());
    }
    p.add(f->fenced_at_us);
  }
  static sql::Value owner_of(const std::optional<Entry>& e) {
    if (e && e->fence) return key(e->fence->owner.bytes());
    return sql::Value();
  }

  std::vector<FencedEntry> fenced(const std::string& where, sql::Params params) {
    params.add(wall_clock_us());
    const std::string n = std::to_string(params.size());
    sql::Result r = run("SELECT sid, name, " + std::string(kEntryColumns) + " FROM " +
                            options.table + " WHERE " + where + " AND expires_us > $" + n,
                        params);
    std::vector<FencedEntry> out;
    for (const sql::Row& row : r) out.push_back({text(row[0]), text(row[1]), parse_entry(row, 2)});
    return out;
  }

  // Commits batched by clear_fences.
  struct Commit {
    const Gtrid* owner = nullptr;
    const std::vector<std::string>* session_ids = nullptr;
    bool tombstones = false;
    bool done = false;  // commit_mu: written (or failed: error)
    bool lead = false;  // commit_mu: this caller writes the next batch
    std::size_t changed = 0;
    std::exception_ptr error;
    std::condition_variable cv;  // with commit_mu: done or lead
  };
  static constexpr std::size_t kMaxCommitBatch = 32;
  std::mutex commit_mu;
  std::vector<Commit*> commit_queue;  // commit_mu
  bool committing = false;            // commit_mu: a leader is writing or was chosen

  // The statements of a batch of commits: drop the owners' fences (and their tombstones) and
  // refresh the sessions. The lists are padded to a power of two with their last element, so
  // each connection prepares a handful of statement texts, not one per batch size.
  std::size_t clear_batch(const std::vector<Commit*>& batch) {
    std::vector<std::string> owners, sids;
    bool tombstones = false;
    for (const Commit* c : batch) {
      std::string g(c->owner->bytes());
      if (std::find(owners.begin(), owners.end(), g) == owners.end()) owners.push_back(g);
      for (const std::string& sid : *c->session_ids) {
        if (std::find(sids.begin(), sids.end(), sid) == sids.end()) sids.push_back(sid);
      }
      tombstones = tombstones || c->tombstones;
    }
    auto pad = [](std::vector<std::string>& v) {
      std::size_t n = 1;
      while (n < v.size()) n <<= 1;
      v.resize(n, v.back());
    };
    pad(owners);
    pad(sids);
    const std::int64_t now = wall_clock_us();
    std::size_t changed = 0;
    // $1 the clock, $2 the new expiry, then the owners, then the sessions (the DELETE leaves
    // $1 and $2 unused: only the highest placeholder has to match the parameter count).
    const std::string owner_in = in_list(3, owners.size());
    const std::string sid_in = in_list(3 + owners.size(), sids.size());
    sql::Params p;
    p.add(now);           // $1
    p.add(now + idle());  // $2
    for (const std::string& g : owners) p.add(key(g));
    for (const std::string& sid : sids) p.add(key(sid));
    if (tombstones) {
      sql::Result r =
          run("DELETE FROM " + options.table + " WHERE value IS NULL AND owner_gtrid IN (" +
                  owner_in + ") AND sid IN (" + sid_in + ")",
              p);
      changed += static_cast<std::size_t>(r.affected_rows());
    }
    // Assignments run left to right: owner_gtrid, which the others test, is cleared last.
    std::string set;
    for (const char* c :
         {"before_value", "before_version", "fenced_at_us", "owner_version", "owner_node"}) {
      set += std::string(c) + " = IF(owner_gtrid IN (" + owner_in + "), NULL, " + c + "), ";
    }
    sql::Result r = run("UPDATE " + options.table + " SET " + set +
                            "expires_us = IF(expires_us > $1, $2, expires_us), "
                            "owner_gtrid = IF(owner_gtrid IN (" +
                            owner_in + "), NULL, owner_gtrid) WHERE sid IN (" + sid_in + ")",
                        p);
    changed += static_cast<std::size_t>(r.affected_rows());
    return changed;
  }

  void refresh(const std::string& sid, std::int64_t now) {
    run("UPDATE " + options.table + " SET expires_us = $1 WHERE sid = $2 AND expires_us > $3",
        {now + idle(), key(sid), now});
  }
};

std::shared_ptr<MyIsamSessionStore> MyIsamSessionStore::open(MyIsamSessionStoreOptions options) {
  check_table_name(options.table);
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->qualified =
      (impl->options.connect.database.empty() ? std::string()
                                              : "`" + impl->options.connect.database + "`.") +
      "`" + impl->options.table + "`";
  sql::PoolOptions po;
  po.max_size = std::max<std::size_t>(1, impl->options.connections);
  po.name = "session table " + impl->qualified;
  const ConnectOptions connect = impl->options.connect;
  const std::string context = "session table " + impl->qualified;
  impl->pool = sql::ConnectionPool::create(
      [connect, context]() -> std::unique_ptr<sql::Connection> {
        return MySqlConnection::open(connect, context);
      },
      po);
  if (impl->options.create_table) {
    impl->run("CREATE TABLE IF NOT EXISTS " + impl->options.table +
                  " ("
                  "sid VARBINARY(128) NOT NULL, "
                  "name VARBINARY(255) NOT NULL, "
                  "value LONGBLOB NULL, "
                  "version BIGINT NOT NULL, "
                  "expires_us BIGINT NOT NULL, "
                  "owner_node BINARY(16) NULL, "
                  "owner_gtrid BINARY(28) NULL, "
                  "owner_version BIGINT NULL, "
                  "before_value LONGBLOB NULL, "
                  "before_version BIGINT NULL, "
                  "fenced_at_us BIGINT NULL, "
                  "PRIMARY KEY (sid, name), "
                  "KEY owner (owner_node, owner_gtrid)"
                  ") ENGINE=MyISAM",
              {});
  }
  {
    sql::PooledConnection c = impl->pool->acquire();
    impl->returning = static_cast<MySqlConnection&>(*c).has_returning();
  }
  if (impl->returning) impl->write_fenced_sql = write_fenced_statement(impl->options.table);
  return std::shared_ptr<MyIsamSessionStore>(new MyIsamSessionStore(std::move(impl)));
}

MyIsamSessionStore::MyIsamSessionStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MyIsamSessionStore::~MyIsamSessionStore() = default;

std::string MyIsamSessionStore::describe() const { return "MyISAM table " + impl_->qualified; }
std::chrono::microseconds MyIsamSessionStore::idle_timeout() const noexcept {
  return impl_->options.idle_timeout;
}
const std::string& MyIsamSessionStore::table() const noexcept { return impl_->options.table; }

bool MyIsamSessionStore::is_transient(const std::exception_ptr& error) const noexcept {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const sql::ConnectionLost&) {
    return true;
  } catch (...) {
    return false;
  }
}

sql::Result MyIsamSessionStore::execute(const std::string& statement, const sql::Params& params) {
  return impl_->run(statement, params);
}

std::optional<std::string> MyIsamSessionStore::get(const std::string& sid,
                                                   const std::string& name) {
  sql::Result r = impl_->run("SELECT value FROM " + impl_->options.table +
                                 " WHERE sid = $1 AND name = $2 AND expires_us > $3 AND "
                                 "value IS NOT NULL",
                             {key(sid), key(name), wall_clock_us()});
  if (r.empty()) return std::nullopt;
  return text(r[0][0]);
}

std::map<std::string, std::string> MyIsamSessionStore::get_all(const std::string& sid) {
  sql::Result r = impl_->run("SELECT name, value FROM " + impl_->options.table +
                                 " WHERE sid = $1 AND expires_us > $2 AND value IS NOT NULL",
                             {key(sid), wall_clock_us()});
  std::map<std::string, std::string> out;
  for (const sql::Row& row : r) out.emplace(text(row[0]), text(row[1]));
  return out;
}

void MyIsamSessionStore::set(const std::string& sid, const std::string& name,
                             const std::string& value) {
  sessions::check_key(sid, name);
  const std::int64_t now = wall_clock_us();
  // MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right: version reads the old
  // expires_us, so expires_us comes last.
  impl_->run("INSERT INTO " + impl_->options.table +
                 " (sid, name, value, version, expires_us) VALUES ($1, $2, $3, 1, $4) "
                 "ON DUPLICATE KEY UPDATE version = IF(expires_us <= $5, 1, version + 1), "
                 "value = VALUES(value), owner_node = NULL, owner_gtrid = NULL, "
                 "owner_version = NULL, before_value = NULL, before_version = NULL, "
                 "fenced_at_us = NULL, expires_us = VALUES(expires_us)",
             {key(sid), key(name), bytes(value), now + impl_->idle(), now});
  impl_->refresh(sid, now);
}

void MyIsamSessionStore::erase(const std::string& sid, const std::string& name) {
  const std::int64_t now = wall_clock_us();
  impl_->run("DELETE FROM " + impl_->options.table + " WHERE sid = $1 AND name = $2",
             {key(sid), key(name)});
  impl_->refresh(sid, now);
}

bool MyIsamSessionStore::touch(const std::string& sid) {
  const std::int64_t now = wall_clock_us();
  sql::Result r = impl_->run(
      "UPDATE " + impl_->options.table + " SET expires_us = $1 WHERE sid = $2 AND expires_us > $3",
      {now + impl_->idle(), key(sid), now});
  if (r.affected_rows() > 0) return true;
  // MySQL counts changed rows only: a touch within the same clock tick changes nothing.
  return !impl_
              ->run("SELECT 1 FROM " + impl_->options.table +
                        " WHERE sid = $1 AND expires_us > $2 LIMIT 1",
                    {key(sid), now})
              .empty();
}

void MyIsamSessionStore::invalidate(const std::string& sid) {
  impl_->run("DELETE FROM " + impl_->options.table + " WHERE sid = $1", {key(sid)});
}

std::size_t MyIsamSessionStore::sweep_expired() {
  sql::Result r = impl_->run("DELETE FROM " + impl_->options.table + " WHERE expires_us <= $1",
                             {wall_clock_us()});
  return static_cast<std::size_t>(r.affected_rows());
}

std::optional<Entry> MyIsamSessionStore::read_entry(const std::string& sid,
                                                    const std::string& name) {
  sql::Result r =
      impl_->run("SELECT " + std::string(kEntryColumns) + " FROM " + impl_->options.table +
                     " WHERE sid = $1 AND name = $2 AND expires_us > $3",
                 {key(sid), key(name), wall_clock_us()});
  if (r.empty()) return std::nullopt;
  return parse_entry(r[0], 0);
}

std::map<std::string, Entry> MyIsamSessionStore::read_session(const std::string& sid) {
  sql::Result r = impl_->run("SELECT name, " + std::string(kEntryColumns) + " FROM " +
                                 impl_->options.table + " WHERE sid = $1 AND expires_us > $2",
                             {key(sid), wall_clock_us()});
  std::map<std::string, Entry> out;
  for (const sql::Row& row : r) out.emplace(text(row[0]), parse_entry(row, 1));
  return out;
}

bool MyIsamSessionStore::compare_and_swap(const std::string& sid, const std::string& name,
                                          const std::optional<Entry>& seen,
                                          const std::optional<Entry>& next) {
  sessions::check_key(sid, name);
  const std::int64_t now = wall_clock_us();
  const std::string& t = impl_->options.table;
  if (seen && next) {
    sql::Params p;
    p.add(opt_bytes(next->value));
    p.add(i64(next->version));
    Impl::fence_params(p, next->fence);  // $3..$8
    p.add(key(sid));
    p.add(key(name));
    p.add(i64(seen->version));
    p.add(Impl::owner_of(seen));
    p.add(now);
    sql::Result r = impl_->run(
        "UPDATE " + t +
            " SET value = $1, version = $2, owner_node = $3, owner_gtrid = $4, "
            "owner_version = $5, before_value = $6, before_version = $7, fenced_at_us = $8 "
            "WHERE sid = $9 AND name = $10 AND version = $11 AND owner_gtrid <=> $12 AND "
            "expires_us > $13",
        p);
    return r.affected_rows() == 1;
  }
  if (seen && !next) {
    sql::Result r =
        impl_->run("DELETE FROM " + t +
                       " WHERE sid = $1 AND name = $2 AND version = $3 AND "
                       "owner_gtrid <=> $4 AND expires_us > $5",
                   {key(sid), key(name), i64(seen->version), Impl::owner_of(seen), now});
    return r.affected_rows() == 1;
  }
  if (!seen && next) {
    // A new row, or one that expired (an expired session is a new one): ON DUPLICATE KEY
    // replaces only an expired row, checking expires_us before the last assignment changes it.
    sql::Params p;
    p.add(key(sid));
    p.add(key(name));
    p.add(opt_bytes(next->value));
    p.add(i64(next->version));
    p.add(now + impl_->idle());
    Impl::fence_params(p, next->fence);  // $6..$11
    p.add(now);                          // $12
    std::string upd;
    for (const char* c : {"value", "version", "owner_node", "owner_gtrid", "owner_version",
                          "before_value", "before_version", "fenced_at_us", "expires_us"}) {
      upd += std::string(upd.empty() ? "" : ", ") + c + " = IF(expires_us <= $12, VALUES(" + c +
             "), " + c + ")";
    }
    sql::Result r = impl_->run(
        "INSERT INTO " + t +
            " (sid, name, value, version, expires_us, owner_node, owner_gtrid, owner_version, "
            "before_value, before_version, fenced_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, "
            "$8, $9, $10, $11) ON DUPLICATE KEY UPDATE " +
            upd,
        p);
    return r.affected_rows() >= 1;
  }
  return !read_entry(sid, name);
}

sessions::SessionStore::FencedWrite MyIsamSessionStore::write_fenced(
    const std::string& sid, const std::string& name, const std::string& value, const Gtrid& owner,
    std::int64_t now, Entry& result, std::optional<Entry>& before) {
  if (!impl_->returning) {
    return SessionStore::write_fenced(sid, name, value, owner, now, result, before);
  }
  sessions::check_key(sid, name);
  const std::int64_t stamp = wall_clock_us();
  const NodeId node = owner.node();
  sql::Result r =
      impl_->run(impl_->write_fenced_sql, {key(sid), key(name), bytes(value), stamp + impl_->idle(),
                                           key(node), key(owner.bytes()), now, stamp});
  if (r.empty()) {
    throw StorageError("session table " + impl_->qualified +
                       ": INSERT ... RETURNING returned no row");
  }
  result = parse_entry(r[0], 0);
  if (!result.fence || result.fence->owner != owner) return FencedWrite::fenced_by_other;
  before = sessions::before_image(*result.fence);
  return FencedWrite::written;
}

std::size_t MyIsamSessionStore::clear_fences(const Gtrid& owner,
                                             const std::vector<std::string>& session_ids,
                                             bool tombstones) {
  if (session_ids.empty()) return 0;
  // Commits that arrive while another batch is being written wait and go together in the next
  // one: one leader writes the statements of every queued commit (group commit). Each caller
  // returns once the statement that dropped its fences returned, with its error if it failed.
  Impl::Commit me;
  me.owner = &owner;
  me.session_ids = &session_ids;
  me.tombstones = tombstones;
  std::unique_lock lock(impl_->commit_mu);
  impl_->commit_queue.push_back(&me);
  if (!impl_->committing) {
    impl_->committing = true;  // nobody is writing: lead at once (the queue held only this one)
    me.lead = true;
  } else {
    me.cv.wait(lock, [&] { return me.done || me.lead; });
  }
  if (!me.done) {
    // The leader is at the queue's front: it writes the commits queued so far, itself first.
    const std::size_t n = std::min(impl_->commit_queue.size(), Impl::kMaxCommitBatch);
    std::vector<Impl::Commit*> batch(impl_->commit_queue.begin(),
                                     impl_->commit_queue.begin() + static_cast<std::ptrdiff_t>(n));
    impl_->commit_queue.erase(impl_->commit_queue.begin(),
                              impl_->commit_queue.begin() + static_cast<std::ptrdiff_t>(n));
    lock.unlock();
    std::exception_ptr error;
    std::size_t changed = 0;
    try {
      changed = impl_->clear_batch(batch);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    // Wake exactly who must run: the batch's writers, and the next leader if some queued meanwhile.
    for (Impl::Commit* c : batch) {
      c->changed = changed;
      c->error = error;
      c->done = true;
      if (c != &me) c->cv.notify_one();
    }
    if (impl_->commit_queue.empty()) {
      impl_->committing = false;
    } else {
      impl_->commit_queue.front()->lead = true;
      impl_->commit_queue.front()->cv.notify_one();
    }
  }
  lock.unlock();
  if (me.error) std::rethrow_exception(me.error);
  return me.changed;
}

std::vector<FencedEntry> MyIsamSessionStore::list_fenced(const std::optional<NodeId>& node) {
  if (!node) return impl_->fenced("owner_gtrid IS NOT NULL", {});
  return impl_->fenced("owner_node = $1", {key(*node)});
}

std::vector<FencedEntry> MyIsamSessionStore::list_fenced_by(const Gtrid& owner) {
  const NodeId node = owner.node();
  return impl_->fenced("owner_node = $1 AND owner_gtrid = $2", {key(node), key(owner.bytes())});
}

}  // namespace xact::mysql
