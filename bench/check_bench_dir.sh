#!/bin/sh
# Runs a benchmark binary with XACT_BENCH_DIR set to a directory that already holds the user's
# files (a sentinel file and a subdirectory named like the benchmark's old fixed ones), and fails
# unless they survive untouched and the benchmark left nothing behind: a benchmark works in a
# directory it created itself and removes only that (bench/bench_dir.hpp).
#   check_bench_dir.sh <benchmark binary> [benchmark arguments...]
set -eu
bin=$1
shift
user_dir=$(mktemp -d "${TMPDIR:-/tmp}/xact-bench-user-XXXXXX")
out=$(mktemp "${TMPDIR:-/tmp}/xact-bench-out-XXXXXX")
trap 'rm -rf "$user_dir" "$out"' EXIT
echo "the user's file" > "$user_dir/sentinel"
for d in log mysql-bench-log postgres-bench-log sqlite-bench file-storage-bench; do
  mkdir "$user_dir/$d"
  echo "the user's file" > "$user_dir/$d/sentinel"
done
before=$(cd "$user_dir" && find . | sort)

if ! XACT_BENCH_DIR=$user_dir "$bin" "$@" > "$out" 2>&1; then
  cat "$out"
  echo "FAIL: $bin exited with an error" >&2
  exit 1
fi

after=$(cd "$user_dir" && find . | sort)
if [ "$before" != "$after" ]; then
  echo "FAIL: $bin changed XACT_BENCH_DIR ($user_dir):" >&2
  echo "--- before" >&2; echo "$before" >&2
  echo "--- after" >&2; echo "$after" >&2
  exit 1
fi
for f in sentinel log/sentinel mysql-bench-log/sentinel postgres-bench-log/sentinel \
         sqlite-bench/sentinel file-storage-bench/sentinel; do
  if [ "$(cat "$user_dir/$f")" != "the user's file" ]; then
    echo "FAIL: $bin changed $user_dir/$f" >&2
    exit 1
  fi
done
echo "ok: $bin kept the user's files in XACT_BENCH_DIR and left nothing behind"
