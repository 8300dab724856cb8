"""`alcycle init` leaves a clean git tree: it commits what it wrote, and nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alcycle.scaffold import GITIGNORE, init_project

WRITTEN = {".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore", "params.yaml", "dvc.yaml",
           "data/.gitignore", "data/annotations/README.md", "metrics/.gitignore", "models/.gitignore"}


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def global_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git 'global' config of the test's own, so the machine's never leaks in."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    return config


def user_repo(folder: Path) -> Path:
    """A git repository with its own identity, one commit, a staged change and an untracked file."""
    folder.mkdir()
    git(folder, "init", "--quiet")
    git(folder, "config", "user.name", "alcycle test")
    git(folder, "config", "user.email", "test@alcycle.invalid")
    (folder / "notes.txt").write_text("one\n")
    (folder / ".gitignore").write_text("*.log")
    git(folder, "add", "notes.txt", ".gitignore")
    git(folder, "commit", "--quiet", "-m", "user's work")
    (folder / "notes.txt").write_text("two\n")
    git(folder, "add", "notes.txt")
    (folder / "draft.txt").write_text("not yet\n")
    return folder


def test_init_commits_everything_it_wrote(tmp_path, global_git):
    global_git.write_text("[user]\n\tname = alcycle test\n\temail = test@alcycle.invalid\n")
    project = tmp_path / "proj"
    init_project(project, images=None, classes=None, subsample=100)
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(project, "log", "--format=%s").splitlines() == ["alcycle init: a mnist project with 10 classes"]
    assert set(git(project, "ls-files").splitlines()) == WRITTEN


def test_init_in_a_repository_commits_only_its_own_files(tmp_path, global_git):
    repo = user_repo(tmp_path / "repo")
    init_project(repo, images=None, classes=None, subsample=100)
    assert git(repo, "log", "--format=%s").splitlines() == [
        "alcycle init: a mnist project with 10 classes", "user's work"]
    assert set(git(repo, "show", "--format=", "--name-only", "HEAD").splitlines()) == WRITTEN
    assert (repo / ".gitignore").read_text() == "*.log\n" + GITIGNORE
    # The user's staged change and untracked file are as they were.
    assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        "M  notes.txt", "?? draft.txt"]


def test_init_in_a_subfolder_of_a_repository(tmp_path, global_git):
    repo = user_repo(tmp_path / "repo")
    init_project(repo / "proj", images=None, classes=None, subsample=100)
    assert set(git(repo, "show", "--format=", "--name-only", "HEAD").splitlines()) == {
        f"proj/{name}" for name in WRITTEN}
    assert git(repo / "proj", "status", "--porcelain", "--untracked-files=all", ".") == ""


def test_init_in_an_ignored_folder_fails_before_writing(tmp_path, global_git):
    repo = user_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("/proj/\n")
    with pytest.raises(RuntimeError, match=r"`dvc init --subdir` failed in .*/repo/proj: "
                                           r"ERROR: failed to initiate DVC - .* is ignored by your SCM tool"):
        init_project(repo / "proj", images=None, classes=None, subsample=100)
    assert [p.name for p in (repo / "proj").iterdir()] == []
    assert git(repo, "log", "--format=%s").splitlines() == ["user's work"]


def test_init_without_a_git_identity_writes_nothing(tmp_path, global_git):
    # useConfigOnly: git must not guess an identity from the host name either.
    global_git.write_text("[user]\n\tuseConfigOnly = true\n")
    project = tmp_path / "proj"
    with pytest.raises(RuntimeError, match=r"git has no identity to commit with .*"
                                           r"git config --global user\.name 'Your Name'"):
        init_project(project, images=None, classes=None, subsample=100)
    assert not project.exists()


def test_init_never_overwrites_a_file_it_would_write(tmp_path, global_git):
    repo = user_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text("mine: 1\n")
    with pytest.raises(FileExistsError, match=r"/repo/params\.yaml exists already; choose an empty folder"):
        init_project(repo, images=None, classes=None, subsample=100)
    assert (repo / "params.yaml").read_text() == "mine: 1\n"
    assert not (repo / ".dvc").exists()


def test_init_fashion_mnist_writes_a_loadable_project_on_debians_files(tmp_path, global_git):
    from alcycle.params import load_params
    from alcycle.sources.fashion_mnist import CLASSES

    repo = user_repo(tmp_path / "repo")
    init_project(repo, images=None, classes=None, subsample=0, shipped="fashion_mnist")
    params = load_params(repo / "params.yaml")
    assert (params.prepare.source, params.prepare.path, params.classes) == ("fashion_mnist", "", CLASSES)
    assert (params.prepare.image_size, params.prepare.channels) == (28, 1)
    assert git(repo, "log", "-1", "--format=%s").strip() == "alcycle init: a fashion_mnist project with 10 classes"


def test_demo_params_change_only_the_demo_settings_and_keep_the_comments():
    import yaml

    from alcycle.cycle import describe
    from alcycle.params import params_from_dict
    from alcycle.scaffold import DEMO_SETTINGS, MNIST_CLASSES, demo_params, render_params

    plain, demo = render_params("mnist", "", MNIST_CLASSES, 28, 1, 0).splitlines(), demo_params().splitlines()
    changed = [(a, b) for a, b in zip(plain, demo) if a != b]
    assert len(plain) == len(demo) and len(changed) == len(DEMO_SETTINGS)
    for before, after in changed:
        assert before.split("#", 1)[1] == after.split("#", 1)[1]  # the same comment on the same line
    params = params_from_dict(yaml.safe_load(demo_params()), source=Path("params.yaml"))
    assert (params.pretrain.method, params.train.init, params.train.semi_supervised) == (
        "deepcluster", "pretrained", "label_propagation")
    assert describe(params) == ("using params.yaml: mnist data; train small_cnn from deepcluster pretraining, "
                                "unlabeled pool: label_propagation, 300 steps; select typiclust "
                                "(first batch: typiclust), 20 labels per cycle")


def test_a_setting_the_template_lacks_is_refused():
    from alcycle.scaffold import MNIST_CLASSES, render_params

    with pytest.raises(KeyError, match="no 'train.stepz'"):
        render_params("mnist", "", MNIST_CLASSES, 28, 1, 0, settings={"train.stepz": "3"})
