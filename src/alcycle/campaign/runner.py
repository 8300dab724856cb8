"""``alcycle campaign run``: a campaign's cells as Ray tasks across a cluster's nodes, recorded so
that DVC finds them done.

Each cell runs ``run_cell``, exactly what the DVC matrix stage runs, on whichever node has a
free CPU; a cell whose node dies runs again on another (Ray's task retries), starting from
nothing as every cell does, and its interrupted MLflow run is discarded. Cells whose result
file exists are not run again, so an interrupted campaign resumes where it stopped. At the end
``dvc commit`` records the cells in the campaign's ``dvc.lock`` and ``dvc repro`` runs what is
left: the summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from alcycle.campaign.cell import cell_output, run_cell
from alcycle.campaign.definition import Campaign, Cell, load_campaign
from alcycle.errors import AlcycleError
from alcycle.tracking import resolve_tracking_uri


def finished(folder: Path, cell: Cell) -> bool:
    """Whether ``cell`` has a whole result file (``run_cell`` writes it atomically, last)."""
    try:
        return "curve" in json.loads(cell_output(folder, cell).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def cell_task(folder: str, strategy: str, option: str, seed: int, tracking_uri: str) -> dict:
    """One cell, run where Ray placed it; returns the node that ran it and how long it took."""
    import ray

    start = time.perf_counter()
    node = ray.get_runtime_context().get_node_id()
    definition = load_campaign(Path(folder) / "campaign.yaml")
    run_cell(Path(folder), definition, Cell(strategy, option, seed), echo=lambda line: None,
             tracking_uri=tracking_uri, tags={"alcycle.ray_node": node})
    return {"cell": Cell(strategy, option, seed).name, "node": node, "seconds": round(time.perf_counter() - start, 1)}


def stage_name(dvc_file: Path, cell: Cell) -> str:
    """The DVC matrix stage of ``cell`` (the matrix runs seed, then strategy, then option)."""
    return f"{dvc_file}:cell@{cell.seed}-{cell.strategy}-{cell.option}"


def run_campaign(project: Path, name: str, address: str, echo: Callable[[str], None] = print) -> list[dict]:
    """Run campaign ``name`` of ``project`` on the Ray cluster at ``address``; returns the cells run now."""
    from alcycle.ray_ops import run_tasks

    folder = (Path(project) / "campaigns" / name).resolve()
    dvc_file = folder / "dvc.yaml"
    if not dvc_file.exists():
        raise AlcycleError(f"{dvc_file}: not found; create the campaign with `alcycle campaign init {name}`")
    definition = load_campaign(folder / "campaign.yaml")
    # What every cell reads (prepared data, pretrained weights), made and recorded by DVC as usual.
    # (A campaign made before pretrain-gan existed has no such stage.)
    stages = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["stages"]
    _dvc(project, "repro", *[f"{dvc_file}:{name}" for name in ("pretrain", "pretrain-vit", "pretrain-gan")
                             if name in stages])
    waiting = [cell for cell in definition.cells if not finished(folder, cell)]
    echo(f"campaign {name}: {len(definition.cells) - len(waiting)} of {len(definition.cells)} cells finished; "
         f"running {len(waiting)} on the Ray cluster at {address}")

    def report(i: int, result: dict) -> None:
        echo(f"  {result['cell']}: finished on node {result['node'][:12]} in {result['seconds']} s")

    # The store this machine would log to, resolved here: a worker's environment may name another.
    tracking_uri = resolve_tracking_uri(definition.cell_params(
        yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8")), definition.cells[0]).track.tracking_uri,
        folder)
    results = run_tasks(address, [(cell_task, (str(folder), c.strategy, c.option, c.seed, tracking_uri))
                                  for c in waiting], on_result=report)
    _record(project, dvc_file, definition)
    echo(_dvc(project, "repro", str(dvc_file)).strip())
    return results


def _record(project: Path, dvc_file: Path, definition: Campaign) -> None:
    """``dvc commit`` of every cell stage, so that ``dvc repro`` sees the cells as done."""
    _dvc(project, "commit", "--force", *(stage_name(dvc_file, cell) for cell in definition.cells))


def _dvc(project: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise AlcycleError(f"dvc {' '.join(args)} failed in {project}:\n{done.stdout}{done.stderr}")
    return done.stdout
