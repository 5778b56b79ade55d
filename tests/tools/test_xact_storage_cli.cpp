// `xact storage verify|dump|pack|backup`, run as a separate process against storage files the
// test writes through DB + FileStorage: what it prints, what it changes, and its exit codes.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/testing/crash_harness.hpp>

#include "xact_runner.hpp"

namespace xact::objectstore {
namespace {

using xact::testing::TempDir;
using xact::tools_test::has;
using xact::tools_test::run_xact;
using xact::tools_test::ToolRun;

// Every object's current revision: (serial, data).
std::map<Oid, std::pair<Tid, std::string>> contents(const Storage& s) {
  std::map<Oid, std::pair<Tid, std::string>> out;
  s.for_each_object([&](Oid oid, Tid serial, std::string_view data) {
    out[oid] = {serial, std::string(data)};
    return true;
  });
  return out;
}

std::size_t count_records(const std::string& dump) {
  std::size_t n = 0;
  for (std::size_t at = 0; (at = dump.find("\n@", at)) != std::string::npos; ++at) ++n;
  return n;
}

// A storage file written through the object store: the root, an account "a" changed twice
// (two revisions), and an object "b" that the last transaction makes unreachable.
class XactStorageCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto storage = std::shared_ptr<FileStorage>(FileStorage::open(file_));
    {
      auto db = DB::open(storage);
      ExplicitTransactionManager tm;
      ConnectionOptions o;
      o.manager = &tm;
      auto conn = db->open(o);

      auto& t1 = tm.begin();
      t1.set_user("tester");
      t1.note("open the accounts");
      auto a = std::make_shared<PersistentMap>();
      a->set("balance", 10);
      auto b = std::make_shared<PersistentMap>();
      b->set("name", "bob");
      conn->root()->set("a", a);
      conn->root()->set("b", b);
      tm.commit();
      a_oid_ = a->oid();
      b_oid_ = b->oid();
      tid_a1_ = storage->last_transaction();

      tm.begin().note("deposit");
      a->set("balance", 25);
      tm.commit();
      tid_a2_ = storage->last_transaction();

      tm.begin().note("close b");
      conn->root()->erase("b");
      tm.commit();
    }
    storage->close();
  }

  ToolRun xact(const std::vector<std::string>& args) { return run_xact(scratch_, args); }

  TempDir tmp_;
  TempDir scratch_;
  std::string file_ = tmp_ / "data.xfs";
  Oid a_oid_ = 0;
  Oid b_oid_ = 0;
  Tid tid_a1_ = kNoTid;
  Tid tid_a2_ = kNoTid;
};

// --- verify ----------------------------------------------------------------------------------

TEST_F(XactStorageCli, VerifyOfASoundFileSaysOkAndExitsZero) {
  const ToolRun run = xact({"storage", "verify", file_});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, file_ + ": OK"));
  EXPECT_TRUE(has(run.out, "4 committed transactions"));  // the root's creation and three more
  EXPECT_TRUE(run.err.empty()) << run.err;
}

TEST_F(XactStorageCli, VerifyReportsAFlippedByteAndExitsOneSayingWhatToDo) {
  // Damage the record of the second transaction: valid records follow it.
  std::vector<FileRecordInfo> records;
  FileStorage::dump(file_, [&](const FileRecordInfo& r) {
    records.push_back(r);
    return true;
  });
  ASSERT_GE(records.size(), 4u);
  const FileRecordInfo& victim = records[2];
  {
    std::fstream f(file_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(victim.offset + victim.size / 2));
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(victim.offset + victim.size / 2));
    f.put(static_cast<char>(c ^ 0x5a));
  }
  const ToolRun run = xact({"storage", "verify", file_});
  EXPECT_EQ(run.code, 1) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "PROBLEMS FOUND"));
  EXPECT_TRUE(has(run.err, "xact storage verify: '" + file_ + "' is damaged"));
  EXPECT_TRUE(has(run.err, "Restore it from a backup"));
  EXPECT_TRUE(has(run.err, "FileStorageOptions::salvage"));
}

