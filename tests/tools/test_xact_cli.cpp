// The `xact` tool, run as a separate process against decision logs and kv stores that the test
// builds with the library: what it prints, what it changes, and its exit codes.
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/io/record.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/kv_resource.hpp>

#include "xact_runner.hpp"

namespace {

using xact::CommitRecord;
using xact::DecisionLog;
using xact::Gtrid;
using xact::HeuristicRecord;
using xact::Xid;
using xact::testing::KvStore;
using xact::testing::TempDir;
using xact::tools_test::count_lines;
using xact::tools_test::has;
using xact::tools_test::run_test_tool;
using xact::tools_test::ToolRun;

std::string gid(const Gtrid& gtrid, const std::string& bqual) {
  Xid xid;
  xid.gtrid = gtrid;
  xid.bqual = bqual;
  return xid.to_gid();
}

// A decision log with one unfinished commit (branches a and b), one heuristic outcome, and a
// transaction id that never got a commit record; kv stores a.kv and b.kv holding the branches
// prepared.
class XactCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = DecisionLog::open(env_, log_dir_);
    node_hex_ = log->node_id().to_hex();
    committed_ = log->new_gtrid();
    log->log_commit(CommitRecord{committed_, {{"a", "a"}, {"b", "b"}}, 0});
    log->release(committed_);
    aborted_ = log->new_gtrid();
    log->release(aborted_);
    heuristic_ = log->new_gtrid();
    log->log_heuristic(HeuristicRecord{heuristic_, "a", "a", "heuristic rollback",
                                       "the log says commit, the resource reports heuristic "
                                       "rollback",
                                       0});
    log->release(heuristic_);
  }

  // Prepares the branches of `committed_` in a.kv and b.kv, and `aborted_` in a.kv.
  void prepare_stores() {
    auto a = KvStore::open_file(env_, a_kv_);
    a->prepare(gid(committed_, "a"), {{"x", "1"}});
    a->prepare(gid(aborted_, "a"), {{"z", "3"}});
    auto b = KvStore::open_file(env_, b_kv_);
    b->prepare(gid(committed_, "b"), {{"y", "2"}});
  }

  std::vector<std::string> prepared_in(const std::string& path) {
    return KvStore::open_file(env_, path)->prepared_gids();
  }

  ToolRun xact(const std::vector<std::string>& args) { return run_test_tool(scratch_, args); }

  xact::io::Env& env_ = xact::io::Env::posix();
  TempDir tmp_;
  TempDir scratch_;
  std::string log_dir_ = tmp_ / "log";
  std::string a_kv_ = tmp_ / "a.kv";
  std::string b_kv_ = tmp_ / "b.kv";
  std::string node_hex_;
  Gtrid committed_;
  Gtrid aborted_;
  Gtrid heuristic_;
};

// --- log dump / log pending ------------------------------------------------------------------

TEST_F(XactCli, DumpShowsNodeEpochUnfinishedCommitsAndHeuristics) {
  const ToolRun run = xact({"log", "dump", log_dir_});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(has(run.out, "node id       " + node_hex_));
  EXPECT_TRUE(has(run.out, "epoch         1"));
  EXPECT_TRUE(has(run.out, "scan          clean"));
  EXPECT_TRUE(has(run.out, "unfinished commit records (pending completions): 1"));
  EXPECT_TRUE(has(run.out, "gtrid " + committed_.to_hex() + "  committed 20"));
  EXPECT_TRUE(has(run.out, "resource a  bqual a  gid " + gid(committed_, "a")));
  EXPECT_TRUE(has(run.out, "resource b  bqual b  gid " + gid(committed_, "b")));
  EXPECT_TRUE(has(run.out, "heuristic outcomes: 1"));
  EXPECT_TRUE(has(run.out, "gtrid " + heuristic_.to_hex() + "  resource a"));
  EXPECT_TRUE(has(run.out, "outcome heuristic rollback  found 20"));
  EXPECT_TRUE(run.err.empty()) << run.err;
}

TEST_F(XactCli, DumpWorksWhileTheApplicationHoldsTheLog) {
  auto owner = DecisionLog::open(env_, log_dir_);
  const ToolRun run = xact({"log", "dump", log_dir_});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(has(run.out, "epoch         2"));
  EXPECT_TRUE(has(run.out, committed_.to_hex()));
}

TEST_F(XactCli, DumpReportsDamageWithItsOffset) {
  // A log whose records are each written on their own, then one in the middle damaged.
  TempDir dir;
  const std::string damaged = dir / "log";
  {
    xact::DecisionLogOptions options;
    options.preallocate = false;
    auto log = DecisionLog::open(env_, damaged, options);
    for (int i = 0; i < 3; ++i) {
      const Gtrid g = log->new_gtrid();
      log->log_commit(CommitRecord{g, {{"a", "a"}}, 0});
      log->release(g);
    }
  }
  const std::string segment = DecisionLog::inspect(env_, damaged).segment;
  std::vector<xact::io::Record> records;
  {
    auto file = env_.new_random_access_file(segment);
    xact::io::RecordReader reader(*file);
    while (auto r = reader.next()) records.push_back(*r);
  }
  ASSERT_GE(records.size(), 3u);
  const auto& victim = records[records.size() - 2];  // valid records follow it
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(victim.end() - 2));
    f.put('\x5a');
  }

  const ToolRun dump = xact({"log", "dump", damaged});
  EXPECT_EQ(dump.code, 0) << dump.err;
  EXPECT_TRUE(has(dump.out, "scan          damaged"));
  EXPECT_TRUE(has(dump.out, "  corrupt     "));
  EXPECT_TRUE(has(dump.out, "at offset " + std::to_string(victim.offset)));

  // Recovery does not guess about lost commit records unless told to.
  const ToolRun refused = xact({"recover", damaged, "--resource", "a=kv:" + a_kv_});
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(has(refused.err, "'" + damaged + "' is damaged"));
  EXPECT_TRUE(has(refused.err, "offset " + std::to_string(victim.offset)));
  EXPECT_TRUE(has(refused.err, "--tolerate-corruption"));
  KvStore::open_file(env_, a_kv_);
  const ToolRun tolerated =
      xact({"recover", damaged, "--resource", "a=kv:" + a_kv_, "--tolerate-corruption"});
  // The damaged record's commit is gone; the other two are re-driven (a.kv never had them,
  // which counts as done).
  EXPECT_EQ(tolerated.code, 0) << tolerated.out << tolerated.err;
  EXPECT_TRUE(has(tolerated.out, "recovery: 4 action(s), 0 owed")) << tolerated.out;
}

TEST_F(XactCli, DumpOfAMissingDirectoryNamesTheDirectory) {
  const std::string missing = tmp_ / "no-such-log";
  const ToolRun run = xact({"log", "dump", missing});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "'" + missing + "'"));
  EXPECT_TRUE(has(run.err, "no such directory"));
  EXPECT_TRUE(run.out.empty());
}

TEST_F(XactCli, DumpOfADirectoryWithoutALogSaysSo) {
  const ToolRun run = xact({"log", "dump", tmp_.path()});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "no decision log in '" + tmp_.path() + "'"));
}

