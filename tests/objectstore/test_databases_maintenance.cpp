// Several named databases (issue 17), the registry-wide maintenance: a backup of every file
// storage at one common point while writers commit across two databases (the restored copies
// satisfy the cross-database invariant and open with nothing in doubt), and the reference
// check (dangling and forbidden references, the registry's rules).
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/testing/crash_harness.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Counter;

class DatabasesMaintenanceTest : public ::testing::Test {
 protected:
  DatabasesMaintenanceTest() {
    dbs_ = Databases::create();
    DBOptions main;
    main.name = "main";
    dbs_->add(DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "main.xfs")), main));
    DBOptions catalog;
    catalog.name = "catalog";
    catalog.xrefs = XrefPolicy::check;
    dbs_->add(
        DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "catalog.xfs")), catalog));
    DBOptions sessions;
    sessions.name = "sessions";
    sessions.xrefs = XrefPolicy::allow;
    dbs_->add(DB::open(std::make_shared<MemoryStorage>(), sessions));
  }
  ManagerOptions logged() {
    if (!log_) log_ = DecisionLog::open(io::Env::posix(), dir_ / "log");
    ManagerOptions o;
    o.decision_log = log_;
    return o;
  }
  ConnectionHandle open(TransactionManager& tm) {
    ConnectionOptions o;
    o.manager = &tm;
    return dbs_->open(o);
  }
  // Commits, by hand, a map in `db` whose entries are the given typed references.
  Oid commit_refs(const std::string& db, const std::vector<CrossReference>& refs) {
    std::string data;
    encode_header(data, PersistentMap::kTypeName, 1);
    StateWriter w(data);
    w.begin_map(refs.size());
    int i = 0;
    for (const auto& r : refs) {
      w.write("k" + std::to_string(i++));
      w.write_typed_xref(r);
    }
    Storage& s = dbs_->get(db)->storage();
    const Oid oid = s.new_oid();
    CommitRequest req;
    req.writes.push_back(ObjectWrite{oid, kNoTid, data});
    s.commit_one_phase(std::move(req));
    return oid;
  }

  testing::TempDir dir_;
  std::shared_ptr<DecisionLog> log_;
  std::shared_ptr<Databases> dbs_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Rule: a backup copies every file storage at one common point: taken while writers commit to
// both databases in each transaction, every restored copy opens with nothing in doubt and the
// two databases agree (each transaction is in both copies or in neither); a memory database is
// skipped; the manifest lists the copies.
TEST_F(DatabasesMaintenanceTest, ABackupWhileWritersCommitAcrossTwoDatabasesIsConsistent) {
  constexpr int kWriters = 3;
  constexpr int kCommits = 80;
  constexpr int kBackups = 6;
  std::vector<Oid> main_oids(kWriters), cat_oids(kWriters);
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    for (int i = 0; i < kWriters; ++i) {
      auto a = std::make_shared<Counter>();
      auto b = std::make_shared<Counter>();
      c->root()->set("w" + std::to_string(i), a);
      c->get_connection("catalog").root()->set("w" + std::to_string(i), b);
      main_oids[i] = c->add(a);
      cat_oids[i] = c->get_connection("catalog").add(b);
    }
    tm.commit();
  }
  std::atomic<int> writers_done{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      ExplicitTransactionManager tm(logged());
      auto c = open(tm);
      for (int i = 0; i < kCommits; ++i) {
        tm.begin();
        c->get<Counter>(main_oids[w])->add(1);
        c->get_connection("catalog").get<Counter>(cat_oids[w])->add(1);
        tm.commit();
      }
      ++writers_done;
    });
  }
  std::vector<DatabasesBackupReport> reports;
  for (int b = 0; b < kBackups; ++b) {
    reports.push_back(dbs_->backup(dir_ / ("backup" + std::to_string(b))));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(writers_done.load(), kWriters);

  std::int64_t progress = 0;
  for (const auto& report : reports) {
    ASSERT_EQ(report.copies.size(), 2u) << report.describe();
    ASSERT_EQ(report.skipped.size(), 1u);
    EXPECT_NE(report.skipped[0].find("sessions"), std::string::npos);
    const std::string manifest = slurp(report.manifest);
    EXPECT_NE(manifest.find("name = \"main\""), std::string::npos) << manifest;
    EXPECT_NE(manifest.find("name = \"catalog\""), std::string::npos) << manifest;
    // Restored: the copies open cleanly and agree.
    auto restored = Databases::create();
    for (const char* name : {"main", "catalog"}) {
      auto fs = FileStorage::open(report.directory + "/" + name + ".xfs");
      EXPECT_EQ(fs->open_report().prepared, 0u) << name << ": " << report.describe();
      EXPECT_EQ(fs->open_report().cut_off_bytes, 0u) << name;
      DBOptions o;
      o.name = name;
      restored->add(DB::open(std::shared_ptr<Storage>(std::move(fs)), o));
    }
    ExplicitTransactionManager tm;
    auto c = restored->open(ConnectionOptions{.manager = &tm});
    tm.begin();
    for (int w = 0; w < kWriters; ++w) {
      const auto a = c->get<Counter>(main_oids[w])->value();
      const auto b = c->get_connection("catalog").get<Counter>(cat_oids[w])->value();
      EXPECT_EQ(a, b) << "writer " << w << " in " << report.describe();
      progress = std::max<std::int64_t>(progress, a);
    }
    tm.abort();
  }
  EXPECT_GT(progress, 0) << "the backups saw some commits";
  EXPECT_THROW(dbs_->backup(dir_ / "backup0"), UsageError) << "never over another backup";
}

