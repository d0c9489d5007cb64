#!/usr/bin/env python3
"""The adversarial suite: starts the local stack with tokens required (and
the side processes some attacks need), runs every attack, prints one line
per attack, `PASS|FAIL  API<n>  name: detail`, then `N passed, N failed`,
and exits non-zero on any failure. Under CI=true an attack that cannot run
is a failure. README: "Adversarial suite".

    python3 security/run.py            (scripts/security-suite.sh wraps it)

Settings: PROFILE (debug by default, as the neighbouring steps), KEEP=1
keeps the scratch directory (logs, data) for a look after a failure."""

import os
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attacks_auth  # noqa: E402,F401  (each module registers its attacks)
import attacks_config  # noqa: E402,F401
import attacks_functions  # noqa: E402,F401
import attacks_objects  # noqa: E402,F401
import attacks_streams  # noqa: E402,F401
import stacks  # noqa: E402
from harness import ATTACKS, Fail, Processes, Report  # noqa: E402

# Which set-up each group of attacks needs before it runs.
NEEDS = {
    "main": ("main", "issuer"),
    "stream": ("main",),
    "failclosed": ("main",),
    "gateway": ("main",),
    "issuer": ("issuer",),
    "withdraw": ("issuer",),
    "load": ("load",),
    "limited": ("limited",),
    "squat": (),
    "pubkey": (),
}


class Setups:
    """Each set-up runs once, on its own thread; groups wait for theirs."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.done = {}
        self.errors = {}
        self.jobs = {
            "main": lambda: stacks.start_main_stack(ctx),
            "issuer": lambda: stacks.start_issuer_and_verifiers(ctx),
            "load": lambda: setattr(ctx, "identity_load", stacks.start_service(
                ctx, "identity-load", "identity", "identity_load", stacks.identity_env("identity_load"))),
            "limited": lambda: stacks.start_service(
                ctx, "identity-limited", "identity", "identity_limited",
                stacks.identity_env("identity_limited", RATE_LIMIT_SIGNIN_PER_MIN="5",
                                    IDENTITY_CLIENTS='[{"client_id":"c","client_secret":"c-secret-long-enough","scopes":[]}]')),
        }
        for name, job in self.jobs.items():
            self.done[name] = threading.Event()
            threading.Thread(target=self._run, args=(name, job), daemon=True).start()

    def _run(self, name, job):
        started = time.monotonic()
        try:
            job()
        except Exception as e:  # reported by every attack that needed it
            self.errors[name] = f"{name} set-up failed: {e}"
        self.ctx.figures[f"set-up {name} (s)"] = round(time.monotonic() - started, 1)
        self.done[name].set()

    def wait(self, names):
        for name in names:
            self.done[name].wait()
            if name in self.errors:
                raise Fail(self.errors[name])


def run_group(group, entries, setups, report, ctx):
    try:
        setups.wait(NEEDS[group])
    except Fail as e:
        for entry in entries:
            report.record(entry["risk"], entry["name"], "FAIL", str(e))
        return
    for entry in entries:
        report.run(entry, ctx)


def main():
    started = time.monotonic()
    if os.environ.get("SECURITY_BUILD", "1") != "0":
        stacks.build()
    procs = Processes()
    scratch = stacks.make_scratch()
    ctx = stacks.Context(procs, scratch)
    ctx.figures = {}
    report = Report()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        setups = Setups(ctx)
        groups = {}
        for entry in ATTACKS:
            groups.setdefault(entry["group"], []).append(entry)
        threads = [threading.Thread(target=run_group, args=(g, e, setups, report, ctx)) for g, e in groups.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        if ctx.issuer:
            ctx.issuer.stop()
        procs.stop_all()
        if os.environ.get("KEEP") == "1":
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    for name, value in dict(ctx.figures).items():
        print(f"figure  {name}: {value}")
    print(f"suite took {time.monotonic() - started:.0f}s")
    if report.skipped:
        print(f"{report.skipped} skipped (outside CI only)")
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
