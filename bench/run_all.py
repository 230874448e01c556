"""Run every benchmark script (bench/bench_*.py) in its own process and print their figures.

    python bench/run_all.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="names like pipeline grid negatives")
    args = ap.parse_args()
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        sys.stdout.write(f"\n### {name}: {' '.join(cmd[1:])}\n")
        sys.stdout.flush()
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
    if failed:
        sys.stderr.write(f"benchmarks failed: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
