"""A live Label Studio server: push the query batch to a project, pull its annotations back.

``alcycle labelstudio push`` sends ``data/queries.labelstudio.json`` (the tasks ``select``
writes, with the model's predictions and the strategy's scores) to a project made with
``data/labelstudio.xml``, creating the project on first use; a task whose ``alcycle_id``
is already in the project is not sent again. ``alcycle labelstudio pull`` asks the export
API for the annotated tasks and imports, through ``alcycle import``, every task that holds
an annotation not stored before (an annotation is known by its id and ``updated_at``, so an
edited one counts as new; the task comes whole, so annotators who disagree are weighed
together). Nothing new: nothing is written.

The server's URL and an access token come from the command line or the environment
(``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, the names Label Studio's own SDK reads),
never from a file in the project. A token is either a legacy API token (sent as
``Token …``) or a personal access token, a JWT that is exchanged for a short-lived access
token first (https://labelstud.io/guide/access_tokens). The REST calls are the documented
ones (https://api.labelstud.io): ``/api/projects``, ``/api/projects/{id}/import``,
``/api/tasks``, ``/api/projects/{id}/export``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from alcycle.annotations.labelstudio import ID_KEY
from alcycle.annotations.store import list_batches
from alcycle.errors import AlcycleError, MissingInputError
from alcycle.layout import Layout

TIMEOUT = 60  # seconds for one request; an export of a big project takes a while
PAGE_SIZE = 500  # tasks per page when listing a project's tasks


class LabelStudioError(AlcycleError, RuntimeError):
    """The Label Studio server is unreachable, refused the token, or lacks the project."""


@dataclass
class LabelStudio:
    """One server, reached with one token; every call raises ``LabelStudioError`` naming the URL."""

    url: str
    token: str

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise LabelStudioError(f"Label Studio URL {self.url!r} must start with http:// or https://")
        if not self.token:
            raise LabelStudioError("no Label Studio token: set LABEL_STUDIO_API_KEY (Account & Settings → "
                                   "Access Token in Label Studio) or pass --token")
        self.session = requests.Session()
        self.session.headers["Authorization"] = self._authorization()

    def _authorization(self) -> str:
        if self.token.count(".") != 2:  # a legacy token; a personal access token is a JWT
            return f"Token {self.token}"
        answer = self._send("POST", "/api/token/refresh", json={"refresh": self.token}, session=requests)
        return f"Bearer {answer['access']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer to ``method path``; any failure is a ``LabelStudioError`` that names the URL."""
        return self._send(method, path, session=self.session, **kwargs)

    def _send(self, method: str, path: str, session: Any, **kwargs: Any) -> Any:
        where = f"{self.url}{path}"
        try:
            response = session.request(method, where, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioError(f"Label Studio at {self.url} is unreachable ({type(exc).__name__}): start it "
                                   f"or set LABEL_STUDIO_URL; nothing was changed") from exc
        if response.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {self.url} refused the token ({response.status_code} on "
                                   f"{method} {path}): set LABEL_STUDIO_API_KEY to an access token of a user of "
                                   f"that server; nothing was changed")
        if not response.ok:
            raise LabelStudioError(f"Label Studio at {self.url} answered {response.status_code} to {method} {path}: "
                                   f"{response.text[:300]}")
        return response.json() if response.content else None

    def find_project(self, title: str) -> dict | None:
        """The project called ``title``, or None; two of that name are refused (which one is meant?)."""
        found = [p for p in self._all("/api/projects/", {"title": title}) if p["title"] == title]
        if len(found) > 1:
            raise LabelStudioError(f"Label Studio at {self.url} holds {len(found)} projects called {title!r} "
                                   f"(ids {', '.join(str(p['id']) for p in found)}); rename all but one")
        return found[0] if found else None

    def task_ids(self, project: int) -> set[str]:
        """The alcycle ids of every task in ``project``."""
        ids: set[str] = set()
        page, seen = 1, 0
        while True:
            answer = self.request("GET", "/api/tasks", params={"project": project, "page": page,
                                                                "page_size": PAGE_SIZE, "fields": "all"})
            tasks = answer["tasks"] if isinstance(answer, dict) else answer
            ids.update(str(t["data"][ID_KEY]) for t in tasks if ID_KEY in t.get("data", {}))
            seen += len(tasks)
            # A page past the last is an error (404), so stop at the total the server reports.
            total = answer.get("total", seen) if isinstance(answer, dict) else seen
            if len(tasks) < PAGE_SIZE or seen >= total:
                return ids
            page += 1

    def _all(self, path: str, params: dict) -> list[dict]:
        results, page = [], 1
        while True:
            answer = self.request("GET", path, params={**params, "page": page, "page_size": 100})
            if isinstance(answer, list):
                return answer
            results.extend(answer["results"])
            if not answer.get("next"):
                return results
            page += 1


@dataclass(frozen=True)
class Pushed:
    project: int
    created: bool
    sent: int
    already_there: int

    def describe(self, title: str, url: str) -> str:
        made = "created" if self.created else "found"
        return (f"Label Studio project {title!r} (id {self.project}, {made}) at {url}: {self.sent} task(s) pushed, "
                f"{self.already_there} already there")


def push(layout: Layout, server: LabelStudio, title: str) -> Pushed:
    """Send the query batch's tasks that ``title`` lacks, creating the project with the labeling config."""
    tasks_file, config_file = layout.queries_labelstudio, layout.labelstudio_config
    for path in (tasks_file, config_file):
        if not path.is_file():
            raise MissingInputError(f"{path} is missing: run `dvc repro` so that select writes the query batch")
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))
    config = config_file.read_text(encoding="utf-8")
    project = server.find_project(title)
    created = project is None
    if project is None:
        project = server.request("POST", "/api/projects/", json={"title": title, "label_config": config})
    elif (project.get("label_config") or "").strip() != config.strip():  # the classes changed in params.yaml
        # (Label Studio keeps the config without its final newline.)
        server.request("PATCH", f"/api/projects/{project['id']}/", json={"label_config": config})
    there = set() if created else server.task_ids(project["id"])
    new = [t for t in tasks if str(t["data"][ID_KEY]) not in there]
    if new:
        server.request("POST", f"/api/projects/{project['id']}/import", json=new)
    return Pushed(project["id"], created, len(new), len(tasks) - len(new))


