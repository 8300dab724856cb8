"""Where each file of an alcycle project lives, relative to the project root.

``dvc.yaml`` names the same paths; ``tests/test_layout.py`` keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def prepared(self) -> Path:
        """DVC-cached: images/, manifest.csv, pixels.npy (and skipped.csv)."""
        return self.root / "data" / "prepared"

    @property
    def manifest(self) -> Path:
        return self.prepared / "manifest.csv"

    @property
    def pixels(self) -> Path:
        return self.prepared / "pixels.npy"

    @property
    def skipped(self) -> Path:
        """Images prepare left out because they cannot be read (``prepare.on_unreadable: skip``)."""
        return self.prepared / "skipped.csv"

    @property
    def truth(self) -> Path:
        """DVC-cached ground truth; read by evaluate and the oracle, never by training."""
        return self.root / "data" / "truth" / "labels.csv"

    @property
    def annotations(self) -> Path:
        """Git-tracked, append-only folder of annotation batches."""
        return self.root / "data" / "annotations"

    @property
    def import_lock(self) -> Path:
        """Held while an import checks, stores and rebuilds; git-ignored."""
        return self.root / "data" / ".import.lock"

    @property
    def import_report(self) -> Path:
        """label-import's report: each batch's format, hash, matching and annotator disagreements."""
        return self.root / "metrics" / "label_import.json"

    @property
    def labeled(self) -> Path:
        """The labeled pool: git-tracked, sorted by id."""
        return self.root / "data" / "labeled.csv"

    @property
    def pretrained(self) -> Path:
        """DVC-cached backbone weights from the pretrain stage (or a note that there are none)."""
        return self.root / "models" / "pretrained.pt"

    @property
    def vit(self) -> Path:
        """DVC-cached vision transformer from the pretrain-vit stage, for GEAL (or a note that there is none)."""
        return self.root / "models" / "vit.pt"

    @property
    def model(self) -> Path:
        return self.root / "models" / "model.pt"

    @property
    def pseudo_labels(self) -> Path:
        """DVC-cached pseudo-labels of the last training run: never part of the labeled pool."""
        return self.root / "models" / "pseudo_labels.csv"

    @property
    def extracted(self) -> Path:
        """DVC-cached: probs.npy, embeddings.npy (and mc_probs.npy, predicted_loss.npy when the
        model has dropout or a loss prediction module), one row per manifest row."""
        return self.root / "data" / "extract"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / "evaluate.json"

    @property
    def confusion(self) -> Path:
        return self.root / "metrics" / "confusion.csv"

    @property
    def mlflow_run(self) -> Path:
        return self.root / "metrics" / "mlflow_run.json"

    @property
    def queries(self) -> Path:
        """The next batch to label: git-tracked."""
        return self.root / "data" / "queries.csv"

    @property
    def queries_labelstudio(self) -> Path:
        """The next batch as Label Studio tasks, the model's guess as a pre-annotation: git-tracked."""
        return self.root / "data" / "queries.labelstudio.json"

    @property
    def queries_cvat(self) -> Path:
        """The next batch's image paths, one a line, to create a CVAT task from: git-tracked."""
        return self.root / "data" / "queries.cvat.txt"

    @property
    def labelstudio_config(self) -> Path:
        """Label Studio's labeling config for ``params.classes``, matching the tasks: git-tracked."""
        return self.root / "data" / "labelstudio.xml"
