"""Start-up and hot-path benchmarks for exls: medians and ratios, measured side by side.

Not a test: it prints a table and writes bench-results/bench.json for comparison between
commits. Budgets are ratios to a baseline measured in the same run (absolute times drift
between machines), e.g. `exls --version` at most 1.3x `python -c "import click"`.

    nox -s bench                 # or: python tests/bench/bench.py --runs 21
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


@dataclass
class Case:
    name: str
    argv: list[str]
    env: dict[str, str]
    until: str | None = None  # stop timing when this text appears on stderr (prompts)


def run_once(case: Case) -> float:
    start = time.perf_counter()
    if case.until is None:
        # Popen.wait() without a timeout blocks in waitpid and returns when the child ends;
        # subprocess.run(timeout=...) polls with sleeps of up to 50 ms, which quantized every
        # measurement into 50 ms steps. The time limit is a timer that kills the child instead.
        proc = subprocess.Popen(
            case.argv,
            env=case.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        timer = threading.Timer(60, proc.kill)
        timer.start()
        try:
            code = proc.wait()
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - start
        if code != 0:
            raise subprocess.CalledProcessError(code, case.argv)
        return elapsed
    return _time_to_prompt(case, start)


def _time_to_prompt(case: Case, start: float) -> float:
    """Run under a pseudo-terminal and stop the clock when the prompt text appears."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execvpe(case.argv[0], case.argv, case.env)  # noqa: S606
    seen = b""
    try:
        deadline = start + 30
        while case.until.encode() not in seen:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{case.name}: no prompt; saw {seen[-200:]!r}")
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        return time.perf_counter() - start
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def measure(cases: list[Case], runs: int, warmup: int) -> dict[str, list[float]]:
    """Alternate the cases run by run so drift hits them all alike."""
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    for i in range(warmup + runs):
        for case in cases if i % 2 == 0 else reversed(cases):
            elapsed = run_once(case)
            if i >= warmup:
                times[case.name].append(elapsed)
    return times


@dataclass
class Budget:
    name: str
    measured: str
    baseline: str
    max_ratio: float | None  # None: a ratio to report, not a budget
    # Divide by this ratio of two other cases: "what X costs exls beyond what it costs keyring".
    relative_to: tuple[str, str] | None = None

    def ratio(self, medians: dict[str, float]) -> float:
        value = medians[self.measured] / medians[self.baseline]
        if self.relative_to is not None:
            measured, baseline = self.relative_to
            value /= medians[measured] / medians[baseline]
        return value


def report(times: dict[str, list[float]], budgets: list[Budget], out: Path) -> bool:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{'case':<58} {'median ms':>10} {'runs':>5}")
    for name, value in medians.items():
        shown = f"{value * 1000:>10.1f}" if value >= 0.001 else f"{value * 1000:>10.6f}"
        print(f"{name:<58} {shown} {len(times[name]):>5}")
    print(f"\n{'budget':<58} {'ratio':>7} {'max':>6}  ok")
    ok_all = True
    results = []
    for b in budgets:
        ratio = b.ratio(medians)
        ok = b.max_ratio is None or ratio <= b.max_ratio
        ok_all &= ok
        results.append({"budget": b.name, "ratio": round(ratio, 3), "max": b.max_ratio, "ok": ok})
        limit = "-" if b.max_ratio is None else f"{b.max_ratio:.2f}"
        print(f"{b.name:<58} {ratio:>7.2f} {limit:>6}  {'yes' if ok else 'NO'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "medians_ms": {k: float(f"{v * 1000:.4g}") for k, v in medians.items()},
        "samples_ms": {k: [float(f"{x * 1000:.4g}") for x in v] for k, v in times.items()},
        "budgets": results,
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}")
    return ok_all


def make_dummy_distributions(site: Path, count: int) -> None:
    """Unrelated installed distributions, as in a big data-science environment."""
    for i in range(count):
        info = site / f"dummy_pkg_{i:03d}-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: dummy-pkg-{i:03d}\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            f"[console_scripts]\ndummy{i} = dummy_pkg_{i}:main\n"
        )
        (info / "RECORD").write_text("")


def join_new_session_keyring() -> None:
    """A session keyring of the bench's own (its children inherit it), on Linux."""
    if sys.platform == "linux":
        from exls_core.session import kernel_keyring

        kernel_keyring.join_new_session_keyring()


def remove_kernel_keys(env: dict[str, str]) -> None:
    if sys.platform == "linux":
        from kernel_testkit import remove_scope

        remove_scope(env["EXLS_KERNEL_KEY_SCOPE"])


def compile_everything() -> None:
    import compileall
    import sysconfig

    for path in {
        sysconfig.get_paths()["purelib"],
        str(ROOT / "exls_core" / "src"),
        str(ROOT / "exls_flows_pkce" / "src"),
        str(ROOT / "exls_flows_device" / "src"),
    }:
        compileall.compile_dir(path, quiet=2, workers=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "bench.json")
    parser.add_argument("--no-keyring", action="store_true", help="skip the Secret Service cases")
    args = parser.parse_args(argv)

    # The keyring-backed hot path and the Python API (they need a Secret Service).
    from bench_setup import token_cases

    exls = shutil.which("exls")
    if not exls:
        print(
            "exls is not installed in this environment (run through `nox -s bench`)",
            file=sys.stderr,
        )
        return 1
    home = Path(tempfile.mkdtemp(prefix="exls-bench-"))
    # Users run from compiled bytecode (pip compiles at install): so does the benchmark.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EXLS_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    compile_everything()
    env.update(
        # The bench's kernel keys (the token cache) stay apart from the user's own.
        EXLS_KERNEL_KEY_SCOPE=f"bench-{os.getpid()}",
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_RUNTIME_DIR=str(home / "runtime"),
    )
    py = sys.executable
    cases = [
        Case("python -c 'import click' (baseline)", [py, "-c", "import click"], env),
        Case("exls --version", [exls, "--version"], env),
        Case("exls --help", [exls, "--help"], env),
        Case("exls login: time to the email prompt", [exls, "login"], env, until="Email"),
    ]
    budgets = [
        Budget("exls --version <= 1.3x import click", "exls --version", cases[0].name, 1.3),
        Budget("exls --help <= 1.3x import click", "exls --help", cases[0].name, 1.3),
        Budget("login to email prompt <= 1.5x import click", cases[3].name, cases[0].name, 1.5),
    ]
    cleanup: list[Callable[[], None]] = [lambda: remove_kernel_keys(env)]
    join_new_session_keyring()
    try:
        in_process: dict[str, list[float]] = {}
        if not args.no_keyring:
            extra_cases, extra_budgets, stop, python_api = token_cases(exls, env, home)
            cases += extra_cases
            budgets += extra_budgets
            cleanup.append(stop)
            in_process = python_api(args.runs)
        times = measure(cases, args.runs, args.warmup) | in_process
        ok = report(times, budgets, args.out)
    finally:
        for stop in cleanup:
            stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
