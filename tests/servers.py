"""Real servers for the team tests, each started on loopback by the test and stopped after.

Label Studio and SeaweedFS come from the servers' own environment (scripts/servers-env.sh,
built on first use, as `make test` does); PostgreSQL from Debian's packages, which
.ci/run installs. Nothing here mocks a server: each helper starts the real program and
waits until it answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servers_bin() -> Path:
    """The bin folder of the servers' environment: $ALCYCLE_SERVERS_BIN, or built by its script."""
    given = os.environ.get("ALCYCLE_SERVERS_BIN")
    if given:
        return Path(given)
    done = subprocess.run([str(REPO / "scripts/servers-env.sh")], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    """Until ``url`` answers 200; the server's log in the failure when it dies or never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """End the server and every process it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(command: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


@contextmanager
def label_studio(folder: Path, token: str) -> Iterator[str]:
    """A real `label-studio start` on a free loopback port, with an admin whose legacy API token
    is ``token``; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABEL_STUDIO_USERNAME": "admin@alcycle.invalid", "LABEL_STUDIO_PASSWORD": "alcycle-test",
           "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_BASE_DATA_DIR": str(folder)}
    env.pop("HOST", None)
    log = folder / "label-studio.log"
    process = start([str(servers_bin() / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
                     "--port", str(port), "--data-dir", str(folder), "--enable-legacy-api-token"], log, env, folder)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", process, log)
        yield url
    finally:
        stop(process)


def postgres_bin() -> Path:
    """Debian's PostgreSQL server programs (the newest installed version)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    return versions[-1].parent


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: root runs it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port with a database `mlflow`;
    yields its SQLAlchemy URL. Its folder is a new one in /tmp (pytest's are private to
    root, and the server runs as `postgres` under root), removed after."""
    port, bin_dir = free_port(), postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="alcycle-postgres-"))
    data = folder / "pgdata"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(_as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "alcycle", "--auth=trust",
                                      "-E", "UTF8"]), check=True, capture_output=True)
    log = folder / "postgres.log"
    process = subprocess.Popen(
        _as_postgres_user([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                           "-k", str(folder)]),
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "alcycle", "mlflow"],
                       check=True, capture_output=True)
        yield f"postgresql://alcycle@127.0.0.1:{port}/mlflow"
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)
