"""Test tiers: unit tests run by default; `--integration`, `--e2e` or `--all` add the slower tiers.

Markers: `integration` (real components: the S3-compatible server, the Kubernetes API test
server, real training of the tiny model), `e2e` (whole experiments), `gpu` (needs CUDA).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest


def _closed_endpoint() -> str:
    """A local address nothing listens on: the hub is refused at once, never reached."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# No test may reach the real Hugging Face hub (results would depend on the network and on what
# the hub holds today); tests of hub behaviour start their own fake hub and point HF_ENDPOINT at it.
os.environ.setdefault("HF_ENDPOINT", _closed_endpoint())

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--integration", action="store_true", help="also run integration tests")
    parser.addoption("--e2e", action="store_true", help="also run end-to-end tests")
    parser.addoption("--all", action="store_true", help="run every tier")


def _tier_rank(item: pytest.Item) -> int:
    return 0 if "e2e" in item.keywords else 1 if "integration" in item.keywords else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Slow tiers first, whole modules together (module fixtures are set up once): under
    # pytest-xdist (-n) the short unit tests then fill the end of the run, instead of one worker
    # starting a minute-long test while the other has nothing left to do (with --dist load; worksteal
    # first gives each worker a contiguous share of the list, so there the slow tests run last).
    rank: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, 2), _tier_rank(item))
    items.sort(key=lambda item: rank[item.path])  # stable: the order within a rank is kept
    run_all = config.getoption("--all")
    wanted = {"integration": run_all or config.getoption("--integration"), "e2e": run_all or config.getoption("--e2e")}
    for item in items:
        for tier, enabled in wanted.items():
            if tier in item.keywords and not enabled:
                item.add_marker(pytest.mark.skip(reason=f"{tier} tier: run with --{tier} or --all"))
        if "gpu" in item.keywords:
            try:
                import torch

                has_gpu = torch.cuda.is_available()
            except ImportError:
                has_gpu = False
            if not has_gpu:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


_OBJECT_STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                     "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture(autouse=True)
def _no_object_store_unless_asked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that does not use the S3 test server runs as on a machine with no object store at
    hand, whichever tests ran before it (in its process: under xdist that varies from run to run):
    the server's session fixture points the AWS environment (and any s3fs instance made
    meanwhile) at it, and with credentials at hand every s3:// listing of a spec's data (say
    combined.yaml's, on an endpoint that does not exist) waits out the clients' retries instead
    of failing at once for want of credentials."""
    if "s3_server" in request.fixturenames:
        return
    for name in _OBJECT_STORE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs = sys.modules.get("s3fs")
    if s3fs is not None:
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def specs_dir() -> Path:
    return SPECS