// Rule: the check reports dangling references (a missing object, an unknown database) and
// forbidden ones (xrefs = forbid; xrefs = check refused by the registry's rules); a checked
// reference no registry rule decides is a note (the type's check_xref decides at commit).
TEST_F(DatabasesMaintenanceTest, TheCheckFindsDanglingAndForbiddenReferences) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->set("x", 1);
    c->get_connection("catalog").root()->set("x", 1);
    tm.commit();
  }
  auto clean = dbs_->check_references();
  EXPECT_TRUE(clean.ok()) << clean.describe();

  const Oid forbidden = commit_refs("main", {{"catalog", kRootOid, "xact.PersistentMap"}});
  const Oid dangling = commit_refs("catalog", {{"main", 0x7777, "test.Person"}});
  const Oid checked = commit_refs("catalog", {{"main", kRootOid, "xact.PersistentMap"}});
  const Oid nowhere = commit_refs("catalog", {{"nowhere", 1, "test.Person"}});
  commit_refs("sessions", {{"main", kRootOid, "xact.PersistentMap"}});  // allowed

  auto r = dbs_->check_references();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.cross_references, 5u) << r.describe();
  auto find = [](const std::vector<ReferenceFinding>& v, ReferenceFinding::Kind kind,
                 const std::string& db, Oid oid) {
    for (const auto& f : v) {
      if (f.kind == kind && f.database == db && f.oid == oid) return true;
    }
    return false;
  };
  using K = ReferenceFinding::Kind;
  EXPECT_TRUE(find(r.problems, K::forbidden, "main", forbidden)) << r.describe();
  EXPECT_TRUE(find(r.problems, K::dangling, "catalog", dangling)) << r.describe();
  EXPECT_TRUE(find(r.problems, K::dangling, "catalog", nowhere)) << r.describe();
  EXPECT_EQ(r.problems.size(), 3u) << r.describe();
  EXPECT_TRUE(find(r.notes, K::undecided, "catalog", checked)) << r.describe();
  EXPECT_NE(r.describe().find("xrefs = forbid"), std::string::npos) << r.describe();
  EXPECT_NE(r.describe().find("0x7777"), std::string::npos) << r.describe();

  // The registry's rule for the type refuses: the checked references are forbidden now.
  dbs_->set_type_xref_policy(PersistentMap::kTypeName,
                             [](const XrefCheck& x) { return x.target_database != "main"; });
  r = dbs_->check_references();
  EXPECT_TRUE(find(r.problems, K::forbidden, "catalog", checked)) << r.describe();
  EXPECT_TRUE(find(r.problems, K::forbidden, "catalog", dangling)) << r.describe();
  EXPECT_TRUE(r.notes.empty()) << r.describe();
}

}  // namespace
}  // namespace xact::objectstore
