"""The query batch in the formats labeling tools import.

- Label Studio: a JSON list of tasks (https://labelstud.io/guide/predictions), one per
  queried image, carrying alcycle's id and, once a model has been trained on labels, its
  predicted class as a pre-annotation; plus the labeling config those tasks fit.
- CVAT: the images' paths, one a line, to create a task from.

Pure functions of the query table; ``alcycle.stages.select`` writes their output.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from alcycle.params import ParamsError

# The names that tie a task to the labeling config: the task's data key and the <Image>
# tag's name ("$image"), and the <Choices> tag a prediction's result fills in.
IMAGE = "image"
CHOICES = "label"


def image_url(prefix: str, path: str) -> str:
    """The URL Label Studio loads ``path`` (relative to the project root) from.

    The path is percent-encoded as a query value, so a name with spaces or ``&`` stays one
    file; ``/`` is kept, as Label Studio's own examples write ``?d=dataset1/images/1.jpg``.
    """
    return prefix + quote(path, safe="/")


def predicted_classes(probs: np.ndarray, classes: Sequence[str]) -> list[str]:
    """The most probable class name of each row of ``probs`` (B, C); C must be ``len(classes)``."""
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ParamsError(f"class probabilities of shape {probs.shape} do not fit the {len(classes)} classes "
                         f"of params.yaml; run `dvc repro` so that train and extract use the current classes")
    return [classes[i] for i in np.asarray(probs).argmax(axis=1)]


def label_studio_tasks(queries: pd.DataFrame, predicted: Sequence[str] | None, url_prefix: str) -> list[dict]:
    """One Label Studio task per row of ``queries`` (id, path, score, strategy, cycle), in its order.

    ``predicted`` holds the model's class for each row, or None when no model has seen a label
    yet (cycle 0): such tasks carry no prediction, as an untrained model's guess would only
    mislead the annotator. A prediction's ``score`` is the strategy's score, which Label Studio's
    Data Manager can sort by; a score that is not a finite number is left out, since JSON has none.
    """
    if predicted is not None and len(predicted) != len(queries):
        raise ValueError(f"{len(predicted)} predicted classes for {len(queries)} queried items")
    tasks = []
    for row, item in enumerate(queries.itertuples(index=False)):
        task: dict[str, Any] = {"data": {IMAGE: image_url(url_prefix, item.path), "alcycle_id": item.id}}
        if predicted is not None:
            prediction: dict[str, Any] = {"model_version": f"cycle-{item.cycle}-{item.strategy}"}
            if math.isfinite(item.score):
                prediction["score"] = float(item.score)
            prediction["result"] = [{"from_name": CHOICES, "to_name": IMAGE, "type": "choices",
                                     "value": {"choices": [predicted[row]]}}]
            task["predictions"] = [prediction]
        tasks.append(task)
    return tasks


def label_studio_json(tasks: list[dict]) -> str:
    """The tasks as an import file: indented, so that ``git diff`` shows one change a line."""
    return json.dumps(tasks, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def label_studio_config(classes: Sequence[str]) -> str:
    """The labeling config the tasks fit: the image and one single choice among ``classes``."""
    choices = "".join(f"    <Choice value={quoteattr(name)}/>\n" for name in classes)
    return (f'<View>\n  <Image name="{IMAGE}" value="${IMAGE}"/>\n'
            f'  <Choices name="{CHOICES}" toName="{IMAGE}" choice="single">\n{choices}  </Choices>\n</View>\n')


def cvat_paths(queries: pd.DataFrame) -> str:
    """The queried images' paths (relative to the project root), one a line, best first."""
    return "".join(f"{path}\n" for path in queries["path"])