TEST_F(XactCli, DumpWithoutADirectoryIsAUsageError) {
  const ToolRun run = xact({"log", "dump"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(has(run.err, "missing <dir>"));
  EXPECT_TRUE(has(run.err, "xact log dump --help"));
}

TEST_F(XactCli, PendingListsOneLinePerBranch) {
  const ToolRun run = xact({"log", "pending", log_dir_});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(count_lines(run.out), 3u) << run.out;  // header + two branches
  EXPECT_TRUE(has(run.out, "GTRID\tRESOURCE\tGID\tCOMMITTED\n"));
  EXPECT_TRUE(has(run.out, committed_.to_hex() + "\ta\t" + gid(committed_, "a") + "\t20"));
  EXPECT_TRUE(has(run.out, committed_.to_hex() + "\tb\t" + gid(committed_, "b") + "\t20"));
}

// --- heuristics --------------------------------------------------------------------------------

TEST_F(XactCli, HeuristicsListShowsOutcomeTimeAndDetail) {
  const ToolRun run = xact({"heuristics", "list", log_dir_});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(count_lines(run.out), 2u) << run.out;
  EXPECT_TRUE(has(run.out, heuristic_.to_hex() + "\ta\theuristic rollback\t20"));
  EXPECT_TRUE(has(run.out, "Z\tthe log says commit, the resource reports heuristic rollback\n"));
}

TEST_F(XactCli, ForgetRemovesTheHeuristicAndSaysWhatItForgot) {
  const ToolRun run =
      xact({"heuristics", "forget", log_dir_, "--gtrid", heuristic_.to_hex(), "--resource", "a"});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(has(run.out, "forgot the heuristic outcome of gtrid " + heuristic_.to_hex() +
                               " on resource 'a': heuristic rollback"));
  const ToolRun list = xact({"heuristics", "list", log_dir_});
  EXPECT_EQ(list.code, 0);
  EXPECT_EQ(count_lines(list.out), 1u) << list.out;  // the header only
  EXPECT_TRUE(DecisionLog::inspect(env_, log_dir_).heuristics.empty());
  // The rest of the log is untouched.
  EXPECT_EQ(DecisionLog::inspect(env_, log_dir_).unfinished.size(), 1u);
}

TEST_F(XactCli, ForgetOfAnUnknownHeuristicFails) {
  const ToolRun run =
      xact({"heuristics", "forget", log_dir_, "--gtrid", committed_.to_hex(), "--resource", "a"});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "no heuristic outcome of gtrid " + committed_.to_hex() +
                               " on resource 'a' in the decision log in '" + log_dir_ + "'"));
  const ToolRun other_resource =
      xact({"heuristics", "forget", log_dir_, "--gtrid", heuristic_.to_hex(), "--resource", "b"});
  EXPECT_EQ(other_resource.code, 1);
  EXPECT_TRUE(has(other_resource.err, "that gtrid has heuristic outcomes on resource(s) 'a'"));
  EXPECT_EQ(DecisionLog::inspect(env_, log_dir_).heuristics.size(), 1u);
}

TEST_F(XactCli, ForgetWithAMalformedGtridIsAUsageError) {
  const ToolRun short_one =
      xact({"heuristics", "forget", log_dir_, "--gtrid", "abc", "--resource", "a"});
  EXPECT_EQ(short_one.code, 2);
  EXPECT_TRUE(has(short_one.err, "--gtrid 'abc': a gtrid is 56 hex digits"));
  const ToolRun not_hex =
      xact({"heuristics", "forget", log_dir_, "--gtrid", std::string(56, 'g'), "--resource", "a"});
  EXPECT_EQ(not_hex.code, 2);
  EXPECT_TRUE(has(not_hex.err, "not hex digits"));
  const ToolRun no_resource =
      xact({"heuristics", "forget", log_dir_, "--gtrid", heuristic_.to_hex()});
  EXPECT_EQ(no_resource.code, 2);
  EXPECT_TRUE(has(no_resource.err, "missing --resource"));
}

TEST_F(XactCli, ForgetWhileTheApplicationHoldsTheLogNamesTheHolder) {
  auto owner = DecisionLog::open(env_, log_dir_);
  const ToolRun run =
      xact({"heuristics", "forget", log_dir_, "--gtrid", heuristic_.to_hex(), "--resource", "a"});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "cannot open the decision log in '" + log_dir_ + "'"));
  EXPECT_TRUE(has(run.err, "locked by pid " + std::to_string(getpid())));
  EXPECT_TRUE(has(run.err, "stop it and run this again"));
  EXPECT_TRUE(has(run.err, "DecisionLog::forget_heuristic in that process"));
  EXPECT_EQ(owner->heuristics().size(), 1u);
}

// --- recover ---------------------------------------------------------------------------------

TEST_F(XactCli, RecoverDryRunListsWhatItWouldDoAndChangesNothing) {
  prepare_stores();
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--resource",
                            "b=kv:" + b_kv_, "--dry-run"});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "recovery (dry run): 3 action(s) would be taken, 0 owed"));
  EXPECT_TRUE(has(run.out, "rollback a " + gid(aborted_, "a") + ": no commit record"));
  EXPECT_TRUE(has(run.out, "commit a " + gid(committed_, "a")));
  EXPECT_TRUE(has(run.out, "commit b " + gid(committed_, "b")));
  EXPECT_EQ(prepared_in(a_kv_).size(), 2u);
  EXPECT_EQ(prepared_in(b_kv_).size(), 1u);
  EXPECT_EQ(DecisionLog::inspect(env_, log_dir_).unfinished.size(), 1u);
}

