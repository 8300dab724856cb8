"""Stages that need no network never pay for importing one: reading ``params.yaml`` (which
every stage does) and the bookkeeping stages load neither torch nor faiss nor Lightning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "torchvision", "pytorch_lightning", "lightning", "faiss", "mlflow")
ROOT = Path(__file__).resolve().parents[1]


def loaded_after(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter holds after running ``code``."""
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_reading_params_and_the_strategy_registry_loads_no_heavy_library():
    code = ("from alcycle.params import load_params\nload_params('params.yaml')\n"
            "from alcycle.strategies import STRATEGIES, needs, table\nneeds(*STRATEGIES)\ntable()")
    assert loaded_after(code) == []


def test_the_cli_and_the_bookkeeping_stages_load_no_heavy_library():
    code = "import alcycle.cli, alcycle.stages.label_import, alcycle.stages.evaluate, alcycle.annotations.importer"
    assert loaded_after(code) == []


def test_a_strategy_module_is_imported_when_the_strategy_runs():
    code = "from alcycle.strategies import get_strategy\nassert callable(get_strategy('typiclust'))"
    assert loaded_after(code) == ["faiss"]


def test_the_one_machine_path_never_imports_ray():
    """Ray is imported only where a cluster is named (compute.ray_address or RAY_ADDRESS)."""
    code = ("import os\nos.environ.pop('RAY_ADDRESS', None)\n"
            "import alcycle.cli, alcycle.stages.extract, alcycle.stages.embed, alcycle.stages.train\n"
            "import alcycle.stages.select, alcycle.campaign.cell, alcycle.compute, alcycle.training\n"
            "from alcycle.compute import ray_address\nfrom alcycle.params import load_params\n"
            "assert ray_address(load_params('params.yaml').compute) == ''\n"
            "print(__import__('json').dumps(['ray'] if 'ray' in sys.modules else []))")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []
