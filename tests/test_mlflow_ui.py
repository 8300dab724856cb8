"""The campaign comparison as a person sees it: a real `mlflow server` on PostgreSQL, headless Chromium.

Campaign runs are logged with alcycle's own ``CellRun``; Chromium (driven through
chromedriver's W3C WebDriver HTTP API, no extra Python package) opens the experiment's
chart view grouped by the ``strategy`` tag and saves a screenshot. The test checks what
the page says (grouping, one group per strategy, the learning-curve metric) and keeps
the PNG in pytest's temporary folder (``screenshot`` is printed) for a look.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from alcycle.tracking import CellRun
from servers import free_port, mlflow_server, postgres

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
STRATEGIES = {"random": [0.45, 0.70, 0.80], "entropy": [0.40, 0.78, 0.90]}
LABELS = [10, 20, 30]


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real MLflow server on localhost, its runs in a real PostgreSQL (a team's set-up),
    holding a 2-strategy × 2-seed campaign logged through it."""
    folder = tmp_path_factory.mktemp("mlflow-ui")
    with postgres() as database, mlflow_server(database.url, str(folder / "artifacts"), folder, {}) as url:
        experiment_id = None
        for strategy, curve in STRATEGIES.items():
            for seed in (0, 1):
                cell = f"{strategy}-plain-{seed}"
                run = CellRun(url, "campaign-ui", folder, {"alcycle.cell": cell, "strategy": strategy,
                                                           "option": "plain", "seed": str(seed)},
                              {"select.strategy": strategy, "seed": seed})
                for cycle, (n, accuracy) in enumerate(zip(LABELS, curve), start=1):
                    run.log_cycle(cycle, n, {"test_accuracy": accuracy + 0.02 * seed})
                run.finish()
                experiment_id = run.experiment_id
        assert database.query("select count(*) from experiments where name = 'campaign-ui'") == [(1,)]
        yield {"url": url, "experiment_id": experiment_id}


class Browser:
    """Headless Chromium through chromedriver's WebDriver HTTP API."""

    def __init__(self) -> None:
        self.port = free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(f"{self.base}/status", timeout=30)
        options = {"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--disable-dev-shm-usage", "--window-size=1600,1000"]}
        answer = self._call("post", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{answer['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        response = getattr(requests, method)(f"{self.base}{path}", data=json.dumps(body or {}), timeout=120)
        value = response.json()["value"]
        if response.status_code != 200:
            raise RuntimeError(f"WebDriver {path}: {value}")
        return value

    def open(self, url: str) -> None:
        self._call("post", f"{self.session}/url", {"url": url})

    def script(self, source: str, *args):
        return self._call("post", f"{self.session}/execute/sync", {"script": source, "args": list(args)})

    def click(self, xpath: str, timeout: float = 60.0) -> None:
        """Click the first element matching ``xpath``, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self._call("post", f"{self.session}/element", {"using": "xpath", "value": xpath})
                element = next(iter(found.values()))
                self._call("post", f"{self.session}/element/{element}/click")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("get", f"{self.session}/screenshot")))

    def close(self) -> None:
        try:
            self._call("delete", self.session)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)


def page_text_when(browser: Browser, wanted: list[str], timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = browser.script("return document.body ? document.body.innerText : '';")
        if all(w in text for w in wanted):
            return text
        time.sleep(1.0)
    return text


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver (.ci/run installs them)")
def test_campaign_charts_grouped_by_strategy_in_the_mlflow_ui(server, tmp_path):
    browser = Browser()
    try:
        browser.open(f"{server['url']}/#/experiments/{server['experiment_id']}/runs?compareRunsMode=CHART")
        # As a person would: Group by → the run tag "strategy" (averaged over seeds).
        browser.click("//button[contains(., 'Group by')]")
        browser.click("//*[@role='menuitemcheckbox' or @role='menuitem' or @role='option'][contains(., 'strategy')]")
        browser.script("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}));")
        text = page_text_when(browser, ["Group by: strategy", "test_accuracy", "Group: random", "Group: entropy"])
        time.sleep(3)  # let the charts finish drawing before the picture
        screenshot = tmp_path / "mlflow-campaign-chart.png"
        browser.screenshot(screenshot)
        print(f"screenshot: {screenshot}")
    finally:
        browser.close()
    assert "Group by: strategy" in text
    assert "test_accuracy" in text
    assert "Group: random" in text and "Group: entropy" in text  # one averaged line per strategy
    assert "random-plain-0" in text and "random-plain-1" in text  # the seeds inside a group
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
