// The xact demo, on the embedded default: a file storage for objects, SQLite for rows, and a
// durable decision log, all in one directory.
//
// A "bank" keeps its accounts as persistent objects (a file storage) and its audit trail as
// rows in SQLite; every transfer changes both in one transaction. The object store prepares
// (one fsync of a prepared record), SQLite commits last with the decision in the same SQLite
// transaction, then the object store appends its commit mark. The demo shows a one-phase
// commit, a transfer across both stores, an abort, a real write conflict retried by xact::run,
// a failing SQL statement rolling the objects back, a reopen of everything from disk with a
// historical read, and the money invariant.
//
// Usage: xact-walkthrough [directory]   (default: a fresh temporary directory, removed at exit)
#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/recovery.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace {

namespace os = xact::objectstore;

// A bank account: a persistent object with a balance and an owner's name.
class Account : public os::Persistent {
 public:
  Account() = default;
  Account(std::string owner, std::int64_t balance) : owner_(std::move(owner)), balance_(balance) {}
  std::int64_t balance() const {
    read_access();
    return balance_;
  }
  const std::string& owner() const {
    read_access();
    return owner_;
  }
  void add(std::int64_t amount) {
    write_access();
    if (balance_ + amount < 0) {
      throw xact::UsageError("insufficient funds in " + owner_ + "'s account");
    }
    balance_ += amount;
  }
  void save(os::StateWriter& out) const override {
    out.write(owner_);
    out.write(balance_);
  }
  void load(os::StateReader& in, std::uint32_t) override {
    in.read(owner_);
    in.read(balance_);
  }

 private:
  std::string owner_;
  std::int64_t balance_ = 0;
};
XACT_PERSISTENT_TYPE(Account, "demo.Account");

struct Bank {
  std::shared_ptr<xact::DecisionLog> log;
  std::shared_ptr<os::DB> db;
  std::shared_ptr<xact::sqlite::SqliteResource> audit;
};

Bank open_bank(const std::filesystem::path& dir) {
  Bank b;
  b.log = xact::DecisionLog::open(xact::io::Env::posix(), (dir / "log").string());
  b.db = os::DB::open(os::FileStorage::open((dir / "bank.xfs").string()), {.name = "bank"});
  xact::sqlite::SqliteOptions so;
  so.path = (dir / "audit.db").string();
  so.name = "sqlite:audit";
  b.audit = xact::sqlite::SqliteResource::create(so);
  b.audit->open_connection()->execute(
      "CREATE TABLE IF NOT EXISTS transfers (id INTEGER PRIMARY KEY, src TEXT NOT NULL, "
      "dst TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0))");
  // Whatever a crash left prepared is decided before anything else runs.
  xact::Recovery recovery(b.log);
  recovery.register_resource(b.db->recovery_target());
  recovery.register_resource(b.audit);
  recovery.run();
  return b;
}

std::int64_t balance(os::Connection& c, const std::string& who) {
  return c.root()->get<Account>(who)->balance();
}

