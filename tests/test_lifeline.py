"""A stage ends when the dvc process that runs it ends (issue 12, item 8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from alcycle import cli, lifeline
from alcycle.campaign.scaffold import render_campaign_dvc_yaml

ROOT = Path(__file__).resolve().parents[1]


class Held(Exception):
    """Raised by the fake lifeline: the command got no further than holding on to dvc."""


def stage_commands() -> dict[str, list[str]]:
    """Every stage's `alcycle` arguments, from the project's and a campaign's dvc.yaml."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    campaign = yaml.safe_load(render_campaign_dvc_yaml(None))["stages"]
    stages.update({f"campaigns/c/dvc.yaml:{name}": stage for name, stage in campaign.items()})
    item = {"${item.strategy}": "random", "${item.option}": "none", "${item.seed}": "0"}
    commands = {}
    for name, stage in stages.items():
        words = [item.get(word, word) for word in stage["cmd"].split()]
        assert words[0] == "alcycle", stage["cmd"]
        commands[name] = words[1:]
    return commands


def test_every_stage_command_holds_to_dvc_before_its_work(monkeypatch):
    held = []

    def hold(stage: str) -> None:
        held.append(stage)
        raise Held

    monkeypatch.setattr(lifeline, "hold_to_dvc", hold)
    commands = stage_commands()
    assert {"prepare", "train", "select", "campaigns/c/dvc.yaml:cell"} <= set(commands)
    for name, args in commands.items():
        result = CliRunner().invoke(cli.main, ["--project", "/nonexistent", *args], env={"DVC_STAGE": name})
        assert isinstance(result.exception, Held), (name, result.output)
    assert held == list(commands)


def test_commands_outside_dvc_do_not_hold(monkeypatch):
    monkeypatch.setattr(lifeline, "hold_to_dvc", lambda stage: pytest.fail(f"held to dvc for {stage}"))
    result = CliRunner().invoke(cli.main, ["strategies"], env={"DVC_STAGE": None})
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ancestry_climbs_through_the_shells_dvc_started_to_dvc():
    # `; true` keeps sh from exec'ing python, so the chain is python -> sh -> this process.
    code = "import json; from alcycle.lifeline import ancestry; print(json.dumps(ancestry('s')))"
    shell = subprocess.Popen(["/bin/sh", "-c", f"{sys.executable} -c \"{code}\"; true"],
                             env={**os.environ, "DVC_STAGE": "s"}, stdout=subprocess.PIPE, text=True)
    out, _ = shell.communicate(timeout=30)
    chain = json.loads(out)
    assert len(chain) == 2
    assert chain[0][1] == chain[1][0] == shell.pid
    assert chain[1][1] == os.getpid()


