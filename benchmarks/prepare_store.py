"""Benchmark: streaming prepare (memory-mapped store, parallel decode) against the previous
prepare (one in-memory array plus a PNG copy of every image), on synthetic image folders.

    python benchmarks/prepare_store.py [--n 10000 20000] [--old-rev 03be55a] [--work /tmp/prepare-bench] [--new-only]

For each N: ``synthetic_images.write_images`` makes N 64×64 RGB PNGs in 10 class folders
(once, kept in ``--work``); then each version runs ``prepare`` (folder source, 64 px, RGB,
20% test) in its own subprocess on a fresh project: the old one from ``git archive`` of
``--old-rev``'s ``src``, the new one from this checkout. Reported: wall time, peak RSS of the
stage's process (``getrusage``; ``import_rss_mb`` is its peak after the imports, before
``run``), the peak PSS of the process and its decode workers together and its anonymous
part (``Pss_Anon``: without the page cache of mapped files; sampled every 0.2 s),
and the bytes under ``data/prepared``. The two stores are compared byte for byte.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

from process_tree import run_sampled
from synthetic_images import write_images


ROOT = Path(__file__).resolve().parents[1]
STAGE = """
import json, resource, sys
from pathlib import Path
from alcycle.layout import Layout
from alcycle.params import load_params
from alcycle.stages.prepare import run
root = Path(sys.argv[1])
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
run(Layout(root), load_params(root / "params.yaml"))
print(json.dumps({"import_rss_mb": round(imported), "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def old_sources(rev: str, work: Path) -> Path:
    """``src`` of ``rev``, extracted under ``work``."""
    target = work / f"src-{rev}"
    if not target.exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(work / f"tree-{rev}", filter="data")
        (work / f"tree-{rev}" / "src").rename(target)
    return target


def run_prepare(src: Path, project: Path, images: Path, classes: list[str]) -> dict:
    """Run ``src``'s prepare on ``images`` in a fresh project; its time, memory and disk."""
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    # Each version's own params.yaml: an older one refuses keys added since.
    render = (f"from alcycle.scaffold import render_params; "
              f"print(render_params('folder', {str(images)!r}, {tuple(classes)!r}, 64, 3, 0), end='')")
    rendered = subprocess.run([sys.executable, "-c", render], env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
                              check=True, capture_output=True, text=True).stdout
    (project / "params.yaml").write_text(rendered)
    code, seconds, tree_pss, stdout, tree_anonymous = run_sampled([sys.executable, "-c", STAGE, str(project)],
                                                  env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    if code:
        raise SystemExit(f"prepare failed in {project}:\n{stdout[-3000:]}")
    prepared = project / "data" / "prepared"
    disk = sum(p.stat().st_size for p in prepared.rglob("*") if p.is_file())
    files = sum(1 for p in prepared.rglob("*") if p.is_file())
    return {"seconds": round(seconds, 1), **json.loads(stdout.splitlines()[-1]), "tree_pss_mb": round(tree_pss / 2**20),
            "tree_anon_mb": round(tree_anonymous / 2**20),
            "prepared_mb": round(disk / 2**20, 1), "prepared_files": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000])
    parser.add_argument("--old-rev", default="03be55a")
    parser.add_argument("--work", type=Path, default=Path("/tmp/prepare-bench"))
    parser.add_argument("--new-only", action="store_true", help="this checkout's prepare alone (no comparison)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    versions = {"new": ROOT / "src"} if args.new_only else {"old": old_sources(args.old_rev, args.work), "new": ROOT / "src"}
    for n in args.n:
        images = args.work / f"images-{n}"
        if not images.exists():
            start = time.perf_counter()
            write_images(images.with_suffix(".part"), n)
            images.with_suffix(".part").rename(images)
            print(f"n={n}: wrote the images in {time.perf_counter() - start:.1f} s", flush=True)
        classes = sorted(p.name for p in images.iterdir() if not p.name.startswith("."))
        for name, src in versions.items():
            result = run_prepare(src, args.work / f"project-{name}-{n}", images, classes)
            print(json.dumps({"n": n, "version": name, **result}), flush=True)
        if len(versions) > 1:  # compared in chunks: at 10⁶ images each store is 12 GB
            stores = [args.work / f"project-{v}-{n}" / "data" / "prepared" / "pixels.npy" for v in versions]
            print(f"n={n}: pixels.npy identical: {filecmp.cmp(*stores, shallow=False)}", flush=True)


if __name__ == "__main__":
    main()
