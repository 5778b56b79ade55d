// Cross-database references and the seat belt (issue 17): typed xrefs written and loaded
// lazily through the set's connection, dangling targets, placement of new objects reachable
// from two databases, xrefs = allow | check | forbid, and format-1 records still read.
#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/testing/crash_harness.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Account;
using test::Person;

// A session object that may refer into main (its type's policy allows it).
class Cart : public Persistent {
 public:
  std::shared_ptr<Person> owner() const {
    read_access();
    return owner_.get();
  }
  void set_owner(std::shared_ptr<Person> p) {
    write_access();
    owner_ = std::move(p);
  }
  void save(StateWriter& out) const override { out.write(owner_); }
  void load(StateReader& in, std::uint32_t) override { in.read(owner_); }
  std::optional<bool> check_xref(const XrefCheck& x) const override {
    return x.target_database == "main";
  }

 private:
  Ref<Person> owner_;
};
XACT_PERSISTENT_TYPE(Cart, "test.Cart");

class XrefTest : public ::testing::Test {
 protected:
  XrefTest() { open_all(); }
  void open_all(XrefPolicy main_xrefs = XrefPolicy::forbid,
                XrefPolicy sessions_xrefs = XrefPolicy::check) {
    dbs_ = Databases::create();
    DBOptions main;
    main.name = "main";
    main.xrefs = main_xrefs;
    dbs_->add(DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "main.xfs")), main));
    DBOptions sessions;
    sessions.name = "sessions";
    sessions.xrefs = sessions_xrefs;
    // The seed's volatile session database: a memory storage whose objects expire.
    if (!sessions_storage_) {
      sessions_storage_ =
          std::make_shared<MemoryStorage>(MemoryStorageOptions{.expiry = std::chrono::minutes(30)});
    }
    dbs_->add(DB::open(sessions_storage_, sessions));
    DBOptions catalog;
    catalog.name = "catalog";
    catalog.xrefs = XrefPolicy::allow;
    dbs_->add(
        DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "catalog.xfs")), catalog));
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
  // A Person stored in main; returns its oid.
  Oid person_in_main(const std::string& name) {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    auto p = std::make_shared<Person>(name);
    c->root()->set(name, p);
    tm.commit();
    return p->oid();
  }

  testing::TempDir dir_;
  std::shared_ptr<DecisionLog> log_;
  std::shared_ptr<MemoryStorage> sessions_storage_;
  std::shared_ptr<Databases> dbs_;
};

// Rule: sessions -> main is allowed (the referring type's check_xref); the reference is
// written as database + oid + type name and loads lazily through the set's connection to main.
TEST_F(XrefTest, SessionsToMainIsAllowedAndLoadsLazilyThroughTheSet) {
  const Oid ann = person_in_main("ann");
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    Connection& s = c->get_connection("sessions");
    auto cart = std::make_shared<Cart>();
    cart->set_owner(c->get<Person>(ann));
    s.root()->set("cart", cart);
    tm.commit();
    auto rev = sessions_storage_->load(cart->oid());
    ASSERT_TRUE(rev);
    EXPECT_NE(describe_record(rev->data).find("xref main:" + oid_repr(ann) + " test.Person"),
              std::string::npos)
        << describe_record(rev->data);
  }
  // A fresh set, starting from sessions: main is opened only when the reference is used.
  ExplicitTransactionManager tm;
  auto sess = dbs_->get("sessions")->open(ConnectionOptions{.manager = &tm});
  tm.begin();
  auto cart = sess->root()->get<Cart>("cart");
  ASSERT_TRUE(cart);
  auto owner = cart->owner();
  EXPECT_EQ(owner->name(), "ann");
  EXPECT_EQ(owner->database_name(), "main");
  EXPECT_EQ(owner->connection(), &sess->get_connection("main"));
}

// Rule: main -> sessions is forbidden (main has xrefs = forbid): the commit fails with
// InvalidObjectReference naming referrer, target and rule; nothing is written anywhere.
TEST_F(XrefTest, MainToSessionsIsForbiddenAndNothingIsWritten) {
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  Connection& s = c->get_connection("sessions");
  auto p = std::make_shared<Person>("temp");
  s.add(p);
  s.root()->set("p", p);
  auto acct = std::make_shared<Account>();
  acct->set_owner(p);
  c->root()->set("acct", acct);
  try {
    tm.commit();
    FAIL() << "no InvalidObjectReference";
  } catch (const InvalidObjectReference& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("database 'main'"), std::string::npos) << what;
    EXPECT_NE(what.find("test.Account"), std::string::npos) << what;
    EXPECT_NE(what.find("'sessions'"), std::string::npos) << what;
    EXPECT_NE(what.find("test.Person"), std::string::npos) << what;
    EXPECT_NE(what.find("xrefs = forbid"), std::string::npos) << what;
  }
  tm.abort();
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  tm2.begin();
  EXPECT_FALSE(c2->root()->contains("acct"));
  EXPECT_FALSE(c2->get_connection("sessions").root()->contains("p"));
}

