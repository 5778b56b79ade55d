#include "resource_spec.hpp"

#include <set>

#include <xact/errors.hpp>

#include "cli.hpp"

namespace xact::cli {

namespace {

constexpr std::string_view kExpectedForm =
    "expected NAME=KIND:SPEC, e.g. orders=kv:/var/lib/app/orders.kv";

// Stands in for a resource that could not be opened, so recovery reports its work as owed
// (and, for a last resource, never presumes abort for what it may hold).
class UnavailableResource : public RecoverableResource, public DecisionStore {
 public:
  explicit UnavailableResource(std::string reason) : reason_(std::move(reason)) {}

  std::vector<Xid> recover(const NodeId&) override { refuse(); }
  Outcome commit_prepared(const Xid&) override { refuse(); }
  Outcome rollback_prepared(const Xid&) override { refuse(); }
  Lookup lookup_decision(const Gtrid&) override { return Lookup::unreadable; }
  void forget_decision(const Gtrid&) noexcept override {}

 private:
  [[noreturn]] void refuse() const { throw ResourceError(reason_); }

  std::string reason_;
};

using Kind = ResourceKind;

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> all = extra_resource_kinds();
  return all;
}

const Kind* find_kind(std::string_view name) {
  for (const auto& kind : kinds()) {
    if (kind.name == name) return &kind;
  }
  return nullptr;
}

}  // namespace

std::string supported_kinds() {
  std::string out;
  for (const auto& kind : kinds()) {
    if (!out.empty()) out += ", ";
    out += std::string(kind.form) + " (" + std::string(kind.description) + ")";
  }
  if (out.empty()) out = "none in this build";
  return out + "; object databases, PostgreSQL, MySQL/MariaDB and SQLite are recovered from "
               "the application's configuration file: xact recover --config FILE";
}

ResourceSpec parse_resource_spec(const std::string& text, const std::string& option,
                                 bool last_resource) {
  const std::string what = "--" + option + " '" + printable(text) + "'";
  ResourceSpec spec;
  spec.text = text;
  spec.last_resource = last_resource;
  const auto eq = text.find('=');
  const auto colon = eq == std::string::npos ? eq : text.find(':', eq + 1);
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos || colon == eq + 1) {
    throw UsageFailure(what + ": " + std::string(kExpectedForm));
  }
  spec.name = text.substr(0, eq);
  spec.kind = text.substr(eq + 1, colon - eq - 1);
  spec.location = text.substr(colon + 1);
  try {
    check_branch_name(spec.name);
  } catch (const UsageError&) {
    throw UsageFailure(what + ": the resource name '" + printable(spec.name) + "' is " +
                       std::to_string(spec.name.size()) + " bytes; it must be 1 to " +
                       std::to_string(Xid::kMaxBqual) +
                       " (it is the branch qualifier of every transaction id)");
  }
  const Kind* kind = find_kind(spec.kind);
  if (kind == nullptr) {
    throw UsageFailure(what + ": unknown resource kind '" + printable(spec.kind) +
                       "'; supported kinds: " + supported_kinds());
  }
  if (spec.location.empty()) {
    throw UsageFailure(what + ": " + std::string(kind->name) + " needs a location: " +
                       std::string(kind->form) + ", e.g. " + printable(spec.name) + "=" +
                       std::string(kind->name) + ":" + std::string(kind->example));
  }
  return spec;
}

std::vector<ResourceSpec> parse_resource_specs(const std::vector<std::string>& resources,
                                               const std::vector<std::string>& last_resources) {
  std::vector<ResourceSpec> specs;
  for (const auto& text : resources) specs.push_back(parse_resource_spec(text, "resource", false));
  for (const auto& text : last_resources) {
    specs.push_back(parse_resource_spec(text, "last-resource", true));
  }
  std::set<std::string> names;
  for (const auto& spec : specs) {
    if (!names.insert(spec.name).second) {
      throw UsageFailure("the resource name '" + printable(spec.name) +
                         "' is given twice; each resource has one name and one location");
    }
  }
  return specs;
}

BuiltResource build_resource(io::Env& env, const ResourceSpec& spec) {
  BuiltResource built;
  built.spec = spec;
  try {
    built.target = RecoveryTarget::of(find_kind(spec.kind)->open(env, spec));
  } catch (const std::exception& e) {
    built.error = "cannot open resource '" + printable(spec.name) + "' (" + spec.kind + ":" +
                  spec.location + "): " + e.what();
    built.target = unavailable_resource(spec.name, spec.last_resource, built.error);
  }
  return built;
}

RecoveryTarget unavailable_resource(std::string name, bool last_resource, std::string reason) {
  auto unavailable = std::make_shared<UnavailableResource>(std::move(reason));
  RecoveryTarget target;
  target.name = std::move(name);
  target.recoverable = unavailable;
  if (last_resource) target.decision_store = unavailable;
  return target;
}

}  // namespace xact::cli
