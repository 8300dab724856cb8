"""Fuzz ``alcycle import`` for a while and import a huge export: counts and memory.

    python benchmarks/import_fuzz.py [--examples 5000] [--huge-mb 200]

1. Imports a ``--huge-mb`` plain CSV export whose last row is bad, and prints the time and
   the peak memory the process gained (it must not grow with the file).
2. Runs the property of ``tests/test_import_fuzz.py`` (every input is refused with a clear
   error and an untouched pool, or accepted into a valid pool) on ``--examples`` random
   inputs, not derandomized, and prints how many were tried, accepted and refused.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_import_fuzz import IDS, fuzz, fuzz_project  # noqa: E402

from alcycle.annotations.importer import import_file  # noqa: E402
from alcycle.annotations.records import AnnotationError  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--huge-mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        layout, params = fuzz_project(base)

        huge = base / "huge.csv"
        row = "".join(f"{item},{k % 10}\n" for k, item in enumerate(IDS))
        with open(huge, "w") as handle:
            handle.write("id,label\n")
            while handle.tell() < args.huge_mb * 1_000_000:
                handle.write(row * 1000)
            handle.write("not-an-item,3\n")
        size = huge.stat().st_size / 1e6
        before = peak_rss_mb()
        started = time.perf_counter()
        try:
            import_file(layout, params, huge)
        except AnnotationError as error:
            message = str(error).split(", ", 1)[1][:80]
        seconds = time.perf_counter() - started
        print(f"huge export: {size:.0f} MB read to its bad last row in {seconds:.1f} s "
              f"({message}); peak RSS {before:.0f} MB before, {peak_rss_mb():.0f} MB after")

        started = time.perf_counter()
        counts = fuzz(layout, params, examples=args.examples, derandomize=False)
        seconds = time.perf_counter() - started
        total = sum(counts.values())
        print(f"fuzz: {total} inputs in {seconds:.0f} s: {counts['accepted']} accepted, "
              f"{counts['refused']} refused with a clear error, 0 corrupted the pool")


if __name__ == "__main__":
    main()
