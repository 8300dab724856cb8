"""A campaign: which strategies and unlabeled-data options to compare, over which seeds and budgets.

It lives in ``campaign.yaml`` beside the campaign's own ``params.yaml`` and ``dvc.yaml``.
A *cell* is one (strategy, option, seed); its parameters are the folder's
``params.yaml`` with the option's overrides, then the strategy's, then the seed.
A strategy's recipe sets ``select.strategy`` to its own name unless it says otherwise,
so ``ceal: {select.strategy: entropy, train.semi_supervised: ceal}`` names a recipe
rather than a registered strategy.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alcycle.params import Params, ParamsError, params_from_dict

KEYS = ("name", "strategies", "options", "seeds", "initial_budget", "budget", "cycles", "recipes")


@dataclass(frozen=True)
class Cell:
    strategy: str
    option: str
    seed: int

    @property
    def name(self) -> str:
        """``<strategy>-<option>-<seed>``: the name of its result file and MLflow parent run."""
        return f"{self.strategy}-{self.option}-{self.seed}"

    @property
    def stage(self) -> str:
        """As DVC names the matrix entry (seed first: the order DVC usually runs the cells in)."""
        return f"cell@{self.seed}-{self.strategy}-{self.option}"


@dataclass(frozen=True)
class Campaign:
    name: str  # the MLflow experiment is "campaign-<name>"
    strategies: tuple[str, ...]
    options: tuple[str, ...]
    seeds: tuple[int, ...]
    initial_budget: int  # labels picked by the cold-start strategy at cycle 0
    budget: int | tuple[int, ...]  # labels added per cycle after that: one number, or one per cycle
    cycles: int  # query rounds after the initial batch
    recipes: dict[str, dict[str, dict[str, Any]]]  # {"strategies"|"options": {name: {"section.key": value}}}
    source: Path

    @property
    def cells(self) -> list[Cell]:
        """Every cell, in the order DVC's matrix runs them: seed, then strategy, then option."""
        return [Cell(s, o, seed) for seed in self.seeds for s in self.strategies for o in self.options]

    @property
    def budgets(self) -> list[int]:
        """The labels picked at each query round: the initial batch, then each cycle's."""
        per_cycle = list(self.budget) if isinstance(self.budget, tuple) else [self.budget] * self.cycles
        return [self.initial_budget, *per_cycle]

    @property
    def label_counts(self) -> list[int]:
        """The number of labels at each evaluation: after the initial batch, then after each cycle."""
        return list(itertools.accumulate(self.budgets))

    def cell_params(self, base: dict[str, Any], cell: Cell) -> Params:
        """The validated parameters of ``cell``: ``base`` (a params.yaml as a dict) + option + strategy + seed."""
        # A campaign's params.yaml may predate keys alcycle added since: params_from_dict fills
        # them in (params.ADDED_LATER), never the file, which every finished cell depends on.
        raw = copy.deepcopy(base)
        overrides = {**self.recipes["options"][cell.option],
                     "select.strategy": cell.strategy, **self.recipes["strategies"][cell.strategy]}
        for dotted, value in overrides.items():
            _set(raw, dotted, value, where=f"{self.source}: recipe of {cell.name}")
        raw["seed"] = cell.seed
        # A cell runs its stages in-process, and a launcher would run the whole cell again in each
        # process: a cell trains on one device (a campaign spreads out its cells, not their training).
        if isinstance(raw.get("compute"), dict):
            raw["compute"].update(devices=1, num_nodes=1, strategy="auto")
        raw["select"]["budget"] = self.budgets[1]  # as the first cycle's; the cell sets each round's own
        try:
            return params_from_dict(raw, source=self.source)
        except ParamsError as error:
            raise ParamsError(f"cell {cell.name}: {error}") from None


def load_campaign(path: Path) -> Campaign:
    """Read and check ``campaign.yaml``: every listed strategy and option needs a recipe (``{}`` is one)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; create a campaign with `alcycle campaign init`") from None
    if not isinstance(raw, dict) or sorted(raw) != sorted(KEYS):
        found = sorted(raw) if isinstance(raw, dict) else raw
        raise ParamsError(f"{path}: expected exactly the keys {', '.join(KEYS)}; found {found}")
    problems = []
    for key in ("strategies", "options", "seeds"):
        values = raw[key]
        if not isinstance(values, list) or not values or len(set(map(str, values))) != len(values):
            problems.append(f"'{key}' must be a non-empty list without repeats, got {values!r}")
    for key in ("initial_budget", "cycles"):
        if not _positive(raw[key]):
            problems.append(f"'{key}' must be a positive integer, got {raw[key]!r}")
    budget = raw["budget"]
    if isinstance(budget, list):
        if not all(map(_positive, budget)) or not _positive(raw["cycles"]) or len(budget) != raw["cycles"]:
            problems.append(f"'budget' as a list needs one positive integer per cycle ({raw['cycles']!r}), "
                            f"got {budget!r}")
    elif not _positive(budget):
        problems.append(f"'budget' must be a positive integer (or a list of one per cycle), got {budget!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in raw["seeds"] or []):
        problems.append(f"'seeds' must be integers, got {raw['seeds']!r}")
    recipes = raw["recipes"] if isinstance(raw["recipes"], dict) else {}
    for kind in ("strategies", "options"):
        table = recipes.get(kind) or {}
        for name in raw[kind] if isinstance(raw[kind], list) else []:
            if not isinstance(table.get(name), dict):
                problems.append(f"'recipes.{kind}.{name}' is missing: give it a mapping of overrides ({{}} for none)")
    if problems:
        raise ParamsError(f"{path}: " + "; ".join(problems))
    return Campaign(name=str(raw["name"]), strategies=tuple(map(str, raw["strategies"])),
                    options=tuple(map(str, raw["options"])), seeds=tuple(raw["seeds"]),
                    initial_budget=raw["initial_budget"], cycles=raw["cycles"],
                    budget=tuple(budget) if isinstance(budget, list) else budget,
                    recipes={kind: recipes[kind] for kind in ("strategies", "options")}, source=path)


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _set(raw: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    """Set ``raw["a"]["b"] = value`` for ``dotted = "a.b"``; the key must already exist."""
    *sections, key = dotted.split(".")
    target = raw
    for section in sections:
        target = target.get(section) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise ParamsError(f"{where}: '{dotted}' is not a parameter (no section '{section}')")
    if key not in target:
        raise ParamsError(f"{where}: '{dotted}' is not a parameter")
    target[key] = value
