// The xact demo: transactions across two resource managers with a durable decision log.
//
// A "bank" keeps balances in one store and an audit trail in another; every transfer changes
// both in one two-phase-commit transaction. The demo shows a commit (with the forced commit
// record), an abort, a conflict retried by xact::run, a participant voting no (everything rolled
// back), and a participant whose finish fails after the decision (still committed; the
// completion is pending, and on-demand recovery finishes it). The stores are the example
// key-value resource managers of xact::testing, kept in memory; later versions of the demo use
// the file storage, SQLite and sessions.
//
// Usage: xact-demo [log-directory]   (default: a fresh temporary directory, removed at exit)
#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/log.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/retry.hpp>
#include <xact/testing/kv_resource.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

using xact::testing::KvResource;
using xact::testing::KvStore;

int balance(const KvStore& store, const std::string& account) {
  auto v = store.get(account);
  return v ? std::stoi(*v) : 0;
}

// Fails in tpc_finish once: what a participant whose server went away after the decision does.
class FlakyFinish : public KvResource {
 public:
  using KvResource::KvResource;
  bool fail_next_finish = false;
  void tpc_finish(xact::Transaction& txn) override {
    if (fail_next_finish) {
      fail_next_finish = false;
      throw xact::ResourceError("audit store: connection lost during COMMIT PREPARED");
    }
    KvResource::tpc_finish(txn);
  }
};

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const bool own_dir = argc < 2;
  const fs::path dir = own_dir
                           ? fs::temp_directory_path() / ("xact-demo-" + std::to_string(::getpid()))
                           : fs::path(argv[1]);
  int status = 0;
  try {
    std::shared_ptr<xact::DecisionLog> log =
        xact::DecisionLog::open(xact::io::Env::posix(), dir.string());
    std::cout << "decision log: " << dir.string() << " (node " << log->node_id().to_hex()
              << ", epoch " << log->epoch() << ")\n";
    xact::ExplicitTransactionManager tm(xact::ManagerOptions{log, std::nullopt});

    auto ledger_store = KvStore::in_memory();
    auto audit_store = KvStore::in_memory();
    auto ledger = std::make_shared<KvResource>("ledger", ledger_store);
    auto audit = std::make_shared<FlakyFinish>("audit", audit_store);

    auto transfer = [&](xact::Transaction& txn, const std::string& from, const std::string& to,
                        int amount) {
      const int have = std::stoi(ledger->get(from).value_or("0"));
      if (have < amount) throw std::runtime_error("insufficient funds in " + from);
      ledger->put(txn, from, std::to_string(have - amount));
      ledger->put(txn, to, std::to_string(std::stoi(ledger->get(to).value_or("0")) + amount));
      audit->put(txn, txn.gtrid().to_hex(), from + "->" + to + ":" + std::to_string(amount));
    };

    // 1. Open the accounts (one participant: one-phase commit, no log write).
    {
      xact::TransactionGuard g(tm);
      ledger->put(g.transaction(), "alice", "100");
      ledger->put(g.transaction(), "bob", "20");
      auto out = g.commit();
      std::cout << "1. accounts opened: one-phase commit, decision logged: "
                << (out.decision_logged ? "yes" : "no") << "\n";
    }
    // 2. A transfer across both stores: prepare both, force the commit record, finish both.
    {
      const auto before = log->stats().forced_writes;
      xact::TransactionGuard g(tm);
      transfer(g.transaction(), "alice", "bob", 30);
      auto out = g.commit();
      std::cout << "2. transfer alice->bob 30: committed=" << out.committed
                << ", forced log writes: " << log->stats().forced_writes - before
                << ", alice=" << balance(*ledger_store, "alice")
                << " bob=" << balance(*ledger_store, "bob") << "\n";
    }
    // 3. An abort leaves nothing behind.
    {
      xact::TransactionGuard g(tm);
      transfer(g.transaction(), "bob", "alice", 5);
      g.abort();
      std::cout << "3. aborted transfer: alice=" << balance(*ledger_store, "alice")
                << " bob=" << balance(*ledger_store, "bob") << "\n";
    }
    // 4. A conflict on the first attempt, retried by xact::run.
    {
      int attempts = 0;
      xact::run(tm, [&](xact::Transaction& txn) {
        ++attempts;
        transfer(txn, "bob", "alice", 10);
        if (attempts == 1) throw xact::ConflictError("simulated write conflict on 'bob'");
      });
      std::cout << "4. transfer with a conflict: " << attempts
                << " attempts, alice=" << balance(*ledger_store, "alice")
                << " bob=" << balance(*ledger_store, "bob") << "\n";
    }
    // 5. A participant votes no: both stores roll back.
    {
      xact::TransactionGuard g(tm);
      transfer(g.transaction(), "alice", "bob", 1);
      // Another transaction holds this audit key prepared, so the audit store votes no.
      audit_store->prepare("someone-else", {{g.transaction().gtrid().to_hex(), "x"}});
      try {
        g.commit();
      } catch (const xact::ConflictError& e) {
        std::cout << "5. vote no (" << e.what() << "): alice=" << balance(*ledger_store, "alice")
                  << " bob=" << balance(*ledger_store, "bob") << "\n";
      }
      audit_store->rollback_prepared("someone-else");
    }
    // 6. A finish fails after the decision: committed, with a pending completion.
    {
      xact::set_log_sink([](xact::LogLevel, std::string_view) {});
      xact::TransactionGuard g(tm);
      transfer(g.transaction(), "alice", "bob", 7);
      audit->fail_next_finish = true;
      auto out = g.commit();
      xact::set_log_sink(nullptr);
      std::cout << "6. finish failed on '" << out.pending.at(0).resource
                << "': committed=" << out.committed << ", pending=" << out.pending.size()
                << ", unfinished in the log: " << log->unfinished().size() << "\n";
      // On-demand recovery re-drives the branch from the log's commit record.
      xact::Recovery recovery(log);
      recovery.register_resource(ledger);
      recovery.register_resource(audit);
      const auto report = recovery.run();
      std::cout << "   recovery: " << report.actions.size()
                << " action(s), complete=" << report.complete()
                << ", unfinished in the log: " << log->unfinished().size()
                << ", audit entries=" << audit_store->snapshot().size()
                << ", alice=" << balance(*ledger_store, "alice")
                << " bob=" << balance(*ledger_store, "bob") << "\n";
    }
    const auto c = xact::counters();
    std::cout << "counters: commits=" << c.commits << " aborts=" << c.aborts
              << " conflicts=" << c.conflicts << " retries=" << c.retries
              << " pending=" << c.pending_completions << " decisions_logged=" << c.decisions_logged
              << "\n";
    const int total = balance(*ledger_store, "alice") + balance(*ledger_store, "bob");
    if (total != 120) {
      std::cerr << "demo: money was created or lost: total " << total << "\n";
      status = 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "demo failed: " << e.what() << "\n";
    status = 1;
  }
  if (own_dir) fs::remove_all(dir);
  return status;
}
