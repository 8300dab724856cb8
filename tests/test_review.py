"""`alcycle review`: the labeled pool's changes between two git revisions, as Markdown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from alcycle.cli import main
from alcycle.layout import Layout
from alcycle.review import ReviewError, review

# The older schema, before the annotator column existed.
V1 = """\
id,label,cycle,source
a,cat,1,batch-0001.csv
b,dog,1,batch-0001.csv
c,cat,1,batch-0001.csv
d,dog,1,batch-0001.csv
"""
# b relabeled dog -> cat, d removed, e f g added; c keeps its label.
V2 = """\
id,label,cycle,source,annotator
a,cat,1,batch-0001.csv,
b,cat,2,relabel:batch-0002.csv,ann
c,cat,1,batch-0001.csv,
e,dog,2,batch-0002.csv,ann
f,cat,2,batch-0002.csv,bob
g,dog,3,batch-0003.csv,
"""
V1_TO_V2 = """\
## Labeled pool: `v1` → `v2`

4 → 6 labeled items: **3 added**, **1 relabeled**, **1 removed**.

### By class

| class | added | relabeled from | relabeled to |
|---|---:|---:|---:|
| cat | 1 | 0 | 1 |
| dog | 2 | 1 | 0 |

### By source

| source | added | relabeled |
|---|---:|---:|
| batch-0002.csv | 2 | 0 |
| batch-0003.csv | 1 | 0 |
| relabel:batch-0002.csv | 0 | 1 |

### By annotator

| annotator | added | relabeled |
|---|---:|---:|
| (unknown) | 1 | 0 |
| ann | 1 | 1 |
| bob | 1 | 0 |

### Relabels

- `b`: dog → cat (relabel:batch-0002.csv)

### Removals

- `d`: dog → removed (was from batch-0001.csv)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A repository whose project sits in the folder proj/; tags v0 (no pool yet), v1 and v2."""
    repo = tmp_path / "repo"
    (repo / "proj/data").mkdir(parents=True)
    git(repo, "init", "--quiet")
    git(repo, "config", "user.name", "alcycle test")
    git(repo, "config", "user.email", "test@alcycle.invalid")
    (repo / "proj/params.yaml").write_text("seed: 0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "scaffold")
    git(repo, "tag", "v0")
    for tag, text in (("v1", V1), ("v2", V2)):
        (repo / "proj/data/labeled.csv").write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "--quiet", "-m", tag)
        git(repo, "tag", tag)
    return repo / "proj"


def test_added_relabeled_and_removed_between_two_revisions(project):
    assert review(Layout(project), "v1", "v2") == V1_TO_V2


def test_the_command_prints_the_same_from_a_project_in_a_subfolder(project):
    result = CliRunner().invoke(main, ["--project", str(project), "review", "v1", "v2"])
    assert result.exit_code == 0, result.output
    assert result.output == V1_TO_V2


def test_rev_b_defaults_to_the_working_tree(project):
    (project / "data/labeled.csv").write_text(V2 + "h,dog,4,batch-0004.csv,bob\n")
    report = review(Layout(project), "v2")
    assert report.startswith("## Labeled pool: `v2` → the working tree\n\n"
                             "6 → 7 labeled items: **1 added**, **0 relabeled**, **0 removed**.\n")
    assert "| dog | 1 | 0 | 0 |" in report and "| batch-0004.csv | 1 | 0 |" in report
    assert "### Relabels" not in report and "### Removals" not in report


def test_a_revision_without_the_pool_is_an_empty_pool(project):
    report = review(Layout(project), "v0", "v1")
    assert "0 → 4 labeled items: **4 added**, **0 relabeled**, **0 removed**." in report
    assert "| (unknown) | 4 | 0 |" in report  # v1 predates the annotator column
    assert "0 → 0 labeled items: **0 added**" in review(Layout(project), "v0", "v0")


def test_a_bad_revision_is_named(project):
    with pytest.raises(ReviewError, match="'nope' is not a git revision"):
        review(Layout(project), "v1", "nope")
    result = CliRunner().invoke(main, ["--project", str(project), "review", "--", "-x"])
    assert result.exit_code == 1 and "'-x' is not a git revision" in result.output


def test_outside_a_repository_it_says_so(tmp_path):
    with pytest.raises(ReviewError, match="is not inside a git repository"):
        review(Layout(tmp_path), "HEAD")


def test_a_pool_listing_an_item_twice_is_refused(project):
    (project / "data/labeled.csv").write_text(V1 + "a,dog,2,batch-0002.csv\n")
    with pytest.raises(ReviewError, match="id 'a' is listed twice"):
        review(Layout(project), "v1")
