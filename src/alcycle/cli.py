"""The ``alcycle`` command line. Each command resolves paths and params, calls one function, reports."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable

import click

from alcycle import lifeline
from alcycle.errors import AlcycleError
from alcycle.layout import Layout
from alcycle.params import load_params
from alcycle.pipeline import STAGE_MODULES, summary


def _clean_errors(func: Callable) -> Callable:
    """Show a user's error (an ``AlcycleError``) as its message alone; any other exception is a
    bug and keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AlcycleError as exc:
            raise click.ClickException(str(exc.args[0]) if exc.args else repr(exc)) from exc

    return wrapper


@click.group()
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Project folder (holds params.yaml and dvc.yaml).")
@click.pass_context
def main(ctx: click.Context, project: Path) -> None:
    """alcycle: active-learning cycles for image classification with DVC and MLflow."""
    stage = os.environ.get("DVC_STAGE")
    if stage:
        # Run by `dvc repro`: first of all, end when dvc ends (dvc would leave us running).
        lifeline.hold_to_dvc(stage)
    ctx.obj = Layout(root=project)


def _stage(module: str) -> None:
    """Register the pipeline stage command that runs ``alcycle.stages.<module>.run``."""
    text = summary(module)

    @main.command(name=module.replace("_", "-"), help=text[:1].upper() + text[1:] + ".")
    @click.pass_obj
    @_clean_errors
    def command(layout: Layout) -> None:
        import importlib

        stage = importlib.import_module(f"alcycle.stages.{module}")
        stage.run(layout, load_params(layout.params))


for _module in STAGE_MODULES:
    _stage(_module)


@main.command()
def strategies() -> None:
    """List the query strategies with what each needs and costs."""
    from alcycle.strategies import table

    click.echo(table())


@main.command()
@click.option("--unrecognisable-below", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Synthesised images (GAAL) that the reference classifier gives a lower top-class "
                   "probability are answered 'unrecognisable'.")