TEST_F(XactStorageCli, VerifyOfAMissingFileNamesItAndExitsOne) {
  const std::string missing = tmp_ / "nothing.xfs";
  const ToolRun run = xact({"storage", "verify", missing});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "no storage file at '" + missing + "': no such file"));
}

TEST_F(XactStorageCli, VerifyWithoutAFileIsAUsageError) {
  const ToolRun run = xact({"storage", "verify"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(has(run.err, "missing <file>: the object storage file"));
  EXPECT_TRUE(has(run.err, "xact storage verify --help"));
}

TEST_F(XactStorageCli, AFileOfAnotherKindIsRefusedAsNotAStorageFile) {
  const std::string other = tmp_ / "notes.txt";
  std::ofstream(other) << "not a storage file\n";
  const ToolRun verify = xact({"storage", "verify", other});
  EXPECT_EQ(verify.code, 1);
  EXPECT_TRUE(has(verify.out, "PROBLEMS FOUND"));
  EXPECT_TRUE(has(verify.err, "'" + other + "' is not an xact object storage file"));
  const ToolRun dump = xact({"storage", "dump", other});
  EXPECT_EQ(dump.code, 1);
  EXPECT_TRUE(has(dump.err, "'" + other + "' is not an xact object storage file"));
  const ToolRun pack = xact({"storage", "pack", other});
  EXPECT_EQ(pack.code, 1);
  EXPECT_TRUE(has(pack.err, "does not start with an xact object storage header"));
}

// --- dump ------------------------------------------------------------------------------------

TEST_F(XactStorageCli, DumpListsEveryTransactionWithItsObjects) {
  const ToolRun run = xact({"storage", "dump", file_});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(has(run.out, "@0 header size "));
  EXPECT_EQ(count_records(run.out), 5u) << run.out;  // the header and four transactions
  EXPECT_TRUE(has(run.out, " committed size "));
  EXPECT_TRUE(has(run.out, "tid " + tid_repr(tid_a1_) +
                               " xid - user 'tester' description 'open the accounts'"));
  EXPECT_TRUE(has(run.out, "description 'deposit'"));
  EXPECT_TRUE(has(run.out, "  0x0 -> xact.PersistentMap v1"));
  EXPECT_TRUE(has(run.out, "  " + oid_repr(a_oid_) + " -> xact.PersistentMap v1"));
  EXPECT_TRUE(has(run.out, "(replaces " + tid_repr(tid_a1_) + ")"));
  EXPECT_TRUE(has(run.out, "5 of 5 records shown"));
  EXPECT_TRUE(has(run.out, "framing: clean"));
}

TEST_F(XactStorageCli, DumpWithAnOidShowsOnlyTheTransactionsWritingIt) {
  const ToolRun run = xact({"storage", "dump", file_, "--oid", oid_repr(a_oid_)});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(count_records(run.out), 2u) << run.out;
  EXPECT_TRUE(has(run.out, "description 'open the accounts'"));
  EXPECT_TRUE(has(run.out, "description 'deposit'"));
  EXPECT_FALSE(has(run.out, "description 'close b'"));
  EXPECT_FALSE(has(run.out, "  0x0 -> ")) << "only the asked object's entries";
  EXPECT_FALSE(has(run.out, "  " + oid_repr(b_oid_) + " -> "));
  EXPECT_TRUE(has(run.out, "2 of 5 records shown"));

  // Decimal works too, and --tid picks one transaction.
  const ToolRun by_tid = xact({"storage", "dump", file_, "--oid", std::to_string(a_oid_), "--tid",
                               tid_repr(tid_a2_).substr(0, tid_repr(tid_a2_).find('('))});
  EXPECT_EQ(by_tid.code, 0) << by_tid.err;
  EXPECT_EQ(count_records(by_tid.out), 1u) << by_tid.out;
  EXPECT_TRUE(has(by_tid.out, "description 'deposit'"));
}

TEST_F(XactStorageCli, DumpShowsAPreparedTransactionWithItsXidAndHowItWasDecided) {
  Xid xid;
  xid.gtrid = *Gtrid::from_bytes(std::string(Gtrid::kSize, '\x07'));
  xid.bqual = "objects:main";
  {
    auto storage = FileStorage::open(file_);
    CommitRequest request;
    request.xid = xid;
    request.meta.description = "two-phase";
    request.writes.push_back(ObjectWrite{a_oid_, tid_a2_, *storage->load_serial(a_oid_, tid_a1_)});
    storage->prepare(std::move(request));
    storage->close();  // it stays prepared, for recovery
  }
  const ToolRun undecided = xact({"storage", "dump", file_, "--oid", oid_repr(a_oid_)});
  EXPECT_EQ(undecided.code, 0) << undecided.err;
  EXPECT_TRUE(has(undecided.out, " prepared size "));
  EXPECT_TRUE(has(undecided.out, "xid " + xid.to_gid() +
                                     " user '' description 'two-phase' "
                                     "(undecided: recovery decides it)"));

  {
    auto storage = FileStorage::open(file_);
    ASSERT_EQ(storage->commit_prepared(xid), RecoverableResource::Outcome::done);
  }
  const Tid committed = FileStorage::open(file_)->last_transaction();
  const ToolRun decided = xact({"storage", "dump", file_, "--tid", std::to_string(committed)});
  EXPECT_EQ(decided.code, 0) << decided.err;
  EXPECT_EQ(count_records(decided.out), 2u) << decided.out;  // the prepared record and its mark
  EXPECT_TRUE(has(decided.out, "tid " + tid_repr(committed) + " xid " + xid.to_gid()));
  EXPECT_TRUE(has(decided.out, "(committed by the mark at @"));
  EXPECT_TRUE(has(decided.out, " commit-mark size "));
}

TEST_F(XactStorageCli, DumpWithAMalformedOidIsAUsageError) {
  const ToolRun run = xact({"storage", "dump", file_, "--oid", "0xzz"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(has(run.err, "--oid '0xzz': expected a number"));
}

// --- pack ------------------------------------------------------------------------------------

TEST_F(XactStorageCli, PackDropsReplacedRevisionsAndUnreachableObjects) {
  const ToolRun run = xact({"storage", "pack", file_});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, file_ + ": packed as of "));
  EXPECT_TRUE(has(run.out, "1 unreachable objects")) << run.out;

  auto storage = FileStorage::open(file_);
  EXPECT_FALSE(storage->load_serial(a_oid_, tid_a1_)) << "the replaced revision is gone";
  EXPECT_TRUE(storage->load_serial(a_oid_, tid_a2_)) << "the current revision stays";
  EXPECT_FALSE(storage->load(b_oid_)) << "the unreachable object is gone";
  EXPECT_TRUE(storage->load(kRootOid));
  storage->close();
  EXPECT_EQ(xact({"storage", "verify", file_}).code, 0);
}

TEST_F(XactStorageCli, PackBeforeATimeKeepsTheHistoryAfterIt) {
  // As of 2000, nothing is old enough to drop.
  const ToolRun run = xact({"storage", "pack", file_, "--before", "2000-01-01T00:00:00.5Z"});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  auto storage = FileStorage::open(file_);
  EXPECT_TRUE(storage->load_serial(a_oid_, tid_a1_));
  EXPECT_TRUE(storage->load_serial(b_oid_, tid_a1_));
}

TEST_F(XactStorageCli, PackRefusesWhileAnotherProcessHasTheFileOpen) {
  auto holder = FileStorage::open(file_);
  const ToolRun run = xact({"storage", "pack", file_});
  EXPECT_EQ(run.code, 1) << run.out;
  EXPECT_TRUE(has(run.err, "cannot pack '" + file_ + "': it is open in another process"));
  EXPECT_TRUE(has(run.err, "is locked by pid "));
  EXPECT_TRUE(has(run.err, "FileStorage::pack"));
  EXPECT_TRUE(holder->load_serial(a_oid_, tid_a1_)) << "nothing was packed";
}

TEST_F(XactStorageCli, PackWithABadTimeIsAUsageErrorNamingTheFormat) {
  for (const std::string bad :
       {"yesterday", "2026-11-22 10:00:00", "2026-11-22T10:00:00", "2026-13-01", "2999-01-01"}) {
    const ToolRun run = xact({"storage", "pack", file_, "--before", bad});
    EXPECT_EQ(run.code, 2) << bad;
    EXPECT_TRUE(has(run.err, "--before '" + bad + "'")) << bad;
  }
  const ToolRun both = xact({"storage", "pack", file_, "--before", "2000-01-01", "--days", "3"});
  EXPECT_EQ(both.code, 2);
  EXPECT_TRUE(has(both.err, "give one"));
}

TEST_F(XactStorageCli, PackDaysOutOfRangeOrNegativeIsAUsageErrorAndPacksNothing) {
  // 200000 days ago is before 1970: it used to overflow and drop all history.
  for (const std::string bad : {"200000", "-1", "-5", "3.5", "x", "99999999999999999999"}) {
    const ToolRun run = xact({"storage", "pack", file_, "--days", bad});
    EXPECT_EQ(run.code, 2) << bad << run.out << run.err;
    EXPECT_TRUE(has(run.err, "--days '" + bad + "'")) << bad << run.err;
    EXPECT_TRUE(has(run.err, "whole number of days from 0 to")) << bad << run.err;
  }
  auto storage = FileStorage::open(file_);
  EXPECT_TRUE(storage->load_serial(a_oid_, tid_a1_)) << "nothing was packed";
  storage->close();
  const ToolRun ok = xact({"storage", "pack", file_, "--days", "0"});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
}

TEST_F(XactStorageCli, PackOfAMissingFileCreatesNothing) {
  const std::string missing = tmp_ / "nothing.xfs";
  const ToolRun run = xact({"storage", "pack", missing});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "no storage file at '" + missing + "'"));
  EXPECT_FALSE(xact::io::Env::posix().exists(missing));
  EXPECT_FALSE(xact::io::Env::posix().exists(missing + ".lock"));
}

