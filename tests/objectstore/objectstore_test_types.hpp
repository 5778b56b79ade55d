// Persistent types shared by the object-store tests.
#pragma once

#include <xact/objectstore/persistent.hpp>
#include <xact/objectstore/registry.hpp>

namespace xact::objectstore::test {

/// A counter whose concurrent increments merge (the conflict-resolution test case).
class Counter : public Persistent {
 public:
  std::int64_t value() const {
    read_access();
    return value_;
  }
  const std::int64_t& value_ref() const {
    read_access();
    return value_;
  }
  void add(std::int64_t n) {
    write_access();
    value_ += n;
  }
  /// A bug on purpose: changes the state without marking the object changed.
  void add_without_marking(std::int64_t n) {
    read_access();
    value_ += n;
  }
  void save(StateWriter& out) const override { out.write(value_); }
  void load(StateReader& in, std::uint32_t) override { in.read(value_); }
  static bool resolve_conflict(const Counter& old, const Counter& committed, Counter& mine) {
    mine.value_ = committed.value_ + (mine.value_ - old.value_);
    return true;
  }

 private:
  std::int64_t value_ = 0;
};
XACT_PERSISTENT_TYPE(Counter, "test.Counter");

class Person : public Persistent {
 public:
  Person() = default;
  explicit Person(std::string name) : name_(std::move(name)) {}
  const std::string& name() const {
    read_access();
    return name_;
  }
  void rename(std::string name) {
    write_access();
    name_ = std::move(name);
  }
  void save(StateWriter& out) const override { out.write(name_); }
  void load(StateReader& in, std::uint32_t) override { in.read(name_); }
  // A ghost frees its heap memory, so a read through a stale reference is a use-after-free
  // that ASan reports.
  void clear() override { std::string().swap(name_); }

 private:
  std::string name_;
};
XACT_PERSISTENT_TYPE(Person, "test.Person");

class Account : public Persistent {
 public:
  std::int64_t balance() const {
    read_access();
    return balance_;
  }
  void deposit(std::int64_t n) {
    write_access();
    balance_ += n;
  }
  std::shared_ptr<Person> owner() const {
    read_access();
    return owner_.get();
  }
  Ref<Person> owner_ref() const {
    read_access();
    return owner_;
  }
  void set_owner(std::shared_ptr<Person> p) {
    write_access();
    owner_ = Ref<Person>(std::move(p));
  }
  void save(StateWriter& out) const override {
    out.write(balance_);
    out.write(owner_);
  }
  void load(StateReader& in, std::uint32_t) override {
    in.read(balance_);
    in.read(owner_);
  }
  void clear() override { owner_ = {}; }

 private:
  std::int64_t balance_ = 0;
  Ref<Person> owner_;
};
XACT_PERSISTENT_TYPE(Account, "test.Account");

/// Version 1 of an item: a price in cents. Registered per test in private registries.
struct ItemV1 : Persistent {
  std::int64_t price_cents = 0;
  void save(StateWriter& out) const override { out.write(price_cents); }
  void load(StateReader& in, std::uint32_t) override { in.read(price_cents); }
};

/// Version 2: a decimal price and a currency; reads version 1 states.
struct ItemV2 : Persistent {
  double price = 0;
  std::string currency = "EUR";
  void save(StateWriter& out) const override {
    out.write(price);
    out.write(currency);
  }
  void load(StateReader& in, std::uint32_t version) override {
    if (version == 1) {
      price = static_cast<double>(in.get<std::int64_t>()) / 100.0;
      currency = "EUR";
      return;
    }
    in.read(price);
    in.read(currency);
  }
};

}  // namespace xact::objectstore::test
