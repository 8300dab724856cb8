"""Where each file of an alcycle project lives, relative to the project root.

The stages' contracts (``Stage`` in each ``alcycle.stages`` module) name these paths, and
``dvc.yaml`` is generated from the contracts (``alcycle.pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    @property
    def params(self) -> Path:
        """The settings of every stage (see `docs/parameters.md`)."""
        return self.root / "params.yaml"

    @property
    def prepared(self) -> Path:
        """manifest.csv, pixels.npy (and skipped.csv): the pool as training reads it."""
        return self.root / "data" / "prepared"

    @property
    def manifest(self) -> Path:
        """id, path, split: one row per image, in pixel-array order; ``path`` (images/<id>.png)
        is where the image lies under ``query_images`` once select has queried it."""
        return self.prepared / "manifest.csv"

    @property
    def pixels(self) -> Path:
        """uint8 (N, C, H, W), row i = manifest row i: a memory-mapped store (``pixel_store``)."""
        return self.prepared / "pixels.npy"

    @property
    def skipped(self) -> Path:
        """Images prepare left out because they cannot be read (``prepare.on_unreadable: skip``)."""
        return self.prepared / "skipped.csv"

    @property
    def truth_folder(self) -> Path:
        """labels.csv (the ground truth) and sources.csv (each item's original path)."""
        return self.root / "data" / "truth"

    @property
    def truth(self) -> Path:
        """The ground truth; read by evaluate and the oracle, never by training."""
        return self.truth_folder / "labels.csv"

    @property
    def annotations(self) -> Path:
        """Append-only folder of annotation batches, one file per labelling round, never edited."""
        return self.root / "data" / "annotations"

    @property
    def import_lock(self) -> Path:
        """Held while an import checks, stores and rebuilds (git ignores it)."""
        return self.root / "data" / ".import.lock"

    @property
    def oracle_cache(self) -> Path:
        """The oracle's reference classifiers for synthesised images (git ignores it)."""
        return self.root / "data" / ".oracle"

    @property
    def import_report(self) -> Path:
        """label-import's report: each batch's format, hash, matching and annotator disagreements."""
        return self.root / "metrics" / "label_import.json"

    @property
    def labeled(self) -> Path:
        """The labeled pool: id, label, cycle, source, annotator; sorted by id."""
        return self.root / "data" / "labeled.csv"

    @property
    def pretrained(self) -> Path:
        """Backbone weights learned without labels (or a note that there are none)."""
        return self.root / "models" / "pretrained.pt"

    @property
    def vit(self) -> Path:
        """GEAL's vision transformer (or a note that there is none)."""
        return self.root / "models" / "vit.pt"

    @property
    def gan(self) -> Path:
        """ASAL's GAN: gan.pt (its networks and feature map, or a note that there is none),
        features.npy (K features of every manifest row) and samples.png (64 generated images)."""
        return self.root / "models" / "gan"

    @property
    def features(self) -> Path:
        """embeddings.npy (N, D), the frozen backbone's features of every manifest row, and
        source.json naming that backbone (or saying the backbone is not frozen)."""
        return self.root / "data" / "features"

    @property
    def model(self) -> Path:
        """The classifier: weights, hyperparameters, classes and the ids it was trained on."""
        return self.root / "models" / "model.pt"

    @property
    def pseudo_labels(self) -> Path:
        """Pseudo-labels of the last training run: never part of the labeled pool."""
        return self.root / "models" / "pseudo_labels.csv"

    @property
    def extracted(self) -> Path:
        """probs.npy, embeddings.npy (and mc_probs.npy, predicted_loss.npy when the
        model has dropout or a loss prediction module), one row per manifest row."""
        return self.root / "data" / "extract"

    @property
    def metrics(self) -> Path:
        """The cycle's figures: test and per-class accuracy, labels, pseudo-label accuracy."""
        return self.root / "metrics" / "evaluate.json"

    @property
    def confusion(self) -> Path:
        """Test-split confusion counts, for `dvc plots`."""
        return self.root / "metrics" / "confusion.csv"

    @property
    def mlflow_run(self) -> Path:
        """The cycle and the id of the MLflow run it logged."""
        return self.root / "metrics" / "mlflow_run.json"

    @property
    def queries(self) -> Path:
        """The next batch to label: id, path (its image, in data/queries/), score, strategy, cycle."""
        return self.root / "data" / "queries.csv"

    @property
    def stream(self) -> Path:
        """A stream's state after each cycle (select.stream): where the next window starts, items met,
        labeled, the threshold; committed, so a tag's select re-reads the cycle before it."""
        return self.root / "data" / "stream.json"

    @property
    def query_images(self) -> Path:
        """The query batch's images as PNG (images/<id>.png, the manifest's path), exactly the
        pixels the model saw: what Label Studio and CVAT show the annotator."""
        return self.root / "data" / "queries"

    @property
    def queries_labelstudio(self) -> Path:
        """The next batch as Label Studio tasks, the model's guess as a pre-annotation."""
        return self.root / "data" / "queries.labelstudio.json"

    @property
    def queries_cvat(self) -> Path:
        """The next batch's image paths, one a line, to create a CVAT task from."""
        return self.root / "data" / "queries.cvat.txt"

    @property
    def labelstudio_config(self) -> Path:
        """Label Studio's labeling config for ``params.classes``, matching the tasks."""
        return self.root / "data" / "labelstudio.xml"
