"""Benchmark: every stage of a frozen-feature cycle at 10^4, 10^5 and 10^6 images.

    python benchmarks/scale.py [--n 10000 100000] [--fashion] [--work /tmp/alcycle-scale] [--out FILE.jsonl] [--resume]

For each N: synthetic 64×64 RGB PNGs in 10 class folders (``synthetic_images.py``; kept
under ``--work`` and reused), ``alcycle init`` on them (10% test split), and a frozen
small CNN loaded from a local weights file (a seeded random initialisation written here,
standing in for the user's pretrained backbone; nothing is downloaded). Then each stage
runs as its own ``alcycle <stage>`` process, as ``dvc repro`` would run it:

- once: prepare, pretrain (loads the file), pretrain-vit (a note: no transformer), embed;
- cycle 0: label-import, train, extract, evaluate, select (random cold start, 1,000 items), oracle;
- cycle 1: label-import, train (the head), extract, evaluate, then select 1,000 items with
  each of entropy, coreset, typiclust and badge.

Cycle 1 then selects again with coreset, typiclust and badge, and with probcover, on SEALS' candidate subset
(``select.candidates.method: seals``). Per step: wall time and the peak memory of the
process tree, sampled every 0.2 s: PSS (forked decode workers count once; pages of
memory-mapped files the step read count too) and, in brackets, anonymous memory (what the
processes allocated themselves). Then ``dvc commit`` records the state and a no-op
``dvc repro`` is timed, before and after ``dvc freeze prepare``. Disk: ``data/prepared``, ``data/features`` and the DVC cache.
``--fashion`` adds Fashion-MNIST's 70,000 28×28 gray images (Debian's package) as one
more pool, the same way. Each finished step is saved beside its project, so ``--resume``
goes on after an interruption (at 10⁶, after the hour of images, prepare and embed). One
JSON line per N (with the commit measured) goes to ``--out``; the table printed at the end gives each step's
growth exponent between consecutive sizes, log(t₂/t₁) / log(N₂/N₁) (1 = linear).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from process_tree import run_sampled
from synthetic_images import write_images

ONCE = ("prepare", "pretrain", "pretrain-vit", "embed")
CYCLE = ("label-import", "train", "extract", "evaluate")
STRATEGIES = ("entropy", "coreset", "typiclust", "badge")
SUBSET_STRATEGIES = ("coreset", "typiclust", "badge", "probcover")  # on SEALS' candidate subset
BUDGET = 1000
BIN = Path(sys.executable).parent
COMMIT = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                        capture_output=True, text=True).stdout.strip()  # the code measured


def images(work: Path, n: int) -> tuple[Path, float]:
    """The folder of ``n`` synthetic images (written once), and the seconds writing took now."""
    folder = work / f"images-{n}"
    done = folder / ".complete"
    if done.exists():
        return folder, 0.0
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    write_images(folder, n)
    done.touch()
    return folder, time.perf_counter() - start


def measured(cmd: list[str], cwd: Path) -> dict:
    """Run ``cmd``; its wall time and the peak PSS of its process tree."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    code, seconds, peak, output, anonymous = run_sampled(cmd, cwd, env)
    if code:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{output[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_mb": round(peak / 2**20), "anon_mb": round(anonymous / 2**20)}


def frozen_project(work: Path, n: int, folder: Path | None) -> Path:
    """``alcycle init`` on ``folder`` (None: Fashion-MNIST), set up for frozen features and
    1,000-item batches."""
    import torch

    from alcycle.backbones import build_backbone

    project = work / f"project-{n if folder else 'fashion'}"
    shutil.rmtree(project, ignore_errors=True)
    source = ["--images", str(folder)] if folder else ["--fashion-mnist"]
    subprocess.run([BIN / "alcycle", "init", str(project), *source], check=True, capture_output=True)
    channels = 3 if folder else 1
    torch.manual_seed(0)
    torch.save(build_backbone("small_cnn", channels).state_dict(), project / "backbone.pt")
    params = yaml.safe_load((project / "params.yaml").read_text())
    if folder:
        params["prepare"].update(image_size=64, channels=3, test_fraction=0.1)
    params["pretrain"].update(method="weights", weights="backbone.pt")
    params["train"].update(init="pretrained", freeze_backbone=True, augment=False)
    params["select"].update(budget=BUDGET)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def set_strategy(project: Path, strategy: str, candidates: str = "all") -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["select"]["strategy"] = strategy
    params["select"]["candidates"]["method"] = candidates
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def disk_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1) if path.exists() else 0.0


def one_size(work: Path, n: int, fashion: bool = False, resume: bool = False) -> dict:
    """Every step at ``n`` images (Fashion-MNIST's 70,000 with ``fashion``); returns the record."""
    folder, generated = (None, 0.0) if fashion else images(work, n)
    project = work / f"project-{n if folder else 'fashion'}"
    progress = project.with_name(project.name + ".steps.json")  # the steps done so far, for --resume
    steps: dict[str, dict] = json.loads(progress.read_text()) if resume and progress.exists() else {}
    if not steps:
        frozen_project(work, n, folder)

    def step(name: str, *cmd: str) -> None:
        if name in steps:  # done before an interruption: --resume goes on from the next one
            return
        steps[name] = measured([str(BIN / "alcycle"), *cmd] if cmd[0] != "dvc" else
                               [str(BIN / "dvc"), *cmd[1:]], project)
        progress.write_text(json.dumps(steps))
        print(f"  N = {n:,}: {name:<32} {steps[name]['seconds']:9.1f} s {steps[name]['peak_mb']:7,} MB "
              f"(anonymous {steps[name]['anon_mb']:,} MB)", flush=True)

    for stage in ONCE:
        step(stage, stage)
    for stage in (*CYCLE, "select"):
        step(f"cycle 0 {stage}", stage)
    step("oracle", "oracle")
    for stage in CYCLE:
        step(f"cycle 1 {stage}", stage)
    for strategy in STRATEGIES:
        set_strategy(project, strategy)
        step(f"cycle 1 select {strategy}", "select")
    for strategy in SUBSET_STRATEGIES:  # the same picks from SEALS' candidates (select.candidates)
        set_strategy(project, strategy, candidates="seals")
        step(f"cycle 1 select {strategy}@seals", "select")
    step("dvc commit", "dvc", "commit", "--force", "--quiet")
    step("no-op dvc repro", "dvc", "repro")
    step("dvc freeze prepare", "dvc", "freeze", "prepare")
    step("no-op dvc repro, prepare frozen", "dvc", "repro")
    progress.unlink()
    return {"n": n, "commit": COMMIT, "images_written_s": round(generated, 1), "steps": steps,
            "source": "fashion_mnist" if fashion else "synthetic",
            "disk_mb": {"prepared": disk_mb(project / "data/prepared"), "features": disk_mb(project / "data/features"),
                        "dvc_cache": disk_mb(project / ".dvc/cache"),
                        "source_images": disk_mb(folder) if folder else 0.0}}


def cell(step: dict | None) -> str:
    """"seconds, PSS MB (anonymous MB)" of one step; a dash where a record lacks it."""
    if step is None:
        return "–"
    anonymous = f" ({step['anon_mb']:,})" if "anon_mb" in step else ""
    return f"{step['seconds']:.1f} s, {step['peak_mb']:,}{anonymous} MB"


def table(records: list[dict]) -> str:
    """Markdown: each step's seconds and MB per N, and the time's growth exponent."""
    names = [f"Fashion-MNIST {r['n']:,}" if r.get("source") == "fashion_mnist" else f"N = {r['n']:,}" for r in records]
    head = "| step | " + " | ".join(names) + " | exponent |"
    lines = [head, "|---" * (len(records) + 2) + "|"]
    names = list(dict.fromkeys(name for r in records for name in r["steps"]))  # older records lack newer steps
    for name in names:
        cells = [cell(r["steps"].get(name)) for r in records]
        # Between consecutive synthetic sizes only: Fashion-MNIST is other data, not another N.
        synthetic = [r for r in records if r.get("source") != "fashion_mnist" and name in r["steps"]]
        times = [max(r["steps"][name]["seconds"], 0.01) for r in synthetic]
        ns = [r["n"] for r in synthetic]
        exponents = [math.log(b / a) / math.log(m / n) for a, b, n, m in zip(times, times[1:], ns, ns[1:])]
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + ", ".join(f"{e:.2f}" for e in exponents) + " |")
    for key in records[0]["disk_mb"]:
        lines.append(f"| disk: {key} | " + " | ".join(f"{r['disk_mb'][key]:,.0f} MB" for r in records) + " | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/alcycle-scale"))
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per N")
    parser.add_argument("--fashion", action="store_true", help="also Fashion-MNIST (dataset-fashion-mnist)")
    parser.add_argument("--resume", action="store_true",
                        help="go on in the existing projects from the step after the last one recorded")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    records = []
    pools = [(n, False) for n in args.n] + [(70_000, True)] * args.fashion
    for n, fashion in pools:
        record = one_size(args.work, n, fashion, args.resume)
        records.append(record)
        if args.out:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
