from __future__ import annotations

import json
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml

from xtrc.cli import main
from xtrc.errors import SpecError, XtrcError
from xtrc.loader import load, load_text
from xtrc.plan import Plan, build
from xtrc.render import RENDER_NOTE, TEMPLATES, Manifest, Renderer, default_charts_dir, job_name, q
from xtrc.spec import Experiment
from xtrc.stage import StageConfig, compute_key

SPECS_DIR = Path(__file__).resolve().parents[2] / "specs"
SPEC_NAMES = ("smoke", "combined", "phang2020")
K8S_VERSION = "1.30.0"
CONFIG_ENV = "XTRC_STAGE_CONFIG"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
QUALIFIED_NAME = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                            r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")

NASTY: tuple[str, ...] = (
    '"', "'", "\n", "\r\n", "{{ name }}", "{% if %}", "&anchor", "*alias", "\n---\nkind: Secret", ": ",
    "# comment", "\u2028", "\u2029", "\x85", "\t", "\\", "日本語", "🦜", "\ufeff", "\x00", "", "null",
    "- item", "{a: b}", "!!python/object", "a\"b'c\\d\ne{{f}}g",
)
_MORE_NASTY: tuple[str, ...] = (
    "\x1b[31m", "\x7f", " ", "true", "~", "[a, b]", "%TAG ! x", "|", ">", "@`",
)


@pytest.fixture(scope="module", autouse=True)
def _cached_k8s_schemas() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        cached = lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)
        mp.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield


@pytest.fixture(autouse=True)
def _no_store_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XTRC_STORE", raising=False)


def _spec_path(name: str) -> Path:
    return SPECS_DIR / f"{name}.yaml"


@lru_cache(maxsize=None)
def _rendered(name: str) -> tuple[Plan, tuple[Manifest, ...], tuple[dict[str, Any], ...]]:
    plan = build(load(_spec_path(name)))
    manifests = tuple(Renderer().render(plan))
    return plan, manifests, tuple(yaml.safe_load(m.text) for m in manifests)


def _jobs(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "Job"]


