// Property sheets against PostgreSQL, MariaDB and SQLite: every test runs on all three backends
// (the test parameter). Each test uses sheet tables of its own and drops them afterwards.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/objectstore/registry.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/recovery.hpp>
#include <xact/retry.hpp>
#include <xact/sheets/sheet_owner.hpp>
#include <xact/sheets/sheet_store.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/transaction.hpp>

#include "../mysql/mysql_test_support.hpp"

namespace xact::sheets {
namespace {

using Op = Condition::Op;

class Document : public SheetOwner {
 public:
  std::string body() const {
    read_access();
    return body_;
  }
  void set_body(std::string b) {
    write_access();
    body_ = std::move(b);
  }
  void save(objectstore::StateWriter& out) const override {
    save_sheets(out);
    out.write(body_);
  }
  void load(objectstore::StateReader& in, std::uint32_t) override {
    load_sheets(in);
    in.read(body_);
  }

 private:
  std::string body_;
};
XACT_PERSISTENT_TYPE(Document, "test.sheets.Document");

std::string pg_uri() {
  const char* v = std::getenv("XACT_PG_URI");
  return v != nullptr ? v : "";
}

// Lower-case, digits and _ only: a valid sheet name, unique across parallel test processes.
std::string unique_sheet(const std::string& prefix) {
  static std::atomic<int> n{0};
  static const unsigned salt = std::random_device{}() % 100000;
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" +
         std::to_string(salt);
}

SheetDefinition dublin_core(const std::string& name) {
  return SheetDefinition{
      name,
      {
          {.name = "title", .type = PropertyType::text, .nullable = false, .default_value = ""},
          {.name = "pages", .type = PropertyType::int64, .default_value = 0},
          {.name = "price", .type = PropertyType::decimal, .precision = 10, .scale = 2},
          {.name = "ratio", .type = PropertyType::float64},
          {.name = "done",
           .type = PropertyType::boolean,
           .nullable = false,
           .default_value = false},
          {.name = "payload", .type = PropertyType::bytes},
          {.name = "issued", .type = PropertyType::timestamp},
          {.name = "note", .type = PropertyType::decimal_text},
      }};
}

class SheetsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = GetParam();
    if (backend_ == "postgresql" && pg_uri().empty()) {
      if (mytest::under_ci()) FAIL() << "CI=true but XACT_PG_URI is not set";
      GTEST_SKIP() << "no PostgreSQL (scripts/servers.sh start DIR; source DIR/env.sh)";
    }
    if (backend_ == "mysql") XACT_REQUIRE_MYSQL();
    dir_ = std::filesystem::temp_directory_path() / unique_sheet("xact_sheets");
    std::filesystem::create_directories(dir_);
    resource_name_ = unique_sheet("sh");
    resource_ = make_resource();
    store_ = SheetStore::create(resource_);
    sheet_ = unique_sheet("dc");
    store_->define(dublin_core(sheet_));
    db_ = objectstore::DB::open(std::make_shared<objectstore::MemoryStorage>());
    // Objects and a PostgreSQL/MariaDB sheet are two voters: the manager needs a decision log,
    // as an application's would. Bound to this thread, so current_manager() is it.
    log_ = DecisionLog::open(io::Env::posix(), (dir_ / "fixture-log").string());
    tm_ = std::make_unique<ThreadTransactionManager>(ManagerOptions{log_, std::nullopt});
    binding_.emplace(*tm_);
    ready_ = true;
  }

