"""The query batch: pool items only, never labeled ones, best first."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_params

from alcycle.layout import Layout
from alcycle.params import Params, load_params
from alcycle.pool import LABELED_COLUMNS
from alcycle.stages import select as select_stage
from alcycle.stages.select import query_table

MANIFEST = pd.DataFrame({
    "id": ["a", "b", "c", "d", "t"],
    "path": [f"images/{i}.png" for i in "abcdt"],
    "split": ["pool", "pool", "pool", "pool", "test"],
})
PROBS = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.5, 0.5]], dtype=np.float32)
EMBEDDINGS = np.array([[0.0], [1.0], [5.0], [2.0], [9.0]], dtype=np.float32)
INPUTS = {"probs": PROBS, "embeddings": EMBEDDINGS}
PIXELS = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)  # one image per MANIFEST row


def test_entropy_batch_skips_labeled_and_test_items():
    queries = query_table(MANIFEST, {"a"}, INPUTS, "entropy", 2, np.random.default_rng(0), 3, "data/p")
    # a is labeled and t is a test item, although both have the highest entropy
    assert queries["id"].tolist() == ["d", "c"]
    assert queries["path"].tolist() == ["data/p/images/d.png", "data/p/images/c.png"]
    assert queries["strategy"].unique().tolist() == ["entropy"] and queries["cycle"].unique().tolist() == [3]
    assert queries["score"].is_monotonic_decreasing


def test_coreset_batch_starts_from_the_labeled_items():
    queries = query_table(MANIFEST, {"a"}, INPUTS, "coreset", 3, np.random.default_rng(0), 1, "p")
    # distances from a (at 0): c = 5, then from {a, c}: d = 2 (b = 1), then b
    assert queries["id"].tolist() == ["c", "d", "b"]
    np.testing.assert_allclose(queries["score"], [5.0, 2.0, 1.0])


def test_budget_beyond_the_unlabeled_pool_is_refused():
    with pytest.raises(ValueError, match="budget 4 exceeds the 3 unlabeled items"):
        query_table(MANIFEST, {"a"}, INPUTS, "random", 4, np.random.default_rng(0), 1, "p")


# --- the batch for labeling tools, written by the stage itself on a tiny project ---

def tiny_project(tmp_path: Path, labeled: bool, **params_overrides: str) -> tuple[Layout, Params]:
    """MANIFEST's five items as a project of classes cat/dog, budget 2; ``labeled``: item a is
    labeled cat by batch-0001 (cycle 1) and extract's probabilities exist, else cycle 0 with neither."""
    layout = Layout(tmp_path)
    params = load_params(write_params(tmp_path, **{
        "classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']": "classes: [cat, dog]",
        "  budget: 20": "  budget: 2", **params_overrides}))
    layout.prepared.mkdir(parents=True)
    MANIFEST.to_csv(layout.manifest, index=False)
    np.save(layout.pixels, PIXELS)
    if labeled:
        layout.annotations.mkdir(parents=True)
        (layout.annotations / "batch-0001.csv").write_text("id,label\na,cat\n")
        row = {"id": "a", "label": "cat", "cycle": 1, "source": "batch-0001.csv"}
        pd.DataFrame([{c: row.get(c, "") for c in LABELED_COLUMNS}]).to_csv(layout.labeled, index=False)
        layout.extracted.mkdir(parents=True)
        # by entropy: d (0.55/0.45, predicted cat) first, then c (0.4/0.6, predicted dog); b is confident
        probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.5, 0.5]], dtype=np.float32)
        np.save(layout.extracted / "probs.npy", probs)
    return layout, params


LABELSTUDIO_XML = """\
<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image" choice="single">
    <Choice value="cat"/>
    <Choice value="dog"/>
  </Choices>
</View>
"""


def test_labeling_tool_files_carry_the_models_guess(tmp_path):
    layout, params = tiny_project(tmp_path, labeled=True)
    queries = select_stage.run(layout, params)
    assert queries["id"].tolist() == ["d", "c"]
    d_score, c_score = queries["score"].tolist()
    assert (d_score, c_score) == (0.688139, 0.673012)  # entropies in nats, rounded as in queries.csv
    assert layout.queries_labelstudio.read_text() == f"""\
[
  {{
    "data": {{
      "image": "/data/local-files/?d=data/queries/images/d.png",
      "alcycle_id": "d"
    }},
    "predictions": [
      {{
        "model_version": "cycle-1-entropy",
        "score": {d_score},
        "result": [
          {{
            "from_name": "label",
            "to_name": "image",
            "type": "choices",
            "value": {{
              "choices": [
                "cat"
              ]
            }}
          }}
        ]
      }}
    ]
  }},
  {{
    "data": {{
      "image": "/data/local-files/?d=data/queries/images/c.png",
      "alcycle_id": "c"
    }},
    "predictions": [
      {{
        "model_version": "cycle-1-entropy",
        "score": {c_score},
        "result": [
          {{
            "from_name": "label",
            "to_name": "image",
            "type": "choices",
            "value": {{
              "choices": [
                "dog"
              ]
            }}
          }}
        ]
      }}
    ]
  }}
]
"""
    tasks = json.loads(layout.queries_labelstudio.read_text())
    assert isinstance(tasks, list) and [t["data"]["alcycle_id"] for t in tasks] == queries["id"].tolist()
    assert layout.queries_cvat.read_text() == "data/queries/images/d.png\ndata/queries/images/c.png\n"
    assert layout.labelstudio_config.read_text() == LABELSTUDIO_XML


def test_cycle_zero_tasks_have_no_prediction_and_the_url_prefix_comes_from_params(tmp_path):
    # no probs.npy at all: an untrained model's guess is never read
    layout, params = tiny_project(tmp_path, labeled=False, **{
        '  image_url_prefix: "/data/local-files/?d="': '  image_url_prefix: "http://127.0.0.1:8081/"'})
    queries = select_stage.run(layout, params)
    assert queries["strategy"].unique().tolist() == ["random"] and len(queries) == 2
    tasks = json.loads(layout.queries_labelstudio.read_text())
    assert tasks == [{"data": {"image": f"http://127.0.0.1:8081/data/queries/images/{i}.png", "alcycle_id": i}}
                     for i in queries["id"]]
    assert layout.queries_cvat.read_text() == "".join(f"{p}\n" for p in queries["path"])
    assert layout.labelstudio_config.read_text() == LABELSTUDIO_XML
