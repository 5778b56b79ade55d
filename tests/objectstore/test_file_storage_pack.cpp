// FileStorage::pack (file_storage_pack.cpp) on real files: what is unreachable as of the pack
// time goes, extra roots keep what they name, and the result survives a reopen.
#include <xact/objectstore/file_storage.hpp>

#include <gtest/gtest.h>

#include <xact/manager.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/testing/temp_dir.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Counter;

// Two counters under the root; then "orphan" is removed from the root and "kept" changed, so
// the orphan is unreachable and the kept counter has an old revision.
class PackTest : public ::testing::Test {
 protected:
  PackTest() {
    storage_ = FileStorage::open(path_);
    db_ = DB::open(storage_);
    ConnectionOptions co;
    co.manager = &tm_;
    auto c = db_->open(co);
    tm_.begin();
    auto kept = std::make_shared<Counter>();
    auto orphan = std::make_shared<Counter>();
    kept->add(1);
    orphan->add(7);
    c->root()->set("kept", kept);
    c->root()->set("orphan", orphan);
    tm_.commit();
    kept_ = kept->oid();
    orphan_ = orphan->oid();
    first_kept_serial_ = kept->serial();
    tm_.begin();
    c->root()->erase("orphan");
    kept->add(1);
    tm_.commit();
    pack_at_ = storage_->last_transaction();
  }
  ~PackTest() override {
    db_.reset();
    storage_.reset();
  }
  // Closes everything and opens the file again.
  void reopen() {
    db_.reset();
    storage_.reset();
    storage_ = FileStorage::open(path_);
  }

  testing::TempDir dir_;
  const std::string path_ = dir_ / "data.xfs";
  ExplicitTransactionManager tm_;
  std::shared_ptr<FileStorage> storage_;
  std::shared_ptr<DB> db_;
  Oid kept_ = 0, orphan_ = 0;
  Tid first_kept_serial_ = kNoTid, pack_at_ = kNoTid;
};

TEST_F(PackTest, WhatIsUnreachableAsOfThePackTimeGoesForGood) {
  ASSERT_TRUE(storage_->load(orphan_).has_value()) << "before the pack, still stored";
  const PackReport report = storage_->pack(pack_at_);
  EXPECT_EQ(report.pack_tid, pack_at_);
  EXPECT_EQ(report.objects_dropped, 1u);
  EXPECT_GE(report.revisions_dropped, 2u) << "the orphan's revision and the kept one's first";
  EXPECT_LT(report.new_bytes, report.old_bytes);
  EXPECT_EQ(storage_->load(orphan_), std::nullopt);
  EXPECT_EQ(storage_->load_serial(kept_, first_kept_serial_), std::nullopt);
  EXPECT_TRUE(storage_->load(kept_).has_value());

  reopen();
  EXPECT_EQ(storage_->load(orphan_), std::nullopt) << "the packed file is the file";
  EXPECT_EQ(storage_->load_serial(kept_, first_kept_serial_), std::nullopt);
  ASSERT_TRUE(storage_->load(kept_).has_value());
  EXPECT_EQ(storage_->load(kept_)->serial, pack_at_);
}

TEST_F(PackTest, AnExtraRootKeepsWhatItNamesReachable) {
  const PackReport report = storage_->pack(pack_at_, {orphan_});
  EXPECT_EQ(report.objects_dropped, 0u);
  reopen();
  db_ = DB::open(storage_);
  ExplicitTransactionManager tm;
  ConnectionOptions co;
  co.manager = &tm;
  auto c = db_->open(co);
  EXPECT_EQ(c->get<Counter>(orphan_)->value(), 7);
  EXPECT_EQ(c->root()->get<Counter>("kept")->value(), 2);
}

}  // namespace
}  // namespace xact::objectstore
