"""campaign.yaml: cells, recipes as params overrides, clear errors; the summary's figures by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from alcycle.campaign.cell import cell_output
from alcycle.campaign.definition import Cell, load_campaign
from alcycle.campaign.scaffold import DEFAULT_CAMPAIGN
from alcycle.campaign.summary import against_random, area_under_curve, collect, curve_table, labels_to_reach, metrics
from alcycle.params import ParamsError
from alcycle.scaffold import MNIST_CLASSES, render_params


def write_campaign(folder, **changes) -> object:
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT_CAMPAIGN, **changes}))
    return path


def base_params() -> dict:
    return yaml.safe_load(render_params("mnist", "", MNIST_CLASSES, 28, 1, 0))


def test_cells_run_seed_first_and_count_labels(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path, strategies=["random", "ceal"], seeds=[0, 1]))
    assert [c.name for c in campaign.cells[:4]] == ["random-plain-0", "random-unlabeled-0", "ceal-plain-0",
                                                     "ceal-unlabeled-0"]
    assert campaign.cells[0].stage == "cell@0-random-plain"
    assert campaign.label_counts == [10 + 10 * k for k in range(11)]


def test_recipes_override_params_strategy_last(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path))
    base = base_params()
    refused = "cell ceal-unlabeled-2: .*'train.init' is 'pretrained' but 'pretrain.method'"
    with pytest.raises(ParamsError, match=refused):
        campaign.cell_params(base, Cell("ceal", "unlabeled", 2))  # `campaign init` switches pretraining on
    base["pretrain"]["method"] = "deepcluster"
    ceal = campaign.cell_params(base, Cell("ceal", "unlabeled", 2))
    # the option turns on pretraining and label propagation; CEAL's own recipe wins on semi_supervised
    assert ceal.train.init == "pretrained" and ceal.train.semi_supervised == "ceal"
    assert ceal.select.strategy == "entropy" and ceal.seed == 2 and ceal.select.budget == 10
    coreset = campaign.cell_params(base, Cell("coreset", "plain", 0))
    assert coreset.select.strategy == "coreset" and coreset.train.init == "scratch"


@pytest.mark.parametrize("changes, message", [
    ({"strategies": ["random", "margin"]}, "'recipes.strategies.margin' is missing"),
    ({"seeds": [0, 0]}, "'seeds' must be a non-empty list without repeats"),
    ({"budget": 0}, "'budget' must be a positive integer"),
    ({"recipes": {"strategies": {**DEFAULT_CAMPAIGN["recipes"]["strategies"], "random": {"train.stepz": 3}},
                  "options": DEFAULT_CAMPAIGN["recipes"]["options"]}}, "'train.stepz' is not a parameter"),
])
def test_mistakes_are_named(tmp_path, changes, message):
    path = write_campaign(tmp_path, **changes)
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace("[", r"\[")):
        campaign = load_campaign(path)
        campaign.cell_params(base_params(), Cell("random", "plain", 0))


def test_a_campaign_made_before_the_labeling_tool_keys_still_loads(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path))
    base = base_params()
    del base["select"]["image_url_prefix"]
    assert campaign.cell_params(base, Cell("random", "plain", 0)).select.image_url_prefix == "/data/local-files/?d="
    base["select"]["image_url_prefix"] = "http://files.invalid/"
    assert campaign.cell_params(base, Cell("random", "plain", 0)).select.image_url_prefix == "http://files.invalid/"


def test_a_campaign_made_before_prepare_on_unreadable_still_loads(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path))
    base = base_params()
    del base["prepare"]["on_unreadable"]
    assert campaign.cell_params(base, Cell("random", "plain", 0)).prepare.on_unreadable == "refuse"


def test_a_recipe_naming_no_strategy_fails_with_the_cell(tmp_path):
    recipes = {"strategies": {"nope": {}}, "options": {"plain": {}}}
    campaign = load_campaign(write_campaign(tmp_path, strategies=["nope"], options=["plain"], recipes=recipes))
    with pytest.raises(ParamsError, match="cell nope-plain-0: .*'select.strategy' is 'nope'"):
        campaign.cell_params(base_params(), Cell("nope", "plain", 0))


def test_area_and_labels_to_reach_by_hand():
    n = np.array([10, 20, 40])
    accuracy = np.array([0.5, 0.9, 0.95])
    # trapezoids: 10·(0.5 + 0.9)/2 + 20·(0.9 + 0.95)/2 = 7 + 18.5 = 25.5, over a range of 30
    assert area_under_curve(n, accuracy) == pytest.approx(0.85)
    assert labels_to_reach(n, accuracy, 0.90) == 20 and labels_to_reach(n, accuracy, 0.95) == 40
    assert labels_to_reach(n, accuracy, 0.97) is None


def test_summary_averages_seeds_and_skips_missing_cells_only_when_asked(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path, strategies=["random"], options=["plain"], seeds=[0, 1, 2],
                                            cycles=1))
    for seed, curve in [(0, [0.5, 0.9]), (1, [0.7, 0.96])]:
        points = [{"cycle": k + 1, "n_labels": n, "test_accuracy": a} for k, (n, a) in enumerate(zip([10, 20], curve))]
        path = cell_output(tmp_path, Cell("random", "plain", seed))
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"curve": points}))
    with pytest.raises(FileNotFoundError, match="random-plain-2"):
        collect(tmp_path, campaign)
    table = curve_table(collect(tmp_path, campaign, partial=True))
    assert table["mean"].tolist() == pytest.approx([0.6, 0.93]) and table["std"].tolist() == pytest.approx([0.1, 0.03])
    result = metrics(table)["random/plain"]
    assert result["labels_to_90"] == 20 and "labels_to_95" not in result
    assert result["aulc"] == pytest.approx((0.6 + 0.93) / 2) and result["accuracy"] == {"10": 0.6, "20": 0.93}
    assert isinstance(table, pd.DataFrame)


def test_a_curve_beside_random_gives_its_lead_and_the_labels_random_needs_to_match_it():
    random_n, random_accuracy = np.array([10, 20, 50, 100]), np.array([0.5, 0.6, 0.8, 0.9])
    n, accuracy = np.array([10, 20, 50, 100]), np.array([0.5, 0.8, 0.85, 0.95])
    result = against_random(n, accuracy, random_n, random_accuracy)
    assert result["lead_over_random"] == pytest.approx({"10": 0.0, "20": 0.2, "50": 0.05, "100": 0.05})
    # random needs 10 for 0.5, 50 for 0.8, 100 for 0.85; it never reaches 0.95
    assert result["random_labels_to_match"] == {"10": 10, "20": 50, "50": 100}


def test_the_summary_compares_each_strategy_with_random_under_the_same_option():
    rows = [{"strategy": s, "option": o, "n_labels": k, "mean": a, "std": 0.0, "seeds": 1}
            for s, o, curve in [("random", "plain", [0.5, 0.6]), ("entropy", "plain", [0.55, 0.58]),
                                ("entropy", "unlabeled", [0.9, 0.95])]
            for k, a in zip([10, 20], curve)]
    result = metrics(pd.DataFrame(rows))
    assert result["entropy/plain"]["lead_over_random"] == pytest.approx({"10": 0.05, "20": -0.02})
    assert result["entropy/plain"]["random_labels_to_match"] == {"10": 20, "20": 20}
    assert "lead_over_random" not in result["random/plain"]  # nor where no random curve has the option:
    assert "lead_over_random" not in result["entropy/unlabeled"]


def test_a_budget_per_cycle_sets_each_round_and_the_label_counts(tmp_path):
    campaign = load_campaign(write_campaign(tmp_path, budget=[10, 30, 50], cycles=3))
    assert campaign.budgets == [10, 10, 30, 50]
    assert campaign.label_counts == [10, 20, 50, 100]
    params = campaign.cell_params(base_params(), Cell("random", "plain", 0))
    assert params.select.budget == 10


@pytest.mark.parametrize("budget, cycles", [([10, 30], 3), ([10, 0, 5], 3), ([10, "5", 5], 3)])
def test_a_budget_list_needs_one_positive_integer_per_cycle(tmp_path, budget, cycles):
    with pytest.raises(ParamsError, match=r"'budget' as a list needs one positive integer per cycle \(3\)"):
        load_campaign(write_campaign(tmp_path, budget=budget, cycles=cycles))


def test_init_switches_on_a_gan_for_asal_and_the_cells_share_it(tmp_path):
    from alcycle.campaign.cell import SHARED
    from alcycle.campaign.scaffold import init_campaign

    (tmp_path / "params.yaml").write_text(render_params("mnist", "", MNIST_CLASSES, 28, 1, 0))
    folder = init_campaign(tmp_path, "gen", {"strategies": ["random", "asal"], "options": ["plain"],
                                             "recipes": {"strategies": {"random": {}, "asal": {}},
                                                         "options": {"plain": {}}}})
    params = yaml.safe_load((folder / "params.yaml").read_text())
    assert params["gan"]["method"] == "dcgan" and params["pretrain_vit"]["method"] == "none"
    stages = yaml.safe_load((folder / "dvc.yaml").read_text())["stages"]
    assert "pretrain-gan" in stages and "models/gan" in stages["cell"]["deps"] and "gan" in SHARED
    campaign = load_campaign(folder / "campaign.yaml")
    assert campaign.cell_params(params, Cell("asal", "plain", 0)).select.strategy == "asal"


def test_init_switches_on_a_gan_for_a_gaal_recipe_under_another_name(tmp_path):
    from alcycle.campaign.scaffold import init_campaign

    (tmp_path / "params.yaml").write_text(render_params("mnist", "", MNIST_CLASSES, 28, 1, 0))
    recipes = {"strategies": {"random": {}, "gaal-entropy": {"select.strategy": "gaal",
                                                             "select.gaal.objective": "entropy"}},
               "options": {"plain": {}}}
    folder = init_campaign(tmp_path, "synth", {"strategies": ["random", "gaal-entropy"], "options": ["plain"],
                                               "recipes": recipes})
    params = yaml.safe_load((folder / "params.yaml").read_text())
    assert params["gan"]["method"] == "dcgan"
    chosen = load_campaign(folder / "campaign.yaml").cell_params(params, Cell("gaal-entropy", "plain", 0)).select
    assert (chosen.strategy, chosen.gaal.objective) == ("gaal", "entropy")