STAGE = """
import sys, time
from pathlib import Path
from alcycle.lifeline import hold_to_dvc
hold_to_dvc("s")
Path(sys.argv[1], "pid").write_text(str(__import__("os").getpid()))
try:
    time.sleep(60)
finally:
    Path(sys.argv[1], "cleaned").touch()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("victim, signum, message", [
    ("dvc", signal.SIGKILL, "dvc ended; stopping stage s"),
    ("stage", signal.SIGTERM, "terminated; stopping stage s"),
], ids=["dvc-killed", "stage-terminated"])
def test_stage_cleans_up_and_says_why(tmp_path, victim, signum, message):
    # An outer sh without DVC_STAGE plays dvc; the inner sh stays between it and the stage,
    # so only the watcher can see the outer one end.
    (tmp_path / "stage.py").write_text(STAGE)
    inner = f"{sys.executable} {tmp_path / 'stage.py'} {tmp_path}; true"
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    with open(tmp_path / "stderr", "w") as stderr:
        dvc = subprocess.Popen(["/bin/sh", "-c", f"DVC_STAGE=s /bin/sh -c '{inner}'; true"], env=env, stderr=stderr)
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
        assert time.monotonic() < deadline, "the stage never started"
        time.sleep(0.02)
    stage = int((tmp_path / "pid").read_text())
    try:
        os.kill(dvc.pid if victim == "dvc" else stage, signum)
        assert gone_within(stage, 5)
    finally:
        if alive(stage):
            os.kill(stage, signal.SIGKILL)
        dvc.kill()
        dvc.wait()
    assert (tmp_path / "cleaned").exists()
    assert message in (tmp_path / "stderr").read_text()


# --- the real `dvc repro` ------------------------------------------------------------------


def start_dvc(tmp_path: Path, shell: str, cmd_suffix: str = "", ignore_sigint: bool = False) -> dict:
    """`dvc repro` of one stage whose real `alcycle prepare` blocks reading a FIFO params.yaml.

    Returns the dvc process, the stage's pid, the FIFO's write end (held open so the stage
    stays blocked in read) and dvc's log. dvc runs in a session of its own, as under a terminal.
    """
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    os.mkfifo(blocked / "params.yaml")
    repo = tmp_path / "repo"
    repo.mkdir()
    stage = {"cmd": f"alcycle --project {blocked} prepare{cmd_suffix}"}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"blocked": stage}}))
    env = {**os.environ, "SHELL": shell, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=repo, env=env, check=True)
    log = open(tmp_path / "dvc.log", "w+")
    dvc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, stdout=log, stderr=log,
                           start_new_session=True,
                           preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None)
    return {"dvc": dvc, "writer": open_when_read(blocked / "params.yaml", dvc), "stage": find_stage(blocked), "log": log}


def open_when_read(fifo: Path, dvc: subprocess.Popen) -> int:
    """The FIFO's write end, once the stage opened it: the stage is past its start-up then."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and dvc.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: nobody reads it yet
            time.sleep(0.05)
    raise AssertionError(f"the stage never opened {fifo}")


def find_stage(blocked: Path) -> int:
    """The pid of `alcycle --project <blocked> prepare` (not of a shell running it)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if "--project" in argv and str(blocked) in argv:
            return int(proc.name)
    raise AssertionError(f"no stage process for {blocked}")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def stop(run: dict) -> str:
    """End whatever is left (only the processes this test started); dvc's log."""
    os.close(run["writer"])
    if alive(run["stage"]):
        os.kill(run["stage"], signal.SIGKILL)
    if run["dvc"].poll() is None:
        run["dvc"].kill()
    run["dvc"].wait(timeout=30)
    run["log"].seek(0)
    return run["log"].read()


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform != "linux", reason="the lifeline watches /proc")
@pytest.mark.parametrize("signum, shell, cmd_suffix", [
    (signal.SIGTERM, "/bin/bash", ""),          # bash execs the stage: dvc is its parent
    (signal.SIGKILL, "/bin/bash", ""),
    (signal.SIGKILL, "/bin/sh", " || exit 3"),  # a shell stays between dvc and the stage
], ids=["term", "kill", "kill-behind-shell"])
def test_stage_ends_when_dvc_is_killed(tmp_path, signum, shell, cmd_suffix):
    run = start_dvc(tmp_path, shell, cmd_suffix)
    try:
        os.kill(run["dvc"].pid, signum)
        assert gone_within(run["stage"], 5), "the stage runs on after dvc was killed"
    finally:
        log = stop(run)
    assert "dvc ended; stopping stage blocked" in log


@pytest.mark.e2e
@pytest.mark.skipif(sys.platform != "linux", reason="the lifeline watches /proc")
@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["plain", "started-ignoring-sigint"])
def test_ctrl_c_ends_the_stage_and_dvc(tmp_path, ignore_sigint):
    run = start_dvc(tmp_path, "/bin/bash", ignore_sigint=ignore_sigint)
    try:
        # SIGINT to dvc alone: dvc ignores it while a stage runs, so both carry on.
        os.kill(run["dvc"].pid, signal.SIGINT)
        time.sleep(1)
        assert alive(run["stage"]) and run["dvc"].poll() is None
        # Ctrl-C in a terminal: the whole foreground process group gets SIGINT.
        os.killpg(run["dvc"].pid, signal.SIGINT)
        assert gone_within(run["stage"], 5), "the stage runs on after Ctrl-C"
        assert run["dvc"].wait(timeout=30) != 0
    finally:
        stop(run)
