"""Regenerate BENCHMARKS.md from bench/NOTES.md and the results files bench/results/*.jsonl.

    python bench/report.py            # write BENCHMARKS.md
    python bench/report.py --check    # exit 1 if BENCHMARKS.md is not what the results files give

The format and the generator live in diffusegae.benchmark.results (torch-free); the scripts of bench/
write records through bench/common.py, `diffusegae bench --record` through the same module.
"""

from __future__ import annotations

import argparse
import sys

from diffusegae.benchmark.results import BENCHMARKS, NOTES, RESULTS_DIR, render, write_benchmarks


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if out of date")
    args = parser.parse_args()
    if args.check:
        current = BENCHMARKS.read_text() if BENCHMARKS.is_file() else ""
        if current != render(NOTES, RESULTS_DIR):
            print(f"{BENCHMARKS} is out of date: run python bench/report.py", file=sys.stderr)
            return 1
        print(f"{BENCHMARKS} is up to date")
        return 0
    print(f"wrote {write_benchmarks()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
