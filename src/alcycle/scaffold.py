"""``alcycle init``: the project files (params.yaml, dvc.yaml, ignores) for a dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from string import Template

import yaml

from alcycle.errors import ExternalCommandError
from alcycle.fileio import atomic_write_text
from alcycle.params import ParamsError
from alcycle.pipeline import output_ignores, render_dvc_yaml
from alcycle.sources.fashion_mnist import CLASSES as FASHION_MNIST_CLASSES

MNIST_CLASSES = tuple(str(d) for d in range(10))
# Datasets that need no --images: source -> (classes, image size, channels); path "" = their default.
SHIPPED = {"mnist": (MNIST_CLASSES, 28, 1), "fashion_mnist": (FASHION_MNIST_CLASSES, 28, 1)}

# The root project's (`make demo`'s) choices: the best configuration measured on MNIST-5k
# that still runs 5 cycles in under 5 minutes on a 2-core CPU (docs/benchmarks.md, "make demo").
DEMO_SETTINGS = {"pretrain.method": "deepcluster", "train.init": "pretrained",
                 "train.semi_supervised": "label_propagation", "select.strategy": "typiclust",
                 "select.cold_start": "typiclust"}

# What documented commands write beside the pipeline: MLflow's local store and artifacts,
# `dvc plots show`'s page (in the folder it runs in), atomic writes a crash left behind.
GITIGNORE = "/mlflow.db\n/mlartifacts/\n/mlruns/\n__pycache__/\ndvc_plots/\n.*.tmp\n"
ANNOTATIONS_README = """\
Annotation batches, one file per labelling round, imported in file-name order.
Add one with `alcycle import <export>`: a Label Studio (JSON, JSON-MIN, CSV, TSV) or
CVAT (for images 1.1 XML, ImageNet 1.0) export, or a CSV with header `id,label`. Each is
stored as it arrived, named by its number and content hash. Never edit or delete a
batch (a changed or missing one stops `dvc repro`): import a new one, or use
`alcycle label remove` (see alcycle's README, "Importing labels").
"""


def render_params(source: str, path: str, classes: tuple[str, ...], image_size: int,
                  channels: int, subsample: int, settings: dict[str, str] | None = None) -> str:
    """The commented params.yaml of a project; ``settings`` ({"section.key": "value"}) replace template defaults."""
    template = Template(resources.files("alcycle").joinpath("templates/params.yaml").read_text())
    text = template.substitute(
        source=source, path=path, classes=yaml.safe_dump(list(classes), default_flow_style=True).strip(),
        image_size=image_size, channels=channels, subsample=subsample,
    )
    for dotted, value in (settings or {}).items():
        text = _set_value(text, dotted, value)
    return text


def demo_params() -> str:
    """The root project's params.yaml: the shipped MNIST digits with ``DEMO_SETTINGS``."""
    return render_params("mnist", "", MNIST_CLASSES, 28, 1, 0, settings=DEMO_SETTINGS)


def _set_value(text: str, dotted: str, value: str) -> str:
    """``text`` with the value of top-level ``section: key`` replaced, its comment kept in place."""
    section, key = dotted.split(".")
    lines = text.splitlines(keepends=True)
    start = lines.index(f"{section}:\n") if f"{section}:\n" in lines else None
    if start is None:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{section}:"))
    for i in range(start + 1, len(lines)):
        if lines[i][:1] not in (" ", "\n"):
            break
        if lines[i].startswith(f"  {key}:"):
            head, _, comment = lines[i].partition("#")
            old = head[len(f"  {key}:"):]
            new = f" {value} ".ljust(len(old)) if comment else f" {value}\n"  # the comment stays in its column
            lines[i] = f"  {key}:{new}" + (f"#{comment}" if comment else "")
            return "".join(lines)
    raise KeyError(f"params template has no '{dotted}'")


# What `dvc init` writes; init commits these with its own files.
DVC_FILES = (".dvc/.gitignore", ".dvc/config", ".dvcignore")


def init_project(target: Path, images: Path | None, classes: tuple[str, ...] | None, subsample: int,
                 shipped: str = "mnist") -> None:
    """Write a ready-to-run project into ``target`` and commit it; ``images=None`` means
    the ``shipped`` dataset (a key of ``SHIPPED``). Checks git's identity before writing anything."""
    target = Path(target).resolve()
    if images is None:
        source, path = shipped, ""
        found, size, channels = SHIPPED[shipped]
    else:
        images = Path(images).resolve()
        source, path = ("csv" if images.is_file() else "folder"), str(images)
        found, size, channels = _inspect(images)
    classes = classes or found
    if not classes:
        raise ParamsError(f"{images}: no class sub-folders or label column; pass --classes a,b,c")
    files = {
        "params.yaml": render_params(source, path, classes, size, channels, subsample),
        "dvc.yaml": render_dvc_yaml(path or None, code_root=None),
        "data/annotations/README.md": ANNOTATIONS_README,
    }
    # Files init owns outright (ignore files are merged): one already there is never overwritten.
    for name in files:
        if (target / name).exists():
            raise FileExistsError(f"{target / name} exists already; choose an empty folder")
    _check_git_identity(target)
    target.mkdir(parents=True, exist_ok=True)
    _init_repositories(target)
    for name, text in files.items():
        atomic_write_text(target / name, text)
    # DVC appends its outputs to the folders' ignore files on the first run; writing them
    # up front keeps `git status` clean from the start.
    ignores = {".gitignore": GITIGNORE, **output_ignores()}
    for name, text in ignores.items():
        _merge_ignores(target / name, text)
    _commit(target, [*files, *ignores, *DVC_FILES],
            f"alcycle init: a {source} project with {len(classes)} classes")


def _inspect(images: Path) -> tuple[tuple[str, ...], int, int]:
    """Classes, image size and channel count suggested by a folder or CSV manifest."""
    from alcycle.sources.probe import probe

    return probe("csv" if images.is_file() else "folder", images)


def _merge_ignores(path: Path, text: str) -> None:
    """Append the lines of ``text`` that ``path`` lacks: a repository's own ignores stay."""
    kept = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [line for line in text.splitlines() if line not in kept.splitlines()]
    if missing:
        separator = "\n" if kept and not kept.endswith("\n") else ""
        atomic_write_text(path, kept + separator + "\n".join(missing) + "\n")


def _run(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run git or dvc in ``cwd``; a failure names the command, the folder and its message."""
    # These machines may have no network: dvc must never try to send usage analytics.
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        shown = " ".join(("dvc", *cmd[3:]) if cmd[0] == sys.executable else cmd)
        raise ExternalCommandError(f"`{shown}` failed in {cwd}: {(done.stderr or done.stdout).strip()}")
    return done


def _check_git_identity(target: Path) -> None:
    """Fail before writing anything when git could not commit the scaffold."""
    # The nearest existing folder: a repository that holds ``target`` may set its own identity.
    where = next(p for p in (target, *target.parents) if p.is_dir())
    for ident in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        if _run(where, "git", "var", ident, check=False).returncode != 0:
            raise ExternalCommandError(
                "git has no identity to commit with (alcycle init commits the project it writes); "
                "set one: git config --global user.name 'Your Name' && "
                "git config --global user.email you@example.com")


def _init_repositories(target: Path) -> None:
    """git init and dvc init where missing."""
    if _run(target, "git", "rev-parse", "--git-dir", check=False).returncode != 0:
        _run(target, "git", "init", "--quiet")
    if not (target / ".dvc").exists():
        top = _run(target, "git", "rev-parse", "--show-toplevel").stdout.strip()
        # A project inside a larger git repository is a DVC "subdir" project.
        subdir = ["--subdir"] if Path(top).resolve() != target else []
        _run(target, sys.executable, "-m", "dvc", "init", *subdir)
        _run(target, sys.executable, "-m", "dvc", "config", "core.analytics", "false")


def _commit(target: Path, names: list[str], message: str) -> None:
    """Commit exactly ``names`` (relative to ``target``): whatever else the repository has
    staged or changed stays as it was. Nothing new to commit is not an error."""
    paths = [name for name in names if (target / name).exists()]
    _run(target, "git", "add", "--", *paths)
    if _run(target, "git", "diff", "--cached", "--quiet", "--", *paths, check=False).returncode == 0:
        return
    _run(target, "git", "commit", "--quiet", "-m", message, "--", *paths)
