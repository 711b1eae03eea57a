"""Run the whole suite N times and print passes and failures per test: `nox -s soak -- 10`.

    nox -s soak -- N [--load] [--sessions tests,e2e] [--out DIR]
    nox -s soak -- --report DIR [DIR...]     # the figures of earlier soaks, together

Each run is `nox -R -s <session> -- --junitxml=...` for every session `nox` runs by default
(the same commands, in the venvs `nox` already built: run `nox` once first), with CI=true so
that nothing may skip. With --load, one busy-loop process per CPU runs beside the suite (a
loaded machine), and is killed at the end. Logs and JUnit files go to DIR (default
.soak/<time>); the summary is printed and written to DIR/summary.json.
Exit status: 0 when every run was green, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST_SESSIONS = {"tests", "install_matrix", "e2e"}  # the ones whose tests are listed


@dataclass
class Run:
    number: int
    loaded: bool
    seconds: float = 0.0
    sessions: dict[str, int] = field(default_factory=dict)  # session -> exit status
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed|failed|skipped
    messages: dict[str, str] = field(default_factory=dict)  # test id -> first failure line

    @property
    def green(self) -> bool:
        return all(code == 0 for code in self.sessions.values()) and not self.failed

    @property
    def failed(self) -> list[str]:
        return [test for test, outcome in self.outcomes.items() if outcome == "failed"]


def default_sessions() -> list[str]:
    """The sessions a plain `nox` runs (nox.options.sessions in the noxfile)."""
    sys.path.insert(0, str(ROOT))
    import noxfile

    return list(noxfile.nox.options.sessions or [])


def start_load() -> list[subprocess.Popen[bytes]]:
    """One busy loop per CPU: the machine the suite must also pass on."""
    busy = "while True: pass"
    return [
        subprocess.Popen([sys.executable, "-c", busy], start_new_session=True)
        for _ in range(os.cpu_count() or 2)
    ]


def stop_load(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        if hog.poll() is None:
            os.killpg(hog.pid, signal.SIGKILL)
        hog.wait()


def read_junit(path: Path, run: Run) -> None:
    if not path.exists():
        return
    # The file is pytest's own output from this run, not untrusted input.
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            # A test that failed in its call and errored in teardown is listed twice: failed.
            run.outcomes[test] = "failed"
            first = (problem.get("message") or problem.text or "").strip().splitlines()
            run.messages.setdefault(test, first[0][:300] if first else "")
        elif case.find("skipped") is not None:
            run.outcomes.setdefault(test, "skipped")
        else:
            run.outcomes.setdefault(test, "passed")


def one_run(number: int, loaded: bool, sessions: list[str], out: Path) -> Run:
    run = Run(number, loaded)
    directory = out / f"run-{number:02d}{'-load' if loaded else ''}"
    directory.mkdir(parents=True)
    env = {**os.environ, "CI": "true"}
    hogs = start_load() if loaded else []
    started = time.monotonic()
    try:
        for name in sessions:
            junit = directory / f"{name}.xml"
            command = [sys.executable, "-m", "nox", "-R", "-s", name]
            if name in PYTEST_SESSIONS:
                command += ["--", f"--junitxml={junit}", "-p", "no:cacheprovider"]
            with (directory / f"{name}.log").open("wb") as log:
                code = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=log).returncode
            run.sessions[name] = code
            read_junit(junit, run)
    finally:
        stop_load(hogs)
    run.seconds = time.monotonic() - started
    return run


def load_runs(directories: list[Path]) -> list[Run]:
    """Runs already on disk (each DIR/run-NN[-load]/ of earlier soaks), to report them together."""
    runs = []
    for directory in sorted(path for top in directories for path in top.glob("run-*")):
        run = Run(len(runs) + 1, directory.name.endswith("-load"))
        for log in sorted(directory.glob("*.log")):
            ok = "was successful" in log.read_text(errors="replace")
            run.sessions[log.stem] = 0 if ok else 1
            read_junit(directory / f"{log.stem}.xml", run)
        runs.append(run)
    return runs


def report(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        counts = defaultdict(int)
        for outcome in run.outcomes.values():
            counts[outcome] += 1
        broken = [name for name, code in run.sessions.items() if code != 0]
        lines.append(
            f"run {run.number:2d}{' (load)' if run.loaded else '       '}: "
            f"{'green' if run.green else 'RED  '}  {counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['skipped']} skipped in {run.seconds / 60:.1f} min"
            + (f"; sessions failing: {', '.join(broken)}" if broken else "")
        )
        for test in run.failed:
            lines.append(f"    FAILED {test}: {run.messages.get(test, '')}")
    tests = sorted({test for run in runs for test in run.outcomes})
    flaky = []
    for test in tests:
        seen = [run.outcomes.get(test) for run in runs]
        if "failed" in seen or "skipped" in seen:  # absent: a run cut short, or a new test
            flaky.append(
                f"  {test}: passed {seen.count('passed')}/{len(runs)}, "
                f"failed {seen.count('failed')}, skipped {seen.count('skipped')}, "
                f"missing {seen.count(None)}"
            )
    green = sum(run.green for run in runs)
    lines.append(f"{green}/{len(runs)} runs green; {len(tests)} tests per run")
    lines += (
        ["tests that did not pass every time:", *flaky]
        if flaky
        else ["every test passed every run"]
    )
    return lines


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that `finally` kills the CPU hogs


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", type=int, nargs="?", help="how many times to run the suite")
    parser.add_argument("--report", type=Path, nargs="+", help="only report earlier soak DIRs")
    parser.add_argument("--load", action="store_true", help="a busy loop per CPU beside it")
    parser.add_argument("--sessions", help="comma-separated nox sessions (default: nox's own)")
    parser.add_argument("--out", type=Path, help="where logs and JUnit files go")
    args = parser.parse_args()
    if args.report:
        print("\n".join(report(load_runs(args.report))))
        return 0
    if args.runs is None:
        parser.error("how many runs?")
    sessions = args.sessions.split(",") if args.sessions else default_sessions()
    out = args.out or ROOT / ".soak" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"soak: {args.runs} runs of {', '.join(sessions)}{' under load' if args.load else ''}"
        f"; logs in {out}",
        flush=True,
    )
    runs = []
    for number in range(1, args.runs + 1):
        runs.append(one_run(number, args.load, sessions, out))
        print(report(runs[-1:])[0], flush=True)
    lines = report(runs)
    print("\n".join(lines))
    summary = {
        "runs": [
            {
                "number": run.number,
                "load": run.loaded,
                "seconds": round(run.seconds, 1),
                "green": run.green,
                "sessions": run.sessions,
                "failed": {test: run.messages.get(test, "") for test in run.failed},
                "counts": {
                    o: list(run.outcomes.values()).count(o) for o in ("passed", "failed", "skipped")
                },
            }
            for run in runs
        ],
        "report": lines,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0 if all(run.green for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
