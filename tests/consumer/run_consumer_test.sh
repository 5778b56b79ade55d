#!/usr/bin/env bash
# Installs an xact build tree into a fresh temporary prefix and builds the project in this
# directory against it, the way a user would:
#   1. find_package(xact 0.1 CONFIG REQUIRED COMPONENTS coordinator), build, run
#   2. find_package(xact) without components (every module), configure only
#   3. an unknown component and an incompatible version: configure must fail, naming them
#   4. no installed header includes Boost (xact/http/ excepted: Boost.Beast is its public
#      dependency, declared in its package); the shared libraries' package asks for none of their
#      private dependencies: configure, build and run with Boost disabled
#      (-DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON) and no pkg-config module reachable (empty
#      PKG_CONFIG_LIBDIR and PKG_CONFIG_PATH), so neither Boost nor ISA-L can be found
#   5. c++ main.cpp $(pkg-config --cflags --libs xact-coordinator), run; for shared libraries,
#      pkg-config resolves xact-coordinator and xact-objectstore with no other .pc reachable
#
#   run_consumer_test.sh <build-dir> [cmake] [c++ compiler] [config]
# Environment: XACT_CONSUMER_GENERATOR (CMake generator), XACT_CONSUMER_CXXFLAGS (extra
# compile and link flags, e.g. the sanitizer the library was built with).
# The temporary directory is removed on exit, also on failure or interruption.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 <build-dir> [cmake] [c++ compiler] [config]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
cmake_cmd=${2:-cmake}
cxx=${3:-c++}
config=${4:-}
generator=${XACT_CONSUMER_GENERATOR:-}
read -r -a extra_flags <<<"${XACT_CONSUMER_CXXFLAGS:-}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xact-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
prefix=$tmp/prefix

step() { printf '\n=== consumer: %s\n' "$*"; }
fail() {
  printf 'consumer: FAILED: %s\n' "$*" >&2
  exit 1
}

# Runs a command with its output in a log, printed only when it fails.
quiet() {
  local log=$tmp/last.log
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    return 1
  fi
}

configure_args=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx"
  -DCMAKE_BUILD_TYPE="${config:-Release}" -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
