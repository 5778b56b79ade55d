#!/usr/bin/python3
"""The reference traces for tests/conformance/test_zope_traces.cpp.

Runs each scenario with the Zope `transaction` package (Debian python3-transaction, run with
the system /usr/bin/python3) and prints one line per scenario:

    <scenario>: <event> <event> ...

An event is "<dm>.<call>" for a data manager's call (a, b, c; sortKey = the name), or
"sync.<call>" for the synchronizer, "hook.<name>" for a hook, "app.<what>" for what the
application saw. The C++ test runs the same scenarios through xact and compares.

Usage: zope_traces.py [scenario ...]    (default: every scenario)
"""
import logging
import sys

import transaction
from transaction.interfaces import AlreadyInTransaction, NoTransaction, TransientError


class Failure(Exception):
    """What a data manager or hook throws when told to fail."""


class Log:
    def __init__(self):
        self.events = []

    def add(self, event):
        self.events.append(event)


class DataManager:
    """Records every call; fails at `fail_at` (a call name) when told to."""

    def __init__(self, name, log, fail_at=None, retry=False):
        self.name = name
        self.log = log
        self.fail_at = fail_at
        self.fail_times = 1
        self.retry = retry

    def _call(self, call):
        self.log.add("%s.%s" % (self.name, call))
        if self.fail_at == call and self.fail_times > 0:
            self.fail_times -= 1
            raise Failure("%s.%s failed" % (self.name, call))

    def sortKey(self):
        return self.name

    def abort(self, txn):
        self._call("abort")

    def tpc_begin(self, txn):
        self._call("tpc_begin")

    def commit(self, txn):
        self._call("commit")

    def tpc_vote(self, txn):
        self._call("tpc_vote")

    def tpc_finish(self, txn):
        self._call("tpc_finish")

    def tpc_abort(self, txn):
        self._call("tpc_abort")

    def savepoint(self):
        self._call("savepoint")
        return _Savepoint(self)

    def should_retry(self, error):
        return self.retry and isinstance(error, Failure)


class NoSavepointDataManager(DataManager):
    """A data manager without savepoint support."""

    def __getattribute__(self, name):
        if name == "savepoint":
            raise AttributeError(name)
        return object.__getattribute__(self, name)


class _Savepoint:
    def __init__(self, dm):
        self.dm = dm

    def rollback(self):
        self.dm.log.add("%s.savepoint_rollback" % self.dm.name)


class Synchronizer:
    def __init__(self, log):
        self.log = log

    def newTransaction(self, txn):
        self.log.add("sync.new_transaction")

    def beforeCompletion(self, txn):
        self.log.add("sync.before_completion")

    def afterCompletion(self, txn):
        self.log.add("sync.after_completion")


def add_hooks(txn, log, abort_hooks=True):
    txn.addBeforeCommitHook(lambda: log.add("hook.before_commit"))
    txn.addAfterCommitHook(lambda ok: log.add("hook.after_commit:%s" % str(ok).lower()))
    if abort_hooks:
        txn.addBeforeAbortHook(lambda: log.add("hook.before_abort"))
        txn.addAfterAbortHook(lambda: log.add("hook.after_abort"))


def commit_and_note(tm, log):
    """commit(); a failure is noted and followed by abort(), as an application does."""
    try:
        tm.commit()
        log.add("app.committed")
    except Exception:  # the trace says what happened
        log.add("app.commit_failed")
        tm.abort()
        log.add("app.aborted")


def savepoint_rollback_and_commit(tm, log, txn, optimistic=False):
    """A savepoint, a rollback to it (a failure noted), then commit()."""
    sp = txn.savepoint(optimistic=optimistic)
    log.add("app.savepoint")
    try:
        sp.rollback()
        log.add("app.rolled_back")
    except Exception:
        log.add("app.rollback_failed")
    commit_and_note(tm, log)


def abort_and_note(tm, log):
    """abort(); what it raises is noted."""
    try:
        tm.abort()
        log.add("app.aborted")
    except Exception:
        log.add("app.abort_failed")


def commit_another(tm, log):
    """The next transaction: c joins and it commits (it must be unaffected)."""
    txn = tm.begin()
    txn.join(DataManager("c", log))
    commit_and_note(tm, log)