// --- backup ----------------------------------------------------------------------------------

TEST_F(XactStorageCli, BackupWritesAFileThatOpensWithTheSameObjects) {
  const std::string copy = tmp_ / "copy.xfs";
  const ToolRun run = xact({"storage", "backup", file_, copy});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "backed up " + file_ + " to " + copy));
  auto original = FileStorage::open(file_);
  auto backup = FileStorage::open(copy);
  EXPECT_EQ(contents(*backup), contents(*original));
  EXPECT_EQ(backup->last_transaction(), original->last_transaction());
  EXPECT_TRUE(backup->load_serial(a_oid_, tid_a1_)) << "the history is copied too";
}

TEST_F(XactStorageCli, BackupWhileAnotherProcessHasTheFileOpenCopiesWhatItCommitted) {
  auto holder = std::shared_ptr<FileStorage>(FileStorage::open(file_));
  const std::string copy = tmp_ / "copy.xfs";
  const ToolRun run = xact({"storage", "backup", file_, copy});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "open in another process"));
  EXPECT_TRUE(has(run.out, "read-only"));
  auto backup = FileStorage::open(copy);
  EXPECT_EQ(contents(*backup), contents(*holder));

  // The holder goes on committing.
  auto db = DB::open(holder);
  ExplicitTransactionManager tm;
  ConnectionOptions o;
  o.manager = &tm;
  auto conn = db->open(o);
  tm.begin();
  conn->root()->set("after", 1);
  EXPECT_NO_THROW(tm.commit());
}

