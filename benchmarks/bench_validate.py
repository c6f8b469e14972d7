"""How long loading the code location takes: `dagster definitions validate`, and the import of
the definitions module against the import of dagster alone (what this project adds).

    python benchmarks/bench_validate.py [--runs 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str], runs: int) -> float:
    """The median wall time of `command` over `runs` runs, after one warm-up run."""
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        # The project's instance configuration, in a fresh home: as after a clean clone.
        shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("O365_")}
        env["DAGSTER_HOME"] = home
        dagster_import = timed([sys.executable, "-c", "import dagster"], env, args.runs)
        definitions_import = timed(
            [sys.executable, "-c", "import o365_assets.definitions"], env, args.runs
        )
        validate = timed(
            [sys.executable, "-m", "dagster", "definitions", "validate"], env, args.runs
        )

    print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"import dagster:                      {dagster_import:6.2f} s (median of {args.runs})")
    print(f"import o365_assets.definitions:      {definitions_import:6.2f} s")
    print(f"  of which this project:             {definitions_import - dagster_import:6.2f} s")
    print(f"dagster definitions validate:        {validate:6.2f} s (goal: under 3 s)")


if __name__ == "__main__":
    main()