# --- scenarios: each takes a fresh manager (a synchronizer registered) and the log -------------

def commit(tm, log):
    txn = tm.begin()
    add_hooks(txn, log, abort_hooks=False)
    txn.join(DataManager("b", log))
    txn.join(DataManager("a", log))
    commit_and_note(tm, log)


def commit_one(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    commit_and_note(tm, log)


def commit_none(tm, log):
    txn = tm.begin()
    add_hooks(txn, log, abort_hooks=False)
    commit_and_note(tm, log)


def abort(tm, log):
    txn = tm.begin()
    add_hooks(txn, log, abort_hooks=False)
    txn.join(DataManager("b", log))
    txn.join(DataManager("a", log))
    tm.abort()
    log.add("app.aborted")


def abort_with_abort_hooks(tm, log):
    txn = tm.begin()
    add_hooks(txn, log)
    txn.join(DataManager("b", log))
    txn.join(DataManager("a", log))
    tm.abort()
    log.add("app.aborted")


def begin_aborts_open(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    tm.begin()
    log.add("app.begun")
    tm.abort()


def _failing(step, who):
    def scenario(tm, log):
        txn = tm.begin()
        add_hooks(txn, log, abort_hooks=False)
        txn.join(DataManager("b", log, fail_at=step if who == "b" else None))
        txn.join(DataManager("a", log, fail_at=step if who == "a" else None))
        commit_and_note(tm, log)
    return scenario


def before_commit_hook_fails(tm, log):
    txn = tm.begin()
    txn.join(DataManager("b", log))
    txn.join(DataManager("a", log))

    def hook():
        log.add("hook.before_commit")
        raise Failure("hook failed")
    txn.addBeforeCommitHook(hook)
    commit_and_note(tm, log)


def hook_joins(tm, log):
    txn = tm.begin()
    txn.join(DataManager("b", log))

    def hook():
        log.add("hook.before_commit")
        txn.join(DataManager("a", log))
    txn.addBeforeCommitHook(hook)
    commit_and_note(tm, log)


def doomed(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    txn.doom()
    commit_and_note(tm, log)


def savepoint_rollback(tm, log):
    txn = tm.begin()
    txn.join(DataManager("b", log))
    txn.join(DataManager("a", log))
    sp = txn.savepoint()
    log.add("app.savepoint")
    sp.rollback()
    log.add("app.rolled_back")
    commit_and_note(tm, log)


def savepoint_rollback_later_joiners(tm, log):
    txn = tm.begin()
    txn.join(DataManager("b", log))
    sp = txn.savepoint()
    log.add("app.savepoint")
    txn.join(DataManager("c", log))
    txn.join(DataManager("a", log))
    sp.rollback()
    log.add("app.rolled_back")
    commit_and_note(tm, log)


def hooks_add_hooks(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))

    def before_commit():
        log.add("hook.before_commit")
        txn.addBeforeCommitHook(lambda: log.add("hook.before_commit_added"))

    def after_commit(ok):
        log.add("hook.after_commit:%s" % str(ok).lower())
        txn.addAfterCommitHook(lambda ok: log.add("hook.after_commit_added:%s" % str(ok).lower()))
    txn.addBeforeCommitHook(before_commit)
    txn.addAfterCommitHook(after_commit)
    commit_and_note(tm, log)


def abort_hooks_add_hooks(tm, log):
    txn = tm.begin()

    def before_abort():
        log.add("hook.before_abort")
        txn.addBeforeAbortHook(lambda: log.add("hook.before_abort_added"))

    def after_abort():
        log.add("hook.after_abort")
        txn.addAfterAbortHook(lambda: log.add("hook.after_abort_added"))
    txn.addBeforeAbortHook(before_abort)
    txn.addAfterAbortHook(after_abort)
    tm.abort()
    log.add("app.aborted")


def abort_hooks_on_failed_commit(tm, log):
    txn = tm.begin()
    add_hooks(txn, log)
    txn.join(DataManager("b", log, fail_at="tpc_vote"))
    txn.join(DataManager("a", log))
    commit_and_note(tm, log)


def savepoint_nested(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    sp1 = txn.savepoint()
    sp2 = txn.savepoint()
    log.add("app.savepoints")
    sp1.rollback()
    log.add("app.rolled_back")
    try:
        sp2.rollback()
        log.add("app.rolled_back")
    except Exception:
        log.add("app.invalid_savepoint")
    sp1.rollback()  # still valid: a rollback to it invalidates only the later ones
    log.add("app.rolled_back")
    commit_and_note(tm, log)


class Synchronizer2(Synchronizer):
    def newTransaction(self, txn):
        self.log.add("sync2.new_transaction")

    def beforeCompletion(self, txn):
        self.log.add("sync2.before_completion")

    def afterCompletion(self, txn):
        self.log.add("sync2.after_completion")


def synchronizer_registered_in_transaction(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    sync2 = Synchronizer2(log)
    tm.registerSynch(sync2)
    log.add("app.registered")
    commit_and_note(tm, log)
    tm.begin()
    tm.abort()
    tm.unregisterSynch(sync2)


def synchronizer_unregistered_in_transaction(tm, log):
    sync2 = Synchronizer2(log)
    tm.registerSynch(sync2)
    txn = tm.begin()
    txn.join(DataManager("a", log))
    tm.unregisterSynch(sync2)
    log.add("app.unregistered")
    commit_and_note(tm, log)


def savepoint_unsupported(tm, log):
    txn = tm.begin()
    txn.join(DataManager("b", log))
    txn.join(NoSavepointDataManager("a", log))
    try:
        txn.savepoint()
        log.add("app.savepoint")
    except Exception:
        log.add("app.savepoint_refused")
    commit_and_note(tm, log)


def savepoint_optimistic(tm, log):
    """An optimistic savepoint over a manager without savepoints: taken; its rollback fails."""
    txn = tm.begin()
    txn.join(DataManager("b", log))
    txn.join(NoSavepointDataManager("a", log))
    savepoint_rollback_and_commit(tm, log, txn, optimistic=True)


def join_twice(tm, log):
    txn = tm.begin()
    a = DataManager("a", log)
    txn.join(a)
    txn.join(a)
    commit_and_note(tm, log)


def retry_transient(tm, log):
    attempts = [0]

    def work():
        attempts[0] += 1
        log.add("app.attempt")
        tm.get().join(DataManager("a", log))
        if attempts[0] == 1:
            raise TransientError("try again")
    tm.run(work, 3)
    log.add("app.committed")


def retry_vote_conflict(tm, log):
    dms = {}

    def work():
        log.add("app.attempt")
        if "b" not in dms:  # b's first vote fails; b says that is worth a retry
            dms["b"] = DataManager("b", log, fail_at="tpc_vote", retry=True)
        tm.get().join(dms["b"])
        tm.get().join(DataManager("a", log))
    tm.run(work, 3)
    log.add("app.committed")


def two_commits(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    commit_and_note(tm, log)
    txn = tm.begin()
    txn.join(DataManager("b", log))
    commit_and_note(tm, log)


def doomed_abort(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))
    txn.doom()
    tm.abort()
    log.add("app.aborted")


def _after_failed_commit(what):
    """A failed commit, then the application tries `what` before it aborts."""
    def scenario(tm, log):
        txn = tm.begin()
        txn.join(DataManager("a", log, fail_at="tpc_vote"))
        try:
            tm.commit()
        except Exception:
            log.add("app.commit_failed")
        try:
            if what == "commit":
                tm.commit()
            elif what == "join":
                txn.join(DataManager("b", log))
            else:
                txn.savepoint()
            log.add("app.%s_accepted" % what)
        except Exception:
            log.add("app.%s_refused" % what)
        tm.abort()
        log.add("app.aborted")
    return scenario


class FailingSavepointDataManager(DataManager):
    """Its savepoints' rollback fails."""

    def savepoint(self):
        self._call("savepoint")
        return _FailingSavepoint(self)


class _FailingSavepoint(_Savepoint):
    def rollback(self):
        self.dm.log.add("%s.savepoint_rollback" % self.dm.name)
        raise Failure("%s.savepoint_rollback failed" % self.dm.name)


def savepoint_rollback_fails(tm, log):
    txn = tm.begin()
    txn.join(FailingSavepointDataManager("a", log))
    txn.join(DataManager("b", log))
    savepoint_rollback_and_commit(tm, log, txn)


def after_commit_hook_fails(tm, log):
    txn = tm.begin()
    txn.join(DataManager("a", log))

    def failing(ok):
        log.add("hook.after_commit_failing:%s" % str(ok).lower())
        raise Failure("hook failed")
    txn.addAfterCommitHook(failing)
    txn.addAfterCommitHook(lambda ok: log.add("hook.after_commit:%s" % str(ok).lower()))
    commit_and_note(tm, log)


def attempts_retry(tm, log):
    """tm.attempts(): the first attempt's vote fails and the manager says retry."""
    tries = [0]
    for attempt in tm.attempts(3):
        with attempt as txn:
            tries[0] += 1
            log.add("app.attempt")
            txn.join(DataManager("a", log, fail_at="tpc_vote" if tries[0] == 1 else None,
                                 retry=True))
    log.add("app.committed")


def _attempts_give_up(retry):
    def scenario(tm, log):
        """tm.attempts(2): every vote fails; retryable or not, the error reaches the caller."""
        try:
            for attempt in tm.attempts(2):
                with attempt as txn:
                    log.add("app.attempt")
                    dm = DataManager("a", log, fail_at="tpc_vote", retry=retry)
                    txn.join(dm)
            log.add("app.committed")
        except Failure:
            log.add("app.gave_up")
    return scenario


def hook_dooms(tm, log):
    """A before-commit hook dooms the transaction."""
    txn = tm.begin()
    txn.join(DataManager("a", log))

    def hook():
        log.add("hook.before_commit")
        txn.doom()
    txn.addBeforeCommitHook(hook)
    commit_and_note(tm, log)


def tpc_abort_fails(tm, log):
    """b votes no; a's tpc_abort then fails too."""
    txn = tm.begin()
    add_hooks(txn, log, abort_hooks=False)
    txn.join(DataManager("b", log, fail_at="tpc_vote"))
    txn.join(DataManager("a", log, fail_at="tpc_abort"))
    commit_and_note(tm, log)


def abort_fails(tm, log):
    """a's abort fails in the application's abort()."""
    txn = tm.begin()
    add_hooks(txn, log)
    txn.join(DataManager("b", log))
    txn.join(DataManager("a", log, fail_at="abort"))
    abort_and_note(tm, log)
    commit_another(tm, log)


def _abort_hook_fails(before):
    def scenario(tm, log):
        txn = tm.begin()
        txn.join(DataManager("b", log))
        txn.join(DataManager("a", log))
        add = txn.addBeforeAbortHook if before else txn.addAfterAbortHook
        kind = "before_abort" if before else "after_abort"

        def failing():
            log.add("hook.%s_failing" % kind)
            raise Failure("hook failed")
        add(failing)
        add(lambda: log.add("hook.%s" % kind))
        abort_and_note(tm, log)
        commit_another(tm, log)
    return scenario


class FailingSynchronizer(Synchronizer2):
    """sync2, whose callback `fail_at` fails once."""

    def __init__(self, log, fail_at):
        Synchronizer2.__init__(self, log)
        self.fail_at = fail_at

    def _maybe_fail(self, call):
        if self.fail_at == call:
            self.fail_at = None
            raise Failure("sync2.%s failed" % call)

    def newTransaction(self, txn):
        Synchronizer2.newTransaction(self, txn)
        self._maybe_fail("new_transaction")

    def beforeCompletion(self, txn):
        Synchronizer2.beforeCompletion(self, txn)
        self._maybe_fail("before_completion")

    def afterCompletion(self, txn):
        Synchronizer2.afterCompletion(self, txn)
        self._maybe_fail("after_completion")


def _synchronizer_fails(call):
    """sync2 fails once at `call`; two transactions: one committed, then one aborted."""
    def scenario(tm, log):
        sync2 = FailingSynchronizer(log, call)
        tm.registerSynch(sync2)
        try:
            txn = tm.begin()
            log.add("app.begun")
        except Exception:
            log.add("app.begin_failed")
            txn = tm.get()
        add_hooks(txn, log)
        txn.join(DataManager("b", log))
        txn.join(DataManager("a", log))
        commit_and_note(tm, log)
        txn = tm.begin()
        txn.join(DataManager("c", log))
        abort_and_note(tm, log)
        tm.unregisterSynch(sync2)
    return scenario


def explicit(tm, log):
    """An explicit manager (its own, with the synchronizer): nothing without begin()."""
    etm = transaction.TransactionManager(explicit=True)
    sync = Synchronizer(log)
    etm.registerSynch(sync)

    def attempt(what, call):
        try:
            call()
            log.add("app.%s" % what)
        except (NoTransaction, AlreadyInTransaction):
            log.add("app.%s_refused" % what)
    attempt("get", etm.get)
    attempt("commit", etm.commit)
    attempt("abort", etm.abort)
    txn = etm.begin()
    txn.join(DataManager("a", log))
    attempt("begin", etm.begin)
    commit_and_note(etm, log)
    attempt("get", etm.get)
    etm.begin()
    attempt("abort", etm.abort)
    attempt("abort", etm.abort)


SCENARIOS = {
    "commit": commit,
    "commit_one": commit_one,
    "commit_none": commit_none,
    "abort": abort,
    "abort_with_abort_hooks": abort_with_abort_hooks,
    "begin_aborts_open": begin_aborts_open,
    "tpc_begin_fails": _failing("tpc_begin", "b"),
    "commit_fails": _failing("commit", "a"),
    "vote_fails": _failing("tpc_vote", "b"),
    "finish_fails": _failing("tpc_finish", "a"),
    "before_commit_hook_fails": before_commit_hook_fails,
    "hook_joins": hook_joins,
    "doomed": doomed,
    "savepoint_rollback": savepoint_rollback,
    "savepoint_rollback_later_joiners": savepoint_rollback_later_joiners,
    "hooks_add_hooks": hooks_add_hooks,
    "abort_hooks_add_hooks": abort_hooks_add_hooks,
    "abort_hooks_on_failed_commit": abort_hooks_on_failed_commit,
    "savepoint_nested": savepoint_nested,
    "synchronizer_registered_in_transaction": synchronizer_registered_in_transaction,
    "synchronizer_unregistered_in_transaction": synchronizer_unregistered_in_transaction,
    "savepoint_unsupported": savepoint_unsupported,
    "join_twice": join_twice,
    "retry_transient": retry_transient,
    "retry_vote_conflict": retry_vote_conflict,
    "two_commits": two_commits,
    "doomed_abort": doomed_abort,
    "commit_after_failed_commit": _after_failed_commit("commit"),
    "join_after_failed_commit": _after_failed_commit("join"),
    "savepoint_after_failed_commit": _after_failed_commit("savepoint"),
    "savepoint_rollback_fails": savepoint_rollback_fails,
    "after_commit_hook_fails": after_commit_hook_fails,
    "attempts_retry": attempts_retry,
    "attempts_not_retryable": _attempts_give_up(False),
    "attempts_exhausted": _attempts_give_up(True),
    "hook_dooms": hook_dooms,
    "tpc_abort_fails": tpc_abort_fails,
    "abort_fails": abort_fails,
    "before_abort_hook_fails": _abort_hook_fails(True),
    "after_abort_hook_fails": _abort_hook_fails(False),
    "synchronizer_new_transaction_fails": _synchronizer_fails("new_transaction"),
    "synchronizer_before_completion_fails": _synchronizer_fails("before_completion"),
    "synchronizer_after_completion_fails": _synchronizer_fails("after_completion"),
    "explicit": explicit,
    "savepoint_optimistic": savepoint_optimistic,
}


def main(argv):
    # The package logs what it swallows (a failing after-commit hook): not part of a trace.
    logging.basicConfig(handlers=[logging.NullHandler()])
    names = argv[1:] or list(SCENARIOS)
    for name in names:
        if name not in SCENARIOS:
            sys.stderr.write("zope_traces.py: no scenario %r (have: %s)\n"
                             % (name, ", ".join(SCENARIOS)))
            return 2
        log = Log()
        tm = transaction.TransactionManager()
        sync = Synchronizer(log)  # the manager holds synchronizers weakly
        tm.registerSynch(sync)
        SCENARIOS[name](tm, log)
        print("%s: %s" % (name, " ".join(log.events)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
