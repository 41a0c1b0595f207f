"""Hub revisions: resolved at plan time through the hub's API (a local fake hub over HTTP here),
pinned in the store, used as the stage keys' and the runtime's commit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.fakehub import FakeHub, Served, sha_of
from tests.helpers import script
from xtrc.loader import load_text
from xtrc.plan import Plan, build_pinned
from xtrc.revisions import LOCK_FILE, pin_name
from xtrc.store import Store

MODEL = "FacebookAI/xlm-roberta-base"
TOKEN = "hf_test_token_0123456789"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[FakeHub, Served]]:
    fake = FakeHub(token=TOKEN)
    fake.add("models", MODEL)
    fake.add("datasets", "google/xtreme")
    fake.add("datasets", "allenai/cosmos_qa", "main", "refs/pr/6")
    served = Served(fake)
    monkeypatch.setenv("HF_ENDPOINT", served.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no login token of this machine's user
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield fake, served
    served.close()


def _doc(store: Path, **extra: object) -> dict:
    doc = {
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "hubexp"},
        "model": MODEL, "storage": {"uri": str(store)}, "seeds": [1],
        "factors": {"intermediate": ["none", "cosmosqa"]},
        "targets": ["panx"], "languages": {"panx": ["en", "de"]}, "compute": {"gpus": 0},
    }
    doc.update(extra)
    return doc


def _plan(doc: dict, *, refresh: bool = False, store: bool = True) -> Plan:
    exp = load_text(yaml.safe_dump(doc), "hub.yaml")
    return build_pinned(exp, Store(exp.storage.uri) if store else None, refresh=refresh)


def _lock(store: Path) -> dict:
    return json.loads((store / "experiments" / "hubexp" / LOCK_FILE).read_text())["revisions"]


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_plan_resolves_every_hub_input_to_a_sha_and_pins_it(hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    fake, _ = hub
    plan = _plan(_doc(tmp_path / "store"))
    assert plan.unresolved == []
    model_sha, xtreme_sha = fake.sha("models", MODEL), fake.sha("datasets", "google/xtreme")
    pr_sha = fake.sha("datasets", "allenai/cosmos_qa", "refs/pr/6")
    inter = next(s for s in plan.stages.values() if s.kind == "intermediate")
    target = next(s for s in plan.stages.values() if s.kind == "target" and s.init_from is None)
    assert target.model_revision == model_sha
    assert target.data_fingerprint["model"] == f"hub model {MODEL}@{model_sha}"
    assert target.data_fingerprint["data.panx"] == (f"hub dataset google/xtreme/PAN-X.de@{xtreme_sha} "
                                                   f"hub dataset google/xtreme/PAN-X.en@{xtreme_sha}")
    assert target.hub_revisions == {"datasets/google/xtreme@main": xtreme_sha}
    # the registry reads cosmos_qa at refs/pr/6: that ref is resolved, quoted whole in the URL
    assert inter.hub_revisions == {"datasets/allenai/cosmos_qa@refs/pr/6": pr_sha}
    assert "/api/datasets/allenai/cosmos_qa/revision/refs%2Fpr%2F6" in fake.paths()
    assert "/api/models/FacebookAI/xlm-roberta-base/revision/main" in fake.paths()
    downstream = next(s for s in plan.stages.values() if s.init_from is not None)
    assert downstream.model_revision is None and "model" not in downstream.data_fingerprint
    lock = _lock(tmp_path / "store")
    assert {k: v["sha"] for k, v in lock.items()} == {
        "models/FacebookAI/xlm-roberta-base@main": model_sha, "datasets/google/xtreme@main": xtreme_sha,
        "datasets/allenai/cosmos_qa@refs/pr/6": pr_sha}
    assert len(fake.paths()) == 3  # one request per repository and revision, whatever the stage count


def test_the_lock_keeps_keys_when_the_hub_moves_until_refresh(hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    fake, _ = hub
    doc = _doc(tmp_path / "store")
    first = _plan(doc)
    asked = len(fake.paths())
    fake.move("datasets", "google/xtreme")
    fake.move("models", MODEL)
    again = _plan(doc)
    assert list(again.stages) == list(first.stages)  # the same keys: the lock's commits, not the hub's new ones
    assert len(fake.paths()) == asked  # and no request: everything was pinned
    assert [s.hub_revisions for s in again.stages.values()] == [s.hub_revisions for s in first.stages.values()]

    refreshed = _plan(doc, refresh=True)
    moved = [k for k, s in refreshed.stages.items() if "google/xtreme" in json.dumps(s.data_fingerprint)
             or s.model_revision]
    assert moved and not set(moved) & set(first.stages)  # stages reading a moved input have new keys
    inter_key = next(k for k, s in first.stages.items() if s.kind == "intermediate")
    inter = refreshed.stages[next(k for k, s in refreshed.stages.items() if s.kind == "intermediate")]
    assert inter.hub_revisions == first.stages[inter_key].hub_revisions  # cosmos_qa did not move
    assert _lock(tmp_path / "store")["datasets/google/xtreme@main"]["sha"] == fake.sha("datasets", "google/xtreme")
    after = _plan(doc)  # the refreshed pins are what later plans use
    assert list(after.stages) == list(refreshed.stages)


def test_a_sha_in_the_spec_needs_no_network_and_gives_the_same_keys(
        hub: tuple[FakeHub, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = hub
    resolved = _plan(_doc(tmp_path / "a"))
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    pinned = _plan(_doc(tmp_path / "b", model_revision=fake.sha("models", MODEL), data={"revisions": {
        "google/xtreme": fake.sha("datasets", "google/xtreme"),
        "allenai/cosmos_qa@refs/pr/6": fake.sha("datasets", "allenai/cosmos_qa", "refs/pr/6")}}))
    assert pinned.unresolved == []
    assert list(pinned.stages) == list(resolved.stages)
    assert not (tmp_path / "b" / "experiments").exists()  # nothing resolved, nothing to pin


def test_a_branch_in_the_spec_is_resolved(hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    fake, _ = hub
    fake.repos[("datasets", "google/xtreme")].refs["v2"] = sha_of("v2")
    plan = _plan(_doc(tmp_path / "store", data={"revisions": {"google/xtreme": "v2"}}))
    target = next(s for s in plan.stages.values() if s.kind == "target")
    assert target.hub_revisions == {"datasets/google/xtreme@main": sha_of("v2")}  # what the runtime looks up
    assert "datasets/google/xtreme@v2" in _lock(tmp_path / "store")


def test_unknown_revision_and_gated_repository_say_what_to_do(
        hub: tuple[FakeHub, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = hub
    plan = _plan(_doc(tmp_path / "a", data={"revisions": {"google/xtreme": "no-such-branch"}}))
    assert plan.revisions is not None and plan.revisions.exit_code() == 2
    [problem] = plan.unresolved
    assert "no revision 'no-such-branch'" in problem

    fake.add("models", "org/gated", gated=True)
    gated = _doc(tmp_path / "b", model="org/gated")
    assert any("gated or private: set HF_TOKEN" in p for p in _plan(gated).unresolved)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert _plan(gated).unresolved == []
    assert any(auth == f"Bearer {TOKEN}" for _, auth in fake.requests)

    fake.add("models", "org/other")
    typo = _plan(_doc(tmp_path / "c", model="org/no-such-model")).unresolved
    assert any("no such model" in p for p in typo)


def test_the_token_file_at_hf_token_path_is_sent_and_hf_token_wins(
        hub: tuple[FakeHub, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the orchestrator pod the token is hub.secret's file at HF_TOKEN_PATH, not an env variable."""
    fake, _ = hub
    fake.add("models", "org/gated", gated=True)
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN + "\n")  # `kubectl create secret --from-file` keeps a trailing newline
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    gated = _doc(tmp_path / "a", model="org/gated")
    assert _plan(gated).unresolved == []
    assert fake.requests[-1][1] == f"Bearer {TOKEN}"

    monkeypatch.setenv("HF_TOKEN", "hf_other_token_of_the_environment")  # the environment wins, as for the hub library
    refused = _plan(_doc(tmp_path / "b", model="org/gated")).unresolved
    assert fake.requests[-1][1] == "Bearer hf_other_token_of_the_environment"
    assert any("the token in HF_TOKEN has no access" in p for p in refused), refused
    monkeypatch.delenv("HF_TOKEN")

    token_file.write_text("hf_revoked_token")
    refused = _plan(_doc(tmp_path / "c", model="org/gated")).unresolved
    assert any(f"the token in the file {token_file} has no access" in p for p in refused), refused
    assert not any("hf_revoked_token" in p for p in refused)