// Rule: moving (not copying) an object from the session database into main is caught: main
// then refers to an object that lives in sessions.
TEST_F(XrefTest, MovingASessionObjectIntoMainIsCaught) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->get_connection("sessions").root()->set("draft", std::make_shared<Person>("draft"));
    tm.commit();
  }
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  Connection& s = c->get_connection("sessions");
  auto draft = s.root()->get<Person>("draft");
  s.root()->erase("draft");
  c->root()->set("final", draft);  // a move: the object stays in sessions
  EXPECT_THROW(tm.commit(), InvalidObjectReference);
  tm.abort();
}

// Rule: a database with xrefs = check and no policy deciding refuses; the registry's
// predicate decides when the type has none.
TEST_F(XrefTest, CheckWithoutAPolicyRefusesAndTheRegistryPredicateDecides) {
  const Oid ann = person_in_main("ann");
  auto attempt = [&] {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    auto acct = std::make_shared<Account>();  // no check_xref of its own
    acct->set_owner(c->get<Person>(ann));
    c->get_connection("sessions").root()->set("acct", acct);
    try {
      tm.commit();
      return std::string("committed");
    } catch (const InvalidObjectReference& e) {
      tm.abort();
      return std::string(e.what());
    }
  };
  EXPECT_NE(attempt().find("no policy"), std::string::npos);
  std::vector<XrefCheck> seen;
  dbs_->set_xref_policy([&](const XrefCheck& x) {
    seen.push_back(x);
    return x.referrer_type == "test.Account" && x.target_type == "test.Person";
  });
  EXPECT_EQ(attempt(), "committed");
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().referrer_database, "sessions");
  EXPECT_EQ(seen.back().target_database, "main");
  EXPECT_EQ(seen.back().target_oid, ann);
  dbs_->set_type_xref_policy("test.Account", [](const XrefCheck&) { return false; });
  EXPECT_NE(attempt().find("refused it"), std::string::npos);
}

// Rule: a catalog index kept in another database (catalog: xrefs = allow) refers back into
// main; the reference survives reopening the files.
TEST_F(XrefTest, ACatalogIndexInAnotherDatabaseRefersIntoMain) {
  const Oid ann = person_in_main("ann");
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    auto index = std::make_shared<PersistentMap>();
    index->set("ann", c->get<Person>(ann));
    c->get_connection("catalog").root()->set("by_name", index);
    tm.commit();
  }
  dbs_.reset();
  open_all();
  ExplicitTransactionManager tm;
  auto c = dbs_->get("catalog")->open(ConnectionOptions{.manager = &tm});
  tm.begin();
  auto p = c->root()->get<PersistentMap>("by_name")->get<Person>("ann");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name(), "ann");
  EXPECT_EQ(p->database_name(), "main");
}

// Rule: a reference whose target does not exist raises DanglingReferenceError naming the
// database and the oid (here: main's file restored to a copy without the target).
TEST_F(XrefTest, ADanglingCrossReferenceIsATypedError) {
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  auto index = std::make_shared<PersistentMap>();
  index->set("x", Value(Ref<Person>::from_base(detail::RefBase(&*c, 0x7777))));
  // Written by hand: the reference names an oid main never had.
  std::string data;
  encode_header(data, PersistentMap::kTypeName, 1);
  StateWriter w(data);
  w.begin_map(1);
  w.write("x");
  w.write_typed_xref(CrossReference{"main", 0x7777, "test.Person"});
  tm.abort();
  CommitRequest req;
  Storage& cat = dbs_->get("catalog")->storage();
  const Oid oid = cat.new_oid();
  req.writes.push_back(ObjectWrite{oid, kNoTid, data});
  cat.commit_one_phase(std::move(req));
  ExplicitTransactionManager tm2;
  auto c2 = dbs_->get("catalog")->open(ConnectionOptions{.manager = &tm2});
  tm2.begin();
  auto map = c2->get<PersistentMap>(oid);
  try {
    map->get<Person>("x");
    FAIL() << "no DanglingReferenceError";
  } catch (const DanglingReferenceError& e) {
    EXPECT_EQ(e.database(), "main");
    EXPECT_EQ(e.oid(), 0x7777u);
  }
}