// Every file beside the source, with its bytes.
std::map<std::string, std::string> directory_contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out[e.path().filename().string()] = xact::tools_test::read_file(e.path().string());
  }
  return out;
}

TEST_F(XactStorageCli, BackupNeverChangesItsSource) {
  // A source with a torn tail (garbage after the last record) and no index: a read-write open
  // would cut the tail into a side file and write an index.
  std::filesystem::remove(file_ + ".index");
  std::filesystem::remove(file_ + ".lock");
  {
    std::string data = xact::tools_test::read_file(file_);
    const std::size_t end = data.find_last_not_of('\0') + 1;
    for (std::size_t i = 0; i < 5; ++i) data[end + i] = '\x5a';
    std::ofstream(file_, std::ios::binary | std::ios::trunc) << data;
  }
  const auto before = directory_contents(tmp_.path());
  const std::string copy = scratch_ / "copy.xfs";
  const ToolRun run = xact({"storage", "backup", file_, copy});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_EQ(directory_contents(tmp_.path()), before) << "the source directory changed";
  auto backup = FileStorage::open(copy);
  EXPECT_TRUE(backup->load_serial(a_oid_, tid_a1_));
}

TEST_F(XactStorageCli, BackupAndPackOfADamagedFileRefuseNamingTheOffsetAndExitOne) {
  // A zeroed block in the middle, no index: the records after it were synced, so this is
  // damage; neither command may move them aside and exit 0.
  std::filesystem::remove(file_ + ".index");
  std::string data = xact::tools_test::read_file(file_);
  const std::size_t end = data.find_last_not_of('\0') + 1;
  const std::size_t at = end / 2;
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(at),
            data.begin() + static_cast<std::ptrdiff_t>(at + 40), '\0');
  std::ofstream(file_, std::ios::binary | std::ios::trunc) << data;
  const std::string copy = scratch_ / "copy.xfs";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"storage", "backup", file_, copy}, {"storage", "pack", file_}}) {
    const ToolRun run = xact(args);
    EXPECT_EQ(run.code, 1) << args[1] << run.out << run.err;
    EXPECT_TRUE(has(run.err, "is damaged at offset")) << run.err;
    EXPECT_TRUE(has(run.err, "salvage")) << run.err;
  }
  EXPECT_EQ(xact::tools_test::read_file(file_), data) << "the damaged file was changed";
  EXPECT_FALSE(std::filesystem::exists(copy));
}