TEST_F(XactCli, RecoverCommitsAndRollsBackAndExitsZero) {
  prepare_stores();
  const ToolRun run =
      xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--resource", "b=kv:" + b_kv_});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "decision log '" + log_dir_ + "' (node " + node_hex_));
  EXPECT_TRUE(has(run.out, "recovery: 4 action(s), 0 owed"));
  EXPECT_TRUE(has(run.out, "rollback a " + gid(aborted_, "a")));
  EXPECT_TRUE(has(run.out, "done record"));
  auto a = KvStore::open_file(env_, a_kv_);
  auto b = KvStore::open_file(env_, b_kv_);
  EXPECT_TRUE(a->prepared_gids().empty());
  EXPECT_TRUE(b->prepared_gids().empty());
  EXPECT_EQ(a->get("x"), "1");
  EXPECT_EQ(a->get("z"), std::nullopt);
  EXPECT_EQ(b->get("y"), "2");
  EXPECT_TRUE(DecisionLog::inspect(env_, log_dir_).unfinished.empty());

  const ToolRun again =
      xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--resource", "b=kv:" + b_kv_});
  EXPECT_EQ(again.code, 0);
  EXPECT_TRUE(has(again.out, "recovery: nothing to do"));
}

TEST_F(XactCli, RecoverCommitsWhatTheLastResourceHoldsTheDecisionOf) {
  prepare_stores();
  // `aborted_` committed after all, through a last resource that keeps the decision.
  KvStore::open_file(env_, tmp_ / "lr.kv")->apply({{"w", "1"}}, aborted_.to_hex());
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--resource",
                            "b=kv:" + b_kv_, "--last-resource", "lr=kv:" + (tmp_ / "lr.kv")});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(
      run.out, "commit a " + gid(aborted_, "a") + ": the last resource holds the commit decision"));
  EXPECT_EQ(KvStore::open_file(env_, a_kv_)->get("z"), "3");
}

TEST_F(XactCli, RecoverOwesTheWorkOfAResourceThatCannotBeOpened) {
  prepare_stores();
  const std::string unreachable = tmp_ / "no-such-dir/a.kv";
  const ToolRun run = xact(
      {"recover", log_dir_, "--resource", "a=kv:" + unreachable, "--resource", "b=kv:" + b_kv_});
  EXPECT_EQ(run.code, 3) << run.out << run.err;
  EXPECT_TRUE(has(run.err, "cannot open resource 'a' (kv:" + unreachable + ")"));
  EXPECT_TRUE(has(run.err, "work owed"));
  EXPECT_TRUE(has(run.out, "owed a: cannot list prepared ids"));
  EXPECT_TRUE(has(run.out, "owed a " + gid(committed_, "a") + ": commit re-drive failed"));
  EXPECT_TRUE(has(run.out, "commit b " + gid(committed_, "b")));
  EXPECT_TRUE(prepared_in(b_kv_).empty());
  // The commit stays unfinished until its branch in `a` is done.
  EXPECT_EQ(DecisionLog::inspect(env_, log_dir_).unfinished.size(), 1u);
  EXPECT_EQ(prepared_in(a_kv_).size(), 2u);
}

TEST_F(XactCli, RecoverNeverPresumesAbortWhileTheLastResourceCannotBeOpened) {
  prepare_stores();
  const std::string missing = tmp_ / "missing-lr.kv";
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--resource",
                            "b=kv:" + b_kv_, "--last-resource", "lr=kv:" + missing});
  EXPECT_EQ(run.code, 3) << run.out << run.err;
  EXPECT_TRUE(has(run.err, "the kv store file '" + missing + "' does not exist"));
  EXPECT_TRUE(has(run.out, "owed a " + gid(aborted_, "a") + ": a last resource"));
  EXPECT_EQ(prepared_in(a_kv_), std::vector<std::string>{gid(aborted_, "a")});
  EXPECT_FALSE(xact::io::Env::posix().exists(missing));  // never created
}

