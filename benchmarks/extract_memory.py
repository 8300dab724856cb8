"""Benchmark: extract's peak memory, arrays held then saved against arrays written as they come.

    python benchmarks/extract_memory.py [--n 100000 300000] [--batch 512] [--mc-samples 20]

A freshly initialised small CNN with dropout 0.5 (so extract also writes the MC-dropout passes
BALD reads) over a store of N random 28×28 gray images (``extract_cluster.synthetic_store``).
Each way runs in a fresh process, one after the other for each N:

- ``held``: ``predict_all`` (every batch's outputs kept, concatenated, the MC passes stacked),
  then each array saved, as extract did before;
- ``streamed``: ``write_all`` over ``local_batches``, as extract does now: each batch into
  memory-mapped files, the MC passes chunk by chunk over the written embeddings.

Printed: the process's peak anonymous resident memory (sampled every 20 ms; the pages of
memory-mapped files, which the kernel writes back and drops as it needs, are not counted)
above what it held before the pass (model loaded, store opened), the time, the output size on disk, and whether both ways wrote the same arrays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MIB = 2**20


def anonymous_bytes() -> int:
    """This process's resident anonymous memory (heap, tensors, arrays), not counting the pages
    of memory-mapped files, which the kernel writes back and drops as it needs."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakSampler(threading.Thread):
    """The largest ``anonymous_bytes`` seen, sampled every 20 ms until ``stop``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done = anonymous_bytes(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, anonymous_bytes())

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, anonymous_bytes())


def child(way: str, store: Path, out: Path, batch: int, mc_samples: int) -> None:
    import torch

    from alcycle.backbones import build_backbone
    from alcycle.classifier import Classifier, ClassifierSettings, Optimisation
    from alcycle.fileio import atomic_save_npy
    from alcycle.inference import local_batches, predict_all, write_all

    torch.manual_seed(0)
    model = Classifier(build_backbone("small_cnn", 1),
                       ClassifierSettings(10, Optimisation(0.1, 0.9, 5e-4, 1), seed=0, dropout=0.5)).eval()
    pixels = np.load(store, mmap_mode="r")
    before = anonymous_bytes()
    sampler = PeakSampler()
    sampler.start()
    start = time.perf_counter()
    if way == "held":
        for name, array in predict_all(model, pixels, batch, mc_samples, seed=0).items():
            atomic_save_npy(out / f"{name}.npy", array)
    else:
        write_all(model, local_batches(model, pixels, batch), len(pixels), out, batch, mc_samples, seed=0)
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    print(json.dumps({"above_start": peak - before, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--mc-samples", type=int, default=20)
    parser.add_argument("--child", nargs=3, metavar=("WAY", "STORE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, store, out = args.child
        child(way, Path(store), Path(out), args.batch, args.mc_samples)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from extract_cluster import synthetic_store

    print(f"small CNN, dropout 0.5, {args.mc_samples} MC passes, batch {args.batch}")
    print(f"{'images':>9} {'way':>9} {'peak above start':>17} {'time':>8} {'on disk':>9}  same arrays")
    with tempfile.TemporaryDirectory(prefix="alcycle-extract-memory-") as tmp:
        for n in args.n:
            store = synthetic_store(Path(tmp), n)
            folders = {}
            for way in ("held", "streamed"):
                folders[way] = Path(tmp) / f"{way}-{n}"
                folders[way].mkdir()
                said = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--mc-samples",
                                       str(args.mc_samples), "--child", way, str(store), str(folders[way])],
                                      check=True, capture_output=True, text=True).stdout
                figures = json.loads(said.strip().splitlines()[-1])
                disk = sum(f.stat().st_size for f in folders[way].iterdir())
                same = ""
                if way == "streamed":
                    names = sorted(f.name for f in folders["held"].iterdir())
                    same = str(names == sorted(f.name for f in folders[way].iterdir()) and all(
                        np.allclose(np.load(folders["held"] / f, mmap_mode="r"),
                                    np.load(folders[way] / f, mmap_mode="r"), atol=1e-5) for f in names))
                print(f"{n:>9,} {way:>9} {figures['above_start'] / MIB:13,.0f} MiB {figures['seconds']:6.1f} s "
                      f"{disk / MIB:5,.0f} MiB  {same}", flush=True)
            for folder in folders.values():
                for f in folder.iterdir():
                    f.unlink()
            store.unlink()


if __name__ == "__main__":
    main()
