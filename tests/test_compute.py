"""compute: Trainer arguments, who writes, and how a step's draws are dealt to the processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_params
from torch.utils.data import RandomSampler

from alcycle.campaign.definition import Campaign
from alcycle.compute import PerProcess, deal, is_global_zero, trainer_arguments
from alcycle.errors import ParamsError
from alcycle.params import load_params


def test_deal_gives_every_process_an_equal_share_padded_from_the_start():
    assert deal(list(range(7)), 0, 2) == [0, 2, 4, 6]
    assert deal(list(range(7)), 1, 2) == [1, 3, 5, 0]
    assert deal(list(range(6)), 2, 3) == [2, 5]
    assert sorted(deal(list(range(9)), 0, 3) + deal(list(range(9)), 1, 3) + deal(list(range(9)), 2, 3)) == list(range(9))


def test_one_process_draws_exactly_what_a_plain_sampler_draws():
    data = range(50)
    plain = list(RandomSampler(data, replacement=True, num_samples=64, generator=torch.Generator().manual_seed(3)))
    generator = torch.Generator().manual_seed(3)
    shared = PerProcess(lambda world: RandomSampler(data, replacement=True, num_samples=world * 64,
                                                    generator=generator))
    assert len(shared) == 64 and list(shared) == plain


def test_trainer_arguments(tmp_path):
    assert trainer_arguments(None) == {"accelerator": "cpu", "devices": 1}
    params = load_params(with_compute(tmp_path, devices=2, strategy="ddp"))
    arguments = trainer_arguments(params.compute)
    assert arguments["devices"] == 2 and arguments["strategy"] == "ddp" and arguments["num_nodes"] == 1
    assert arguments["use_distributed_sampler"] is False  # PerProcess deals the draws, not Lightning
    assert "use_distributed_sampler" not in trainer_arguments(load_params(with_compute(tmp_path)).compute)


@pytest.mark.parametrize("env, zero", [({}, True), ({"RANK": "0"}, True), ({"RANK": "3"}, False),
                                       ({"NODE_RANK": "1"}, False), ({"LOCAL_RANK": "1"}, False),
                                       ({"SLURM_PROCID": "2"}, False), ({"NODE_RANK": "0", "LOCAL_RANK": "0"}, True)])
def test_is_global_zero_reads_the_launchers_variables(monkeypatch, env, zero):
    for name in ("RANK", "NODE_RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_global_zero() is zero


@pytest.mark.parametrize("key, value, message", [
    ("strategy", "fsdp", "'compute.strategy' is 'fsdp'; choose one of: auto, ddp"),
    ("accelerator", "tpu", "'compute.accelerator' is 'tpu'; choose one of: auto, cpu, gpu"),
    ("precision", "8-true", "'compute.precision' is '8-true'"),
    ("devices", 0, "'compute.devices' is 0; it must be at least 1"),
    ("num_nodes", 0, "'compute.num_nodes' is 0; it must be at least 1"),
    ("precision", "16-mixed", "'compute.precision' 16-mixed needs a GPU"),
])
def test_bad_compute_settings_are_named(tmp_path, key, value, message):
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_params(with_compute(tmp_path, **{key: value}))


def test_an_older_params_yaml_without_compute_runs_on_one_cpu_process(tmp_path):
    raw = yaml.safe_load(write_params(tmp_path).read_text())
    del raw["compute"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    compute = load_params(tmp_path / "params.yaml").compute
    assert (compute.accelerator, compute.devices, compute.num_nodes, compute.strategy) == ("cpu", 1, 1, "auto")


def test_a_campaign_cell_trains_on_one_process(tmp_path):
    raw = yaml.safe_load(with_compute(tmp_path, devices=4, num_nodes=2, strategy="ddp").read_text())
    campaign = Campaign(name="c", strategies=("random",), options=("plain",), seeds=(0,), initial_budget=10,
                        budget=10, cycles=1, recipes={"options": {"plain": {}}, "strategies": {"random": {}}},
                        source=tmp_path / "c.yaml")
    compute = campaign.cell_params(raw, campaign.cells[0]).compute
    assert (compute.devices, compute.num_nodes, compute.strategy) == (1, 1, "auto")


def with_compute(folder: Path, **compute: object) -> Path:
    """The shipped params.yaml in ``folder`` with ``compute`` keys replaced."""
    raw = yaml.safe_load(write_params(folder).read_text())
    raw["compute"].update(compute)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw))
    return folder / "params.yaml"


def test_a_fit_runs_on_the_cpu_at_bf16_mixed_precision(tmp_path):
    import dataclasses

    from conftest import toy_digits

    from alcycle.stages.train import build_classifier, fit

    params = load_params(with_compute(tmp_path, precision="bf16-mixed"))
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, steps=5))
    pixels, targets = toy_digits()
    model = build_classifier(params, in_channels=1)
    assert fit(model, pixels, targets, params) == {"steps": 5, "processes": 1}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # mixed: the weights stay float32
