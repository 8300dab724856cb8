"""The query batch as labeling tools import it: URLs, predicted classes, the labeling config."""

import json

import numpy as np
import pandas as pd
import pytest

from alcycle.annotations.cvat.tasks import cvat_paths
from alcycle.annotations.labelstudio.tasks import image_url, label_studio_config, label_studio_json, label_studio_tasks
from alcycle.labeling_tools import predicted_classes

QUERIES = pd.DataFrame({"id": ["x", "y"], "path": ["data/p/a b&c.png", "data/p/y.png"],
                        "score": [np.inf, 0.25], "strategy": "coreset", "cycle": 4})


def test_an_image_path_is_one_query_value():
    assert image_url("/data/local-files/?d=", "data/p/a b&c.png") == "/data/local-files/?d=data/p/a%20b%26c.png"
    assert image_url("http://host:8081/proj/", "data/p/y.png") == "http://host:8081/proj/data/p/y.png"


def test_the_predicted_class_is_the_most_probable_one():
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.2, 0.3]], dtype=np.float32)
    assert predicted_classes(probs, ("cat", "dog", "fox")) == ["dog", "cat"]
    with pytest.raises(ValueError, match=r"shape \(2, 3\) do not fit the 2 classes"):
        predicted_classes(probs, ("cat", "dog"))


def test_a_score_json_cannot_hold_is_left_out():
    tasks = label_studio_tasks(QUERIES, ["cat", "dog"], "/f?d=")
    assert [list(t["predictions"][0]) for t in tasks] == [["model_version", "result"],
                                                         ["model_version", "score", "result"]]
    assert tasks[1]["predictions"][0]["score"] == 0.25
    assert json.loads(label_studio_json(tasks)) == tasks
    with pytest.raises(ValueError, match="1 predicted classes for 2 queried items"):
        label_studio_tasks(QUERIES, ["cat"], "/f?d=")


def test_class_names_are_escaped_in_the_config():
    config = label_studio_config(("a&b", 'say "hi"'))
    assert '<Choice value="a&amp;b"/>' in config and """<Choice value='say "hi"'/>""" in config


def test_cvat_gets_the_paths_best_first():
    assert cvat_paths(QUERIES) == "data/p/a b&c.png\ndata/p/y.png\n"
