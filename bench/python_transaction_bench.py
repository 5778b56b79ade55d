#!/usr/bin/python3
"""The workloads of bench/coordinator_bench.cpp, run with Python's `transaction` package.

Run with the system interpreter and Debian's python3-transaction:

    /usr/bin/python3 bench/python_transaction_bench.py [--min-time 0.5] [--repetitions 3]

Prints JSON on stdout: {"context": {...}, "benchmarks": [{"name", "rate", ...}]}, one entry
per workload, named like the C++ benchmarks so that bench/compare_python.sh can pair them:

    BM_Commit_Explicit/participants:N/hooks:H   TransactionManager(explicit=True)
    BM_Commit_Thread/participants:N/hooks:H     transaction.manager (thread-bound)
    BM_Retry_Explicit/participants:N            `for attempt in tm.attempts(3): with attempt:`
    BM_Retry_Thread/participants:N              every 10th transaction's first attempt raises
                                                a TransientError after the joins

Each workload's iteration count is calibrated to --min-time CPU seconds, then the
repetitions go round-robin over the workloads. `rate` is transactions per CPU second
(time.process_time, like Google Benchmark's items_per_second), the median of the
repetitions; `best_rate` the rate of the fastest repetition (the one least disturbed by
other processes); `wall_rate` the median by wall clock.
"""

import argparse
import json
import platform
import statistics
import sys
import time

import transaction
import transaction.interfaces
from zope.interface import implementer

CONFLICT_EVERY = 10  # every 10th transaction fails its first attempt: 10% of first attempts


@implementer(transaction.interfaces.IDataManager)
class NoopDataManager(object):
    """Does nothing in each call and votes yes (tpc_vote returns without raising)."""

    def __init__(self, name, transaction_manager):
        self._key = name
        self.transaction_manager = transaction_manager

    def abort(self, txn):
        pass

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        pass

    def tpc_finish(self, txn):
        pass

    def tpc_abort(self, txn):
        pass

    def sortKey(self):
        return self._key


class BenchmarkConflict(transaction.interfaces.TransientError):
    """The retryable error of the retry workload (xact::ConflictError on the C++ side)."""


def make_data_managers(n, tm):
    return [NoopDataManager('noop:%d' % i, tm) for i in range(n)]


def commit_workload(tm, participants, hooks):
    dms = make_data_managers(participants, tm)
    calls = [0]

    def before_commit():
        calls[0] += 1

    def after_commit(committed):
        calls[0] += committed

    def run(iterations):
        for _ in range(iterations):
            txn = tm.begin()
            for dm in dms:
                txn.join(dm)
            if hooks:
                txn.addBeforeCommitHook(before_commit)
                txn.addAfterCommitHook(after_commit)
            tm.commit()

    def check(iterations):
        if hooks and calls[0] != 2 * iterations:
            raise AssertionError('the hooks did not run once each per transaction')
        calls[0] = 0

    return run, check


def retry_workload(tm, participants):
    dms = make_data_managers(participants, tm)
    state = {'index': 0}

    def run(iterations):
        index = state['index']
        for _ in range(iterations):
            conflict = index % CONFLICT_EVERY == 0
            index += 1
            attempt_no = 0
            for attempt in tm.attempts(3):
                with attempt as txn:
                    attempt_no += 1
                    for dm in dms:
                        txn.join(dm)
                    if conflict and attempt_no == 1:
                        raise BenchmarkConflict('benchmark conflict')
            if attempt_no != (2 if conflict else 1):
                raise AssertionError('unexpected number of attempts: %d' % attempt_no)
        state['index'] = index

    def check(iterations):
        pass

    return run, check


def calibrate(run, check, min_time):
    """Like Google Benchmark: grows the iteration count until one batch takes min_time of CPU
    time. Returns that count."""
    iterations = 1
    while True:
        start = time.process_time()
        run(iterations)
        spent = time.process_time() - start
        check(iterations)
        if spent >= min_time or iterations >= 1 << 30:
            return iterations
        if spent <= 0:
            iterations *= 10
        else:
            iterations = max(iterations + 1,
                             int(iterations * min(10.0, 1.4 * min_time / spent)))


def timed_batch(run, check, iterations):
    """Returns (CPU seconds, wall seconds) of one batch."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run(iterations)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    check(iterations)
    return cpu, wall


def workloads():
    explicit = transaction.TransactionManager(explicit=True)
    thread = transaction.manager
    for name, tm in (('Explicit', explicit), ('Thread', thread)):
        for hooks in (0, 1):
            for participants in (0, 1, 3):
                yield ('BM_Commit_%s/participants:%d/hooks:%d' % (name, participants, hooks),
                       lambda tm=tm, p=participants, h=hooks: commit_workload(tm, p, h))
        for participants in (0, 1, 3):
            yield ('BM_Retry_%s/participants:%d' % (name, participants),
                   lambda tm=tm, p=participants: retry_workload(tm, p))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--min-time', type=float, default=0.5,
                        help='CPU seconds per repetition (default 0.5)')
    parser.add_argument('--repetitions', type=int, default=3,
                        help='timed repetitions per workload; the median is reported')
    parser.add_argument('--filter', default='',
                        help='run only workloads whose name contains this text')
    args = parser.parse_args()

    try:
        from importlib.metadata import version
        transaction_version = version('transaction')
    except Exception:  # pragma: no cover - metadata missing from the Debian package
        transaction_version = 'unknown'

    out = {
        'context': {
            'python': sys.executable,
            'python_version': platform.python_version(),
            'transaction_version': transaction_version,
            'transaction_module': transaction.__file__,
            'min_time': args.min_time,
            'repetitions': args.repetitions,
            'rate_unit': 'transactions per CPU second',
        },
        'benchmarks': [],
    }
    selected = []
    for name, make in workloads():
        if args.filter in name:
            run, check = make()
            selected.append((name, run, check, calibrate(run, check, args.min_time)))
    # Repetitions go round-robin over the workloads, so that a burst of load from other
    # processes spreads over all of them instead of skewing one.
    timings = {name: [] for name, _, _, _ in selected}
    for _ in range(args.repetitions):
        for name, run, check, iterations in selected:
            timings[name].append(timed_batch(run, check, iterations))
    for name, _, _, iterations in selected:
        rates = [iterations / cpu for cpu, _ in timings[name] if cpu > 0]
        wall_rates = [iterations / wall for _, wall in timings[name] if wall > 0]
        out['benchmarks'].append({
            'name': name,
            'iterations': iterations,
            'repetitions': len(rates),
            'rate': statistics.median(rates),
            'best_rate': max(rates),
            'wall_rate': statistics.median(wall_rates),
            'rates': rates,
        })
        print('%-45s %12.0f txn/s' % (name, out['benchmarks'][-1]['rate']), file=sys.stderr)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