def pull(layout: Layout, server: LabelStudio, title: str) -> Path | None:
    """The export of ``title``'s tasks that hold an annotation not stored before, written to a
    temporary file for ``alcycle import``; None when there is nothing new."""
    project = server.find_project(title)
    if project is None:
        raise LabelStudioError(f"Label Studio at {server.url} has no project called {title!r} (deleted, or never "
                               f"pushed): run `alcycle labelstudio push` first; the labeled pool is unchanged")
    exported = server.request("GET", f"/api/projects/{project['id']}/export",
                              params={"exportType": "JSON", "download_all_tasks": "false"})
    seen = stored_annotations(layout)
    fresh = [task for task in exported
             if any(_annotation_key(a) not in seen for a in task.get("annotations", []))]
    if not fresh:
        return None
    folder = Path(tempfile.mkdtemp(prefix="alcycle-labelstudio-"))
    path = folder / f"labelstudio-project-{project['id']}.json"
    path.write_text(json.dumps(fresh, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def stored_annotations(layout: Layout) -> set[tuple[Any, Any]]:
    """(annotation id, updated_at) of every annotation in the stored Label Studio JSON batches."""
    seen: set[tuple[Any, Any]] = set()
    for batch in list_batches(layout.annotations):
        try:
            tasks = json.loads(batch.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # CSV, XML and the other formats are not Label Studio JSON
        if isinstance(tasks, list):
            seen.update(_annotation_key(a) for task in tasks if isinstance(task, dict)
                        for a in task.get("annotations", []) if isinstance(a, dict))
    return seen


def _annotation_key(annotation: dict) -> tuple[Any, Any]:
    return annotation.get("id"), annotation.get("updated_at")
