"""What the query batch shows in every labeling tool: the model's guess at each item.

Each tool's own files live with its reader, one package per tool, both directions:
``alcycle.annotations.labelstudio`` (``tasks`` out, ``export`` in) and
``alcycle.annotations.cvat`` (the same). ``alcycle.stages.select`` writes the query batch
through them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from alcycle.params import ParamsError


def predicted_classes(probs: np.ndarray, classes: Sequence[str]) -> list[str]:
    """The most probable class name of each row of ``probs`` (B, C); C must be ``len(classes)``."""
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ParamsError(f"class probabilities of shape {probs.shape} do not fit the {len(classes)} classes "
                         f"of params.yaml; run `dvc repro` so that train and extract use the current classes")
    return [classes[i] for i in np.asarray(probs).argmax(axis=1)]