TEST_F(XactStorageCli, BackupRefusesToReplaceAnExistingFile) {
  const std::string copy = tmp_ / "copy.xfs";
  std::ofstream(copy) << "keep me\n";
  const ToolRun run = xact({"storage", "backup", file_, copy});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "'" + copy + "' exists"));
  EXPECT_EQ(xact::tools_test::read_file(copy), "keep me\n");
  const ToolRun no_dest = xact({"storage", "backup", file_});
  EXPECT_EQ(no_dest.code, 2);
  EXPECT_TRUE(has(no_dest.err, "missing <dest>"));
}

// --- help ------------------------------------------------------------------------------------

TEST(XactStorageUsage, EveryStorageCommandHasHelpAndIsListed) {
  TempDir scratch;
  const ToolRun group = run_xact(scratch, {"storage", "--help"});
  EXPECT_EQ(group.code, 0);
  for (const char* command : {"verify", "dump", "pack", "backup"}) {
    EXPECT_TRUE(has(group.out, std::string("storage ") + command + " <file>"));
    const ToolRun help = run_xact(scratch, {"storage", command, "--help"});
    EXPECT_EQ(help.code, 0) << command;
    EXPECT_TRUE(has(help.out, std::string("Usage: xact storage ") + command + " <file>"));
    EXPECT_TRUE(has(help.out, "Exit status: 0"));
  }
  const ToolRun all = run_xact(scratch, {"--help"});
  EXPECT_TRUE(has(all.out, "storage pack <file>"));
}

