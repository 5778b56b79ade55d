#include <xact/postgres/pg_connection.hpp>

#include <poll.h>

#include <charconv>
#include <cmath>
#include <system_error>
#include <vector>

#include <pqxx/binarystring>
#include <pqxx/connection>
#include <pqxx/errorhandler>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/prepared_statement>
#include <pqxx/result>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/postgres/errors.hpp>

namespace xact::postgres {

namespace {

// PostgreSQL type oids (pg_type.dat) of the types read as something other than text.
constexpr pqxx::oid kBool = 16;
constexpr pqxx::oid kBytea = 17;
constexpr pqxx::oid kInt8 = 20;
constexpr pqxx::oid kInt2 = 21;
constexpr pqxx::oid kInt4 = 23;
constexpr pqxx::oid kOid = 26;
constexpr pqxx::oid kFloat4 = 700;
constexpr pqxx::oid kFloat8 = 701;

constexpr char kHex[] = "0123456789abcdef";

void inhibit_reactivation(pqxx::connection_base& c) {
  // Deprecated in libpqxx 6 (and gone in 7, which never reactivates), but in 6.4 the only way
  // to stop a silent reconnect in the middle of a branch.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  c.inhibit_reactivation(true);
#pragma GCC diagnostic pop
}

std::string trimmed(const char* msg) {
  std::string s(msg == nullptr ? "" : msg);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Routes the server's notices and warnings to xact's log instead of libpqxx's handling.
class NoticeRouter final : public pqxx::errorhandler {
 public:
  NoticeRouter(pqxx::connection_base& c, const std::string& context)
      : pqxx::errorhandler(c), context_(context) {}
  bool operator()(const char msg[]) noexcept override {
    try {
      log(LogLevel::debug, context_ + ": server notice: " + trimmed(msg));
    } catch (...) {
    }
    return false;  // handled: no older handler needs it
  }

 private:
  std::string context_;
};

std::string render_double(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, ec == std::errc() ? ptr : buf);
}

std::vector<std::optional<std::string>> to_text(const sql::Params& params,
                                                const std::string& context) {
  std::vector<std::optional<std::string>> out;
  out.reserve(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const sql::Value& v = params[i];
    if (v.is_null()) {
      out.emplace_back();
    } else if (const auto* n = v.if_int64()) {
      out.emplace_back(std::to_string(*n));
    } else if (const auto* d = v.if_double()) {
      out.emplace_back(render_double(*d));
    } else if (const auto* b = v.if_bool()) {
      out.emplace_back(*b ? "true" : "false");
    } else if (const auto* s = v.if_text()) {
      if (s->find('\0') != std::string::npos) {
        throw UsageError(context + ": parameter $" + std::to_string(i + 1) +
                         " is text with a NUL byte, which PostgreSQL text cannot hold; pass it "
                         "as xact::sql::Bytes for a bytea column");
      }
      out.emplace_back(*s);
    } else if (const auto* bytes = v.if_bytes()) {
      std::string hex = "\\x";
      hex.reserve(2 + 2 * bytes->size());
      for (const std::uint8_t c : *bytes) {
        hex += kHex[c >> 4];
        hex += kHex[c & 0xf];
      }
      out.emplace_back(std::move(hex));
    }
  }
  return out;
}

sql::Value from_field(pqxx::oid type, const pqxx::field& f) {
  if (f.is_null()) return {};
  const char* text = f.c_str();
  const std::size_t size = f.size();
  switch (type) {
    case kBool: return sql::Value(size > 0 && text[0] == 't');
    case kInt2:
    case kInt4:
    case kInt8:
    case kOid: {
      std::int64_t n = 0;
      const auto [ptr, ec] = std::from_chars(text, text + size, n);
      if (ec == std::errc() && ptr == text + size) return sql::Value(n);
      break;
    }
    case kFloat4:
    case kFloat8: {
      const std::string_view s(text, size);
      if (s == "NaN") return sql::Value(std::nan(""));
      if (s == "Infinity") return sql::Value(HUGE_VAL);
      if (s == "-Infinity") return sql::Value(-HUGE_VAL);
      double d = 0;
      const auto [ptr, ec] = std::from_chars(text, text + size, d);
      if (ec == std::errc() && ptr == text + size) return sql::Value(d);
      break;
    }
    case kBytea: {
      const pqxx::binarystring raw(f);  // either bytea_output format
      return sql::Value(sql::Bytes(raw.data(), raw.data() + raw.size()));
    }
    default: break;
  }
  return sql::Value(std::string(text, size));
}

sql::Result to_result(const pqxx::result& r) {
  const auto columns = r.columns();
  std::vector<std::string> names;
  std::vector<pqxx::oid> types;
  names.reserve(columns);
  types.reserve(columns);
  for (pqxx::row::size_type c = 0; c < columns; ++c) {
    names.emplace_back(r.column_name(c));
    types.push_back(r.column_type(c));
  }
  sql::Result out(std::move(names), static_cast<std::int64_t>(r.affected_rows()));
  for (const auto& row : r) {
    std::vector<sql::Value> values;
    values.reserve(columns);
    for (pqxx::row::size_type c = 0; c < columns; ++c)
      values.push_back(from_field(types[c], row[c]));
    out.add_row(std::move(values));
  }
  return out;
}

}  // namespace

struct PgConnection::Impl {
  std::unique_ptr<pqxx::connection> owned;  // null when borrowed
  pqxx::connection_base* conn = nullptr;
  std::unique_ptr<NoticeRouter> notices;  // declared after `owned`: unregisters first
  std::string context;
  std::string session;  // see server_session(); empty until known
  bool broken = false;
};

PgConnection::PgConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PgConnection::~PgConnection() = default;

std::unique_ptr<PgConnection> PgConnection::open(const std::string& conninfo,
                                                 const SessionSettings& settings,
                                                 std::string context) {
  auto impl = std::make_unique<Impl>();
  impl->context = std::move(context);
  try {
    impl->owned = std::make_unique<pqxx::connection>(conninfo);
  } catch (...) {
    std::rethrow_exception(map_error(std::current_exception(), sql::Phase::connect, impl->context));
  }
  impl->conn = impl->owned.get();
  inhibit_reactivation(*impl->conn);
  impl->notices = std::make_unique<NoticeRouter>(*impl->conn, impl->context);
  std::unique_ptr<PgConnection> c(new PgConnection(std::move(impl)));

  // One round trip for the check, the session's name and every setting, all values bound.
  std::string query =
      "SELECT current_setting('max_prepared_transactions'), "
      "set_config('bytea_output', 'hex', false), set_config('application_name', $1, false), "
      "pg_backend_pid(), (SELECT floor(extract(epoch FROM backend_start) * 1000000)::bigint "
      "FROM pg_stat_activity WHERE pid = pg_backend_pid())";
  sql::Params params{settings.application_name};
  if (settings.lock_timeout) {
    query += ", set_config('lock_timeout', $2, false)";
    params.add(std::to_string(settings.lock_timeout->count()) + "ms");
  }
  sql::Result r;
  try {
    r = c->execute(query, params);
  } catch (const sql::ConnectionLost& e) {
    throw sql::ConnectionLost(c->impl_->context + ": cannot set up a new connection: " + e.what());
  }
  const sql::Row& row = r.one();
  check_max_prepared_transactions(row.get<std::string>(0), c->impl_->context);
  c->impl_->session = session_name(row.get<std::int64_t>(3), row.get<std::int64_t>(4));
  return c;
}

std::shared_ptr<PgConnection> PgConnection::borrow(pqxx::connection_base& native,
                                                   std::string context) {
  auto impl = std::make_unique<Impl>();
  impl->context = std::move(context);
  impl->conn = &native;
  inhibit_reactivation(native);
  if (const int pid = native.backendpid(); pid != 0) impl->session = session_name(pid, {});
  return std::shared_ptr<PgConnection>(new PgConnection(std::move(impl)));
}

void PgConnection::fail(sql::Phase phase) {
  const std::exception_ptr mapped = map_error(std::current_exception(), phase, impl_->context);
  bool lost = !impl_->conn->is_open();
  try {
    std::rethrow_exception(mapped);
  } catch (const sql::ConnectionLost&) {
    lost = true;
  } catch (const InDoubtError&) {
    lost = true;
  } catch (...) {
  }
  if (lost) impl_->broken = true;
  std::rethrow_exception(mapped);
}

sql::Result PgConnection::execute(std::string_view sql, const sql::Params& params) {
  if (broken()) {
    throw sql::ConnectionLost(impl_->context +
                              ": the connection was lost earlier; the branch on it was rolled "
                              "back by the server; run the transaction again");
  }
  const auto args = to_text(params, impl_->context);
  try {
    pqxx::nontransaction tx(*impl_->conn, "xact");
    return to_result(tx.exec_params(std::string(sql), pqxx::prepare::make_dynamic_params(args)));
  } catch (...) {
    fail(sql::Phase::statement);
  }
}

sql::Result PgConnection::run_protocol(const std::string& sql, sql::Phase phase) {
  if (broken()) {
    try {
      throw pqxx::broken_connection("the connection was lost earlier");
    } catch (...) {
      fail(phase);
    }
  }
  try {
    pqxx::nontransaction tx(*impl_->conn, "xact");
    return to_result(tx.exec(sql));
  } catch (...) {
    fail(phase);
  }
}

bool PgConnection::looks_alive() noexcept {
  if (broken()) return false;
  const int fd = impl_->conn->sock();
  if (fd < 0) {
    impl_->broken = true;
    return false;
  }
  // An idle connection has nothing to say: anything waiting on the socket is an end of file or
  // the server's "terminating connection" (a restart, an administrator, a crash).
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) > 0) {
    impl_->broken = true;
    return false;
  }
  return true;
}

bool PgConnection::ping() noexcept {
  if (broken()) return false;
  try {
    pqxx::nontransaction tx(*impl_->conn, "xact-ping");
    tx.exec("SELECT 1");
    return true;
  } catch (...) {
    impl_->broken = true;
    return false;
  }
}

bool PgConnection::broken() const noexcept { return impl_->broken || !impl_->conn->is_open(); }

std::string PgConnection::server_session() const { return impl_->session; }

std::string PgConnection::session_name(std::int64_t pid, std::optional<std::int64_t> start) {
  std::string name = "pid=" + std::to_string(pid);
  if (start) name += " start=" + std::to_string(*start);
  return name;
}

pqxx::connection_base& PgConnection::native() noexcept { return *impl_->conn; }

int PgConnection::server_version() const noexcept { return impl_->conn->server_version(); }

}  // namespace xact::postgres