TEST_F(XactCli, RecoverWithoutTheResourceOfACommitOwesItsBranches) {
  prepare_stores();
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_});
  EXPECT_EQ(run.code, 3) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "owed b " + gid(committed_, "b") +
                               ": committed, but no recoverable resource of that name"));
}

TEST_F(XactCli, RecoverWhileTheApplicationHoldsTheLogNamesTheHolder) {
  prepare_stores();
  auto owner = DecisionLog::open(env_, log_dir_);
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "locked by pid " + std::to_string(getpid())));
  EXPECT_TRUE(has(run.err, "xact::Recovery::run"));
  EXPECT_EQ(prepared_in(a_kv_).size(), 2u);
}

TEST_F(XactCli, RecoverWithAMalformedResourceSpecExitsTwoWithTheExpectedForm) {
  for (const std::string spec : {"a", "=kv:x", "a=kv", "a=:x", "a=kv:"}) {
    const ToolRun run = xact({"recover", log_dir_, "--resource", spec});
    EXPECT_EQ(run.code, 2) << spec;
    EXPECT_TRUE(has(run.err, "--resource '" + spec + "'")) << spec;
    EXPECT_TRUE(
        has(run.err, spec == "a=kv:" ? "kv needs a location: kv:PATH" : "expected NAME=KIND:SPEC"))
        << spec;
  }
  EXPECT_EQ(DecisionLog::inspect(env_, log_dir_).epoch, 1u);  // the log was not opened
}

TEST_F(XactCli, RecoverWithAnUnknownResourceKindNamesTheSupportedKinds) {
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=postgresql:host=db1"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(has(run.err, "unknown resource kind 'postgresql'"));
  EXPECT_TRUE(has(run.err, "supported kinds: kv:PATH"));
}

TEST_F(XactCli, RecoverRefusesANameGivenTwiceOrNoResourceAtAll) {
  const ToolRun twice = xact(
      {"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--last-resource", "a=kv:" + b_kv_});
  EXPECT_EQ(twice.code, 2);
  EXPECT_TRUE(has(twice.err, "the resource name 'a' is given twice"));
  const ToolRun none = xact({"recover", log_dir_});
  EXPECT_EQ(none.code, 2);
  EXPECT_TRUE(has(none.err, "no resource given"));
}

TEST_F(XactCli, RecoverOfAMissingLogCreatesNothing) {
  const std::string missing = tmp_ / "no-such-log";
  const ToolRun run = xact({"recover", missing, "--resource", "a=kv:" + a_kv_});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(has(run.err, "no decision log in '" + missing + "'"));
  EXPECT_FALSE(env_.exists(missing));
}

// --- damaged logs, dry runs, other nodes --------------------------------------------------------

// Every file of a log directory (LOCK aside: taking the lock rewrites the holder's name), by
// name, with its bytes.
std::map<std::string, std::string> log_files(xact::io::Env& env, const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& name : env.list_dir(dir)) {
    if (name == "LOCK") continue;
    std::ifstream f(dir + "/" + name, std::ios::binary);
    out[name] = std::string(std::istreambuf_iterator<char>(f), {});
  }
  return out;
}

// A log of three commits (branch a) whose middle batch record is damaged; returns the damaged
// record's offset.
std::uint64_t make_damaged_log(xact::io::Env& env, const std::string& dir, bool preallocate) {
  xact::DecisionLogOptions options;
  options.preallocate = preallocate;
  {
    auto log = DecisionLog::open(env, dir, options);
    for (int i = 0; i < 3; ++i) {
      const Gtrid g = log->new_gtrid();
      log->log_commit(CommitRecord{g, {{"a", "a"}}, 0});
      log->release(g);
    }
  }
  const std::string segment = DecisionLog::inspect(env, dir).segment;
  std::vector<xact::io::Record> records;
  {
    auto file = env.new_random_access_file(segment);
    xact::io::RecordReader reader(*file);
    while (auto r = reader.next()) records.push_back(*r);
  }
  const auto& victim = records[records.size() - 2];  // valid records follow it
  std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(victim.end() - 2));
  f.put('\x5a');
  return victim.offset;
}