[[ -n $generator ]] && configure_args+=(-G "$generator")
if [[ ${#extra_flags[@]} -gt 0 ]]; then
  configure_args+=(-DCMAKE_CXX_FLAGS="${extra_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${extra_flags[*]}")
fi

# --- install ----------------------------------------------------------------------------
step "cmake --install $build_dir --prefix $prefix"
install_args=(--install "$build_dir" --prefix "$prefix")
[[ -n $config ]] && install_args+=(--config "$config")
quiet "$cmake_cmd" "${install_args[@]}" || fail "install"
config_file=$(find "$prefix" -path '*/cmake/xact/xactConfig.cmake' -print -quit)
[[ -n $config_file ]] || fail "no lib*/cmake/xact/xactConfig.cmake in the prefix"
pc_file=$(find "$prefix" -name xact-coordinator.pc -print -quit)
[[ -n $pc_file ]] || fail "no xact-coordinator.pc in the prefix"
[[ -f $(dirname "$pc_file")/xact.pc ]] || fail "no umbrella xact.pc next to $pc_file"
[[ -f $prefix/include/xact/transaction.hpp ]] || fail "xact/transaction.hpp not installed"
stray=$(find "$prefix/include" -type f ! -name '*.hpp' ! -name '*.h' ! -name '*.ipp' -print)
[[ -z $stray ]] || fail "files other than headers under include/: $stray"
echo "installed: $config_file, $pc_file"

# --- find_package -----------------------------------------------------------------------
step "find_package(xact 0.1 CONFIG REQUIRED COMPONENTS coordinator): configure, build, run"
quiet "$cmake_cmd" -S "$here" -B "$tmp/cmake-build" "${configure_args[@]}" ||
  fail "configure with find_package"
found_dir=$(sed -n 's/^xact_DIR:PATH=//p' "$tmp/cmake-build/CMakeCache.txt")
[[ $found_dir == "$prefix"/* ]] || fail "found xact in '$found_dir', not in the temporary prefix"
quiet "$cmake_cmd" --build "$tmp/cmake-build" ${config:+--config "$config"} || fail "build with find_package"
consumer=$(find "$tmp/cmake-build" -type f -name consumer -perm -u+x -print -quit)
[[ -n $consumer ]] || fail "the consumer binary was not built"
"$consumer" || fail "the consumer built with find_package exited with $?"

step "find_package(xact CONFIG REQUIRED) without components: every module"
quiet "$cmake_cmd" -S "$here" -B "$tmp/cmake-all" "${configure_args[@]}" \
  -DXACT_CONSUMER_COMPONENTS=ALL || fail "configure without components"

step "find_package(xact ... COMPONENTS no_such_module) must fail and name it"
if "$cmake_cmd" -S "$here" -B "$tmp/cmake-unknown" "${configure_args[@]}" \
  -DXACT_CONSUMER_COMPONENTS="coordinator;no_such_module" >"$tmp/unknown.log" 2>&1; then
  fail "an unknown component was accepted"
fi
grep -q "no_such_module" "$tmp/unknown.log" || {
  cat "$tmp/unknown.log" >&2
  fail "the error does not name the unknown component"
}
grep -A3 "Reason given by package" "$tmp/unknown.log" || true

step "find_package(xact 0.99) must fail (0.x: the minor version must match)"
if "$cmake_cmd" -S "$here" -B "$tmp/cmake-version" "${configure_args[@]}" \
  -DXACT_CONSUMER_VERSION=0.99 >"$tmp/version.log" 2>&1; then
  fail "version 0.99 was accepted"
fi
grep -q 'requested version "0.99"' "$tmp/version.log" || {
  cat "$tmp/version.log" >&2
  fail "configure failed, but not on the version"
}
echo "rejected as expected"

# --- private dependencies stay private ------------------------------------------------------
step "no installed header includes Boost (but xact::http's: Boost is its PUBLIC dependency)"
boost_headers=$(grep -rlE --exclude-dir=http '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]boost/' \
  "$prefix/include" || true)
[[ -z $boost_headers ]] || fail "installed headers include Boost: $boost_headers
(then Boost is a PUBLIC dependency of their module and consumers need it: declare it so)"
echo "none does"

shared=no
find "$prefix" -name 'libxact_coordinator.so*' -print -quit | grep -q . && shared=yes
if [[ $shared == yes ]]; then
  step "shared libraries without Boost, ISA-L or pkg-config: configure, build, run"
  quiet env PKG_CONFIG_LIBDIR= PKG_CONFIG_PATH= "$cmake_cmd" -S "$here" -B "$tmp/cmake-nodeps" \
    "${configure_args[@]}" -DCMAKE_DISABLE_FIND_PACKAGE_Boost=ON \
    -DXACT_CONSUMER_COMPONENTS="coordinator;objectstore" ||
    fail "find_package(xact COMPONENTS coordinator objectstore) of the shared libraries requires a private dependency (Boost, pkg-config or ISA-L)"
  quiet "$cmake_cmd" --build "$tmp/cmake-nodeps" ${config:+--config "$config"} ||
    fail "build without private dependencies"
  consumer=$(find "$tmp/cmake-nodeps" -type f -name consumer -perm -u+x -print -quit)
  [[ -n $consumer ]] || fail "the consumer without private dependencies was not built"
  "$consumer" || fail "the consumer built without private dependencies exited with $?"
else
  echo "skipped: the installed libraries are static; their consumers link the private dependencies"
fi

# --- pkg-config -------------------------------------------------------------------------
step "pkg-config --cflags --libs xact-coordinator: build, run"
pc_dir=$(dirname "$pc_file")
export PKG_CONFIG_PATH=$pc_dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pkg-config --print-errors --exists xact || fail "pkg-config cannot resolve the umbrella xact.pc"
read -r -a pc_flags <<<"$(pkg-config --cflags --libs xact-coordinator)"
echo "flags: ${pc_flags[*]}"
libdir=$(pkg-config --variable=libdir xact-coordinator)
[[ $libdir == "$prefix"/* ]] || fail "xact-coordinator.pc says libdir=$libdir, not in the prefix"
quiet "$cxx" -std=c++20 "${extra_flags[@]}" "$here/main.cpp" -o "$tmp/consumer-pc" "${pc_flags[@]}" ||
  fail "build with pkg-config flags"
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/consumer-pc" ||
  fail "the consumer built with pkg-config exited with $?"

if [[ $shared == yes ]]; then
  step "pkg-config of the shared libraries with no other package's .pc reachable"
  PKG_CONFIG_LIBDIR= PKG_CONFIG_PATH=$pc_dir pkg-config --print-errors --cflags --libs \
    xact-coordinator xact-objectstore >/dev/null ||
    fail "xact-coordinator.pc or xact-objectstore.pc requires a private dependency's .pc (libisal?)"
  echo "resolved"
fi

printf '\nconsumer: all checks passed\n'
