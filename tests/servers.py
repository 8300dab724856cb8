"""Real servers for the team tests, each started on loopback by the test and stopped after.

Label Studio and SeaweedFS come from the servers' own environment (scripts/servers-env.sh,
built on first use, as `make test` does); PostgreSQL from Debian's packages, which
.ci/run installs. Nothing here mocks a server: each helper starts the real program and
waits until it answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free now (all held open until all are chosen)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


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


def stop(process: subprocess.Popen, how: int = signal.SIGTERM) -> None:
    """End the server and every process it started (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, how)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(command: list[str], log: Path, env: dict | None = None, cwd: Path | None = None,
          mode: str = "wb") -> subprocess.Popen:
    """``command`` in a process group of its own, its output to ``log`` (appended with mode "ab")."""
    with open(log, mode) as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)


@contextmanager
def label_studio(folder: Path, token: str) -> Iterator[str]:
    """A real `label-studio start` on a free loopback port, with an admin whose legacy API token
    is ``token``; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABEL_STUDIO_USERNAME": "admin@alcycle.invalid", "LABEL_STUDIO_PASSWORD": "alcycle-test",
           "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_BASE_DATA_DIR": str(folder),
           # Nothing leaves the machine: no version check on PyPI, no analytics, no Sentry.
           "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
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


class Postgres:
    """A throwaway PostgreSQL cluster on a free loopback port with a database `mlflow`.

    Its folder is a new one in /tmp (pytest's are private to root, and under root the server
    runs as `postgres`: it refuses root), removed by ``close``. ``url`` is its SQLAlchemy URL.
    """

    def __init__(self) -> None:
        self.port, self.bin = free_port(), postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="alcycle-postgres-"))
        self.data = self.folder / "pgdata"
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(_as_postgres_user([str(self.bin / "initdb"), "-D", str(self.data), "-U", "alcycle",
                                          "--auth=trust", "-E", "UTF8"]), check=True, capture_output=True)
        self.process: subprocess.Popen | None = None
        self.start()
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "alcycle",
                        "mlflow"], check=True, capture_output=True)
        # SQLAlchemy's default PostgreSQL driver is psycopg 3; alcycle's environment pins psycopg2.
        self.url = f"postgresql+psycopg2://alcycle@127.0.0.1:{self.port}/mlflow"

    def start(self) -> None:
        log = self.folder / "postgres.log"
        self.process = start(_as_postgres_user([str(self.bin / "postgres"), "-D", str(self.data), "-p",
                                                str(self.port), "-h", "127.0.0.1", "-k", str(self.folder)]),
                             log, mode="ab")  # a restart keeps the first run's log
        deadline = time.monotonic() + 60
        while subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)

    def restart(self) -> None:
        """Stop the server (every client connection is cut) and start it again on the same port."""
        assert self.process is not None
        stop(self.process, signal.SIGINT)  # PostgreSQL's fast shutdown: clients cut, not waited for
        self.start()

    def query(self, sql: str) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=self.port, user="alcycle", dbname="mlflow") as connection:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()

    def close(self) -> None:
        if self.process is not None:
            stop(self.process, signal.SIGINT)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def seaweedfs(folder: Path) -> Iterator[dict[str, str]]:
    """A real SeaweedFS (`weed server -s3`: master, volume, filer and S3 gateway in one process)
    on loopback ports, with one S3 identity; yields the endpoint and the credentials as the
    AWS variables that boto3, DVC's S3 remote and MLflow read."""
    folder.mkdir(parents=True, exist_ok=True)
    access, secret = "alcycle-test", "alcycle-test-secret"
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "alcycle", "credentials": [
        {"accessKey": access, "secretKey": secret}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    ports = dict(zip(names, free_ports(len(names))))
    flags = [f"-{name.replace('.grpc', '.port.grpc') if name.endswith('.grpc') else name + '.port'}={port}"
             for name, port in ports.items()]
    log = folder / "seaweedfs.log"
    process = start([str(servers_bin() / "weed"), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                     *flags, "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                     "-master.volumeSizeLimitMB=64", "-volume.max=50"], log, cwd=folder)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        wait_for(f"http://127.0.0.1:{ports['master']}/cluster/status", process, log, seconds=60)
        s3 = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
              "MLFLOW_S3_ENDPOINT_URL": endpoint, "endpoint": endpoint}
        deadline = time.monotonic() + 60
        while True:  # the gateway answers once the filer has joined
            try:
                if requests.get(endpoint, timeout=2).status_code in (200, 403):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS's S3 gateway did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield s3
    finally:
        stop(process)


@contextmanager
def mlflow_server(backend: str, artifacts: str, folder: Path, env: dict[str, str]) -> Iterator[str]:
    """A real `mlflow server` on a loopback port: ``backend`` its store (PostgreSQL here),
    ``artifacts`` where it keeps what clients upload through it (proxied artifact storage)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "mlflow-server.log"
    process = start([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                     "--artifacts-destination", artifacts, "--serve-artifacts", "--host", "127.0.0.1",
                     "--port", str(port), "--workers", "2"], log,
                    {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **env}, folder)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", process, log, seconds=120)
        yield url
    finally:
        stop(process)