def test_the_login_token_under_hf_home_is_used_and_an_unreadable_token_path_is_an_error(
        hub: tuple[FakeHub, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xtrc.errors import XtrcError

    fake, _ = hub
    fake.add("models", "org/gated", gated=True)
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text(TOKEN)  # where `hf auth login` writes it
    assert _plan(_doc(tmp_path / "a", model="org/gated")).unresolved == []
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path))  # a directory: a mount gone wrong
    with pytest.raises(XtrcError, match="HF_TOKEN_PATH=.*cannot read the hub token"):
        _plan(_doc(tmp_path / "b", model="org/gated"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "absent"))  # no file: no token, as for the hub library
    assert any("gated or private" in p for p in _plan(_doc(tmp_path / "c", model="org/gated")).unresolved)


def test_the_specs_hub_endpoint_is_asked_unless_hf_endpoint_overrides_it(
        hub: tuple[FakeHub, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, served = hub
    monkeypatch.delenv("HF_ENDPOINT")
    doc = _doc(tmp_path / "a", hub={"endpoint": served.endpoint})
    plan = _plan(doc)
    assert plan.unresolved == [] and fake.requests
    # HF_ENDPOINT here overrides the spec (a laptop outside the cluster's network reaches another
    # mirror of the same hub); the pods still get hub.endpoint.
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    offline = _plan(_doc(tmp_path / "b", hub={"endpoint": served.endpoint}))
    assert offline.unresolved and all("offline: cannot reach http://127.0.0.1" in p for p in offline.unresolved)


def test_a_hub_that_does_not_answer_costs_one_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.socket()  # accepts connections (the kernel does), never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        monkeypatch.setenv("XTRC_HUB_TIMEOUT", "1")
        started = time.monotonic()
        plan = _plan(_doc(tmp_path / "store"))
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert elapsed < 10, elapsed  # one timeout for the whole plan, not one per input
    assert plan.revisions is not None and plan.revisions.exit_code() == 1
    assert len(plan.revisions.unresolved) == 3, plan.unresolved
    [line] = plan.unresolved  # one line for one reason
    assert "unresolved (offline: cannot reach" in line and "timed out" in line, line
    with pytest.raises(Exception, match="pin a commit sha in the spec"):
        plan.require_fingerprints()


def test_offline_the_lock_is_enough(hub: tuple[FakeHub, Served], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    online = _plan(_doc(tmp_path / "store"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = _plan(_doc(tmp_path / "store"))
    assert offline.unresolved == [] and list(offline.stages) == list(online.stages)
    offline.require_fingerprints()


def test_fixture_data_and_the_builtin_model_need_no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    doc = _doc(tmp_path / "store", model="builtin:tiny-xlmr", data={"root": "builtin:fixtures/data"})
    plan = _plan(doc)
    assert plan.unresolved == [] and plan.revisions is not None and plan.revisions.used == {}
    plan.require_fingerprints()
    assert not (tmp_path / "store" / "experiments").exists()


def test_spec_revision_fields_are_checked() -> None:
    from xtrc.errors import SpecError

    base = _doc(Path("/tmp/x"))
    with pytest.raises(SpecError, match="did you mean 'google/xtreme'"):
        load_text(yaml.safe_dump({**base, "data": {"revisions": {"google/xtrem": "main"}}}), "s.yaml")
    with pytest.raises(SpecError, match="not a hub model"):
        load_text(yaml.safe_dump({**base, "model": "builtin:tiny-xlmr", "model_revision": "v1"}), "s.yaml")
    with pytest.raises(SpecError, match="a hub revision"):
        load_text(yaml.safe_dump({**base, "model_revision": "main branch"}), "s.yaml")


def test_the_runtime_reads_the_pinned_commit() -> None:
    from xtrc import tasks
    from xtrc_runtime.data import DataLocation

    source = tasks.TASKS["cosmosqa"].source
    assert source is not None and source.revision == "refs/pr/6"
    sha = "a" * 40
    where = DataLocation(hub_revisions={pin_name("dataset", source.dataset, source.revision): sha})
    assert where.hub_source(source).revision == sha
    assert where.hub_source(source).describe("en", "train").startswith(f"allenai/cosmos_qa@{sha}")
    assert DataLocation().hub_source(source).revision == "refs/pr/6"  # nothing pinned: as the registry says


# --- the installed script --------------------------------------------------------------------------

def xtrc(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `xtrc` with its own cache, no token or offline flag but what ``env`` gives."""
    full = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE")}
    full.update(XTRC_CACHE=str(home / "cache"), HF_HOME=str(home / "hf-home"), XTRC_KUBE_SHARED_FILESYSTEM="1", **env)
    return script("xtrc", *args, timeout=120, env=full)


def test_the_xtrc_script_pins_refuses_offline_and_never_shows_the_token(
        hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    fake, served = hub
    fake.add("models", "org/gated", gated=True)
    store = tmp_path / "store"
    spec = tmp_path / "hub.yaml"
    spec.write_text(yaml.safe_dump(_doc(store, model="org/gated")))

    planned = xtrc("plan", str(spec), home=tmp_path, HF_ENDPOINT=served.endpoint, HF_TOKEN=TOKEN)
    assert planned.returncode == 0, planned.stderr
    assert f"models/org/gated@main = {fake.sha('models', 'org/gated')}" in planned.stdout
    as_json = xtrc("plan", str(spec), "--json", home=tmp_path, HF_ENDPOINT=_closed_port())
    assert as_json.returncode == 0, as_json.stderr  # offline now: the lock answers
    assert json.loads(as_json.stdout)["hub_revisions"]["commits"]["models/org/gated@main"] == \
        fake.sha("models", "org/gated")
    rendered = xtrc("render", str(spec), home=tmp_path, HF_ENDPOINT=served.endpoint, HF_TOKEN=TOKEN)
    assert rendered.returncode == 0, rendered.stderr
    assert fake.sha("models", "org/gated") in rendered.stdout  # the stage config in the Job carries the sha
    dry = xtrc("apply", str(spec), "--dry-run", home=tmp_path, HF_ENDPOINT=served.endpoint, HF_TOKEN=TOKEN)
    assert dry.returncode == 0, dry.stderr

    seen = "".join(p.stdout + p.stderr for p in (planned, as_json, rendered, dry))
    stored = "".join(p.read_text(errors="replace") for p in store.rglob("*") if p.is_file())
    assert TOKEN not in seen and TOKEN not in stored
    assert any(auth == f"Bearer {TOKEN}" for _, auth in fake.requests)  # it was sent, and only there

    fresh = tmp_path / "fresh.yaml"  # a store without a lock, offline: plan says so, run refuses
    fresh.write_text(yaml.safe_dump(_doc(tmp_path / "store2")))
    offline = dict(HF_ENDPOINT=_closed_port())
    shown = xtrc("plan", str(fresh), home=tmp_path, **offline)
    assert shown.returncode == 1, shown.stderr
    assert "unresolved (offline: cannot reach" in shown.stderr
    for command in (("run", str(fresh)), ("apply", str(fresh))):
        refused = xtrc(*command, home=tmp_path, **offline)
        assert refused.returncode == 2, (command, refused.stderr)
        assert "cannot run: the commit of these hub inputs is not known" in refused.stderr
        assert "pin a commit sha in the spec" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "store2" / "stages").exists()  # nothing started


def test_a_damaged_lock_is_a_clear_error(hub: tuple[FakeHub, Served], tmp_path: Path) -> None:
    from xtrc.errors import XtrcError

    _plan(_doc(tmp_path / "store"))
    lock = tmp_path / "store" / "experiments" / "hubexp" / LOCK_FILE
    lock.write_text("{not json")
    with pytest.raises(XtrcError, match="revisions.json: not valid JSON.*--refresh-revisions"):
        _plan(_doc(tmp_path / "store"))
    assert _plan(_doc(tmp_path / "store"), refresh=True).unresolved == []  # as the message says
    assert len(_lock(tmp_path / "store")) == 3


def test_an_endpoint_with_credentials_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port().rsplit(":", 1)[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://mirror-user:s3cret-pass@127.0.0.1:{port}")
    plan = _plan(_doc(tmp_path / "store"))
    assert plan.unresolved and "127.0.0.1" in plan.unresolved[0]
    assert "s3cret-pass" not in "".join(plan.unresolved)


def test_an_apply_after_a_refresh_replaces_the_running_orchestrator(hub: tuple[FakeHub, Served],
                                                                      tmp_path: Path) -> None:
    from xtrc.kube import orchestrator_env, spec_hash

    fake, _ = hub
    doc = _doc(tmp_path / "store")
    first = _plan(doc)
    fake.move("datasets", "google/xtreme")
    again, refreshed = _plan(doc), _plan(doc, refresh=True)
    # the orchestrator Job is replaced when its spec hash changes (a changed spec, args or env)
    assert spec_hash("spec", [], orchestrator_env(again)) == spec_hash("spec", [], orchestrator_env(first))
    assert spec_hash("spec", [], orchestrator_env(refreshed)) != spec_hash("spec", [], orchestrator_env(first))
