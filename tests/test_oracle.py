"""The oracle answers the current queries from the ground truth, and only those."""

import hashlib

import pandas as pd
import pytest

from alcycle.layout import Layout
from alcycle.oracle import OracleError, answer


def setup(tmp_path, cycle: int = 0):
    layout = Layout(tmp_path)
    layout.truth.parent.mkdir(parents=True)
    pd.DataFrame({"id": ["a", "b", "c"], "label": ["x", "y", "x"]}).to_csv(layout.truth, index=False)
    pd.DataFrame({"id": ["c", "a"], "path": "p", "score": [2.0, 1.0], "strategy": "entropy",
                  "cycle": cycle}).to_csv(layout.queries, index=False)
    layout.annotations.mkdir(parents=True)
    return layout


def test_writes_the_next_batch_in_query_order(tmp_path):
    layout = setup(tmp_path)
    path = answer(layout)
    content = b"id,label\nc,x\na,x\n"
    assert path == layout.annotations / f"batch-0001-{hashlib.sha256(content).hexdigest()[:16]}.csv"
    assert path.read_bytes() == content


def test_refuses_queries_made_before_the_last_batch(tmp_path):
    layout = setup(tmp_path)
    answer(layout)
    with pytest.raises(OracleError, match="made at cycle 0 but 1 batch"):
        answer(layout)
    assert len(list(layout.annotations.glob("*.csv"))) == 1


def test_refuses_items_without_ground_truth(tmp_path):
    layout = setup(tmp_path)
    pd.DataFrame({"id": ["zz"], "path": "p", "score": [1.0], "strategy": "random", "cycle": 0}).to_csv(
        layout.queries, index=False)
    with pytest.raises(OracleError, match="no ground truth for 1 queried item"):
        answer(layout)
    assert not list(layout.annotations.glob("*.csv"))