// `xact databases check|backup --config FILE` (issue 17): two file databases of one
// configuration file, written by this process through a registry, then closed.
class XactDatabasesCli : public ::testing::Test {
 protected:
  // main -> catalog written while main allowed it; the file may then say otherwise.
  void write_databases(bool with_dangling) {
    auto dbs = Databases::create();
    DBOptions main;
    main.name = "main";
    main.xrefs = XrefPolicy::allow;
    dbs->add(DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "main.xfs")), main));
    DBOptions catalog;
    catalog.name = "catalog";
    catalog.xrefs = XrefPolicy::allow;
    dbs->add(DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "catalog.xfs")), catalog));
    ManagerOptions unlogged;
    unlogged.allow_unlogged_decisions = true;
    ExplicitTransactionManager tm(unlogged);
    auto c = dbs->open(ConnectionOptions{.manager = &tm});
    tm.begin();
    auto index = std::make_shared<PersistentMap>();
    index->set("n", 42);
    c->get_connection("catalog").add(index);
    c->get_connection("catalog").root()->set("index", index);
    c->root()->set("index", index);  // main -> catalog
    c->root()->set("n", 42);
    // In catalog, reachable only from main: what a pack of catalog alone would drop.
    auto only_from_main = std::make_shared<PersistentMap>();
    only_from_main->set("n", 7);
    c->get_connection("catalog").add(only_from_main);
    c->root()->set("catalog_only", only_from_main);
    tm.commit();
    if (with_dangling) {
      std::string data;
      encode_header(data, PersistentMap::kTypeName, 1);
      StateWriter w(data);
      w.begin_map(1);
      w.write("gone");
      w.write_typed_xref(CrossReference{"main", 0x7777, "xact.PersistentMap"});
      Storage& s = dbs->get("catalog")->storage();
      CommitRequest req;
      req.writes.push_back(ObjectWrite{s.new_oid(), kNoTid, data});
      s.commit_one_phase(std::move(req));
    }
  }
  std::string config(const std::string& main_xrefs) {
    const std::string path = dir_ / "app.toml";
    std::ofstream(path) << "[decision_log]\ndirectory = \"" << (dir_ / "log") << "\"\n"
                        << "[[database]]\nname = \"main\"\nstorage = \"file:" << (dir_ / "main.xfs")
                        << "\"\nxrefs = \"" << main_xrefs << "\"\n"
                        << "[[database]]\nname = \"catalog\"\nstorage = \"file:"
                        << (dir_ / "catalog.xfs") << "\"\nxrefs = \"allow\"\n"
                        << "[[database]]\nname = \"sessions\"\nstorage = \"memory:\"\n"
                        << "expiry = \"30m\"\n";
    return path;
  }
  TempDir dir_;
  TempDir scratch_;
};

TEST_F(XactDatabasesCli, CheckListsDanglingAndForbiddenReferencesAndExitsOne) {
  write_databases(false);
  ToolRun clean = run_xact(scratch_, {"databases", "check", "--config", config("allow")});
  EXPECT_EQ(clean.code, 0) << clean.out << clean.err;
  EXPECT_TRUE(has(clean.out, "no dangling or forbidden reference"));
  EXPECT_TRUE(has(clean.out, "2 across databases"));

  ToolRun forbidden = run_xact(scratch_, {"databases", "check", "--config", config("forbid")});
  EXPECT_EQ(forbidden.code, 1) << forbidden.out << forbidden.err;
  EXPECT_TRUE(has(forbidden.out, "forbidden: main 0x0 (xact.PersistentMap) -> catalog"));
  EXPECT_TRUE(has(forbidden.out, "database 'main' has xrefs = forbid"));

  write_databases(true);
  ToolRun dangling = run_xact(scratch_, {"databases", "check", "--config", config("allow")});
  EXPECT_EQ(dangling.code, 1) << dangling.out << dangling.err;
  EXPECT_TRUE(has(dangling.out, "dangling: catalog"));
  EXPECT_TRUE(has(dangling.out, "-> main 0x7777 (missing)"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "log")) << "read-only: nothing created";
}

