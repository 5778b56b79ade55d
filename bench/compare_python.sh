#!/bin/bash
# xact (C++) against Python's `transaction` package on the same workloads, one after the other.
#
#   bench/compare_python.sh [path/to/xact_bench_coordinator]
#
# Runs the C++ binary (its baselines included) with --benchmark_format=json, then
# bench/python_transaction_bench.py with the system /usr/bin/python3, and prints one markdown
# table row per workload: xact rate, baseline rate, xact/baseline time ratio, xact's time over
# the baseline's (ns per transaction), Python rate, C++/Python rate ratio. Rates are
# transactions per CPU second of the fastest repetition (STAT=min, the default: on a shared
# machine, the least disturbed one) or of the median one (STAT=median). The repetitions of
# each side are interleaved over its workloads.
#
# Environment: BUILD_DIR (default <repo>/build; the binary is $BUILD_DIR/bench/...),
# PYTHON (default /usr/bin/python3), REPETITIONS (default 10), MIN_TIME (CPU seconds per
# repetition, default 0.2), STAT (min or median), FILTER (only workloads whose name contains
# it), KEEP (a directory to keep both raw JSON outputs in).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${BUILD_DIR:-$here/../build}/bench/xact_bench_coordinator}
python=${PYTHON:-/usr/bin/python3}
repetitions=${REPETITIONS:-10}
min_time=${MIN_TIME:-0.2}
filter=${FILTER:-}
stat=${STAT:-min}
case $stat in
  min|median) ;;
  *) echo "compare_python.sh: STAT must be min or median, not '$stat'" >&2; exit 2 ;;
esac

if [[ ! -x $bin ]]; then
  echo "compare_python.sh: no benchmark binary at $bin; build the xact_bench_coordinator target" \
       "(or pass its path)" >&2
  exit 2
fi
if ! "$python" -c 'import transaction' 2>/dev/null; then
  echo "compare_python.sh: $python cannot import transaction;" \
       "apt-get install -y --no-upgrade python3-transaction" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The C++ filter keeps every baseline (they are cheap): they give the ratios.
cpp_filter=.
if [[ -n $filter ]]; then
  cpp_filter="$(printf '%s' "$filter" | sed 's/[][\.*^$+?(){}|]/\\&/g')|^BM_Baseline_"
fi

# Load from other processes skews CPU time too (shared caches and cores): it is reported, and
# the repetitions of both sides are interleaved so that a burst spreads over every workload.
read -r load_before _ </proc/loadavg
echo "== C++: $bin" >&2
"$bin" --benchmark_format=json --benchmark_filter="$cpp_filter" \
  --benchmark_repetitions="$repetitions" --benchmark_report_aggregates_only=true \
  --benchmark_enable_random_interleaving=true \
  --benchmark_min_time="$min_time" >"$out/cpp.json"

echo "== Python: $python $here/python_transaction_bench.py" >&2
"$python" "$here/python_transaction_bench.py" --min-time "$min_time" \
  --repetitions "$repetitions" --filter "$filter" >"$out/python.json"
read -r load_after _ </proc/loadavg

if [[ -n ${KEEP:-} ]]; then
  mkdir -p "$KEEP"
  cp "$out/cpp.json" "$out/python.json" "$KEEP/"
fi

"$python" - "$out/cpp.json" "$out/python.json" "$load_before" "$load_after" "$stat" <<'EOF'
import json
import sys

cpp = json.load(open(sys.argv[1]))
py = json.load(open(sys.argv[2]))
stat = sys.argv[5]


def workload(run_name):
    # Repetition and timing settings are not part of the workload's name.
    parts = run_name.split('/')
    return '/'.join(p for p in parts if not p.startswith(('repeats:', 'min_time:', 'iterations:')))


# The chosen aggregate of the C++ repetitions (a single run has none: take the run itself).
cpp_runs = {}
for b in cpp['benchmarks']:
    if b.get('error_occurred'):
        print('C++ %s failed: %s' % (b['name'], b.get('error_message')), file=sys.stderr)
        continue
    if b.get('run_type') == 'aggregate' and b.get('aggregate_name') != stat:
        continue
    cpp_runs[workload(b['run_name'])] = b

seconds = {'ns': 1e-9, 'us': 1e-6, 'ms': 1e-3, 's': 1.0}


def cpp_rate(b):
    # From the CPU time: a counter's `min` aggregate is the lowest rate, not the fastest run's.
    return 1.0 / (b['cpu_time'] * seconds[b['time_unit']])


baseline_of = {'BM_Commit': 'BM_Baseline_Commit', 'BM_Retry': 'BM_Baseline_Retry'}
py_rates = {b['name']: b['best_rate' if stat == 'min' else 'rate'] for b in py['benchmarks']}

ctx = cpp['context']
print('Host %s, %d CPUs at %.0f MHz (libbenchmark built as %s); Python %s, transaction %s' % (
    ctx.get('host_name', '?'), ctx.get('num_cpus', 0), ctx.get('mhz_per_cpu', 0),
    ctx.get('library_build_type', '?'), py['context']['python_version'],
    py['context']['transaction_version']))
print('Rates: transactions per CPU second, %s of %s repetitions; 1-minute load average '
      '%s before, %s after.' % ('fastest' if stat == 'min' else 'median',
                                py['context']['repetitions'], sys.argv[3], sys.argv[4]))
print()
header = ('workload', 'xact C++ txn/s', 'baseline txn/s', 'xact/baseline time',
          'xact overhead ns/txn', 'Python txn/s', 'C++/Python rate')


def order(name):
    # Families in a fixed order, then hooks, then participants.
    family, _, args = name.partition('/')
    params = dict(a.split(':', 1) for a in args.split('/') if ':' in a)
    return (family, int(params.get('hooks', 0)), int(params.get('participants', 0)))


rows = []
for name, b in sorted(cpp_runs.items(), key=lambda kv: order(kv[0])):
    family = name.split('/')[0]
    if family.startswith('BM_Baseline'):
        continue
    args = name[len(family):]
    base = cpp_runs.get(baseline_of.get(family.rsplit('_', 1)[0], '') + args)
    rate = cpp_rate(b)
    base_rate = cpp_rate(base) if base else None
    ratio = b.get('ratio_to_baseline') or (base_rate / rate if base_rate else None)
    py_rate = py_rates.get(name)
    rows.append((
        name,
        '{:,.0f}'.format(rate),
        '{:,.0f}'.format(base_rate) if base_rate else '-',
        '%.1f' % ratio if ratio else '-',
        '%.0f' % (1e9 / rate - 1e9 / base_rate) if base_rate else '-',
        '{:,.0f}'.format(py_rate) if py_rate else '-',
        '%.1f' % (rate / py_rate) if py_rate else '-',
    ))
widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]


def line(cells):
    return '| ' + ' | '.join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))) + ' |'


print(line(header))
print('|' + '|'.join('-' * (w + 1) + (':' if i else '-') for i, w in enumerate(widths)) + '|')
for r in rows:
    print(line(r))
EOF