TEST_F(XactCli, DryRunWithTolerateCorruptionChangesNothingEver) {
  TempDir dir;
  const std::string damaged = dir / "log";
  make_damaged_log(env_, damaged, /*preallocate=*/true);
  KvStore::open_file(env_, a_kv_);
  const auto before = log_files(env_, damaged);
  const ToolRun dry = xact(
      {"recover", damaged, "--resource", "a=kv:" + a_kv_, "--dry-run", "--tolerate-corruption"});
  EXPECT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(has(dry.out, "recovery (dry run)")) << dry.out;
  EXPECT_EQ(log_files(env_, damaged), before) << "a dry run rewrote the log";
  // The damage is still there: a real run is still refused without the option.
  const ToolRun refused = xact({"recover", damaged, "--resource", "a=kv:" + a_kv_});
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(has(refused.err, "is damaged")) << refused.err;
}

TEST_F(XactCli, DryRunWritesNoNewEpoch) {
  prepare_stores();
  const auto before = log_files(env_, log_dir_);
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--resource",
                            "b=kv:" + b_kv_, "--dry-run"});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_TRUE(has(run.out, "epoch 1)")) << run.out;
  EXPECT_EQ(log_files(env_, log_dir_), before);
}

TEST_F(XactCli, ToleratedDamageIsRecordedAndShownByDump) {
  TempDir dir;
  const std::string damaged = dir / "log";
  const std::uint64_t offset = make_damaged_log(env_, damaged, /*preallocate=*/false);
  KvStore::open_file(env_, a_kv_);
  const ToolRun run =
      xact({"recover", damaged, "--resource", "a=kv:" + a_kv_, "--tolerate-corruption"});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  const ToolRun dump = xact({"log", "dump", damaged});
  EXPECT_EQ(dump.code, 0) << dump.err;
  EXPECT_TRUE(has(dump.out, "tolerated damage")) << dump.out;
  EXPECT_TRUE(has(dump.out, "at offset " + std::to_string(offset))) << dump.out;
}

TEST_F(XactCli, MissingSegmentIsRefusedNamingTheFile) {
  const std::string segment = DecisionLog::inspect(env_, log_dir_).segment;
  env_.remove_file(segment);
  const ToolRun run = xact({"recover", log_dir_, "--resource", "a=kv:" + a_kv_, "--dry-run"});
  EXPECT_EQ(run.code, 1) << run.out;
  EXPECT_TRUE(has(run.err, segment + "' is missing")) << run.err;
  EXPECT_TRUE(has(run.err, "--tolerate-corruption")) << run.err;
  const ToolRun dump = xact({"log", "dump", log_dir_});
  EXPECT_EQ(dump.code, 0) << dump.err;
  EXPECT_TRUE(has(dump.out, "problem     '" + segment + "' is missing")) << dump.out;
}

TEST_F(XactCli, DumpOfAPreallocatedSegmentCutShortNeverCallsItsDataNeverAcknowledged) {
  const std::string segment = DecisionLog::inspect(env_, log_dir_).segment;
  const std::uint64_t end = DecisionLog::inspect(env_, log_dir_).scan.end_of_data;
  env_.truncate_file(segment, end - 3);  // inside the last, acknowledged record
  const ToolRun dump = xact({"log", "dump", log_dir_});
  EXPECT_EQ(dump.code, 0) << dump.err;
  EXPECT_TRUE(has(dump.out, "cut short")) << dump.out;
  EXPECT_TRUE(has(dump.out, "may have been acknowledged")) << dump.out;
  EXPECT_FALSE(has(dump.out, "never acknowledged")) << dump.out;
}

