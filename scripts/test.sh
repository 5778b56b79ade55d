#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. install what is missing (scripts/install-deps.sh test)
#   2. start throwaway PostgreSQL 15 and MariaDB 10.11 servers in a private temporary
#      directory (scripts/servers.sh) and export their XACT_* settings
#   3. build/       RelWithDebInfo: build, ctest (every label)
#   4. build-asan/  AddressSanitizer + UBSan: build, ctest -LE packaging
#   5. build-tsan/  ThreadSanitizer: build, ctest -LE packaging
# The servers are stopped and their directory removed on every exit, failures included.
#
# Environment:
#   XACT_SKIP_SANITIZERS=1  only step 3
#   XACT_JOBS=N             build and test parallelism (default 2)
#   XACT_TEST_TIMEOUT=S     ctest timeout per test without its own (default 600)
#   CI=true                 passed through: tests then fail, not skip, when a server or tool
#                           they need is missing; here, a server that does not start fails.
# Functions below are called through run_step and trap, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
jobs=${XACT_JOBS:-2}
timeout=${XACT_TEST_TIMEOUT:-600}

results=()   # "PASS|FAIL|SKIP  step  (seconds)"
failed=0
tests_passed=0
tests_failed=0

banner() { printf '\n========== %s ==========\n' "$*"; }

# run_step <name> <command...>: runs it, records the result, never exits on failure.
run_step() {
  local name=$1 start status
  shift
  banner "$name"
  start=$SECONDS
  # In an if condition errexit is off for the whole command, shell functions included.
  if "$@"; then
    status=0
  else
    status=$?
  fi
  if [[ $status -eq 0 ]]; then
    results+=("PASS  $name  ($((SECONDS - start)) s)")
  else
    results+=("FAIL  $name  (exit $status, $((SECONDS - start)) s)")
    failed=1
  fi
  return "$status"
}

skip_step() {
  results+=("SKIP  $1  ($2)")
}

# run_ctest <build dir> <ctest args...>: ctest, adding its counts to the totals.
run_ctest() {
  local dir=$1 log status
  shift
  log=$(mktemp)
  "${ctest_prefix[@]}" ctest --test-dir "$dir" --output-on-failure -j "$jobs" \
    --timeout "$timeout" --no-tests=error "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  local line total failures
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)
  rm -f "$log"
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failures=${BASH_REMATCH[1]}
    total=${BASH_REMATCH[2]}
    tests_failed=$((tests_failed + failures))
    tests_passed=$((tests_passed + total - failures))
  fi
  return "$status"
}

print_summary() {
  banner "summary"
  local r
  for r in "${results[@]}"; do
    echo "  $r"
  done
  echo
  if [[ $failed -eq 0 ]]; then
    echo "test.sh: all steps passed"
  else
    echo "test.sh: FAILED (see the FAIL lines above)"
  fi
  # The one closing line a reader (or a CI log scanner) needs; counts are over all ctest runs.
  echo "tests: $tests_passed passed, $tests_failed failed"
}

# --- 1. dependencies ------------------------------------------------------------------------
banner "dependencies (scripts/install-deps.sh test)"
bash scripts/install-deps.sh test </dev/null

# --- 2. servers -----------------------------------------------------------------------------
servers_dir=$(mktemp -d "${TMPDIR:-/tmp}/xact-servers.XXXXXX")
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -d $servers_dir ]]; then
    bash "$repo/scripts/servers.sh" stop "$servers_dir" >/dev/null 2>&1 ||
      echo "test.sh: warning: stopping the servers in $servers_dir failed" >&2
    rm -rf "$servers_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if run_step "servers (PostgreSQL + MariaDB)" bash scripts/servers.sh start "$servers_dir" </dev/null; then
  # shellcheck source=/dev/null
  source "$servers_dir/env.sh"
  echo "PostgreSQL on $XACT_PG_HOST:$XACT_PG_PORT, MariaDB on $XACT_MYSQL_HOST:$XACT_MYSQL_PORT"
elif [[ ${CI:-} == true ]]; then
  print_summary
  exit 1
else
  echo "test.sh: the servers did not start; the integration tests will skip" >&2
fi
if [[ -n ${CI:-} ]]; then
  export CI
  echo "CI=$CI"
fi

# --- 3-5. builds and tests ------------------------------------------------------------------
ctest_prefix=()

# test_config <label> <build dir> <ctest args> -- <cmake args...>
test_config() {
  local label=$1 dir=$2 ctest_args=$3
  shift 4
  if run_step "$label: configure" cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
    run_step "$label: build" cmake --build "$dir" -j "$jobs"; then
    # shellcheck disable=SC2086
    run_step "$label: ctest${ctest_args:+ $ctest_args}" run_ctest "$dir" $ctest_args || true
  else
    skip_step "$label: ctest" "the build failed"
  fi
}

# Debug information: line tables only (-g1). Backtraces and sanitizer reports keep file:line;
# full -g made compiling the tests about 1.5x slower (issue 16: CI must stay under 45 min).
lean_debug="-g1 -DNDEBUG"

# The adapters explicitly: scripts/demo.sh configures the same directory without them.
test_config "default" build "" -- -DXACT_WITH_POSTGRES=ON -DXACT_WITH_MYSQL=ON \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 $lean_debug"

if [[ ${XACT_SKIP_SANITIZERS:-0} == 1 ]]; then
  skip_step "asan, tsan" "XACT_SKIP_SANITIZERS=1"
else
  # -O1, as the sanitizers' documentation recommends: an ASan+UBSan test file compiled about
  # 2.4x faster at -O1 -g1 than at -O2 -g (measured on tests/sheets/test_sheets.cpp).
  sanitizer_args=(-DXACT_BUILD_BENCH=OFF -DXACT_BUILD_EXAMPLES=OFF
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 $lean_debug")

  export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  test_config "asan+ubsan" build-asan "-LE packaging" -- -DXACT_SANITIZE_ADDRESS=ON "${sanitizer_args[@]}"
  unset ASAN_OPTIONS UBSAN_OPTIONS

  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  # ThreadSanitizer of GCC 12 cannot map its shadow memory with more than 28 bits of mmap
  # randomization (newer kernels default to 32): run without address randomization there.
  rnd_bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
  if ((rnd_bits > 28)) && command -v setarch >/dev/null 2>&1; then
    ctest_prefix=(setarch "$(uname -m)" -R)
  fi
  test_config "tsan" build-tsan "-LE packaging" -- -DXACT_SANITIZE_THREAD=ON "${sanitizer_args[@]}"
  ctest_prefix=()
  unset TSAN_OPTIONS
fi

print_summary
exit "$failed"