def _network_policies(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def _container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["stage"]
    return containers[0]


def _config(job: dict[str, Any]) -> dict[str, Any]:
    env = {e["name"]: e for e in _container(job)["env"]}
    parsed: dict[str, Any] = json.loads(env[CONFIG_ENV]["value"])
    return parsed


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_manifest_validates_strictly(name: str) -> None:
    plan, manifests, docs = _rendered(name)
    assert len(docs) == 1 + len(plan.stages)
    assert [d["kind"] for d in docs] == ["NetworkPolicy"] + ["Job"] * len(plan.stages)
    assert [m.kind for m in manifests] == [d["kind"] for d in docs]
    assert [m.name for m in manifests] == [d["metadata"]["name"] for d in docs]
    for doc in docs:
        _validate(doc)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_jobs_carry_security_and_scheduling_fields(name: str) -> None:
    plan, _, docs = _rendered(name)
    exp = plan.experiment
    compute = exp.compute
    assert compute.deadline is not None
    jobs = _jobs(docs)
    assert {j["metadata"]["labels"]["xtrc.dev/stage-key"] for j in jobs} == set(plan.stages)
    for job in jobs:
        spec = job["spec"]
        pod = spec["template"]["spec"]
        container = _container(job)
        key = job["metadata"]["labels"]["xtrc.dev/stage-key"]
        stage = plan.stages[key]

        assert job["metadata"]["namespace"] == compute.namespace
        assert pod["restartPolicy"] == "Never"
        assert spec["backoffLimit"] == compute.retries
        assert spec["ttlSecondsAfterFinished"] == compute.ttl_after_finished
        assert spec["activeDeadlineSeconds"] == compute.deadline
        assert "suspend" not in spec

        rules = spec["podFailurePolicy"]["rules"]
        assert any(
            r["action"] == "Ignore"
            and any(c["type"] == "DisruptionTarget" and c.get("status", "True") == "True"
                    for c in r.get("onPodConditions", []))
            for r in rules
        )
        assert any(
            r["action"] == "FailJob"
            and r.get("onExitCodes", {}).get("containerName") == "stage"
            and r["onExitCodes"]["operator"] == "In"
            and 2 in r["onExitCodes"]["values"]
            for r in rules
        )

        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["securityContext"].get("privileged", False) is False

        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        scratch = [n for p, n in mounts.items() if p != "/dev/shm" and "emptyDir" in volumes[n]]
        assert scratch, mounts
        assert all(volumes[n]["emptyDir"].get("medium", "") == "" for n in scratch)

        resources = container["resources"]
        if compute.gpus:
            assert resources["requests"][compute.gpu_resource] == str(compute.gpus)
            assert resources["limits"][compute.gpu_resource] == str(compute.gpus)
        else:
            assert not any("gpu" in r for r in (*resources["requests"], *resources.get("limits", {})))

        for labels in (job["metadata"]["labels"], spec["template"]["metadata"]["labels"]):
            assert labels["app.kubernetes.io/managed-by"] == "xtrc"
            assert labels["xtrc.dev/experiment"] == exp.metadata.name
            assert labels["xtrc.dev/stage-kind"] == stage.kind
            assert labels["xtrc.dev/stage-key"] == key
        if compute.queue:
            assert job["metadata"]["labels"][QUEUE_LABEL] == compute.queue
        else:
            assert QUEUE_LABEL not in job["metadata"]["labels"]
            assert QUEUE_LABEL not in spec["template"]["metadata"]["labels"]

        secret_volumes = [v for v in pod["volumes"] if "secret" in v]
        assert [v["secret"]["secretName"] for v in secret_volumes] == \
            [s for s in (exp.storage.secret, exp.hub.secret) if s]
        assert all(v["name"] in mounts.values() for v in secret_volumes)
        env = {e["name"]: e.get("value") for e in container["env"]}
        if exp.hub.secret:
            [hub] = [v for v in secret_volumes if v["secret"]["secretName"] == exp.hub.secret]
            assert hub["secret"]["items"] == [{"key": "token", "path": "token"}]
            assert mounts[env["HF_TOKEN_PATH"].rsplit("/", 1)[0]] == hub["name"]
        else:
            assert "HF_TOKEN_PATH" not in env
        assert "HF_TOKEN" not in env and env.get("HF_ENDPOINT") == exp.hub.endpoint
        assert "envFrom" not in container
        for env in container["env"]:
            assert "secretKeyRef" not in env.get("valueFrom", {}), env
            assert not env["name"].upper().startswith(("AWS_SECRET", "AWS_ACCESS_KEY", "AWS_SESSION")), env
            assert "value" in env, env


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_gpu_requests_follow_compute_gpus(name: str) -> None:
    plan, _, docs = _rendered(name)
    compute = plan.experiment.compute
    if name == "combined":
        assert compute.gpus == 1 and compute.gpu_resource == "nvidia.com/gpu"
    if name == "smoke":
        assert compute.gpus == 0 and compute.queue is None
    for job in _jobs(docs):
        resources = _container(job)["resources"]
        assert resources["requests"].get(compute.gpu_resource) == (str(compute.gpus) if compute.gpus else None)
        assert resources["limits"].get(compute.gpu_resource) == (str(compute.gpus) if compute.gpus else None)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_network_policy_isolates_the_experiments_stage_pods(name: str) -> None:
    plan, _, docs = _rendered(name)
    exp = plan.experiment
    [policy] = _network_policies(docs)
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector["xtrc.dev/experiment"] == exp.metadata.name
    assert policy["metadata"]["namespace"] == exp.compute.namespace
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert not policy["spec"].get("ingress")
    assert "egress" not in policy["spec"]
    for job in _jobs(docs):
        pod_labels = job["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), (selector, pod_labels)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_stage_config_travels_inline_and_round_trips(name: str) -> None:
    plan, _, docs = _rendered(name)
    for job in _jobs(docs):
        container = _container(job)
        assert CONFIG_ENV in container["args"]
        data = _config(job)
        key = job["metadata"]["labels"]["xtrc.dev/stage-key"]
        config = StageConfig.model_validate(data)
        assert config.key == key
        assert config == plan.stages[key]
        assert compute_key(config.key_payload()) == key
        assert config.with_key().key == key


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_job_names_are_unique_dns_labels_and_stable(name: str) -> None:
    plan, manifests, docs = _rendered(name)
    names = [j["metadata"]["name"] for j in _jobs(docs)]
    assert len(set(names)) == len(names) == len(plan.stages)
    for n in names:
        assert len(n) <= 63, n
        assert DNS_LABEL.fullmatch(n), n
    assert names == [job_name(plan.experiment.metadata.name, s) for s in plan.stages.values()]

    again = Renderer().render(build(load(_spec_path(name))))
    assert [m.name for m in again] == [m.name for m in manifests]
    assert [m.text for m in again] == [m.text for m in manifests]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_cli_render_is_byte_identical(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    outputs: list[str] = []
    for _ in range(2):
        assert main(["render", str(_spec_path(name))]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    _, manifests, _ = _rendered(name)
    assert outputs[0] == RENDER_NOTE + "---\n".join(m.text for m in manifests)
    assert outputs[0].splitlines().count("---") == len(manifests) - 1


def test_cli_render_stream_parses_into_every_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(_spec_path("smoke"))]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    _, _, expected = _rendered("smoke")
    assert docs == list(expected)


@pytest.mark.parametrize("name", ("smoke", "combined"))
def test_cli_render_output_dir_writes_one_file_per_object(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "manifests"
    assert main(["render", str(_spec_path(name)), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    _, manifests, _ = _rendered(name)
    assert f"wrote {len(manifests)} manifests" in captured.err
    files = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    assert files == {m.filename: m.text for m in manifests}

    assert main(["render", str(_spec_path(name))]) == 0
    assert capsys.readouterr().out == RENDER_NOTE + "---\n".join(m.text for m in manifests)


def _nasty_spec(s: str, *, with_model: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "apiVersion": "xtrc.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "inject", "description": s},
        "storage": {"uri": "s3://bucket/" + s, "secret": "store-creds", "options": {"endpoint_url": s}},
        "seeds": [1],
        "factors": {
            "intermediate": ["mnli"],
            "augmentation": [
                {"name": "cs", "code_switch": {"languages": ["de"], "dictionaries": s}},
                {"name": "tt", "translate_train": {"languages": ["de"], "paths": {"xnli": s}}},
            ],
        },
        "benchmark": "xtreme",  # Tatoeba scored from the intermediate checkpoint: one stage graph shape
        "targets": ["xnli", "tatoeba"],
        "data": {"tasks": {"mnli": {"path": s}, "xnli": {"path": s}, "tatoeba": {"path": s}}},
        "salt": s,
        "compute": {
            "queue": "team-a",
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": s, "operator": "In", "values": [s]}]}]}}},
            # toleration keys and values are label keys and values: validated, so not free text
            "tolerations": [{"key": "example.com/pool", "operator": "Equal", "value": "a", "effect": "NoSchedule"}],
        },
    }
    if with_model:
        spec["model"] = "s3://bucket/" + s
    return spec


def _load_nasty(s: str) -> tuple[Experiment, str, bool]:
    text = yaml.safe_dump(_nasty_spec(s, with_model=True))
    try:
        return load_text(text), text, True
    except SpecError as exc:
        assert [i.path for i in exc.issues] == ["model"], str(exc)
    text = yaml.safe_dump(_nasty_spec(s, with_model=False))
    return load_text(text), text, False


@pytest.mark.parametrize("s", NASTY, ids=[ascii(s) for s in NASTY])
def test_spec_text_cannot_change_manifest_structure(
    s: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data paths are `s` itself, relative: for '' the plan lists (and fingerprints) the current
    # directory, which must not be the checkout with its .venv (20 s a case in CI).
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    exp, text, with_model = _load_nasty(s)
    plan = build(exp)
    assert plan.count_by_kind() == {"intermediate": 1, "target": 2, "retrieval": 1}

    spec_file = tmp_path / "inject.yaml"
    spec_file.write_text(text, encoding="utf-8")
    assert main(["render", str(spec_file)]) == 0
    stream = capsys.readouterr().out
    docs = list(yaml.safe_load_all(stream))
    assert len(docs) == 1 + len(plan.stages) == 5
    assert sorted(d["kind"] for d in docs) == ["Job"] * 4 + ["NetworkPolicy"]
    assert stream == RENDER_NOTE + "---\n".join(m.text for m in Renderer().render(plan))
    for doc in docs:
        _validate(doc)

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for job in _jobs(docs):
        config = _config(job)
        by_kind.setdefault(config["kind"], []).append(config)
        assert config["salt"] == s
        assert config["store"] == ("s3://bucket/" + s).rstrip("/")
        assert config["storage_options"] == {"endpoint_url": s}
        assert config["model"] == ("s3://bucket/" + s if with_model else exp.model)
        assert StageConfig.model_validate(config) == plan.stages[config["key"]]

        pod = job["spec"]["template"]["spec"]
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term == [{"matchExpressions": [{"key": s, "operator": "In", "values": [s]}]}]
        assert pod["tolerations"] == [{"key": "example.com/pool", "operator": "Equal", "value": "a",
                                       "effect": "NoSchedule"}]
        assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a"

    [intermediate] = by_kind["intermediate"]
    assert intermediate["data"] == {"mnli": {"path": s, "format": "auto"}}
    [retrieval] = by_kind["retrieval"]
    assert retrieval["data"] == {"tatoeba": {"path": s, "format": "auto"}}
    targets = {c["augmentation"]["level"]: c for c in by_kind["target"]}
    assert targets["cs"]["augmentation"]["code_switch"]["dictionaries"] == s
    assert targets["tt"]["augmentation"]["translate_train"]["paths"] == {"xnli": s}
    for config in targets.values():
        assert config["data"] == {"mnli": {"path": s, "format": "auto"}, "xnli": {"path": s, "format": "auto"}}


_K8S_FORMATTED_FIELDS: dict[str, tuple[tuple[str | int, ...], str]] = {
    "metadata.name": (("metadata", "name"), "smoke"),
    "compute.namespace": (("compute", "namespace"), "default"),
    "compute.queue": (("compute", "queue"), "team-a"),
    "compute.priority_class": (("compute", "priority_class"), "batch"),
    "compute.service_account": (("compute", "service_account"), "runner"),
    "compute.image_pull_secrets": (("compute", "image_pull_secrets"), "pull"),
    "compute.node_selector": (("compute", "node_selector"), "a100"),
    "compute.gpu_resource": (("compute", "gpu_resource"), "nvidia.com/gpu"),
    "compute.memory": (("compute", "memory"), "4Gi"),
    "storage.secret": (("storage", "secret"), "store-creds"),
    "image": (("image",), "ghcr.io/x/runtime:1"),
}


def _rendered_k8s_values(name: str, job: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    meta = job["metadata"]
    pod = job["spec"]["template"]["spec"]
    container = _container(job)
    if name == "metadata.name":
        return [(meta["name"], DNS_LABEL), (meta["labels"]["xtrc.dev/experiment"], LABEL_VALUE)]
    if name == "compute.namespace":
        return [(meta["namespace"], DNS_LABEL)]
    if name == "compute.queue":
        return [(meta["labels"][QUEUE_LABEL], LABEL_VALUE)]
    if name == "compute.priority_class":
        return [(pod["priorityClassName"], DNS_SUBDOMAIN)]
    if name == "compute.service_account":
        return [(pod["serviceAccountName"], DNS_SUBDOMAIN)]
    if name == "compute.image_pull_secrets":
        return [(s["name"], DNS_SUBDOMAIN) for s in pod["imagePullSecrets"]]
    if name == "compute.node_selector":
        return [(v, LABEL_VALUE) for v in pod["nodeSelector"].values()]
    if name == "compute.gpu_resource":
        return [(k, QUALIFIED_NAME) for k in container["resources"]["limits"] if k != "memory"]
    if name == "compute.memory":
        return [(container["resources"]["limits"]["memory"], QUANTITY)]
    if name == "storage.secret":
        return [(v["secret"]["secretName"], DNS_SUBDOMAIN) for v in pod["volumes"] if "secret" in v]
    assert name == "image"
    return [(container["image"], IMAGE_REF)]


@pytest.mark.parametrize("field", sorted(_K8S_FORMATTED_FIELDS))
def test_validated_fields_with_a_trailing_newline_never_reach_a_manifest(field: str) -> None:
    path, good = _K8S_FORMATTED_FIELDS[field]
    spec = yaml.safe_load(_spec_path("smoke").read_text(encoding="utf-8"))
    spec["compute"]["gpus"] = 1
    spec["factors"] = {"intermediate": ["none"], "augmentation": ["none"]}
    spec["seeds"] = [1]
    spec["targets"] = ["xnli"]
    value: Any = good + "\n"
    if field == "compute.image_pull_secrets":
        value = [value]
    elif field == "compute.node_selector":
        value = {"example.com/gpu": value}
    parent = spec
    for part in path[:-1]:
        parent = parent.setdefault(part, {})
    parent[path[-1]] = value
    try:
        exp = load_text(yaml.safe_dump(spec))
    except SpecError as exc:
        assert any(i.path.startswith(field) for i in exc.issues), str(exc)
        return
    for job in _jobs([yaml.safe_load(m.text) for m in Renderer().render(build(exp))]):
        for rendered, pattern in _rendered_k8s_values(field, job):
            assert pattern.fullmatch(rendered), f"{field}: spec value {value!r} rendered as {rendered!r}"


_Q_EXTRA: tuple[str, ...] = (
    "\ud800", "\udfff", "a\udc80b", "\ufffe", "\uffff", "\U0010ffff", "\U0001f600", "\x9f", "\x80", "\xa0",
    "\u00e9\u0301", "\u200b", "\u202e", "0o17", "1e3", "0x1F", ".inf", "yes", "no", "on", "off", "=", "<<",
    "?", "-", "---", "...", "%", "!tag", "'quoted'", '"dq"', "{", "}", "[", "]", ",", "   ", "\r", "\v", "\f",
)


@pytest.mark.parametrize("s", NASTY + _MORE_NASTY + _Q_EXTRA, ids=ascii)
def test_q_round_trips_strings_on_one_line(s: str) -> None:
    rendered = q(s)
    assert not any(c in rendered for c in "\n\r\x85\u2028\u2029"), rendered
    assert yaml.safe_load("v: " + rendered)["v"] == s
    assert yaml.safe_load("v: [" + rendered + "]")["v"] == [s]
    assert yaml.safe_load("v: {" + rendered + ": " + rendered + "}")["v"] == {s: s}
    assert yaml.safe_load("a:\n  - name: x\n    value: " + rendered + "\n  - 1\n")["a"] == [{"name": "x", "value": s}, 1]


def test_q_round_trips_every_character_up_to_0x2030() -> None:
    for code in range(0x2031):
        s = chr(code)
        assert yaml.safe_load("v: " + q(s))["v"] == s, hex(code)
    everything = "".join(chr(c) for c in range(0x2031))
    assert yaml.safe_load("v: " + q(everything))["v"] == everything
    for start in range(0, 0x2031, 0x41):
        chunk = "x" + "".join(chr(c) for c in range(start, min(start + 0x41, 0x2031))) + "x"
        assert yaml.safe_load("v: " + q(chunk))["v"] == chunk, hex(start)


def test_q_round_trips_characters_of_every_plane() -> None:
    codes = [*range(0x2031, 0x110000, 997), 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000, 0xFEFF, 0xFFFD,
             0xFFFE, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
    for code in codes:
        s = "a" + chr(code) + "b"
        assert yaml.safe_load("v: " + q(s))["v"] == s, hex(code)


@pytest.mark.parametrize("value", [
    {}, [], 0, -1, 7, 2**63, True, False, None,
    {"a": 1, "b": [True, False, None], "c": {"d": "e"}},
    [1, "1", True, "true", None, "null", "~", [], {}],
    {"key: with colon": "v", "#": "#", "{{ x }}": "{% y %}", "\n---\n": "\u2028"},
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "k", "operator": "In", "values": list(NASTY)}]}]}}},
    [{"n": i, "s": s} for i, s in enumerate(NASTY)],
])
def test_q_round_trips_containers_and_scalars(value: Any) -> None:
    rendered = q(value)
    assert "\n" not in rendered
    assert yaml.safe_load("v: " + rendered)["v"] == value


def _copy_charts(tmp_path: Path) -> Path:
    charts = tmp_path / "charts"
    shutil.copytree(default_charts_dir(), charts)
    return charts


def _patch_stage_job(charts: Path, anchor: str, replacement: str) -> None:
    """Replace the one occurrence of ``anchor`` in the copied stage-job template."""
    template = charts / "stage-job.yaml.j2"
    original = template.read_text(encoding="utf-8")
    assert original.count(anchor) == 1
    template.write_text(original.replace(anchor, replacement), encoding="utf-8")


def test_custom_charts_dir_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    charts = _copy_charts(tmp_path)
    _patch_stage_job(charts, "\n  labels: {{ labels | q }}\n",
                     "\n  labels:\n"
                     '    example.com/site: "custom"\n'
                     "{%- for key, value in labels.items() %}\n"
                     "    {{ key | q }}: {{ value | q }}\n"
                     "{%- endfor %}\n")

    plan, _, builtin_docs = _rendered("smoke")
    manifests = Renderer(charts).render(plan)
    docs = [yaml.safe_load(m.text) for m in manifests]
    assert len(docs) == len(builtin_docs)
    assert docs[0] == builtin_docs[0]
    for doc, builtin in zip(_jobs(docs), _jobs(builtin_docs)):
        _validate(doc)
        assert doc["metadata"]["labels"] == {**builtin["metadata"]["labels"], "example.com/site": "custom"}
        assert doc["spec"] == builtin["spec"]

    assert main(["render", str(_spec_path("smoke")), "--charts", str(charts)]) == 0
    assert capsys.readouterr().out == RENDER_NOTE + "---\n".join(m.text for m in manifests)


@pytest.mark.parametrize("missing", TEMPLATES)
def test_charts_dir_missing_a_template_is_an_error(
    missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    charts = _copy_charts(tmp_path)
    (charts / missing).unlink()
    with pytest.raises(XtrcError, match=re.escape(missing)):
        Renderer(charts)
    assert main(["render", str(_spec_path("smoke")), "--charts", str(charts)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert missing in captured.err
    assert "Traceback" not in captured.err


def test_custom_chart_error_in_a_later_stage_is_caught(tmp_path: Path) -> None:
    charts = _copy_charts(tmp_path)
    restart = "\n      restartPolicy: Never\n"
    _patch_stage_job(charts, restart,
                     restart + '      priorityClassName: {% if labels["xtrc.dev/stage-kind"] == "retrieval" %}"low'
                     '{% else %}"high"{% endif %}\n')
    plan, _, _ = _rendered("smoke")
    kinds = [s.kind for s in plan.stages.values()]
    assert kinds[0] != "retrieval" and "retrieval" in kinds
    with pytest.raises(XtrcError, match="invalid YAML"):
        Renderer(charts).render(plan)
