"""Benchmark: extract in one process against extract on a two-node Ray cluster on loopback.

    python benchmarks/extract_cluster.py [--fashion] [--synthetic 1000000] [--batch 512]

The model is a freshly initialised small CNN classifier (throughput does not depend on its
weights); the pools are Fashion-MNIST's 70,000 images as ``prepare`` stores them (``--fashion``,
Debian's dataset-fashion-mnist) and/or a store of N random 28×28 gray images. Side by side in
one run: ``predict_all`` in this process (torch's threads as set), then ``predict_all_on_cluster``
on a cluster of two nodes (Ray's ``Cluster``: separate raylet processes, one CPU each), its
start-up timed apart. Both arrays are compared bit for bit. On one 2-core machine the cluster
shows Ray's overhead, not a speed-up: the nodes share the same two cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alcycle.backbones import build_backbone
from alcycle.checkpoints import save_model
from alcycle.classifier import Classifier, ClassifierSettings, Optimisation
from alcycle.inference import predict_all, predict_all_on_cluster


def fashion_store(folder: Path) -> Path:
    """Fashion-MNIST's 70,000 images as ``prepare`` writes them (the pool and test splits)."""
    from alcycle.sources.fashion_mnist import DEBIAN_FOLDER, FILES, read_idx

    images = np.concatenate([read_idx(DEBIAN_FOLDER / FILES[part][0], ndim=3) for part in ("train", "test")])
    path = folder / "fashion.npy"
    np.save(path, images[:, None, :, :])
    return path


def synthetic_store(folder: Path, n: int) -> Path:
    """N random uint8 28×28 gray images, written in chunks (the store is 784 bytes an image)."""
    path = folder / f"synthetic-{n}.npy"
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 1, 28, 28))
    rng = np.random.default_rng(0)
    for start in range(0, n, 100_000):
        store[start : start + 100_000] = rng.integers(0, 256, size=store[start : start + 100_000].shape, dtype=np.uint8)
    store.flush()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion", action="store_true")
    parser.add_argument("--synthetic", type=int, nargs="*", default=[])
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    with tempfile.TemporaryDirectory(prefix="alcycle-extract-cluster-") as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        model = Classifier(build_backbone("small_cnn", 1), ClassifierSettings(10, Optimisation(0.1, 0.9, 5e-4, 1), seed=0))
        save_model(folder / "model.pt", model, [], tuple(str(c) for c in range(10)))
        stores = ([("Fashion-MNIST 70,000", fashion_store(folder))] if args.fashion else []) + [
            (f"synthetic {n:,}", synthetic_store(folder, n)) for n in args.synthetic]
        start = time.perf_counter()
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                                "object_store_memory": 200 * 2**20})
        cluster.add_node(num_cpus=1, object_store_memory=200 * 2**20)
        cluster.wait_for_nodes()
        print(f"two-node cluster up in {time.perf_counter() - start:.1f} s; torch threads here: "
              f"{torch.get_num_threads()}; batch {args.batch}")
        print(f"{'pool':>22} {'one process':>12} {'Ray, 2 nodes':>13} {'ratio':>6}  identical")
        try:
            for name, path in stores:
                pixels = np.load(path, mmap_mode="r")
                start = time.perf_counter()
                local = predict_all(model, pixels, args.batch)
                alone = time.perf_counter() - start
                start = time.perf_counter()
                remote = predict_all_on_cluster(cluster.address, model, folder / "model.pt", path, args.batch)
                spread = time.perf_counter() - start
                same = all(np.array_equal(local[k], remote[k]) for k in local) and sorted(local) == sorted(remote)
                print(f"{name:>22} {alone:10.1f} s {spread:11.1f} s {spread / alone:6.2f}  {same}  "
                      f"({len(pixels) / alone:,.0f} vs {len(pixels) / spread:,.0f} images/s)", flush=True)
                del local, remote
        finally:
            cluster.shutdown()


if __name__ == "__main__":
    main()
