"""Fixtures for integration tests against real components.

``s3_server``: moto's S3-compatible server in a subprocess on 127.0.0.1 (a free port); tests
that stop and restart it are marked ``restarts_s3`` and get one of their own. moto keeps its
state in memory, so a restart keeps the stored objects by replaying moto's own request log: the
server runs with moto's recorder switched on (``MOTO_ENABLE_RECORDING``; every request, body
included, is appended to a file before it is handled), and a freshly started server replays that
log into its backends before it binds the port (see ``moto_launcher.py``). Nothing is
snapshotted by the tests: every request that reached the server before it was killed, and only
those, is there again after the restart.

Every test here talks to loopback only: the AWS endpoint, dummy credentials, region and
"no instance metadata" are set in the environment for the whole session, and proxies and AWS
config files are switched off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

LAUNCHER = Path(__file__).with_name("moto_launcher.py")
ACCESS_KEY = "AKIAXTRCTESTDUMMY0001"
SECRET_KEY = "xtrc-test-dummy-secret-0001"
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """moto's server as a subprocess; ``restart`` keeps the objects (see the module docstring)."""

    port: int
    workdir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    downtimes: list[float] = field(default_factory=list)
    """Seconds between the kill and the moment the restarted server answered, per restart."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def recording(self) -> Path:
        """moto's request log: what a restart replays."""
        return self.workdir / "moto-recording.jsonl"

    @property
    def log(self) -> Path:
        return self.workdir / "moto-server.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, "the server is already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(LAUNCHER), "-H", "127.0.0.1", "-p", str(self.port)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._wait_until_answering()

    def stop(self) -> None:
        """Kill the server (SIGKILL: a crash, not a clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, downtime_s: float = 1.5, before_start: Callable[[], None] | None = None) -> float:
        """Kill the server, stay down ``downtime_s``, start it again with its objects; returns the
        seconds until it answered again (the downtime plus the start and the replay).
        ``before_start`` runs at the end of the downtime, while nothing answers yet."""
        killed = time.monotonic()
        self.stop()
        time.sleep(downtime_s)
        if before_start is not None:
            before_start()
        self.start()
        took = time.monotonic() - killed
        self.restarts += 1
        self.downtimes.append(took)
        return took

    def _wait_until_answering(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}; see {self.log}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                with opener.open(f"{self.endpoint}/moto-api/data.json", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not answer within {START_TIMEOUT_S}s; see {self.log}")
            time.sleep(0.05)


def _loopback_aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
          "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@contextmanager
def _serving(workdir: Path) -> Iterator[S3Server]:
    """A started server on a free port with its request log in ``workdir``, the AWS environment
    pointing at it while the block runs; stopped after it."""
    port = _free_port()
    with pytest.MonkeyPatch.context() as mp:
        for name in _UNSET:
            mp.delenv(name, raising=False)
        for name, value in _loopback_aws_env(f"http://127.0.0.1:{port}").items():
            mp.setenv(name, value)
        env = dict(os.environ, MOTO_ENABLE_RECORDING="true",
                   MOTO_RECORDER_FILEPATH=str(workdir / "moto-recording.jsonl"))
        server = S3Server(port=port, workdir=workdir, env=env)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server for the session (for each xdist worker), on 127.0.0.1; the AWS
    environment points at it."""
    with _serving(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's server; a test marked ``restarts_s3`` gets one of its own, and the AWS
    environment points at it for the test. A restart replays every request the server ever
    handled: on the session's server that is every earlier test's uploads (which tests those are
    depends on the run, and under xdist on the worker), and under load the replay outgrew the
    start timeout."""
    if request.node.get_closest_marker("restarts_s3") is None:
        yield request.getfixturevalue("s3_session_server")
        return
    with _serving(tmp_path_factory.mktemp("moto-own")) as server:
        yield server


@dataclass(frozen=True)
class S3Location:
    url: str
    """``s3://bucket/prefix``"""
    options: dict[str, Any]
    """fsspec storage options: endpoint_url, key, secret."""
    bucket: str
    prefix: str

    def fs(self) -> Any:
        import s3fs

        # A private instance (not fsspec's shared cache), with no listings cache: every check
        # asks the server.
        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **self.options)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Location:
    """A new bucket on the session's server; ``url`` is ``s3://<bucket>/store``."""
    import boto3

    bucket = f"xtrc-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    options = {"endpoint_url": s3_server.endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY}
    return S3Location(url=f"s3://{bucket}/store", options=options, bucket=bucket, prefix="store")