  void TearDown() override {
    if (!ready_) {
      if (!dir_.empty()) std::filesystem::remove_all(dir_);
      return;
    }
    if (current_manager().current() != nullptr) current_manager().abort();
    auto c = plain();
    for (const auto& t : tables_dropped_) (void)t;
    c->execute("DROP TABLE IF EXISTS " + sheet_);
    try {
      c->execute("DELETE FROM xact_sheet_catalog WHERE sheet = $1", {sheet_});
    } catch (const std::exception&) {
    }
    binding_.reset();
    tm_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A resource of its own (also in a child process: nothing shared with the parent's pools).
  // `relaxed`: a SQLite branch that begins DEFERRED and a MariaDB branch in REPEATABLE READ
  // (the defaults, BEGIN IMMEDIATE and SERIALIZABLE, lock what a branch reads, so no outside
  // writer can come between a read and the write-back).
  // `child`: a resource name of its own. A fork() copies the parent's node id and transaction
  // counter, so parent and child would make the same transaction ids; the branch qualifier (the
  // resource name) keeps their branches apart.
  std::shared_ptr<sql::SqlResource> make_resource(bool relaxed = false, bool child = false) const {
    const std::string name = resource_name_ + (relaxed ? "r" : "") + (child ? "c" : "");
    if (backend_ == "postgresql") {
      postgres::PostgresOptions o;
      o.conninfo = pg_uri();
      o.name = name;
      o.pool.max_size = 4;
      return postgres::PostgresResource::create(o);
    }
    if (backend_ == "mysql") {
      auto o = mytest::options(name);
      if (relaxed) o.connect.isolation = mysql::Isolation::repeatable_read;
      return mysql::MySqlResource::create(o);
    }
    sqlite::SqliteOptions o;
    o.path = (dir_ / "app.db").string();
    o.name = "sqlite:" + name;
    o.begin = relaxed ? sqlite::BeginMode::deferred : sqlite::BeginMode::immediate;
    return sqlite::SqliteResource::create(o);
  }

  // A connection outside xact (autocommit), as another program would use.
  std::unique_ptr<sql::Connection> plain() const {
    if (backend_ == "postgresql") {
      return std::static_pointer_cast<postgres::PostgresResource>(resource_)->open_connection();
    }
    if (backend_ == "mysql") {
      return std::static_pointer_cast<mysql::MySqlResource>(resource_)->open_connection();
    }
    return std::static_pointer_cast<sqlite::SqliteResource>(resource_)->open_connection();
  }

  // A committed sheet (title "t0", pages 0) for a new owner oid; returns its key.
  std::int64_t committed_sheet(std::int64_t oid = 1) {
    std::int64_t key = 0;
    run(current_manager(), [&](Transaction& txn) {
      auto& s = store_->manager(txn).create(sheet_, {"main", oid});
      s.set("title", "t0");
      key = s.key();
    });
    return key;
  }

  std::optional<std::string> title_in_db(std::int64_t key) {
    auto r = plain()->execute("SELECT title FROM " + sheet_ + " WHERE sheet_id = $1", {key});
    if (r.empty()) return std::nullopt;
    return r[0].get<std::string>(0);
  }
  std::int64_t version_in_db(std::int64_t key) {
    return plain()
        ->execute("SELECT version FROM " + sheet_ + " WHERE sheet_id = $1", {key})
        .one()
        .get<std::int64_t>(0);
  }
  std::int64_t rows_in_db() {
    return plain()->execute("SELECT COUNT(*) FROM " + sheet_).one().get<std::int64_t>(0);
  }

  // Runs fn in a child process with resources of its own; returns its exit status.
  template <class F>
  pid_t fork_child(F&& fn) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 1;
      try {
        // The parent's decision log has one writer process (a fork() child may not write it):
        // the child's transactions (sheets only, one participant) run on a manager of its own.
        ThreadTransactionManager child_manager;
        ManagerBinding binding(child_manager);
        code = fn() ? 0 : 2;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      }
      std::_Exit(code);
    }
    return pid;
  }
  static int wait_child(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string backend_;
  std::filesystem::path dir_;
  std::string resource_name_;
  std::shared_ptr<sql::SqlResource> resource_;
  std::shared_ptr<SheetStore> store_;
  std::string sheet_;
  std::shared_ptr<objectstore::DB> db_;
  std::vector<std::string> tables_dropped_;
  bool ready_ = false;
  std::shared_ptr<DecisionLog> log_;
  std::unique_ptr<ThreadTransactionManager> tm_;
  std::optional<ManagerBinding> binding_;
};

TEST_P(SheetsTest, ASheetOfAnObjectIsCreatedReadUpdatedAndDeletedWithTheObject) {
  auto conn = db_->open();
  objectstore::Oid oid = 0;
  std::int64_t key = 0;
  const Timestamp issued{std::chrono::microseconds(1'796'282'929'123'456)};
  run(current_manager(), [&] {
    auto doc = std::make_shared<Document>();
    auto& s = doc->add_sheet(sheet_, &*conn);
    EXPECT_NE(doc->oid(), 0u) << "adding a sheet gives a new object its oid at once";
    EXPECT_GT(s.key(), 0) << "the key is generated in the branch at once";
    s.set("title", "Ulysses");
    s.set("pages", 730);
    s.set("price", std::string("12.50"));
    s.set("ratio", 0.25);
    s.set("done", true);
    s.set("payload", sql::Bytes{0, 1, 255});
    s.set("issued", issued);
    s.set("note", std::string("1.10"));
    doc->set_body("text");
    oid = doc->oid();
    key = s.key();
  });
  EXPECT_EQ(title_in_db(key), "Ulysses");
  run(current_manager(), [&] {
    auto doc = conn->get<Document>(oid);
    EXPECT_EQ(doc->sheet_key(sheet_), key);
    auto& s = doc->sheet(sheet_);
    EXPECT_EQ(&s, &doc->sheet(sheet_)) << "one DAO per row per transaction";
    EXPECT_EQ(s.get<std::string>("title"), "Ulysses");
    EXPECT_EQ(s.get<int>("pages"), 730);
    EXPECT_EQ(std::stod(s.get<std::string>("price")), 12.5);
    EXPECT_EQ(s.get<double>("ratio"), 0.25);
    EXPECT_TRUE(s.get<bool>("done"));
    EXPECT_EQ(s.get<sql::Bytes>("payload"), (sql::Bytes{0, 1, 255}));
    EXPECT_EQ(s.get<Timestamp>("issued"), issued);
    EXPECT_EQ(s.get<std::string>("note"), "1.10");
    s.set("title", "Ulysses (2nd ed.)");
  });
  EXPECT_EQ(title_in_db(key), "Ulysses (2nd ed.)");
  run(current_manager(), [&] { conn->get<Document>(oid)->remove_sheet(sheet_); });
  EXPECT_EQ(title_in_db(key), std::nullopt);
  run(current_manager(), [&] { EXPECT_FALSE(conn->get<Document>(oid)->has_sheet(sheet_)); });
}

TEST_P(SheetsTest, TypedAccessRefusesUnknownPropertiesAndWrongTypesClearly) {
  const auto key = committed_sheet();
  auto& txn = current_manager().begin();
  auto& s = store_->manager(txn).get(sheet_, key);
  try {
    (void)s.get<std::int64_t>("title");
    FAIL() << "read text as int64";
  } catch (const SheetDefinitionError& e) {
    EXPECT_NE(std::string(e.what()).find("'title' is text"), std::string::npos) << e.what();
  }
  try {
    (void)s.get<std::string>("nope");
    FAIL();
  } catch (const SheetDefinitionError& e) {
    EXPECT_NE(std::string(e.what()).find("no property 'nope'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.set("pages", "many"), SheetDefinitionError);
  EXPECT_THROW(s.set_null("title"), SheetDefinitionError) << "not nullable";
  EXPECT_THROW((void)s.get<double>("ratio"), SheetDefinitionError) << "NULL as non-optional";
  EXPECT_EQ(s.get<std::optional<double>>("ratio"), std::nullopt);
  current_manager().abort();
}

TEST_P(SheetsTest, AbortWritesNothing) {
  const auto key = committed_sheet();
  const auto version = version_in_db(key);
  auto& txn = current_manager().begin();
  auto& m = store_->manager(txn);
  m.get(sheet_, key).set("title", "changed");
  auto& fresh = m.create(sheet_, {"main", 2});
  fresh.set("title", "new");
  current_manager().abort();
  EXPECT_EQ(title_in_db(key), "t0");
  EXPECT_EQ(version_in_db(key), version);
  EXPECT_EQ(rows_in_db(), 1);
}

TEST_P(SheetsTest, ASavepointRollbackWritesNothingOfWhatCameAfterIt) {
  const auto key = committed_sheet();
  const auto version = version_in_db(key);
  run(current_manager(), [&](Transaction& txn) {
    auto& m = store_->manager(txn);
    auto& s = m.get(sheet_, key);
    s.set("pages", 5);
    auto sp = txn.savepoint();
    s.set("title", "after the savepoint");
    m.create(sheet_, {"main", 2}).set("title", "new");
    m.flush();  // even written to the branch already
    sp.rollback();
    EXPECT_EQ(s.get<std::string>("title"), "t0") << "the cache went back with the branch";
    EXPECT_EQ(s.get<int>("pages"), 5);
    EXPECT_EQ(m.find(sheet_, {"main", 2}), nullptr);
  });
  EXPECT_EQ(title_in_db(key), "t0");
  EXPECT_EQ(version_in_db(key), version + 1) << "one write: pages";
  EXPECT_EQ(rows_in_db(), 1);
  auto r = plain()->execute("SELECT pages FROM " + sheet_ + " WHERE sheet_id = $1", {key});
  EXPECT_EQ(r.one().get<int>(0), 5);
}

TEST_P(SheetsTest, ARowChangedBehindXactsBackMakesTheNextWriteAConflict) {
  const auto key = committed_sheet();
  const auto version = version_in_db(key);
  // With the default isolation SQLite and MariaDB keep any outside writer out until the branch
  // ends; branches that let it in show that the version check stops the overwrite.
  auto store = SheetStore::create(make_resource(/*relaxed=*/true));
  store->define(dublin_core(sheet_));
  auto& txn = current_manager().begin();
  auto& s = store->manager(txn).get(sheet_, key);
  EXPECT_EQ(s.get<std::string>("title"), "t0");
  plain()->execute("UPDATE " + sheet_ + " SET title = 'outside' WHERE sheet_id = $1", {key});
  EXPECT_EQ(version_in_db(key), version + 1) << "the trigger bumped the version";
  s.set("title", "mine");
  // The version check makes it a ConflictError; PostgreSQL's REPEATABLE READ branch may see the
  // concurrent update first (SerializationFailure). Both are retried, neither overwrites.
  try {
    current_manager().commit();
    ADD_FAILURE() << "the stale write committed";
  } catch (const ConflictError&) {
  } catch (const SerializationFailure&) {
    EXPECT_EQ(backend_, "postgresql");
  }
  current_manager().abort();
  EXPECT_EQ(title_in_db(key), "outside") << "never an overwrite";
}

TEST_P(SheetsTest, TwoThreadsUpdatingOneSheetLoseNoUpdate) {
  const auto key = committed_sheet();
  constexpr int kEach = 15;
  auto work = [&] {
    for (int i = 0; i < kEach; ++i) {
      run(current_manager(), [&](Transaction& txn) {
        auto& s = store_->manager(txn).get(sheet_, key);
        s.set("pages", s.get<std::int64_t>("pages") + 1);
      });
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  auto r = plain()->execute("SELECT pages FROM " + sheet_ + " WHERE sheet_id = $1", {key});
  EXPECT_EQ(r.one().get<int>(0), 2 * kEach);
}

TEST_P(SheetsTest, TwoProcessesUpdatingOneSheetLoseNoUpdate) {
  const auto key = committed_sheet();
  constexpr int kEach = 15;
  auto work = [&](SheetStore& store) {
    for (int i = 0; i < kEach; ++i) {
      run(current_manager(), [&](Transaction& txn) {
        auto& s = store.manager(txn).get(sheet_, key);
        s.set("pages", s.get<std::int64_t>("pages") + 1);
      });
    }
    return true;
  };
  const pid_t child = fork_child([&] {
    auto store = SheetStore::create(make_resource(false, /*child=*/true));
    store->define(dublin_core(sheet_));
    return work(*store);
  });
  work(*store_);
  EXPECT_EQ(wait_child(child), 0);
  auto r = plain()->execute("SELECT pages FROM " + sheet_ + " WHERE sheet_id = $1", {key});
  EXPECT_EQ(r.one().get<int>(0), 2 * kEach);
}

TEST_P(SheetsTest, SchemaGrowthInOneProcessIsSeenByAnother) {
  const auto key = committed_sheet();
  const pid_t child = fork_child([&] {
    auto store = SheetStore::create(make_resource(false, /*child=*/true));
    auto grown = dublin_core(sheet_);
    grown.properties.push_back(
        {.name = "subtitle", .type = PropertyType::text, .default_value = "none"});
    store->define(grown);
    run(current_manager(), [&](Transaction& txn) {
      store->manager(txn).get(sheet_, key).set("subtitle", "from the child");
    });
    return true;
  });
  ASSERT_EQ(wait_child(child), 0);
  const auto stored = store_->stored_definition(sheet_);
  ASSERT_TRUE(stored.has_value());
  ASSERT_NE(stored->find("subtitle"), nullptr) << "the catalog records the new property";
  // The old definition now lacks a stored property: refused, saying how to migrate.
  auto old_store = SheetStore::create(make_resource());
  old_store->define(dublin_core(sheet_));
  try {
    old_store->ensure(sheet_);
    FAIL() << "a definition without a stored property was accepted";
  } catch (const SchemaMismatchError& e) {
    EXPECT_NE(std::string(e.what()).find("'subtitle'"), std::string::npos) << e.what();
  }
  auto grown = dublin_core(sheet_);
  grown.properties.push_back(
      {.name = "subtitle", .type = PropertyType::text, .default_value = "none"});
  store_->define(grown);
  run(current_manager(), [&](Transaction& txn) {
    EXPECT_EQ(store_->manager(txn).get(sheet_, key).get<std::string>("subtitle"), "from the child");
  });
  // A changed type is refused too.
  auto changed = grown;
  changed.properties.back().type = PropertyType::int64;
  changed.properties.back().default_value = 0;
  store_->define(changed);
  EXPECT_THROW(store_->ensure(sheet_), SchemaMismatchError);
}

TEST_P(SheetsTest, InjectionAttemptsInEveryIdentifierAreRefused) {
  const std::vector<std::string> bad = {"x\"; DROP TABLE t; --",
                                        "x`; DROP TABLE t; --",
                                        "x'; DROP TABLE t; --",
                                        "Title",
                                        "1abc",
                                        "a b",
                                        "a-b",
                                        "select",
                                        "order",
                                        "user",
                                        "",
                                        "sheet_id",
                                        "version",
                                        "xact_sheet_catalog",
                                        "caf\xc3\xa9",
                                        "a\nb",
                                        std::string(70, 'a'),
                                        "x;y",
                                        "x)"};
  for (const auto& name : bad) {
    EXPECT_THROW(store_->define(SheetDefinition{name, {{.name = "p"}}}), SheetDefinitionError)
        << "sheet " << name;
    EXPECT_THROW(store_->define(SheetDefinition{"ok_sheet", {{.name = name}}}),
                 SheetDefinitionError)
        << "property " << name;
  }
  const auto key = committed_sheet();
  (void)key;
  auto& txn = current_manager().begin();
  for (const auto& name : bad) {
    EXPECT_THROW(
        store_->manager(txn).find_owners(sheet_, {.where = {{name, Op::eq, sql::Value(1)}}}),
        SheetDefinitionError);
    if (name.empty()) continue;  // "" orders by the key
    EXPECT_THROW(store_->manager(txn).find_owners(sheet_, {.order_by = name}),
                 SheetDefinitionError);
  }
  EXPECT_THROW(store_->manager(txn).get("no\"such", 1), SheetDefinitionError);
  current_manager().abort();
  // The length limit is per backend, and leaves room for the trigger's name.
  const std::size_t limit = backend_ == "postgresql" ? 63 : 64;
  EXPECT_NO_THROW(store_->define(SheetDefinition{"s", {{.name = std::string(limit, 'p')}}}));
  EXPECT_THROW(store_->define(SheetDefinition{"s", {{.name = std::string(limit + 1, 'p')}}}),
               SheetDefinitionError);
  EXPECT_THROW(store_->define(SheetDefinition{std::string(limit - 7, 's'), {{.name = "p"}}}),
               SheetDefinitionError);
}

TEST_P(SheetsTest, RowsAreReadableByPlainSqlWithTheDocumentedColumns) {
  std::int64_t key = 0;
  run(current_manager(), [&](Transaction& txn) {
    auto& s = store_->manager(txn).create(sheet_, {"main", 77});
    s.set("title", "Caf\xc3\xa9");
    s.set("price", std::string("3.5"));
    s.set("issued", Timestamp{std::chrono::microseconds(1'796'282'929'000'001)});
    key = s.key();
  });
  auto r = plain()->execute(
      "SELECT sheet_id, owner_db, owner_oid, version, title, pages, price, done, issued FROM " +
          sheet_ + " WHERE owner_db = $1 AND owner_oid = $2",
      {"main", 77});
  const auto& row = r.one();
  EXPECT_EQ(row.get<std::int64_t>("sheet_id"), key);
  EXPECT_EQ(row.get<std::int64_t>("version"), 2);
  EXPECT_EQ(row.get<std::string>("title"), "Caf\xc3\xa9");
  EXPECT_EQ(row.get<std::int64_t>("pages"), 0) << "the default";
  EXPECT_FALSE(row.get<bool>("done"));
  EXPECT_EQ(std::stod(row.get<std::string>("price")), 3.5);
  EXPECT_EQ(row.get<std::string>("issued").substr(0, 26), "2026-12-03 07:28:49.000001");
}

TEST_P(SheetsTest, QueriesFindOwnersByValueRangePrefixAndNullInOrderAndSeePendingWrites) {
  run(current_manager(), [&](Transaction& txn) {
    auto& m = store_->manager(txn);
    const std::vector<std::pair<std::string, int>> rows = {
        {"a_b 1", 10}, {"a%b", 20}, {"axb", 30}, {"A_b", 40}, {"zzz", 50}};
    for (std::size_t i = 0; i < rows.size(); ++i) {
      auto& s = m.create(sheet_, {"main", static_cast<std::int64_t>(i + 1)});
      s.set("title", rows[i].first);
      s.set("pages", rows[i].second);
      if (i % 2 == 0) s.set("ratio", 1.5);
    }
  });
  auto oids = [](const std::vector<Owner>& owners) {
    std::vector<std::int64_t> out;
    for (const auto& o : owners) out.push_back(o.oid);
    return out;
  };
  using V = std::vector<std::int64_t>;
  run(current_manager(), [&](Transaction& txn) {
    auto& m = store_->manager(txn);
    EXPECT_EQ(oids(m.find_owners(sheet_, {.where = {{"title", Op::prefix, "a_b"}}})), V{1})
        << "_ is literal, and the match is case-sensitive";
    EXPECT_EQ(oids(m.find_owners(sheet_, {.where = {{"title", Op::prefix, "a%"}}})), V{2});
    EXPECT_EQ(oids(m.find_owners(sheet_, {.where = {{"title", Op::eq, "axb"}}})), V{3});
    EXPECT_EQ(
        oids(m.find_owners(sheet_, {.where = {{"pages", Op::ge, 20}, {"pages", Op::lt, 50}}})),
        (V{2, 3, 4}));
    EXPECT_EQ(oids(m.find_owners(sheet_, {.where = {{"ratio", Op::is_null, {}}}})), (V{2, 4}));
    EXPECT_EQ(
        oids(m.find_owners(
            sheet_, {.database = "main", .order_by = "pages", .descending = true, .limit = 2})),
        (V{5, 4}));
    EXPECT_TRUE(m.find_owners(sheet_, {.database = "other"}).empty());
    // The transaction's own pending change counts.
    m.find(sheet_, {"main", 5})->set("title", "a_b 2");
    EXPECT_EQ(oids(m.find_owners(sheet_, {.where = {{"title", Op::prefix, "a_b"}}})), (V{1, 5}));
  });
}

TEST_P(SheetsTest, ManyOwnersLoadInOneQueryAndLaterReadsHitTheCache) {
  constexpr int kOwners = 600;  // more than one batch of 500
  run(current_manager(), [&](Transaction& txn) {
    auto& m = store_->manager(txn);
    for (int i = 1; i <= kOwners; ++i) m.create(sheet_, {"main", i}).set("pages", i);
  });
  run(current_manager(), [&](Transaction& txn) {
    auto& m = store_->manager(txn);
    std::vector<std::int64_t> want;
    for (int i = kOwners + 5; i >= 1; --i) want.push_back(i);  // some have no sheet
    const auto sheets = m.load(sheet_, "main", want);
    ASSERT_EQ(sheets.size(), static_cast<std::size_t>(kOwners));
    EXPECT_EQ(sheets.front()->get<int>("pages"), kOwners) << "in the order asked";
    EXPECT_EQ(m.cached(), static_cast<std::size_t>(kOwners));
    EXPECT_EQ(m.find(sheet_, {"main", 7}), sheets[kOwners - 7]) << "from the cache";
  });
}

TEST_P(SheetsTest, ASqlErrorAtWriteBackFailsTheCommitBeforeTheObjectsArePrepared) {
  auto conn = db_->open();
  objectstore::Oid oid = 0;
  run(current_manager(), [&] {
    auto doc = std::make_shared<Document>();
    doc->add_sheet(sheet_, &*conn);
    conn->root()->set("doc", doc);
    oid = doc->oid();
  });
  std::string bad_price = "12.50";
  if (backend_ == "sqlite") {
    // SQLite keeps decimals as text: a trigger refuses the update instead.
    plain()->execute("CREATE TRIGGER refuse BEFORE UPDATE OF price ON " + sheet_ +
                     " BEGIN SELECT RAISE(ABORT, 'injected: price refused'); END");
  } else {
    bad_price = "not a number";
  }
  current_manager().begin();
  auto doc = conn->get<Document>(oid);
  doc->set_body("changed with the sheet");
  doc->sheet(sheet_).set("price", bad_price);
  EXPECT_THROW(current_manager().commit(), sql::SqlError);
  current_manager().abort();
  run(current_manager(),
      [&] { EXPECT_EQ(conn->get<Document>(oid)->body(), "") << "not committed"; });
}

TEST_P(SheetsTest, APropertyIsMigratedByAddCopyAndDrop) {
  std::vector<std::int64_t> keys;
  run(current_manager(), [&](Transaction& txn) {
    auto& m = store_->manager(txn);
    for (int i = 1; i <= 7; ++i) {
      auto& s = m.create(sheet_, {"main", i});
      s.set("pages", i * 100);
      keys.push_back(s.key());
    }
  });
  // pages (int64) becomes pages_text (text): add, copy in batches, drop.
  auto next = dublin_core(sheet_);
  next.properties.push_back({.name = "pages_text", .type = PropertyType::text});
  store_->define(next);
  store_->ensure(sheet_);
  EXPECT_EQ(store_->copy_property(sheet_, "pages", "pages_text", /*batch=*/3), 7);
  auto last = next;
  std::erase_if(last.properties, [](const Property& p) { return p.name == "pages"; });
  store_->define(last);
  EXPECT_THROW(store_->ensure(sheet_), SchemaMismatchError) << "pages is still stored";
  EXPECT_THROW(store_->drop_property(sheet_, "title"), SchemaMismatchError) << "still defined";
  store_->drop_property(sheet_, "pages");
  store_->ensure(sheet_);
  run(current_manager(), [&](Transaction& txn) {
    auto& s = store_->manager(txn).get(sheet_, keys[2]);
    EXPECT_EQ(s.get<std::string>("pages_text"), "300");
    EXPECT_THROW((void)s.get<std::int64_t>("pages"), SheetDefinitionError);
  });
  const auto stored = store_->stored_definition(sheet_);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->find("pages"), nullptr);
}

TEST_P(SheetsTest, OrphansAreTheRowsWhoseOwnerObjectIsGone) {
  auto conn = db_->open();
  objectstore::Oid oid = 0;
  run(current_manager(), [&](Transaction& txn) {
    auto doc = std::make_shared<Document>();
    doc->add_sheet(sheet_, txn, &*conn);
    conn->root()->set("doc", doc);
    oid = doc->oid();
    store_->manager(txn).create(sheet_, {"main", 999'999});  // no such object
    store_->manager(txn).create(sheet_, {"other", 5});       // another database's
  });
  run(current_manager(), [&] {
    const auto orphans = store_->orphans(sheet_, *conn);
    ASSERT_EQ(orphans.size(), 1u);
    EXPECT_EQ(orphans[0], (Owner{"main", 999'999}));
  });
  (void)oid;
}

INSTANTIATE_TEST_SUITE_P(Backends, SheetsTest, ::testing::Values("sqlite", "postgresql", "mysql"),
                         [](const auto& info) { return info.param; });

// --- MySQL/MariaDB: "Table definition has changed" (1412) -----------------------------------------

// A REPEATABLE READ branch whose snapshot began before another connection rebuilt a table cannot
// read that table: error 1412. (MariaDB's instant ADD/DROP COLUMN keep the snapshot usable; a
// rebuild, ALTER TABLE ... FORCE or OPTIMIZE TABLE, does not.) xact treats it as retryable: the
// transaction runs again, sees the new definition and commits; what the failed attempt wrote is
// rolled back with it, so nothing is lost or doubled.
class SheetsMySqlTest : public SheetsTest {
 protected:
  // One transaction, run by xact::run: the snapshot begins (a read of `log`), the first attempt
  // has the sheet table rebuilt by another connection, then `touch` reads the sheet table.
  // Returns the attempts; `errors` gets what each failed attempt threw.
  int run_across_a_rebuild(const mytest::TempTable& log, sql::SqlResource& relaxed,
                           const std::function<void(Transaction&)>& touch,
                           std::vector<std::string>& errors) {
    int attempts = 0;
    run(current_manager(), [&](Transaction& txn) {
      ++attempts;
      // The snapshot (REPEATABLE READ) begins at the branch's first consistent read.
      EXPECT_EQ(relaxed.execute(txn, "SELECT COUNT(*) FROM " + log.name()).one().get<std::int64_t>(0),
                0);
      relaxed.execute(txn, "INSERT INTO " + log.name() + " (k, v) VALUES ('order-1', $1)",
                      {"attempt " + std::to_string(attempts)});
      if (attempts == 1) {
        // An operator rebuilds the sheet table meanwhile (the branch has not touched it yet, so
        // it holds no metadata lock that would make the ALTER wait).
        plain()->execute("ALTER TABLE " + sheet_ + " FORCE");
      }
      try {
        touch(txn);
      } catch (const TransientError& e) {
        errors.emplace_back(e.what());
        throw;
      }
    });
    return attempts;
  }
};

TEST_P(SheetsMySqlTest, TableDefinitionChangedInASheetReadIsRetriedAndLosesNothing) {
  const std::int64_t key = committed_sheet(1);
  const std::int64_t version = version_in_db(key);
  mytest::TempTable log;
  auto relaxed = make_resource(/*relaxed=*/true);
  auto store = SheetStore::create(relaxed);
  store->define(dublin_core(sheet_));
  std::vector<std::string> errors;
  const int attempts = run_across_a_rebuild(
      log, *relaxed,
      [&](Transaction& txn) {
        auto& s = store->manager(txn).get(sheet_, key);  // 1412 on the first attempt
        s.set("pages", s.get<std::int64_t>("pages") + 7);
      },
      errors);
  EXPECT_EQ(attempts, 2);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("1412"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("retry"), std::string::npos) << errors[0];
  // The second attempt's update and row, once each; the first attempt's rolled back.
  EXPECT_EQ(plain()->execute("SELECT pages FROM " + sheet_ + " WHERE sheet_id = $1", {key})
                .one()
                .get<std::int64_t>(0),
            7);
  EXPECT_EQ(version_in_db(key), version + 1) << "one write-back";
  mytest::Plain my;
  EXPECT_EQ(my.run("SELECT COUNT(*) FROM " + log.name()).one().get<std::int64_t>(0), 1);
  EXPECT_EQ(my.value(log.name(), "order-1"), "attempt 2");
  EXPECT_TRUE(my.branches_of(log_->node_id()).empty()) << "no XA branch left behind";
}

TEST_P(SheetsMySqlTest, TableDefinitionChangedInTheApplicationsOwnSqlIsASerializationFailure) {
  const std::int64_t key = committed_sheet(1);
  mytest::TempTable log;
  auto relaxed = make_resource(/*relaxed=*/true);
  std::vector<std::string> errors;
  std::string title;
  const int attempts = run_across_a_rebuild(
      log, *relaxed,
      [&](Transaction& txn) {
        try {
          title = relaxed
                      ->execute(txn, "SELECT title FROM " + sheet_ + " WHERE sheet_id = $1",
                                {key})
                      .one()
                      .get<std::string>(0);
        } catch (const SerializationFailure&) {
          errors.emplace_back("SerializationFailure");
          throw;
        }
        relaxed->execute(txn, "UPDATE " + sheet_ + " SET title = 'seen' WHERE sheet_id = $1",
                         {key});
      },
      errors);
  EXPECT_EQ(attempts, 2);
  ASSERT_EQ(errors.size(), 2u) << "mapped to SerializationFailure, a TransientError";
  EXPECT_EQ(errors[0], "SerializationFailure");
  EXPECT_NE(errors[1].find("1412"), std::string::npos) << errors[1];
  EXPECT_EQ(title, "t0");
  EXPECT_EQ(title_in_db(key), "seen");
  mytest::Plain my;
  EXPECT_EQ(my.value(log.name(), "order-1"), "attempt 2");
}

INSTANTIATE_TEST_SUITE_P(MySql, SheetsMySqlTest, ::testing::Values("mysql"),
                         [](const auto& info) { return info.param; });

// --- crashes -------------------------------------------------------------------------------------

// The application killed at each coordinator crash point while committing a new object with a
// sheet (a file storage, and the backend: a second voter on PostgreSQL and MariaDB, the
// one-phase last resource on SQLite). After recovery the object and its sheet row are both
// there, with the sheet's values, or neither is.
struct CrashCase {
  const char* point;
  unsigned hit;
};

class SheetsCrashTest : public SheetsTest {
 protected:
  // One process's view of the files: decision log, object storage, DB, sheet store.
  struct World {
    std::shared_ptr<DecisionLog> log;
    std::shared_ptr<objectstore::FileStorage> storage;
    std::shared_ptr<objectstore::DB> db;
    std::shared_ptr<sql::SqlResource> resource;
    std::shared_ptr<SheetStore> store;
    ~World() {
      db.reset();
      if (storage) storage->close();
    }
  };
  std::unique_ptr<World> open_world() {
    auto w = std::make_unique<World>();
    w->log = DecisionLog::open(io::Env::posix(), (dir_ / "log").string());
    w->storage = std::shared_ptr<objectstore::FileStorage>(
        objectstore::FileStorage::open((dir_ / "data.xfs").string()));
    w->db = objectstore::DB::open(w->storage);
    w->resource = make_resource();
    w->store = SheetStore::create(w->resource);
    w->store->define(dublin_core(sheet_));
    return w;
  }
};

TEST_P(SheetsCrashTest, ObjectAndSheetRowsCommitTogetherOrNotAtAll) {
  const std::vector<CrashCase> cases = {
      {"coordinator.before_tpc_begin", 1},    {"coordinator.after_tpc_begin", 1},
      {"coordinator.after_commit", 1},        {"coordinator.after_vote", 1},
      {"coordinator.after_vote", 2},          {"coordinator.before_commit_record", 1},
      {"coordinator.after_commit_record", 1}, {"coordinator.after_last_resource", 1},
      {"coordinator.after_finish", 1},        {"coordinator.after_finish", 2},
      {"coordinator.after_done_record", 1}};
  int killed = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const CrashCase& c = cases[i];
    SCOPED_TRACE(std::string(c.point) + " #" + std::to_string(c.hit));
    const std::string entry = "doc" + std::to_string(i);
    const auto run = testing::run_in_child(
        [&] {
          auto w = open_world();
          ExplicitTransactionManager tm(ManagerOptions{w->log, std::nullopt});
          objectstore::ConnectionOptions o;
          o.manager = &tm;
          auto conn = w->db->open(o);
          auto& txn = tm.begin();
          auto doc = std::make_shared<Document>();
          doc->add_sheet(sheet_, txn, &*conn).set("title", entry);
          conn->root()->set(entry, doc);
          tm.commit();
          return 42;
        },
        c.point, c.hit);
    if (!run.killed && run.exit_code == 42) {
      // Not reached with this backend's participants (the crash points are compiled in: the
      // other cases are killed).
    } else {
      ASSERT_TRUE(run.killed) << run.describe();
      ++killed;
    }
    auto w = open_world();
    Recovery recovery(w->log);
    recovery.register_resource(w->db->recovery_target());
    recovery.register_resource(w->resource);
    const RecoveryReport report = recovery.run();
    ASSERT_TRUE(report.complete()) << report.describe();

    ExplicitTransactionManager tm;
    objectstore::ConnectionOptions o;
    o.manager = &tm;
    auto conn = w->db->open(o);
    tm.begin();
    const objectstore::Value* v = conn->root()->find(entry);
    const bool object_there = v != nullptr;
    std::int64_t oid =
        object_there ? static_cast<std::int64_t>(v->as_object<Document>()->oid()) : -1;
    tm.abort();
    const auto rows =
        plain()->execute("SELECT title, owner_oid FROM " + sheet_ + " WHERE title = $1", {entry});
    ASSERT_EQ(object_there, rows.size() == 1)
        << "object " << (object_there ? "committed" : "absent") << ", sheet rows " << rows.size()
        << "\n"
        << report.describe();
    if (object_there) {
      EXPECT_EQ(rows.one().get<std::int64_t>("owner_oid"), oid);
    }
    const bool expect_committed = std::string_view(c.point) == "coordinator.after_commit_record" ||
                                  std::string_view(c.point) == "coordinator.after_finish" ||
                                  std::string_view(c.point) == "coordinator.after_done_record" ||
                                  std::string_view(c.point) == "coordinator.after_last_resource" ||
                                  !run.killed;
    EXPECT_EQ(object_there, expect_committed) << report.describe();
  }
  // SQLite as the last resource: one voter, so fewer points lie on its path.
  EXPECT_GE(killed, backend_ == "sqlite" ? 6 : 8) << "too few crash points were reached";
}

INSTANTIATE_TEST_SUITE_P(Backends, SheetsCrashTest,
                         ::testing::Values("sqlite", "postgresql", "mysql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace xact::sheets