std::int64_t audit_rows(xact::sqlite::SqliteResource& audit) {
  return audit.open_connection()
      ->execute("SELECT count(*) FROM transfers")
      .one()
      .get<std::int64_t>(0);
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const bool own_dir = argc < 2;
  const fs::path dir = own_dir
                           ? fs::temp_directory_path() / ("xact-demo-" + std::to_string(::getpid()))
                           : fs::path(argv[1]);
  int status = 0;
  try {
    fs::create_directories(dir);
    std::cout << "directory: " << dir.string() << " (objects bank.xfs, rows audit.db, log/)\n";
    os::Tid opened_at = os::kNoTid;
    {
      auto bank = open_bank(dir);
      xact::ExplicitTransactionManager tm(xact::ManagerOptions{bank.log, std::nullopt});
      auto conn = bank.db->open({.manager = &tm});

      auto transfer = [&](xact::Transaction& txn, const std::string& from, const std::string& to,
                          std::int64_t amount) {
        conn->root()->get<Account>(from)->add(-amount);
        conn->root()->get<Account>(to)->add(amount);
        bank.audit->execute(txn, "INSERT INTO transfers (src, dst, amount) VALUES (?, ?, ?)",
                            {from, to, amount});
      };

      // 1. Open the accounts: the object store is the only participant, one record, one fsync.
      {
        xact::TransactionGuard g(tm);
        if (!conn->root()->contains("alice")) {
          conn->root()->set("alice", std::make_shared<Account>("alice", 100));
          conn->root()->set("bob", std::make_shared<Account>("bob", 20));
        }
        auto out = g.commit();
        opened_at = bank.db->last_transaction();
        std::cout << "1. accounts opened: one-phase commit, decision logged: "
                  << (out.decision_logged ? "yes" : "no") << "\n";
      }
      // 2. A transfer across both stores: the objects prepare, SQLite commits last carrying the
      //    decision, the objects finish.
      {
        xact::TransactionGuard g(tm);
        transfer(g.transaction(), "alice", "bob", 30);
        auto out = g.commit();
        std::cout << "2. transfer alice->bob 30: committed=" << out.committed
                  << " decision in SQLite=" << out.decision_logged
                  << ", alice=" << balance(*conn, "alice") << " bob=" << balance(*conn, "bob")
                  << ", audit rows=" << audit_rows(*bank.audit) << "\n";
      }
      // 3. An abort leaves nothing behind, in either store.
      {
        xact::TransactionGuard g(tm);
        transfer(g.transaction(), "bob", "alice", 5);
        g.abort();
        std::cout << "3. aborted transfer: alice=" << balance(*conn, "alice")
                  << " bob=" << balance(*conn, "bob") << ", audit rows=" << audit_rows(*bank.audit)
                  << "\n";
      }
      // 4. A real write conflict: another connection changes bob's account after this
      //    transaction read it. The first attempt raises ConflictError; xact::run retries.
      {
        xact::ExplicitTransactionManager other_tm;
        auto other = bank.db->open({.manager = &other_tm});
        int attempts = 0;
        xact::run(tm, [&](xact::Transaction& txn) {
          ++attempts;
          transfer(txn, "bob", "alice", 10);
          if (attempts == 1) {
            xact::TransactionGuard og(other_tm);
            other->root()->get<Account>("bob")->add(1);  // interest, paid meanwhile
            other->root()->get<Account>("alice")->add(-1);
            og.commit();
          }
        });
        std::cout << "4. transfer with a conflict: " << attempts
                  << " attempts, alice=" << balance(*conn, "alice")
                  << " bob=" << balance(*conn, "bob") << "\n";
      }
      // 5. SQLite refuses a row (CHECK amount > 0): the objects changed in the same transaction
      //    are rolled back with it.
      {
        xact::TransactionGuard g(tm);
        conn->root()->get<Account>("alice")->add(-1);
        try {
          bank.audit->execute(g.transaction(),
                              "INSERT INTO transfers (src, dst, amount) VALUES ('alice', 'x', 0)");
          g.commit();
        } catch (const xact::Error& e) {
          g.abort();
          std::cout << "5. SQL error (" << e.what() << "):\n   alice=" << balance(*conn, "alice")
                    << " bob=" << balance(*conn, "bob") << "\n";
        }
      }
    }
    // 6. Everything above is closed; open it again from disk and read the past as of step 1.
    auto bank = open_bank(dir);
    xact::ExplicitTransactionManager tm2;
    auto again = bank.db->open({.manager = &tm2});
    auto past = bank.db->open_historical(opened_at);
    std::cout << "6. reopened: alice=" << balance(*again, "alice")
              << " bob=" << balance(*again, "bob") << ", audit rows=" << audit_rows(*bank.audit)
              << "; as of step 1: alice=" << balance(*past, "alice")
              << " bob=" << balance(*past, "bob") << "\n";
    const std::int64_t total = balance(*again, "alice") + balance(*again, "bob");
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