// Rule: a new object reachable from two databases must be placed with add(): otherwise the
// commit fails before any participant prepares, naming both referrers.
TEST_F(XrefTest, ANewObjectReachableFromTwoDatabasesMustBePlaced) {
  dbs_.reset();
  open_all(XrefPolicy::allow, XrefPolicy::allow);
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  auto shared = std::make_shared<Person>("shared");
  c->root()->set("p", shared);
  c->get_connection("catalog").root()->set("p", shared);
  try {
    tm.commit();
    FAIL() << "no InvalidObjectReference";
  } catch (const InvalidObjectReference& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("database 'main'"), std::string::npos) << what;
    EXPECT_NE(what.find("database 'catalog'"), std::string::npos) << what;
    EXPECT_NE(what.find("add()"), std::string::npos) << what;
  }
  tm.abort();
  EXPECT_EQ(dbs_->get("main")->storage().last_transaction(),
            dbs_->get("main")->last_transaction());
  // Placed explicitly: it commits, one object in main, a cross reference from catalog.
  tm.begin();
  auto placed = std::make_shared<Person>("placed");
  c->add(placed);
  c->root()->set("p", placed);
  c->get_connection("catalog").root()->set("p", placed);
  tm.commit();
  EXPECT_EQ(placed->database_name(), "main");
}

// Rule: records written in format 1 (before the typed cross-database reference) still open.
TEST_F(XrefTest, AFileWrittenInFormatOneStillOpens) {
  const std::string path = dir_ / "old.xfs";
  Oid oid = 0;
  {
    auto fs = std::shared_ptr<Storage>(FileStorage::open(path));
    std::string data;
    encode_header(data, "test.Person", 1);
    data[0] = 1;  // the format byte of the old code path
    StateWriter w(data);
    w.write("old");
    oid = fs->new_oid();
    CommitRequest req;
    req.writes.push_back(ObjectWrite{oid, kNoTid, data});
    fs->commit_one_phase(std::move(req));
  }
  auto db = DB::open(std::shared_ptr<Storage>(FileStorage::open(path)));
  ExplicitTransactionManager tm;
  auto c = db->open(ConnectionOptions{.manager = &tm});
  EXPECT_EQ(c->get<Person>(oid)->name(), "old");
}

// Rule: objects of the session database not written for its expiry are swept; a reference to
// a swept object raises DanglingReferenceError naming the database and the oid, within the
// session database and from a connection that had it cached; main is untouched.
TEST_F(XrefTest, ASweptSessionObjectIsADanglingReference) {
  const Oid ann = person_in_main("ann");
  Oid cart_oid = 0;
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  Connection& s = c->get_connection("sessions");
  auto cart = std::make_shared<Cart>();
  cart->set_owner(c->get<Person>(ann));
  s.root()->set("cart", cart);
  tm.commit();
  cart_oid = cart->oid();
  tm.begin();
  EXPECT_EQ(s.root()->get<Cart>("cart")->owner()->name(), "ann");  // cached, with its state
  tm.commit();

  EXPECT_EQ(sessions_storage_->expire(std::chrono::system_clock::now() + std::chrono::minutes(29)),
            0u);
  // The root was written with the cart: only the cart has not been written since.
  tm.begin();
  s.root()->set("touched", 1);
  tm.commit();
  EXPECT_EQ(sessions_storage_->expire(std::chrono::system_clock::now() + std::chrono::minutes(31)),
            1u);
  tm.begin();
  try {
    s.root()->get<Cart>("cart")->owner();
    FAIL() << "no DanglingReferenceError";
  } catch (const DanglingReferenceError& e) {
    EXPECT_EQ(e.database(), "sessions");
    EXPECT_EQ(e.oid(), cart_oid);
    EXPECT_NE(std::string(e.what()).find("expired"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c->get<Person>(ann)->name(), "ann") << "main is untouched";
  tm.abort();
  // A fresh set sees the same.
  ExplicitTransactionManager tm2;
  auto sess = dbs_->get("sessions")->open(ConnectionOptions{.manager = &tm2});
  tm2.begin();
  EXPECT_THROW(sess->root()->get<Cart>("cart")->owner(), DanglingReferenceError);
  EXPECT_EQ(sess->root()->at("touched").as_int(), 1);
}

// Rule: with main on xrefs = check, a registry predicate allows main -> catalog but still
// refuses main -> sessions (the seed: arbitrary references into the volatile database refused).
TEST_F(XrefTest, ARegistryPolicyAllowsTheCatalogButNotTheSessions) {
  dbs_.reset();
  open_all(XrefPolicy::check, XrefPolicy::allow);
  dbs_->set_xref_policy([](const XrefCheck& x) { return x.target_database != "sessions"; });
  auto attempt = [&](const std::string& target) {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    auto p = std::make_shared<Person>("in " + target);
    Connection& t = c->get_connection(target);
    t.add(p);
    t.root()->set("p", p);
    auto acct = std::make_shared<Account>();
    acct->set_owner(p);
    c->root()->set("acct-" + target, acct);
    try {
      tm.commit();
      return std::string("committed");
    } catch (const InvalidObjectReference& e) {
      tm.abort();
      return std::string(e.what());
    }
  };
  EXPECT_EQ(attempt("catalog"), "committed");
  EXPECT_NE(attempt("sessions").find("refused it"), std::string::npos);
}

}  // namespace
}  // namespace xact::objectstore
