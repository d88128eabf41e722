"""How long the README's test commands take on a fresh clone: `make test-fast` and `make test` in a
`git clone` of this checkout's HEAD, with ../shared beside it (as CI has it) and this checkout's
virtual environment (so installing is not timed), under CI=true (the real data must be used).

    python -m bench.suite_time [--targets test-fast,test]

Writes bench/results/suite_time.json, which `python -m bench.docs` renders into docs/testing.md.
Wall time is what the goals are about; CPU time (user + system, the tests' worker processes
included) says how much of the machine the run used.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, Report, add_report_option, load_average

GOALS_S = {"test-fast": 90.0, "test": 360.0}
SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed).*) in [\d.]+s", re.M)


def fresh_clone(folder: Path) -> Path:
    """HEAD cloned into folder/main, ../shared linked beside it and .venv linked to this checkout's."""
    clone = folder / "main"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (folder / "shared").symlink_to(ROOT.parent / "shared")
    (clone / ".venv").symlink_to(ROOT / ".venv")
    return clone


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_target(clone: Path, target: str) -> dict:
    """One make target in the clone: its wall and CPU time and pytest's summary line."""
    # -o: the virtual environment is this checkout's, already installed; make must not reinstall it
    # because the clone's requirements files are newer than its markers.
    command = ["make", "-o", ".venv/.dev-installed", "-o", ".venv/.app-installed", target]
    load_start, cpu_start, start = load_average(), children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, cwd=clone, env={**os.environ, "CI": "true"}, capture_output=True, text=True)
    wall_s, cpu_s = time.perf_counter() - start, children_cpu_s() - cpu_start
    found = SUMMARY.findall(done.stdout)
    return {"target": target, "returncode": done.returncode, "wall_s": round(wall_s, 1), "cpu_s": round(cpu_s, 1),
            "summary": found[-1][0] if found else (done.stdout.strip().splitlines() or ["no output"])[-1],
            "goal_s": GOALS_S.get(target), "goal_met": done.returncode == 0 and wall_s <= GOALS_S.get(target, wall_s),
            "load_average_1min": {"start": round(load_start, 2), "end": round(load_average(), 2)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite_time", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="test-fast,test", help="make targets, in order (default: %(default)s)")
    add_report_option(parser, "suite_time")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    with Report("suite_time", args.json) as report, tempfile.TemporaryDirectory() as tmp:
        clone = fresh_clone(Path(tmp))
        print(f"a fresh clone of {commit}, {os.cpu_count()} CPUs, CI=true")
        print(f"{'command':<16}{'wall':>9}{'goal':>8}{'CPU':>9}  load (1 min, start-end)  pytest")
        runs = []
        for target in args.targets.split(","):
            run = time_target(clone, target)
            runs.append(run)
            goal = f"{run['goal_s']:.0f} s" if run["goal_s"] else "-"
            load = run["load_average_1min"]
            print(f"make {target:<11}{run['wall_s']:>7.1f} s{goal:>8}{run['cpu_s']:>7.1f} s  "
                  f"{load['start']:.1f}-{load['end']:.1f}{'':<16}{run['summary']}")
        report.figures.update(commit=commit, runs=runs)
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
