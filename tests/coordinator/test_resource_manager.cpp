// The protocol header stands alone: it is included first here, before anything else, so a
// resource manager can be written against <xact/resource_manager.hpp> with no other xact header
// (the commit record a last resource stores included), and it says in types what it says in
// words.
#include <xact/resource_manager.hpp>

#include <gtest/gtest.h>

#include <type_traits>
#include <utility>

namespace xact {
namespace {

// The rollback calls cannot throw: a failure there is reported, never thrown.
static_assert(noexcept(std::declval<ResourceManager&>().abort(std::declval<Transaction&>())));
static_assert(noexcept(std::declval<ResourceManager&>().tpc_abort(std::declval<Transaction&>())));
static_assert(!noexcept(std::declval<ResourceManager&>().tpc_vote(std::declval<Transaction&>())));

// A last resource written against this header alone.
class RecordingLastResource : public ResourceManager, public OnePhaseCommit {
 public:
  std::string resource_name() const override { return "last"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override { return Vote::yes; }
  void tpc_finish(Transaction&) override {}
  void tpc_abort(Transaction&) noexcept override {}
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  void commit_one_phase(Transaction&, const CommitRecord* decision) override {
    if (decision != nullptr) stored = *decision;
  }
  bool can_prepare() const override { return false; }
  CommitRecord stored;
};

TEST(ResourceManagerHeader, StandsAloneWithTheCommitRecordALastResourceStores) {
  RecordingLastResource rm;
  CommitRecord decision;
  decision.participants.push_back(LoggedParticipant{"pg:orders", "pg:orders"});
  rm.stored = decision;  // what its commit_one_phase does with the decision it is handed
  EXPECT_EQ(rm.stored.participants.at(0).resource, "pg:orders");
  EXPECT_FALSE(rm.one_phase_commit()->can_prepare());
  EXPECT_EQ(rm.recoverable(), nullptr);
}

}  // namespace
}  // namespace xact
