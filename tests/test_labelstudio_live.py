"""The annotation round trip against a real Label Studio server, started here on loopback.

`alcycle labelstudio push` sends the query batch `dvc repro` wrote; the test annotates through
the REST API as annotators would (one task skipped, two annotators who disagree); `pull`
imports the export into the labeled pool. Then what must change nothing changes nothing,
and each fault (wrong token, server down, project deleted) is a clear error that loses nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from servers import free_port, label_studio
from test_cycle_e2e import alcycle, dvc, edit_params, git_repo

pytestmark = pytest.mark.e2e

TOKEN = "alcycle-test-token-0123456789"
BUDGET = 6


def run(project: Path, url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token}
    return subprocess.run([sys.executable, "-m", "alcycle", "labelstudio", *args], cwd=project, env=env,
                          capture_output=True, text=True, check=False)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{done.args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Annotators:
    """Label Studio's REST API, used as the annotators' browsers would: one admin, one more user."""

    def __init__(self, url: str) -> None:
        self.url, self.session = url, requests.Session()
        self.session.headers["Authorization"] = f"Token {TOKEN}"
        self.second = self.call("POST", "/api/users/", json={"username": "second", "email": "second@alcycle.invalid",
                                                               "first_name": "Second", "last_name": "Annotator"})["id"]

    def call(self, method: str, path: str, **kwargs) -> dict | list:
        response = self.session.request(method, self.url + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}

    def tasks(self, title: str) -> dict[str, int]:
        """alcycle id -> task id, for the project called ``title``."""
        project = next(p for p in self.call("GET", "/api/projects/")["results"] if p["title"] == title)
        tasks = self.call("GET", "/api/tasks", params={"project": project["id"], "page_size": 1000})["tasks"]
        return {t["data"]["alcycle_id"]: t["id"] for t in tasks}

    def label(self, task: int, label: str, by: int | None = None) -> None:
        result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        self.call("POST", f"/api/tasks/{task}/annotations/", json={"result": result, **({"completed_by": by} if by else {})})

    def skip(self, task: int) -> None:
        self.call("POST", f"/api/tasks/{task}/annotations/", json={"result": [], "was_cancelled": True})


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with label_studio(tmp_path_factory.mktemp("label-studio"), TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Cycle 0 of a tiny MNIST project: a query batch of BUDGET items, nothing labeled."""
    root = git_repo(tmp_path_factory.mktemp("ls") / "digits-team")
    alcycle(root.parent, "init", str(root), "--mnist", "--subsample", "200")
    edit_params(root, train={"steps": 10}, select={"budget": BUDGET})
    dvc(root, "repro")
    return root


def test_push_pull_round_trip_with_a_skip_and_a_disagreement(server, project):
    title = "digits-team"
    pushed = ok(run(project, server, TOKEN, "push"))
    assert f"{BUDGET} task(s) pushed, 0 already there" in pushed and "created" in pushed
    # Pushed again: nothing sent twice.
    assert f"0 task(s) pushed, {BUDGET} already there" in ok(run(project, server, TOKEN, "push"))
    annotators = Annotators(server)
    tasks = annotators.tasks(title)
    queries = pd.read_csv(project / "data/queries.csv", dtype={"id": str})
    assert sorted(tasks) == sorted(queries["id"])
    exported = requests.get(f"{server}/api/projects/", headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    assert exported.json()["results"][0]["label_config"] == (project / "data/labelstudio.xml").read_text().strip()

    truth = pd.read_csv(project / "data/truth/labels.csv", dtype=str).set_index("id")["label"]
    ids = list(queries["id"])
    skipped, disputed, *agreed = ids
    annotators.skip(tasks[skipped])
    wrong = next(c for c in ("0", "1") if c != truth[disputed])
    annotators.label(tasks[disputed], wrong, by=annotators.second)  # first, and wrong
    annotators.label(tasks[disputed], truth[disputed])  # later: the tie goes to the latest
    for item in agreed[:3]:  # the last item is left for later
        annotators.label(tasks[item], truth[item])

    report = ok(run(project, server, TOKEN, "pull"))
    assert "4 label(s)" in report and "1 cancelled annotation(s) skipped" in report
    assert "1 item(s) with disagreeing annotators" in report
    labeled = pd.read_csv(project / "data/labeled.csv", dtype=str).set_index("id")["label"]
    assert sorted(labeled.index) == sorted([disputed, *agreed[:3]])
    assert (labeled == truth[labeled.index]).all()

    # Nothing new: nothing written.
    before = (project / "data/labeled.csv").read_bytes()
    batches = sorted(p.name for p in (project / "data/annotations").iterdir())
    assert "nothing changed" in ok(run(project, server, TOKEN, "pull"))
    assert (project / "data/labeled.csv").read_bytes() == before
    assert sorted(p.name for p in (project / "data/annotations").iterdir()) == batches

    # One more annotation: only its task comes in.
    annotators.label(tasks[agreed[3]], truth[agreed[3]])
    assert "1 label(s)" in ok(run(project, server, TOKEN, "pull"))
    pool = (project / "data/labeled.csv").read_bytes()
    assert len(pd.read_csv(project / "data/labeled.csv", dtype=str)) == 5

    # The next cycle trains on what was pulled and asks for new items.
    dvc(project, "repro")
    assert (project / "data/labeled.csv").read_bytes() == pool  # label-import rebuilt the same pool
    following = pd.read_csv(project / "data/queries.csv", dtype={"id": str})
    assert set(following["cycle"]) == {2} and not set(following["id"]) & set(ids[1:])


def test_faults_are_clear_errors_that_change_nothing(server, project):
    pool = project / "data/labeled.csv"
    before = pool.read_bytes() if pool.exists() else None
    wrong = run(project, server, "not-a-token", "pull")
    assert wrong.returncode == 1 and f"Label Studio at {server} refused the token" in wrong.stderr

    down = f"http://127.0.0.1:{free_port()}"
    unreachable = run(project, down, TOKEN, "push")
    assert unreachable.returncode == 1 and f"Label Studio at {down} is unreachable" in unreachable.stderr

    # The project deleted between push and pull.
    session = requests.Session()
    session.headers["Authorization"] = f"Token {TOKEN}"
    ok(run(project, server, TOKEN, "push", "--title", "short-lived"))
    doomed = next(p for p in session.get(f"{server}/api/projects/", timeout=60).json()["results"]
                  if p["title"] == "short-lived")
    session.delete(f"{server}/api/projects/{doomed['id']}/", timeout=60).raise_for_status()
    gone = run(project, server, TOKEN, "pull", "--title", "short-lived")
    assert gone.returncode == 1 and "no project called 'short-lived'" in gone.stderr
    assert (pool.read_bytes() if pool.exists() else None) == before


def test_a_personal_access_token_is_exchanged_for_an_access_token(server, project):
    # Label Studio's current tokens are JWT refresh tokens (POST /api/token/ makes one for the caller).
    answer = requests.post(f"{server}/api/token/", headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
    answer.raise_for_status()
    personal = answer.json()["token"]
    assert personal.count(".") == 2
    pushed = ok(run(project, server, personal, "push", "--title", "with-a-personal-token"))
    assert f"{BUDGET} task(s) pushed, 0 already there" in pushed


def test_task_listing_pages_through_the_whole_project(server, project, monkeypatch):
    from alcycle.annotations.labelstudio import server as client_module

    ok(run(project, server, TOKEN, "push"))
    client = client_module.LabelStudio(server, TOKEN)
    project_id = client.find_project("digits-team")["id"]
    listed = client.request("GET", "/api/tasks", params={"project": project_id, "page_size": 1000})["tasks"]
    everything = {t["data"]["alcycle_id"] for t in listed}  # one page of 1,000
    assert len(everything) % BUDGET == 0  # one or two batches of 6: full pages of 2 or 3, nothing after
    for size in (2, 3):
        monkeypatch.setattr(client_module, "PAGE_SIZE", size)
        assert client.task_ids(project_id) == everything
