"""A stage's contract: what it reads, which parameters it depends on, what it writes and who keeps it.

Each module in ``alcycle.stages`` declares one ``Stage`` beside its code; ``pipeline.py``
derives ``dvc.yaml``, the ignore files, the files a cycle commits and the pipeline
reference page from those declarations, so none of them restates a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

Section = Literal["outs", "metrics", "plots"]


@dataclass(frozen=True)
class Output:
    """One file or folder a stage writes, relative to the project root.

    ``git``: committed with the cycle (DVC does not cache it) rather than DVC-cached and
    git-ignored. ``persist``: DVC leaves it in place while the stage runs, which the stage
    reads back (see the stage's comment). ``section``: where it goes in ``dvc.yaml``.
    """

    path: str
    git: bool = False
    persist: bool = False
    section: Section = "outs"
    plot: dict[str, str] = field(default_factory=dict)  # dvc.yaml's top-level plot settings

    def entry(self) -> str | dict[str, dict[str, bool]]:
        """The ``dvc.yaml`` entry: a bare path for a cached output, else its options."""
        options = {"cache": False} if self.git else {}
        if self.persist:
            options["persist"] = True
        return {self.path: options} if options else self.path


def _posix(path: Path | str) -> str:
    return PurePosixPath(Path(path)).as_posix()


def cached(path: Path | str, section: Section = "outs", **plot: str) -> Output:
    """An output DVC caches; git ignores it."""
    return Output(_posix(path), section=section, plot=dict(plot))


def committed(path: Path | str, section: Section = "outs", persist: bool = False) -> Output:
    """An output git keeps with the cycle; DVC does not cache it."""
    return Output(_posix(path), git=True, persist=persist, section=section)


@dataclass(frozen=True)
class Stage:
    """One DVC stage: ``alcycle <name>`` runs ``alcycle.stages.<name with _>.run``.

    ``deps``: the project files it reads. ``params``: the ``params.yaml`` keys it reads
    (a section, or a dotted key). ``code``: the library modules (relative to
    ``src/alcycle``) it runs, so that alcycle's own repository re-runs it when they change;
    its own module is added. ``reads_dataset``: it also depends on ``prepare.path``.
    """

    name: str
    deps: tuple[str | Path, ...]  # stored as posix strings
    params: tuple[str, ...]
    outs: tuple[Output, ...]
    code: tuple[str, ...] = ()
    reads_dataset: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "deps", tuple(_posix(d) for d in self.deps))

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    def dvc_stage(self, dataset: str | None, code_root: str | None) -> dict[str, Any]:
        """This stage as a ``dvc.yaml`` entry; ``dataset`` is an image folder or CSV outside
        the project, ``code_root`` the alcycle sources when they belong to the project."""
        code = [f"{code_root}/{m}" for m in (f"stages/{self.module}.py", *self.code)] if code_root else []
        stage: dict[str, Any] = {
            "cmd": f"alcycle {self.name}",
            "deps": ([dataset] if dataset and self.reads_dataset else []) + list(self.deps) + code,
            "params": list(self.params),
        }
        for section in ("outs", "metrics", "plots"):
            entries = [out.entry() for out in self.outs if out.section == section]
            if entries:
                stage[section] = entries
        return stage