@click.option("--reference-steps", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Training steps of that reference classifier (train.steps if that is more).")
@click.pass_obj
@_clean_errors
def oracle(layout: Layout, unrecognisable_below: float, reference_steps: int) -> None:
    """Answer the current queries from the ground truth (simulated annotator); synthesised images
    from a reference classifier trained on every pool truth label."""
    from alcycle.oracle import answer

    click.echo(f"wrote {answer(layout, unrecognisable_below=unrecognisable_below, reference_steps=reference_steps)}")


@main.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_obj
@_clean_errors
def import_command(layout: Layout, files: tuple[Path, ...]) -> None:
    """Store annotation exports as new batches and rebuild the labeled pool.

    Reads Label Studio (JSON, JSON-MIN, CSV) and CVAT (for images 1.1 XML, ImageNet 1.0)
    exports and `id,label` CSV files, recognised by content. Each file is checked with
    every stored batch before anything is written; the same file twice changes nothing.
    """
    from alcycle.annotations.importer import import_file

    params = load_params(layout.params)
    for path in files:
        click.echo(import_file(layout, params, path).describe())


@main.group()
def labelstudio() -> None:
    """Send the query batch to a live Label Studio server and bring its annotations back."""


def _label_studio_options(func: Callable) -> Callable:
    options = [
        click.option("--url", envvar="LABEL_STUDIO_URL", required=True, show_envvar=True,
                     help="The server, e.g. http://localhost:8080."),
        click.option("--token", envvar="LABEL_STUDIO_API_KEY", required=True, show_envvar=True,
                     help="An access token (legacy or personal) of a user of that server."),
        click.option("--title", envvar="ALCYCLE_LABELSTUDIO_PROJECT", show_envvar=True,
                     help="The Label Studio project's title  [default: this project folder's name]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _title(layout: Layout, title: str | None) -> str:
    return title or layout.root.resolve().name


@labelstudio.command(name="push")
@_label_studio_options
@click.pass_obj
@_clean_errors
def labelstudio_push(layout: Layout, url: str, token: str, title: str | None) -> None:
    """Create the project (first time) and add the query batch's tasks it does not hold yet."""
    from alcycle.annotations.labelstudio.server import LabelStudio, push

    server, title = LabelStudio(url, token), _title(layout, title)
    click.echo(push(layout, server, title).describe(title, server.url))


@labelstudio.command(name="pull")
@_label_studio_options
@click.pass_obj
@_clean_errors
def labelstudio_pull(layout: Layout, url: str, token: str, title: str | None) -> None:
    """Import the project's annotations not stored yet (as `alcycle import` of its export)."""
    from alcycle.annotations.importer import import_file
    from alcycle.annotations.labelstudio.server import LabelStudio, pull

    server, title = LabelStudio(url, token), _title(layout, title)
    exported = pull(layout, server, title)
    if exported is None:
        click.echo(f"Label Studio project {title!r} at {server.url}: no annotation that is not "
                   f"stored already; nothing changed")
        return
    try:
        click.echo(import_file(layout, load_params(layout.params), exported).describe())
    finally:
        exported.unlink()
        exported.parent.rmdir()


@main.group()
def label() -> None:
    """Change the labeled pool by recorded commands."""


@label.command(name="remove")
@click.argument("ids", nargs=-1, required=True)
@click.option("--reason", required=True, help="Why, recorded in the removal batch.")
@click.pass_obj
@_clean_errors
def label_remove(layout: Layout, ids: tuple[str, ...], reason: str) -> None:
    """Remove the labels of IDS, through a removal batch kept in the annotation folder."""
    from alcycle.annotations.importer import remove_labels

    result = remove_labels(layout, load_params(layout.params), list(ids), reason)
    click.echo(f"removed {len(ids)} label(s); recorded as {result.stored}")


@main.command()
@click.pass_obj
@_clean_errors
def commit(layout: Layout) -> None:
    """Commit the finished cycle's files to git and tag the commit cycle-N."""
    from alcycle.cycle import commit_cycle

    click.echo(f"tagged {commit_cycle(layout)}")


@main.command()
@click.option("--cycles", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--commit/--no-commit", default=False, show_default=True,
              help="Commit and tag every finished cycle.")
@click.pass_obj
@_clean_errors
def simulate(layout: Layout, cycles: int, commit: bool) -> None:
    """Run oracle-labelled cycles with the real `dvc repro` and print the learning curve."""
    from alcycle.cycle import simulate as run_simulation

    curve = run_simulation(layout, cycles, commit, click.echo)
    click.echo("\nlearning curve (test split)\n  cycle  labels  accuracy")
    for point in curve:
        click.echo(f"  {point['cycle']:>5}  {point['n_labels']:>6}  {point.get('test_accuracy', float('nan')):.4f}")


@main.group()
def campaign() -> None:
    """Compare strategies across seeds: a DVC matrix of cells, MLflow parent/child runs, a summary."""


@campaign.command(name="init")
@click.argument("name")
@click.pass_obj
@_clean_errors
def campaign_init(layout: Layout, name: str) -> None:
    """Write campaigns/NAME/ (params.yaml, campaign.yaml, dvc.yaml) from this project's params."""
    from alcycle.campaign.scaffold import init_campaign

    folder = init_campaign(layout.root, name)
    click.echo(f"wrote {folder}; edit campaign.yaml there, then run: dvc repro {folder / 'dvc.yaml'}")


@campaign.command(name="cell")
@click.argument("strategy")
@click.argument("option")
@click.argument("seed", type=int)
@click.pass_obj
@_clean_errors
def campaign_cell(layout: Layout, strategy: str, option: str, seed: int) -> None:
    """Run one cell (the campaign's DVC matrix stage runs this)."""
    from alcycle.campaign.cell import run_cell
    from alcycle.campaign.definition import Cell, load_campaign

    definition = load_campaign(layout.root / "campaign.yaml")
    cell = Cell(strategy, option, seed)
    if cell not in definition.cells:
        raise AlcycleError(f"{definition.source}: {cell.name} is not a cell of campaign {definition.name}")
    run_cell(layout.root, definition, cell, echo=lambda line: click.echo(line, err=True))


@campaign.command(name="run")
@click.argument("name")
@click.option("--ray", "address", help="The Ray cluster (host:port); default: compute.ray_address, else $RAY_ADDRESS.")
@click.pass_obj
@_clean_errors
def campaign_run(layout: Layout, name: str, address: str | None) -> None:
    """Run campaign NAME's cells as Ray tasks across a cluster, then its summary (DVC records the cells)."""
    from alcycle.campaign.runner import run_campaign
    from alcycle.compute import ray_address

    address = address or ray_address(load_params(layout.params).compute)
    if not address:
        raise AlcycleError(f"no Ray cluster: give --ray HOST:PORT, set compute.ray_address or RAY_ADDRESS; on one "
                           f"machine run: dvc repro campaigns/{name}/dvc.yaml")
    run_campaign(layout.root, name, address, echo=click.echo)


@campaign.command(name="status")
@click.pass_obj
@_clean_errors
def campaign_status(layout: Layout) -> None:
    """How many cells have finished, and the mean test accuracy of each strategy/option so far."""
    from alcycle.campaign.cell import cell_output
    from alcycle.campaign.definition import load_campaign
    from alcycle.campaign.summary import collect, curve_table

    definition = load_campaign(layout.root / "campaign.yaml")
    done = [c for c in definition.cells if cell_output(layout.root, c).exists()]
    click.echo(f"campaign {definition.name}: {len(done)}/{len(definition.cells)} cells finished")
    if done:
        table = curve_table(collect(layout.root, definition, partial=True))
        wide = table.pivot_table(index=["strategy", "option"], columns="n_labels", values="mean", sort=False)
        seeds = table.groupby(["strategy", "option"], sort=False)["seeds"].max()
        click.echo(wide.assign(seeds=seeds).round(3).to_string())


@campaign.command(name="summary")
@click.pass_obj
@_clean_errors
def campaign_summary(layout: Layout) -> None:
    """Write summary/ (metrics, accuracy table, learning-curve plot) from every cell's result."""
    from alcycle.campaign import summary
    from alcycle.campaign.definition import load_campaign

    result = summary.run(layout.root, load_campaign(layout.root / "campaign.yaml"))
    for group, entry in result.items():
        click.echo(f"{group:28s} AULC {entry['aulc']:.4f}  " + "  ".join(
            f"{k}={v}" for k, v in entry.items() if k.startswith("labels_to_")))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--images", type=click.Path(exists=True, path_type=Path),
              help="A folder of images (class sub-folders give ground truth) or a CSV manifest.")
@click.option("--mnist", is_flag=True, help="Use the shipped MNIST 5,000-digit set.")
@click.option("--fashion-mnist", is_flag=True,
              help="Use Fashion-MNIST's 70,000 images (Debian's dataset-fashion-mnist package).")
@click.option("--classes", help="Comma-separated class names (default: from sub-folders or the CSV).")
@click.option("--subsample", type=click.IntRange(min=0), default=0, help="Keep only this many items.")
@_clean_errors
def init(directory: Path, images: Path | None, mnist: bool, fashion_mnist: bool, classes: str | None,
         subsample: int) -> None:
    """Scaffold an alcycle project in DIRECTORY for your own images (or MNIST, or Fashion-MNIST)."""
    from alcycle.scaffold import init_project

    if [bool(images), mnist, fashion_mnist].count(True) != 1:
        raise click.UsageError("give exactly one of --images PATH or --mnist (or --fashion-mnist)")
    names = tuple(c.strip() for c in classes.split(",")) if classes else None
    init_project(directory, images=images, classes=names, subsample=subsample,
                 shipped="fashion_mnist" if fashion_mnist else "mnist")
    click.echo(f"initialised an alcycle project in {directory}; next: cd {directory} && dvc repro")


@main.command()
@click.argument("rev_a")
@click.argument("rev_b", required=False)
@click.pass_obj
@_clean_errors
def review(layout: Layout, rev_a: str, rev_b: str | None) -> None:
    """Markdown for a pull request: the labeled pool's changes from git revision REV_A to REV_B
    (default: the working tree), by class, source and annotator, with every relabel and removal."""
    from alcycle.review import review as summarise

    click.echo(summarise(layout, rev_a, rev_b), nl=False)
