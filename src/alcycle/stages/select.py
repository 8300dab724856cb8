"""select: the next batch of ``budget`` pool items to label, with their scores.

The strategy's registry entry says which inputs it reads; this stage loads exactly
those (extract's arrays, the images, GEAL's transformer, the strategy's settings)
and never names a strategy. Beside ``queries.csv`` it writes the batch's images (the only
per-image files of the pool, ``layout.query_images``) and the batch for labeling
tools (``annotations/labelstudio/tasks.py``, ``annotations/cvat/tasks.py``); once a label exists, that reads the class
probabilities too, whatever the strategy, for the model's guess shown to the annotator.
A strategy that synthesises its queries (GAAL) answers with new images instead of pool
items: each gets its id (``alcycle.synthesised``), its PNG under ``data/queries/synthesised/``
and, in the labeling config, the extra answer ``unrecognisable``.

This module is ``alcycle.stages.select``; it is never run as a script, so it cannot
shadow the standard library's ``select``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torchvision.io import write_png

from alcycle import labeling_tools, pixel_store, stream, synthesised
from alcycle.errors import MissingInputError
from alcycle.annotations.cvat import tasks as cvat
from alcycle.annotations.labelstudio import tasks as labelstudio
from alcycle.fileio import atomic_write_csv, atomic_write_text, replacing_folder
from alcycle.contract import Stage, committed
from alcycle.layout import Layout
from alcycle.compute import FIT_KEYS, is_global_zero
from alcycle.candidates import candidate_rows
from alcycle.params import CandidatesParams, Params
from alcycle.pool import cycle_number, read_labeled, read_manifest, rows_of, split_rows
from alcycle.strategies import Selection, SelectionContext, needs, select, settings_section

_L = Layout()
STAGE = Stage(
    name="select",
    # data/features: the embeddings, when the backbone is frozen (extract then writes none).
    # models: the classifier and the GAN, which ASAL searches with.
    deps=(_L.extracted, _L.labeled, _L.annotations, _L.manifest, _L.pixels, _L.vit, _L.features, _L.model, _L.gan),
    # classes: the labeling config and the model's guess in the Label Studio tasks name them;
    # train.freeze_backbone: where the embeddings are. compute: where VAAL/SRAAL's fit runs.
    params=("seed", "classes", "select", "train.freeze_backbone", *FIT_KEYS),
    # The batch and its labeling-tool files are committed with the cycle, so none is cached.
    # The query images too: annotators open the cycle's commit, and the batch is only budget images.
    outs=(*(committed(path) for path in (_L.queries, _L.query_images, _L.queries_labelstudio, _L.queries_cvat,
                                         _L.labelstudio_config)),
          # A stream's states: select reads the one before this cycle, so DVC must leave the file in place.
          committed(_L.stream, persist=True)),
    code=("strategies", "candidates.py", "synthesised.py", "vit.py", "gan.py", "checkpoints.py", "stream.py", "faiss_ops.py",
          "training.py", "compute.py", "labeling_tools.py", "pixel_store.py", "annotations/labelstudio/tasks.py",
          "annotations/cvat/tasks.py"),
)

QUERY_COLUMNS = ["id", "path", "score", "strategy", "cycle"]
# Inputs that are not one row per item: passed to the strategy whole.
WHOLE_INPUTS = ("vit", "model", "gan", "settings", "compute")
# The pool's manifest rows (P,) and labeled mask (P,) -> the positions a strategy sees.
Candidates = Callable[[np.ndarray, np.ndarray], np.ndarray]


def build_context(manifest: pd.DataFrame, labeled_ids: set[str], inputs: dict[str, Any],
                  candidates: Candidates | None = None) -> tuple:
    """The pool split as a ``SelectionContext``, plus the manifest rows it covers.

    ``inputs`` maps context fields to arrays with one row per manifest row (sliced
    here to the pool) or, for ``WHOLE_INPUTS``, to objects passed as they are.
    ``candidates`` (the pool's labeled mask (P,) -> kept pool positions) narrows the
    unlabeled part of the pool; labeled pool items always stay, as labeled.
    """
    rows = split_rows(manifest, "pool")
    labeled = np.isin(manifest["id"].to_numpy()[rows], list(labeled_ids))
    if candidates is not None:
        kept = candidates(rows, labeled)
        rows, labeled = rows[kept], labeled[kept]
    ids = manifest["id"].to_numpy()[rows]
    fields = {name: value if name in WHOLE_INPUTS else value[rows] for name, value in inputs.items()}
    context = SelectionContext(ids=ids, labeled=labeled, **fields)
    return context, rows


def candidate_subset(params: CandidatesParams, rng: np.random.Generator,
                     embeddings: np.ndarray | None) -> Candidates | None:
    """``build_context``'s ``candidates`` for ``select.candidates``; None for method ``all``.

    embeddings: (N, D), one row per manifest row (SEALS reads them), or None.
    """
    if params.method == "all":
        return None

    def pick(rows: np.ndarray, labeled: np.ndarray) -> np.ndarray:
        # ``at=rows``: the embeddings stay as extract wrote them (a memmap), read block by block.
        return candidate_rows(params.method, labeled, params.size, params.k, rng, embeddings, at=rows,
                              search=params.search)
    return pick


@dataclass(frozen=True)
class QueryBatch:
    """The query batch: ``table`` (``QUERY_COLUMNS``, best first) and, when the strategy synthesised
    its queries, their uint8 ``images`` (n, C, H, W), row i = the table's row i."""

    table: pd.DataFrame
    images: np.ndarray | None = None


def query_table(
    manifest: pd.DataFrame, labeled_ids: set[str], inputs: dict[str, Any],
    strategy: str, budget: int, rng: np.random.Generator, cycle: int, prepared: str,
    candidates: CandidatesParams | None = None, embeddings: np.ndarray | None = None,
) -> QueryBatch:
    """The query batch, best first: id, image path, score, strategy and the cycle it was made in.

    ``prepared`` is the folder the manifest's paths are relative to, as the annotator sees it.
    With ``candidates`` other than ``all`` the strategy scores that subset (drawn from ``rng``
    first; SEALS reads ``embeddings``, (N, D) per manifest row) and the strategy column reads
    ``<strategy>@<method>``.
    """
    subset = None if candidates is None else candidate_subset(candidates, rng, embeddings)
    context, rows = build_context(manifest, labeled_ids, inputs, subset)
    selection = select(context, strategy, budget, rng)
    if selection.images is not None:
        return synthesised_batch(selection, strategy, cycle, prepared)
    picked = rows[selection.rows]
    if subset is not None and candidates is not None:
        unlabeled = (manifest["split"] == "pool") & ~manifest["id"].isin(labeled_ids)
        print(f"select: {strategy} scored {int((~context.labeled).sum())} {candidates.method} candidates "
              f"of {int(unlabeled.sum())} unlabeled pool items")
        strategy = f"{strategy}@{candidates.method}"
    return QueryBatch(batch_table(manifest, picked, selection.scores, strategy, cycle, prepared))


def synthesised_batch(selection: Selection, strategy: str, cycle: int, prepared: str) -> QueryBatch:
    """``QueryBatch`` of synthesised images: each one's id is made from its pixels and this cycle."""
    assert selection.images is not None
    ids = [synthesised.item_id(cycle, image) for image in selection.images]
    table = pd.DataFrame({"id": ids, "path": [f"{prepared}/{synthesised.relative_path(i)}" for i in ids],
                          "score": np.round(selection.scores, 6), "strategy": strategy, "cycle": cycle})
    return QueryBatch(table, selection.images)


def batch_table(manifest: pd.DataFrame, picked: np.ndarray, scores: np.ndarray, strategy: str, cycle: int,
                prepared: str) -> pd.DataFrame:
    """``QUERY_COLUMNS`` for the manifest rows ``picked``, in that order; paths relative to ``prepared``."""
    return pd.DataFrame(
        {
            "id": manifest["id"].to_numpy()[picked],
            "path": (f"{prepared}/" + manifest["path"]).to_numpy()[picked],
            "score": np.round(scores, 6),
            "strategy": strategy,
            "cycle": cycle,
        }
    )


def load_inputs(layout: Layout, params: Params, strategy: str) -> dict[str, Any]:
    """Everything ``strategy`` reads, and nothing else."""
    section = settings_section(strategy)

    def extracted(name: str, how: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            path = layout.extracted / f"{name}.npy"
            if not path.exists():
                raise MissingInputError(f"strategy '{strategy}' needs {path}, which extract writes {how}")
            return np.load(path)
        return load

    def frozen_embeddings() -> np.ndarray:
        path = layout.features / "embeddings.npy"
        if not path.exists():
            raise MissingInputError(f"strategy '{strategy}' needs {path}, which embed writes when "
                                    f"train.freeze_backbone is true")
        return np.load(path, mmap_mode="r")  # the strategy's pool slice is the only copy

    def vit() -> Any:
        from alcycle.vit import load_vit

        return load_vit(layout.vit)

    def model() -> Any:
        from alcycle.checkpoints import load_model

        return load_model(layout.model)[0]

    def gan() -> Any:
        from alcycle.gan import load_gan

        return load_gan(layout.gan / "gan.pt")

    def gan_features() -> np.ndarray:
        path = layout.gan / "features.npy"
        if not path.exists():
            raise MissingInputError(f"strategy '{strategy}' needs {path}, which pretrain-gan writes when gan.method "
                                    f"is dcgan or wgan_gp")
        return np.load(path, mmap_mode="r")

    loaders: dict[str, Callable[[], Any]] = {
        "probs": extracted("probs", "every cycle"),
        "embeddings": frozen_embeddings if params.train.freeze_backbone else extracted("embeddings", "every cycle"),
        "mc_probs": extracted("mc_probs", "when the model has dropout (train.dropout > 0)"),
        "predicted_loss": extracted("predicted_loss", "when the model has a loss prediction module"),
        "pixels": lambda: np.load(layout.pixels, mmap_mode="r"),
        "vit": vit,
        "model": model,
        "gan": gan,
        "gan_features": gan_features,
        "settings": lambda: getattr(params.select, section),
        "compute": lambda: params.compute,
    }
    return {name: loaders[name]() for name in sorted(needs(strategy))}


def run(layout: Layout, params: Params) -> pd.DataFrame:
    manifest = read_manifest(layout.manifest)
    labeled = read_labeled(layout.labeled)
    cycle = cycle_number(layout.annotations)
    strategy = params.select.strategy if len(labeled) else params.select.cold_start
    # One stream per (seed, cycle): reproducible, yet random picks differ from cycle to cycle.
    rng = np.random.default_rng([params.seed, cycle])
    if params.select.stream.window and len(labeled):
        queries = stream_table(layout, manifest, set(labeled["id"]), params, cycle, rng)
        return write_batch(layout, manifest, QueryBatch(queries), params, labeled=True)
    inputs = load_inputs(layout, params, strategy)
    batch = query_table(
        manifest,
        set(labeled["id"]),
        inputs,
        strategy,
        params.select.budget,
        rng,
        cycle,
        layout.query_images.relative_to(layout.root).as_posix(),
        params.select.candidates,
        seals_embeddings(layout, params, inputs, labeled=len(labeled) > 0),
    )
    if not is_global_zero():
        return batch.table  # another process of VAAL's distributed fit: rank zero writes
    if not layout.stream.exists():
        atomic_write_text(layout.stream, stream.dump_states({}))  # pool-based: no stream state
    return write_batch(layout, manifest, batch, params, labeled=len(labeled) > 0)


def write_batch(layout: Layout, manifest: pd.DataFrame, batch: QueryBatch, params: Params,
                labeled: bool) -> pd.DataFrame:
    """``queries.csv``, the batch's images and the labeling tools' files."""
    # At cycle 0 the model has seen no label: its guess would only mislead the annotator.
    predicted = predictions(layout, manifest, batch, params.classes) if labeled else None
    atomic_write_csv(layout.queries, batch.table)
    write_query_images(layout, manifest, batch)
    write_for_labeling_tools(layout, batch, predicted, params)
    return batch.table


def stream_table(layout: Layout, manifest: pd.DataFrame, labeled_ids: set[str], params: Params, cycle: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """The next window of the stream (``select.stream``), decided item by item; its state is stored
    in ``layout.stream`` under this cycle, read from the latest cycle before it. Score: 1 − top-class probability."""
    sp = params.select.stream
    states = stream.load_states(layout.stream)
    # The latest state before this cycle (a replay of this cycle's tag finds this cycle's own entry too, and ignores it).
    earlier = [c for c in states if c < cycle]
    before = states[max(earlier)] if earlier else stream.START
    rows = split_rows(manifest, "pool")
    times = None
    if sp.order == "time":
        if "time" not in manifest.columns:
            raise MissingInputError(f"select.stream.order is time but {layout.manifest} has no time column; give "
                                    f"your CSV manifest (prepare.path) a 'time' column, or use order: manifest")
        times = manifest["time"].to_numpy()[rows]
    labeled = np.isin(manifest["id"].to_numpy()[rows], list(labeled_ids))
    probs = np.load(layout.extracted / "probs.npy", mmap_mode="r")
    confidence = np.asarray(probs[rows]).max(axis=1)
    share = sp.random_share if sp.manager == "split" else 0.0
    # order random: one shuffle of the pool, the same at every cycle of this seed
    order = stream.arrival_order(times, len(rows), manifest["id"].to_numpy()[rows],
                                 shuffle_seed=params.seed if sp.order == "random" else None)
    window = stream.next_window(order, labeled, confidence, before.position,
                                sp.window, before.state, sp.budget, sp.step, share, rng)
    states[cycle] = stream.Position(window.end, window.state)
    atomic_write_text(layout.stream, stream.dump_states(states))
    picked = rows[window.picked]
    met = window.state.seen - before.state.seen
    print(f"select: the stream met {met} arrivals (positions {before.position}-{window.end - 1}) and labels "
          f"{len(picked)}; {window.state.labeled} of {window.state.seen} met so far (budget {sp.budget:.0%})")
    return batch_table(manifest, picked, 1.0 - confidence[window.picked], f"stream:{sp.manager}", cycle,
                       layout.query_images.relative_to(layout.root).as_posix())


def seals_embeddings(layout: Layout, params: Params, inputs: dict[str, Any], labeled: bool) -> np.ndarray | None:
    """Extract's embeddings (N, D) when SEALS needs them (a memmap: rows are read as used), else None."""
    if params.select.candidates.method != "seals" or not labeled:
        return None
    if "embeddings" in inputs:
        return inputs["embeddings"]
    path = layout.extracted / "embeddings.npy"
    if not path.exists():
        raise MissingInputError(f"select.candidates.method 'seals' needs {path}, which extract writes every cycle")
    return np.load(path, mmap_mode="r")


def predictions(layout: Layout, manifest: pd.DataFrame, batch: QueryBatch,
                classes: tuple[str, ...]) -> list[str]:
    """The trained model's class for each queried item, from extract's probabilities (for
    synthesised images, from the model itself)."""
    if batch.images is not None:
        from alcycle.checkpoints import load_model
        from alcycle.inference import predict

        probs, _ = predict(load_model(layout.model)[0], batch.images, batch_size=256)
        return labeling_tools.predicted_classes(probs, classes)
    path = layout.extracted / "probs.npy"
    if not path.exists():
        raise MissingInputError(f"{path} is missing; extract writes it every cycle (run `dvc repro`)")
    probs = np.load(path, mmap_mode="r")
    return labeling_tools.predicted_classes(probs[rows_of(manifest, batch.table["id"])], classes)


def write_query_images(layout: Layout, manifest: pd.DataFrame, batch: QueryBatch) -> None:
    """Each queried item's pixels, exactly what the model saw, as a PNG at its manifest path
    under ``layout.query_images`` (a synthesised image at ``synthesised/<id>.png``): the images
    Label Studio and CVAT show.

    The folder is rebuilt whole, so it holds this batch only. O(budget) images on disk,
    one in memory.
    """
    with replacing_folder(layout.query_images) as folder:
        if batch.images is not None:
            synthesised.write_images(folder / synthesised.FOLDER, batch.table["id"].tolist(), batch.images)
            return
        pixels = pixel_store.open_pixels(layout.pixels)
        rows = rows_of(manifest, batch.table["id"])
        for row, relative in zip(rows, manifest["path"].to_numpy()[rows]):
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(np.array(pixels[row])), str(target))


def write_for_labeling_tools(layout: Layout, batch: QueryBatch, predicted: list[str] | None,
                             params: Params) -> None:
    """Label Studio's tasks and labeling config, and CVAT's list of image paths. A batch of synthesised
    images offers one answer more than the classes: ``unrecognisable``; so does every later batch of a
    project that kept one (Label Studio refuses a config that drops an answer its annotations use)."""
    tasks = labelstudio.label_studio_tasks(batch.table, predicted, params.select.image_url_prefix)
    made = batch.images is not None or not synthesised.items(synthesised.store(layout)).empty
    answers = params.classes + ((synthesised.UNRECOGNISABLE,) if made else ())
    atomic_write_text(layout.queries_labelstudio, labelstudio.label_studio_json(tasks))
    atomic_write_text(layout.labelstudio_config, labelstudio.label_studio_config(answers))
    atomic_write_text(layout.queries_cvat, cvat.cvat_paths(batch.table))
