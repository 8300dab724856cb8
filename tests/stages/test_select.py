"""The query batch: pool items only, never labeled ones, best first."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_params

from alcycle.layout import Layout
from alcycle.errors import MissingInputError
from alcycle.params import CandidatesParams, Params, load_params
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
    queries = query_table(MANIFEST, {"a"}, INPUTS, "entropy", 2, np.random.default_rng(0), 3, "data/p").table
    # a is labeled and t is a test item, although both have the highest entropy
    assert queries["id"].tolist() == ["d", "c"]
    assert queries["path"].tolist() == ["data/p/images/d.png", "data/p/images/c.png"]
    assert queries["strategy"].unique().tolist() == ["entropy"] and queries["cycle"].unique().tolist() == [3]
    assert queries["score"].is_monotonic_decreasing


def test_coreset_batch_starts_from_the_labeled_items():
    queries = query_table(MANIFEST, {"a"}, INPUTS, "coreset", 3, np.random.default_rng(0), 1, "p").table
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


# --- candidate subsets (select.candidates) --------------------------------------------

def pool_of(n: int, n_test: int, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray], set[str]]:
    """n items (the last n_test of them test items), seeded 2-class probabilities and 3-d
    embeddings, and a labeled set of 4 pool items."""
    rng = np.random.default_rng(seed)
    ids = [f"i{k:03d}" for k in range(n)]
    manifest = pd.DataFrame({"id": ids, "path": [f"images/{i}.png" for i in ids],
                             "split": ["pool"] * (n - n_test) + ["test"] * n_test})
    p = rng.random(n).astype(np.float32)
    inputs = {"probs": np.stack([p, 1 - p], axis=1), "embeddings": rng.normal(size=(n, 3)).astype(np.float32)}
    return manifest, inputs, set(rng.choice(ids[: n - n_test], size=4, replace=False).tolist())


@pytest.mark.parametrize("method", ["random", "seals"])
@pytest.mark.parametrize("seed", range(10))
def test_candidates_are_unlabeled_pool_items_and_labeled_ones_stay_labeled(method, seed):
    manifest, inputs, labeled = pool_of(50, 10, seed)
    settings = CandidatesParams(method=method, size=8, k=2)
    subset = select_stage.candidate_subset(settings, np.random.default_rng(seed), inputs["embeddings"])
    context, rows = select_stage.build_context(manifest, labeled, inputs, subset)
    test_ids = set(manifest["id"][manifest["split"] == "test"])
    candidates = set(context.ids[~context.labeled])
    assert len(candidates) == 8 and not candidates & (labeled | test_ids)
    # every labeled item is in view as labeled (Core-Set's centres, TypiClust's covered clusters)
    assert set(context.ids[context.labeled]) == labeled
    np.testing.assert_array_equal(context.embeddings, inputs["embeddings"][rows])


@pytest.mark.parametrize("strategy", ["entropy", "coreset", "typiclust", "random"])
def test_a_strategy_on_candidates_returns_only_candidates(strategy, capsys):
    manifest, inputs, labeled = pool_of(60, 10, 1)
    settings = CandidatesParams(method="seals", size=12, k=3)
    subset = select_stage.candidate_subset(settings, np.random.default_rng(4), inputs["embeddings"])
    context, _ = select_stage.build_context(manifest, labeled, inputs, subset)
    queries = query_table(manifest, labeled, inputs, strategy, 5, np.random.default_rng(4), 2, "p",
                          settings, inputs["embeddings"]).table
    assert set(queries["id"]) <= set(context.ids[~context.labeled]) and len(queries) == 5
    assert queries["strategy"].unique().tolist() == [f"{strategy}@seals"]
    assert f"select: {strategy} scored 12 seals candidates of 46 unlabeled pool items" in capsys.readouterr().out


def test_coreset_on_candidates_measures_from_the_labeled_items():
    manifest, inputs, labeled = pool_of(60, 10, 2)
    settings = CandidatesParams(method="random", size=10, k=1)
    subset = select_stage.candidate_subset(settings, np.random.default_rng(0), None)
    context, _ = select_stage.build_context(manifest, labeled, inputs, subset)
    queries = query_table(manifest, labeled, inputs, "coreset", 1, np.random.default_rng(0), 1, "p", settings).table
    # the first pick is the candidate farthest from every labeled item (brute force)
    candidates, centres = context.embeddings[~context.labeled], context.embeddings[context.labeled]
    gaps = np.sqrt(((candidates[:, None] - centres[None]) ** 2).sum(axis=2)).min(axis=1)
    assert queries["id"].tolist() == [context.ids[~context.labeled][gaps.argmax()]]
    np.testing.assert_allclose(queries["score"], [gaps.max()], atol=1e-5)


@pytest.mark.parametrize("strategy", ["random", "entropy", "coreset", "typiclust", "badge"])
def test_candidates_all_gives_exactly_todays_queries(strategy):
    manifest, inputs, labeled = pool_of(60, 10, 3)
    today = query_table(manifest, labeled, inputs, strategy, 6, np.random.default_rng(9), 1, "p").table
    every = query_table(manifest, labeled, inputs, strategy, 6, np.random.default_rng(9), 1, "p",
                        CandidatesParams(method="all", size=5, k=2), inputs["embeddings"]).table
    pd.testing.assert_frame_equal(today, every)


def test_the_stage_reads_embeddings_for_seals_and_names_the_subset(tmp_path):
    layout, params = tiny_project(tmp_path, labeled=True, **{"    method: all ": "    method: seals ",
                                                             "    size: 10000 ": "    size: 2 ",
                                                             "    k: 100 ": "    k: 1 "})
    np.save(layout.extracted / "embeddings.npy", EMBEDDINGS)
    queries = select_stage.run(layout, params)
    # a (at 0) is labeled: its nearest unlabeled item is b (at 1), then the top-up draws one of c, d
    assert "b" in set(queries["id"]) and queries["strategy"].unique().tolist() == ["entropy@seals"]
    (layout.extracted / "embeddings.npy").unlink()
    with pytest.raises(MissingInputError, match="select.candidates.method 'seals' needs .*embeddings.npy"):
        select_stage.run(layout, params)
