// The resources `xact recover` talks to, given on its command line as NAME=KIND:SPEC.
//
// NAME is the stable resource name the application registers the resource under (the branch
// qualifier of every id); KIND:SPEC says how to reach it. The kinds are those the executable
// links in (extra_resource_kinds()): none in the installed tool, whose resources come from a
// configuration file (`xact recover --config FILE`, recover_config.cpp); the tests' build of
// the tool adds kv:PATH, the durable key-value store of xact::testing.
//
// A resource that cannot be opened (missing file, unreadable store; later: a database that
// refuses the connection) is not a command-line error: it is unreachable, and recovery lists
// its work as owed, exactly as when a resource goes away during the run. It is never left out
// silently: a left-out last resource would make recovery presume abort for branches whose
// commit decision it holds.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include <xact/io/env.hpp>
#include <xact/recovery.hpp>

namespace xact::cli {

struct ResourceSpec {
  std::string text;  ///< as given, for messages
  std::string name;
  std::string kind;
  std::string location;  ///< what follows "KIND:"
  bool last_resource = false;
};

/// Parses NAME=KIND:SPEC; `option` ("resource", "last-resource") is named in errors. Throws
/// UsageFailure saying the expected form, or naming an unknown kind and the supported ones.
ResourceSpec parse_resource_spec(const std::string& text, const std::string& option,
                                 bool last_resource);

/// Parses every spec and refuses a name given twice.
std::vector<ResourceSpec> parse_resource_specs(const std::vector<std::string>& resources,
                                               const std::vector<std::string>& last_resources);

struct BuiltResource {
  ResourceSpec spec;
  RecoveryTarget target;                ///< always registrable
  std::string error;                    ///< why it cannot be reached; empty when it can
};

/// Opens the resource. When that fails, `target` stands in for it: every recovery call on it
/// throws ResourceError with `error`, and as a last resource it answers "unreadable".
BuiltResource build_resource(io::Env& env, const ResourceSpec& spec);

/// "kv:PATH (...)", one line per kind, for help and errors.
std::string supported_kinds();

/// A kind of --resource: how to open NAME=KIND:LOCATION.
struct ResourceKind {
  std::string_view name;
  std::string_view form;
  std::string_view description;
  std::string_view example;  // of a location
  std::shared_ptr<ResourceManager> (*open)(io::Env&, const ResourceSpec&);
};

/// The kinds of this executable, defined by a source file linked into it (no_extra_kinds.cpp in
/// the installed tool; the tests' build links the test store's kind). Read once.
std::vector<ResourceKind> extra_resource_kinds();

/// Stands in for a resource that cannot be opened: every recovery call throws ResourceError
/// with `reason`; as a last resource it answers "unreadable" (so nothing is presumed aborted).
RecoveryTarget unavailable_resource(std::string name, bool last_resource, std::string reason);

/// --foreign and --roll-back-node NODE_ID, shared by `xact recover <dir>` and `xact recover
/// --config FILE`.
struct ForeignRequest {
  bool foreign = false;              ///< --foreign given
  std::optional<NodeId> lost_node;  ///< --roll-back-node given (needs --foreign)
  /// Only a listing: the log and the resources are opened read-only.
  bool listing_only() const { return foreign && !lost_node; }
};
/// Adds the two options to `options` (both commands word them alike).
void add_foreign_options(boost::program_options::options_description_easy_init& option);
/// Reads them; UsageFailure for --roll-back-node without --foreign or with a malformed node id.
ForeignRequest parse_foreign_options(const boost::program_options::variables_map& values);
/// What both commands do once the resources are registered: lists the other nodes' branches
/// (--foreign), rolls back a lost node's (--roll-back-node), or runs recovery (`dry_run`);
/// prints the result and returns the exit code.
int finish_recover(Recovery& recovery, const ForeignRequest& request, bool dry_run);

}  // namespace xact::cli
