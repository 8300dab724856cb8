"""The root project, `alcycle init` and `Layout` agree on the pipeline and its paths."""

import importlib
from pathlib import Path

import yaml

from alcycle.layout import Layout
from alcycle.pipeline import committed_paths, output_ignores, render_dvc_yaml, stages
from alcycle.scaffold import GITIGNORE, demo_params

ROOT = Path(__file__).parents[1]


def test_root_project_is_the_rendered_mnist_project():
    assert (ROOT / "dvc.yaml").read_text() == render_dvc_yaml(None, "src/alcycle")
    assert (ROOT / "params.yaml").read_text() == demo_params()


def test_stage_names_match_modules_and_commands():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["prepare", "pretrain", "pretrain-vit", "pretrain-gan", "embed", "label-import", "train",
                            "extract", "evaluate", "select"]
    for name, stage in stages.items():
        module = name.replace("-", "_")
        assert stage["cmd"] == f"alcycle {name}"
        assert (ROOT / "src/alcycle/stages" / f"{module}.py").exists()


def test_pipeline_paths_are_layout_paths():
    layout = Layout(Path("."))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]

    def paths(entries):
        return {next(iter(e)) if isinstance(e, dict) else e for e in entries}

    outs = set().union(*(paths(s.get("outs", []) + s.get("metrics", []) + s.get("plots", [])) for s in stages.values()))
    expected = {layout.prepared, layout.truth.parent, layout.labeled, layout.pretrained, layout.vit, layout.gan, layout.model,
                layout.pseudo_labels, layout.extracted, layout.features,
                layout.metrics, layout.confusion, layout.mlflow_run, layout.queries, layout.queries_labelstudio,
                layout.queries_cvat, layout.labelstudio_config, layout.import_report, layout.query_images, layout.stream}
    assert outs == {p.as_posix() for p in expected}
    assert layout.annotations.as_posix() in stages["label-import"]["deps"]
    assert layout.manifest.as_posix() in stages["train"]["deps"] and layout.pixels.as_posix() in stages["train"]["deps"]


def test_only_evaluate_reads_the_truth_and_pretraining_ignores_labels():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    readers = {name for name, stage in stages.items() if any("data/truth" in d for d in stage["deps"])}
    assert readers == {"evaluate"}
    assert stages["pretrain"]["deps"][0] == "data/prepared/pixels.npy"
    assert not any("labeled" in d or "annotations" in d for d in stages["pretrain"]["deps"])


def test_the_query_batch_files_are_committed_with_the_cycle_not_cached():
    layout = Layout(Path("."))
    batch = {layout.queries, layout.query_images, layout.queries_labelstudio, layout.queries_cvat,
             layout.labelstudio_config}
    select = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["select"]
    outs = dict(next(iter(entry.items())) for entry in select["outs"])
    # the stream's states too, which select reads back: DVC must not delete them before it runs
    assert outs == {**{p.as_posix(): {"cache": False} for p in batch},
                    layout.stream.as_posix(): {"cache": False, "persist": True}}
    assert batch | {layout.stream} <= set(committed_paths(layout))


def test_root_project_ignores_what_init_ignores():
    """The alcycle repository runs its own pipeline, so its ignore files hold init's entries."""
    for name, text in {".gitignore": GITIGNORE, **output_ignores()}.items():
        missing = set(text.splitlines()) - set((ROOT / name).read_text().splitlines())
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_every_stage_module_declares_its_contract_and_run():
    modules = sorted(p.stem for p in (ROOT / "src/alcycle/stages").glob("*.py") if p.stem != "__init__")
    assert sorted(stage.module for stage in stages()) == modules
    for stage in stages():
        module = importlib.import_module(f"alcycle.stages.{stage.module}")
        assert callable(module.run), stage.name


def test_git_keeps_exactly_the_uncached_outputs_and_ignores_the_cached_ones():
    layout = Layout(Path("."))
    ignored = {(name, line) for name, text in output_ignores().items() for line in text.splitlines()}

    def ignores(path: Path) -> bool:
        return (f"{path.parent}/.gitignore", f"/{path.name}") in ignored

    for stage in stages():
        for out in stage.outs:
            assert (Path(out.path) in committed_paths(layout)) == out.git, out.path
            assert ignores(Path(out.path)) != out.git, out.path
    assert ignores(layout.import_lock)