TEST_F(XactDatabasesCli, BackupCopiesEveryFileStorageAndRefusesWhileOneIsOpen) {
  write_databases(false);
  const std::string file = config("allow");
  const std::string backup = dir_ / "backup";
  ToolRun run = run_xact(scratch_, {"databases", "backup", "--config", file, backup});
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "main: " + (dir_ / "main.xfs") + " -> main.xfs"));
  EXPECT_TRUE(has(run.out, "skipped sessions"));
  const std::string manifest = xact::tools_test::read_file(backup + "/MANIFEST");
  EXPECT_TRUE(has(manifest, "name = \"catalog\""));
  // The copies open and agree.
  auto restored = Databases::create();
  for (const char* name : {"main", "catalog"}) {
    DBOptions o;
    o.name = name;
    o.xrefs = XrefPolicy::allow;
    restored->add(DB::open(
        std::shared_ptr<Storage>(FileStorage::open(backup + "/" + name + ".xfs")), o));
  }
  ExplicitTransactionManager tm;
  auto c = restored->open(ConnectionOptions{.manager = &tm});
  tm.begin();
  EXPECT_EQ(c->root()->at("n").as_int(), 42);
  EXPECT_EQ(c->root()->get<PersistentMap>("index")->at("n").as_int(), 42);
  tm.abort();

  ToolRun again = run_xact(scratch_, {"databases", "backup", "--config", file, backup});
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(has(again.err, "not an empty directory"));
  {
    auto held = FileStorage::open(dir_ / "catalog.xfs");  // the application has it open
    ToolRun busy = run_xact(scratch_, {"databases", "backup", "--config", file, dir_ / "b2"});
    EXPECT_EQ(busy.code, 1) << busy.out;
    EXPECT_TRUE(has(busy.err, "Databases::backup"));
  }
}

// `xact databases pack` keeps an object of the packed database that only another database
// refers to; `xact storage pack` of the same file alone drops it (the check then finds the
// reference dangling), so the test can tell the two apart.
TEST_F(XactDatabasesCli, PackKeepsWhatOtherDatabasesReferenceWhereAStoragePackDropsIt) {
  write_databases(false);
  const std::string file = config("allow");
  ToolRun pack = run_xact(scratch_, {"databases", "pack", "--config", file, "catalog"});
  ASSERT_EQ(pack.code, 0) << pack.out << pack.err;
  EXPECT_TRUE(has(pack.out, "1 objects kept only for extra roots")) << pack.out;
  ToolRun check = run_xact(scratch_, {"databases", "check", "--config", file});
  EXPECT_EQ(check.code, 0) << check.out << check.err;

  ToolRun unknown = run_xact(scratch_, {"databases", "pack", "--config", file, "sessions"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_TRUE(has(unknown.err, "no file database named 'sessions'")) << unknown.err;
  EXPECT_TRUE(has(unknown.err, "file databases: main, catalog")) << unknown.err;
  {
    auto held = FileStorage::open(dir_ / "main.xfs");  // the application has it open
    ToolRun busy = run_xact(scratch_, {"databases", "pack", "--config", file, "catalog"});
    EXPECT_EQ(busy.code, 1) << busy.out;
    EXPECT_TRUE(has(busy.err, "Databases::pack")) << busy.err;
  }

  ToolRun alone = run_xact(scratch_, {"storage", "pack", dir_ / "catalog.xfs"});
  ASSERT_EQ(alone.code, 0) << alone.out << alone.err;
  ToolRun dangling = run_xact(scratch_, {"databases", "check", "--config", file});
  EXPECT_EQ(dangling.code, 1) << dangling.out << dangling.err;
  EXPECT_TRUE(has(dangling.out, "dangling: main")) << dangling.out;
}

}  // namespace
}  // namespace xact::objectstore
