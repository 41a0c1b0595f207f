"""The spec's ``hub:`` section: the hub token reaches pods by Secret reference only (a read-only file
at HF_TOKEN_PATH), ``hub.endpoint`` becomes HF_ENDPOINT, and neither changes a stage key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.kube.admission import pod_security_violations
from xtrc.loader import load_text
from xtrc.plan import Plan, build
from xtrc.render import HUB_TOKEN_FILE, Renderer, hub_env

K8S_VERSION = "1.30.0"
ENDPOINT = "https://hub-mirror.example.org/a\"b'{{ x }}/hf"
"""Quotes and template braces in a URL path: they must reach the manifests as one string."""


def _doc(tmp_path: Path, hub: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "xtrc.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": "hub"},
        "model": "builtin:tiny-xlmr", "storage": {"uri": "s3://bucket/x", "secret": "store-creds"},
        "targets": ["panx", "tatoeba"], "languages": {"panx": ["en", "de"], "tatoeba": ["de"]},
        "data": {"root": "builtin:fixtures/data?train=20&dev=10&test=10&languages=en,de"},
        "compute": {"gpus": 0, "namespace": "ml"},
    }
    if hub is not None:
        doc["hub"] = hub
    return doc


def _plan(tmp_path: Path, hub: dict[str, Any] | None) -> Plan:
    return build(load_text(yaml.safe_dump(_doc(tmp_path, hub)), str(tmp_path / "spec.yaml")))


def _pods(plan: Plan) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Job, its pod template's one container) for every stage Job and the orchestrator Job, each
    validated against the Kubernetes schema."""
    renderer = Renderer()
    manifests = [*renderer.render(plan), *renderer.render_orchestrator(
        plan, spec_text="x", spec_hash="0" * 64, args=["orchestrate", "/etc/xtrc/spec.yaml"])]
    out = []
    for manifest in manifests:
        doc = yaml.safe_load(manifest.text)
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] == "Job":
            [container] = doc["spec"]["template"]["spec"]["containers"]
            out.append((doc, container))
    return out


def test_pods_get_the_token_as_a_read_only_file_and_the_endpoint(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"secret": "hf-token", "endpoint": ENDPOINT})
    pods = _pods(plan)
    assert len(pods) == len(plan.stages) + 1  # every stage and the orchestrator
    for job, container in pods:
        pod = job["spec"]["template"]["spec"]
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN_PATH"] == {"name": "HF_TOKEN_PATH", "value": HUB_TOKEN_FILE}
        assert env["HF_ENDPOINT"] == {"name": "HF_ENDPOINT", "value": ENDPOINT}
        assert "HF_TOKEN" not in env and "envFrom" not in container
        assert not any("valueFrom" in e for e in container["env"])  # no Secret value in any environment
        [hub] = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "hf-token"]
        assert hub["secret"] == {"secretName": "hf-token", "defaultMode": 0o400,
                                 "items": [{"key": "token", "path": "token"}]}  # only the token key
        [mount] = [m for m in container["volumeMounts"] if m["name"] == hub["name"]]
        assert mount == {"name": hub["name"], "mountPath": HUB_TOKEN_FILE.rsplit("/", 1)[0], "readOnly": True}
        assert pod_security_violations(job["spec"]["template"], "restricted") == []


def test_without_a_hub_section_pods_get_neither(tmp_path: Path) -> None:
    for job, container in _pods(_plan(tmp_path, None)):
        names = {e["name"] for e in container["env"]}
        assert not names & {"HF_TOKEN_PATH", "HF_ENDPOINT", "HF_TOKEN"}
        assert [v["secret"]["secretName"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v] == \
            ["store-creds"]


def test_an_endpoint_alone_needs_no_secret(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"endpoint": "http://hub-mirror.ml.svc:8080"})
    assert hub_env(plan.experiment.hub) == {"HF_ENDPOINT": "http://hub-mirror.ml.svc:8080"}
    for job, container in _pods(plan):
        assert "HF_TOKEN_PATH" not in {e["name"] for e in container["env"]}


def test_hub_settings_do_not_change_stage_keys(tmp_path: Path) -> None:
    """The resolved commit sha pins what a stage reads; who fetched it, with which token, from which
    mirror, does not change the output."""
    plain = _plan(tmp_path, None)
    for hub in ({"secret": "hf-token"}, {"endpoint": "https://hub-mirror.example.org"},
                {"secret": "other", "endpoint": "http://hub-mirror.ml.svc:8080"}):
        keyed = _plan(tmp_path, hub)
        assert list(keyed.stages) == list(plain.stages), hub
        assert [s.to_json() for s in keyed.stages.values()] == [s.to_json() for s in plain.stages.values()]


def test_the_endpoint_is_normalised_without_its_trailing_slash(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"endpoint": "https://hub-mirror.example.org/hf/"})
    assert plan.experiment.hub.endpoint == "https://hub-mirror.example.org/hf"


@pytest.mark.parametrize("hub", [{"secret": "hf-token"}, {"endpoint": "https://hub-mirror.example.org"}])
def test_the_schema_describes_the_hub_section(hub: dict[str, Any]) -> None:
    import json

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "specs" / "xtrc.schema.json").read_text())
    doc = {**_doc(Path("."), hub)}
    jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "hub": {"token": "hf_abc"}}, schema)


def test_a_sites_chart_copy_without_the_hub_secret_is_an_error(tmp_path: Path) -> None:
    """A --charts copy made before hub.secret existed renders Jobs without the token's volume: its
    pods would download anonymously, so rendering says what to copy."""
    import shutil

    from xtrc.errors import XtrcError
    from xtrc.render import default_charts_dir

    charts = tmp_path / "charts"
    shutil.copytree(default_charts_dir(), charts, ignore=shutil.ignore_patterns("__pycache__", "*.py", "kind"))
    plan = _plan(tmp_path, {"secret": "hf-token"})
    assert len(Renderer(charts).render(plan)) == 1 + len(plan.stages)  # a faithful copy renders
    for name in ("stage-job.yaml.j2", "orchestrator.yaml.j2"):
        template = charts / name
        text = template.read_text()
        start = text.index("{%- if hub_secret %}\n        - name: hub-token")
        template.write_text(text[:start] + text[text.index("{%- endif %}", start) + len("{%- endif %}"):])
    with pytest.raises(XtrcError, match="does not use the Secret 'hf-token' the spec names in hub.secret"):
        Renderer(charts).render(plan)
    with pytest.raises(XtrcError, match="hub-token volume"):
        Renderer(charts).render_orchestrator(plan, spec_text="x", spec_hash="0" * 64, args=["orchestrate", "x"])
    assert len(Renderer(charts).render(_plan(tmp_path, None))) == 1 + len(_plan(tmp_path, None).stages)
