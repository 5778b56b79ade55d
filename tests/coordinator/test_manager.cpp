// Transaction managers: thread-bound, explicit, bound to a context; the RAII guard.
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/testing/recording_resource.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

namespace xact {
namespace {

using testing::CallLog;
using testing::RecordingResource;

TEST(ExplicitManager, BeginRaisesWhileATransactionIsOpen) {
  ExplicitTransactionManager tm;
  tm.begin();
  EXPECT_THROW(tm.begin(), UsageError);
  tm.abort();
  EXPECT_NO_THROW(tm.begin());
  tm.abort();
}

TEST(ExplicitManager, CallsOtherThanBeginAndAbortRaiseWithoutATransaction) {
  ExplicitTransactionManager tm;
  EXPECT_THROW(tm.get(), NoTransactionError);
  EXPECT_THROW(tm.commit(), NoTransactionError);
  EXPECT_THROW(tm.doom(), NoTransactionError);
  EXPECT_THROW(tm.savepoint(), NoTransactionError);
  EXPECT_NO_THROW(tm.abort()) << "abort is always safe in cleanup paths";
  EXPECT_EQ(tm.current(), nullptr);
}

TEST(ExplicitManager, CanBeUsedFromOneThreadAfterAnother) {
  ExplicitTransactionManager tm;
  auto log = std::make_shared<CallLog>();
  auto a = std::make_shared<RecordingResource>("a", log);
  std::thread([&] { a->set(tm.begin(), "1"); }).join();
  std::thread([&] { tm.commit(); }).join();
  EXPECT_EQ(a->committed(), "1");
}

TEST(ThreadManager, EachThreadHasItsOwnTransaction) {
  ThreadTransactionManager tm;
  Transaction* main_txn = &tm.begin();
  Transaction* other = nullptr;
  std::thread([&] {
    EXPECT_EQ(tm.current(), nullptr);
    other = &tm.get();  // implicitly begun
    EXPECT_NE(other, nullptr);
    tm.commit();
  }).join();
  EXPECT_NE(main_txn, other);
  EXPECT_EQ(tm.current(), main_txn);
  tm.abort();
}

TEST(ThreadManager, BeginAbortsATransactionLeftOpen) {
  ThreadTransactionManager tm;
  auto log = std::make_shared<CallLog>();
  auto a = std::make_shared<RecordingResource>("a", log);
  a->set(tm.begin(), "1");
  tm.begin();
  EXPECT_EQ(log->of("a"), (std::vector<std::string>{"abort"}));
  tm.abort();
}

TEST(ThreadManager, BeginFromAHookDoesNotReplaceTheTransactionBeingCommitted) {
  ThreadTransactionManager tm;
  auto log = std::make_shared<CallLog>();
  auto a = std::make_shared<RecordingResource>("a", log);
  auto& txn = tm.begin();
  a->set(txn, "1");
  bool refused = false;
  txn.add_before_commit_hook([&] {
    try {
      tm.begin();  // would abort the transaction under commit() and make another current
    } catch (const UsageError&) {
      refused = true;
    }
  });
  EXPECT_TRUE(tm.commit().committed);
  EXPECT_TRUE(refused);
  EXPECT_EQ(a->committed(), "1");
  EXPECT_EQ(tm.current(), nullptr);
}

TEST(ThreadManager, ManyThreadsCommitIndependently) {
  ThreadTransactionManager tm;
  std::atomic<int> committed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto log = std::make_shared<CallLog>();
      auto rm = std::make_shared<RecordingResource>("rm" + std::to_string(t), log);
      for (int i = 0; i < 200; ++i) {
        rm->set(tm.begin(), std::to_string(i));
        if (tm.commit().committed) committed.fetch_add(1);
      }
      EXPECT_EQ(rm->committed(), "199");
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(committed.load(), 8 * 200);
}

TEST(ThreadManager, OptionsApplyToLaterTransactionsOnEveryThread) {
  ThreadTransactionManager tm;
  tm.begin();
  EXPECT_FALSE(tm.get().deadline().has_value());
  tm.set_options(ManagerOptions{nullptr, std::chrono::seconds(5)});
  std::thread([&] {
    EXPECT_TRUE(tm.begin().deadline().has_value());
    tm.abort();
  }).join();
  EXPECT_TRUE(tm.begin().deadline().has_value());
  tm.abort();
}

TEST(CurrentManager, DefaultsToTheThreadManagerAndFollowsBindings) {
  EXPECT_EQ(&current_manager(), &thread_manager());
  ExplicitTransactionManager outer, inner;
  {
    ManagerBinding b1(outer);
    EXPECT_EQ(&current_manager(), &outer);
    {
      ManagerBinding b2(inner);
      EXPECT_EQ(&current_manager(), &inner);
    }
    EXPECT_EQ(&current_manager(), &outer);
    std::thread([&] { EXPECT_EQ(&current_manager(), &thread_manager()); }).join();
  }
  EXPECT_EQ(&current_manager(), &thread_manager());
}

TEST(CurrentManager, ABindingDestroyedOnAnotherThreadIsAUsageError) {
  ExplicitTransactionManager tm;
  std::unique_ptr<ManagerBinding> binding;
  std::thread([&] {
    binding = std::make_unique<ManagerBinding>(tm);
    EXPECT_EQ(&current_manager(), &tm);
  }).join();
  EXPECT_EQ(&current_manager(), &thread_manager());  // not bound here
  ManagerBinding* raw = binding.release();
  EXPECT_THROW(delete raw, UsageError);
  EXPECT_EQ(&current_manager(), &thread_manager());  // this thread's binding left alone
  // On its own thread it unbinds as always.
  std::thread([&] {
    { ManagerBinding b(tm); }
    EXPECT_EQ(&current_manager(), &thread_manager());
  }).join();
}

TEST(TransactionGuard, AbortsAnUncommittedTransactionAtScopeExit) {
  ExplicitTransactionManager tm;
  auto log = std::make_shared<CallLog>();
  auto a = std::make_shared<RecordingResource>("a", log);
  {
    TransactionGuard g(tm);
    a->set(g.transaction(), "1");
  }
  EXPECT_EQ(log->of("a"), (std::vector<std::string>{"abort"}));
  EXPECT_EQ(tm.current(), nullptr);
  {
    TransactionGuard g(tm);
    a->set(g.transaction(), "2");
    g.commit();
  }
  EXPECT_EQ(a->committed(), "2");
  EXPECT_EQ(log->of("a").back(), "tpc_finish");
}

TEST(TransactionGuard, AbortsAfterAFailedCommitOnUnwinding) {
  ExplicitTransactionManager tm;
  auto log = std::make_shared<CallLog>();
  testing::RecordingOptions o;
  o.fail_at = testing::Step::tpc_vote;
  auto a = std::make_shared<RecordingResource>("a", log, o);
  try {
    TransactionGuard g(tm);
    a->set(g.transaction(), "1");
    g.commit();
  } catch (const ResourceError&) {
  }
  EXPECT_EQ(tm.current(), nullptr) << "the failed transaction was aborted by the guard";
  EXPECT_NO_THROW(tm.begin());
  tm.abort();
}

}  // namespace
}  // namespace xact
