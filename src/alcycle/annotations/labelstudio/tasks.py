"""The query batch as Label Studio imports it: a JSON list of tasks and the labeling config they fit.

One task per queried image (https://labelstud.io/guide/predictions), carrying alcycle's
id and, once a model has been trained on labels, its predicted class as a pre-annotation.
Pure functions of the query table; ``alcycle.stages.select`` writes their output.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from alcycle.annotations.labelstudio import ID_KEY, IMAGE_KEY

CHOICES = "label"  # the config's <Choices> tag, which a prediction's result fills in


def image_url(prefix: str, path: str) -> str:
    """The URL Label Studio loads ``path`` (relative to the project root) from.

    The path is percent-encoded as a query value, so a name with spaces or ``&`` stays one
    file; ``/`` is kept, as Label Studio's own examples write ``?d=dataset1/images/1.jpg``.
    """
    return prefix + quote(path, safe="/")


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
        task: dict[str, Any] = {"data": {IMAGE_KEY: image_url(url_prefix, item.path), ID_KEY: item.id}}
        if predicted is not None:
            prediction: dict[str, Any] = {"model_version": f"cycle-{item.cycle}-{item.strategy}"}
            if math.isfinite(item.score):
                prediction["score"] = float(item.score)
            prediction["result"] = [{"from_name": CHOICES, "to_name": IMAGE_KEY, "type": "choices",
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
    return (f'<View>\n  <Image name="{IMAGE_KEY}" value="${IMAGE_KEY}"/>\n'
            f'  <Choices name="{CHOICES}" toName="{IMAGE_KEY}" choice="single">\n{choices}  </Choices>\n</View>\n')