TEST_F(XactCli, ForeignListsOtherNodesBranchesAndRollsBackALostNodeOnlyOnRequest) {
  prepare_stores();
  const xact::NodeId lost = xact::NodeId::random();
  const Gtrid of_lost(lost, 4, 2);
  KvStore::open_file(env_, a_kv_)->prepare(gid(of_lost, "a"), {{"w", "9"}});
  const std::vector<std::string> resources{"--resource", "a=kv:" + a_kv_, "--resource",
                                           "b=kv:" + b_kv_};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin() + 2, resources.begin(), resources.end());
    return xact(args);
  };
  const auto before = log_files(env_, log_dir_);
  const ToolRun list = with({"recover", log_dir_, "--foreign"});
  EXPECT_EQ(list.code, 0) << list.out << list.err;
  EXPECT_TRUE(has(list.out, "prepared branches of other nodes: 1")) << list.out;
  EXPECT_TRUE(has(list.out, "node " + lost.to_hex() + "  resource a  gid " + gid(of_lost, "a")));
  EXPECT_EQ(prepared_in(a_kv_).size(), 3u) << "listing rolled something back";
  EXPECT_EQ(log_files(env_, log_dir_), before) << "listing wrote to the log";

  const ToolRun without = with({"recover", log_dir_, "--roll-back-node", lost.to_hex()});
  EXPECT_EQ(without.code, 2) << without.err;

  const ToolRun rolled =
      with({"recover", log_dir_, "--foreign", "--roll-back-node", lost.to_hex()});
  EXPECT_EQ(rolled.code, 0) << rolled.out << rolled.err;
  EXPECT_EQ(prepared_in(a_kv_).size(), 2u) << "this node's own branches are left to recover";
  const ToolRun heuristics = xact({"heuristics", "list", log_dir_});
  EXPECT_TRUE(has(heuristics.out, of_lost.to_hex() + "\ta\trolled back for a lost node"))
      << heuristics.out;
}

// --- help and usage ----------------------------------------------------------------------------

class XactHelp : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(XactHelp, PrintsUsageAndExitsZero) {
  TempDir scratch;
  const ToolRun run = run_test_tool(scratch, GetParam());
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(has(run.out, "Usage: xact "));
  EXPECT_TRUE(run.err.empty()) << run.err;
}

INSTANTIATE_TEST_SUITE_P(
    EveryCommand, XactHelp,
    ::testing::Values(std::vector<std::string>{"--help"}, std::vector<std::string>{"help"},
                      std::vector<std::string>{"log", "--help"},
                      std::vector<std::string>{"heuristics", "-h"},
                      std::vector<std::string>{"log", "dump", "--help"},
                      std::vector<std::string>{"log", "pending", "--help"},
                      std::vector<std::string>{"heuristics", "list", "--help"},
                      std::vector<std::string>{"heuristics", "forget", "--help"},
                      std::vector<std::string>{"recover", "--help"},
                      std::vector<std::string>{"recover", "-h", "--bogus"},
                      std::vector<std::string>{"help", "log"},
                      std::vector<std::string>{"help", "log", "dump"},
                      std::vector<std::string>{"help", "heuristics", "forget"},
                      std::vector<std::string>{"help", "recover"}));

TEST(XactUsage, CommandHelpShowsItsOptions) {
  TempDir scratch;
  const ToolRun recover = run_test_tool(scratch, {"recover", "--help"});
  EXPECT_TRUE(has(recover.out, "--dry-run"));
  EXPECT_TRUE(has(recover.out, "--last-resource"));
  EXPECT_TRUE(has(recover.out, "Exit status: 0"));
  const ToolRun forget = run_test_tool(scratch, {"help", "heuristics", "forget"});
  EXPECT_TRUE(has(forget.out, "Usage: xact heuristics forget <dir> --gtrid HEX --resource NAME"));
}

TEST(XactUsage, NoCommandOrAnUnknownOneExitsTwo) {
  TempDir scratch;
  const ToolRun none = run_test_tool(scratch, {});
  EXPECT_EQ(none.code, 2);
  EXPECT_TRUE(has(none.err, "missing a command"));
  const ToolRun unknown = run_test_tool(scratch, {"frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(has(unknown.err, "unknown command 'frobnicate'"));
  const ToolRun unknown_sub = run_test_tool(scratch, {"log", "tail"});
  EXPECT_EQ(unknown_sub.code, 2);
  EXPECT_TRUE(has(unknown_sub.err, "unknown command 'tail'; the commands are dump, pending"));
  const ToolRun group_only = run_test_tool(scratch, {"heuristics"});
  EXPECT_EQ(group_only.code, 2);
  EXPECT_TRUE(has(group_only.err, "heuristics forget"));
  const ToolRun bad_option = run_test_tool(scratch, {"log", "dump", "/tmp", "--bogus"});
  EXPECT_EQ(bad_option.code, 2);
  EXPECT_TRUE(has(bad_option.err, "--bogus"));
}

}  // namespace
