"""The API test server stores and admits objects as a real one does (tests/kube/admission.py): an
unknown field is dropped with a warning, or refused under fieldValidation=Strict, which xtrc sends;
a namespace labelled for the restricted Pod Security Standard refuses pods that break it, and the
Job controller reports that as FailedCreate events, while xtrc's own stage pods are admitted."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.kube.apiserver import PSA_ENFORCE_LABEL, FakeCluster
from tests.kube.test_backend import Kube, cluster, kube  # noqa: F401  (fixtures)
from xtrc.kube import ClusterError, KubernetesBackend
from xtrc.kube.secrets import secret_problems
from xtrc.loader import load
from xtrc.plan import build
from xtrc.render import Renderer
from xtrc.spec import Hub

pytestmark = pytest.mark.integration

IMAGE = "busybox:test"


@pytest.fixture(scope="module")
def plain() -> Any:
    with FakeCluster(gpus=0, entrypoints={IMAGE: [sys.executable, "-c", "pass"]}) as c:
        yield c
        assert c.errors == [], c.errors[0]


def _job(name: str, security: bool = True) -> dict:
    container: dict = {"name": "main", "image": IMAGE}
    spec: dict = {"restartPolicy": "Never", "containers": [container]}
    if security:
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                        "runAsNonRoot": True, "runAsUser": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}}
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": {"spec": spec}}}


def _namespace(core: client.CoreV1Api, level: str | None) -> str:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {PSA_ENFORCE_LABEL: level} if level else {}}})
    return ns


def _post(cluster: FakeCluster, path: str, body: dict) -> tuple[int, dict, str]:
    """A raw POST (the official client validates bodies against its models before sending, kubectl
    and other clients do not): (status, headers, body)."""
    request = urllib.request.Request(cluster.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(
                                         {"Authorization": f"Bearer {cluster.token}"} if cluster.token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_an_unknown_field_is_dropped_with_a_warning_or_refused_under_strict(plain: FakeCluster) -> None:
    core = client.CoreV1Api(plain.api_client())
    ns = _namespace(core, None)
    jobs = f"/apis/batch/v1/namespaces/{ns}/jobs"
    body = _job("typo")
    body["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {"runAsUser": 0}
    code, headers, _ = _post(plain, jobs, body)
    assert code == 201
    assert headers["Warning"] == r'299 - "unknown field \"spec.template.spec.containers[0].securityContxt\""'
    stored = plain.get("jobs", "typo", ns)
    assert "securityContxt" not in stored["spec"]["template"]["spec"]["containers"][0]

    body["metadata"]["name"] = "typo-strict"
    code, _, text = _post(plain, jobs + "?fieldValidation=Strict", body)
    assert code == 400
    assert 'strict decoding error: unknown field \\"spec.template.spec.containers[0].securityContxt\\"' in text
    assert plain.get("jobs", "typo-strict", ns) is None

    wrong = _job("wrong-type")
    wrong["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "N", "value": 3}]
    code, _, text = _post(plain, jobs, wrong)
    assert code == 400 and "cannot unmarshal number into Go struct field EnvVar" in text


def test_a_restricted_namespace_refuses_pods_that_break_the_standard(plain: FakeCluster) -> None:
    api = plain.api_client()
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    ns = _namespace(core, "restricted")
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(ns, {"metadata": {"name": "bare"}, "spec": _job("x", security=False)["spec"][
            "template"]["spec"]})
    assert refused.value.status == 403
    assert 'violates PodSecurity \\"restricted:latest\\": allowPrivilegeEscalation != false' in refused.value.body

    # A Job is stored; the Job controller's pods are refused, as FailedCreate events say.
    batch.create_namespaced_job(ns, _job("insecure", security=False))
    events = plain.wait_for(lambda: [e for e in core.list_namespaced_event(ns).items if e.reason == "FailedCreate"], 10)
    assert "violates PodSecurity" in events[0].message and plain.pods(ns) == []

    batch.create_namespaced_job(ns, _job("hardened"))
    assert plain.wait_for(lambda: plain.pods(ns, "job-name=hardened"), 10)
    # The same Job in a namespace without the label (privileged, a cluster's default) starts.
    open_ns = _namespace(core, None)
    batch.create_namespaced_job(open_ns, _job("insecure", security=False))
    assert plain.wait_for(lambda: plain.pods(open_ns, "job-name=insecure"), 10)


def test_xtrc_creates_jobs_with_strict_field_validation_and_its_pods_are_admitted(kube: Kube) -> None:  # noqa: F811
    spec = kube.spec("admit", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1,))
    plan = build(load(spec))
    [stage] = plan.stages.values()
    backend = KubernetesBackend(plan, kube.api, require_remote_store=False)
    mark = len(kube.cluster.request_log)
    try:
        backend.submit(stage)
    finally:
        backend.close()
    posts = [line for line in list(kube.cluster.request_log)[mark:] if line.startswith('"POST') and "/jobs" in line]
    assert posts and all("fieldValidation=Strict" in line for line in posts), posts
    # Its pod passes the restricted namespace's admission (the Kube fixture labels it so).
    assert kube.cluster.wait_for(lambda: kube.pods(f"job-name={backend.job_name(stage.key)}"), 20)


def pod_log(api: Any, namespace: str, job: str) -> str:
    core = client.CoreV1Api(api)
    [pod] = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return core.read_namespaced_pod_log(pod.metadata.name, namespace)


def _orchestrator_identity(kube: Kube, plan: Any, rules: list[dict] | None = None) -> str:  # noqa: F811
    """Create the ServiceAccount, Role and RoleBinding `xtrc apply` renders (the Role's rules
    replaced by ``rules`` when given); return a kubeconfig with that ServiceAccount's token."""
    manifests = Renderer().render_orchestrator(plan, spec_text="x", spec_hash="0" * 64, args=["orchestrate", "x"])
    for manifest in manifests[1:4]:
        body = yaml.safe_load(manifest.text)
        if body["kind"] == "ServiceAccount":
            kube.core.create_namespaced_service_account(kube.ns, body)
        elif body["kind"] == "Role":
            kube.rbac.create_namespaced_role(kube.ns, {**body, "rules": rules if rules is not None else body["rules"]})
        else:
            kube.rbac.create_namespaced_role_binding(kube.ns, body)
    return kube.cluster.service_account_kubeconfig(kube.ns, yaml.safe_load(manifests[1].text)["metadata"]["name"])


def test_the_orchestrators_role_grants_what_its_loop_does_and_no_more(kube: Kube) -> None:  # noqa: F811
    spec = kube.spec("rbac", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1,))
    plan = build(load(spec))
    [stage] = plan.stages.values()
    kubeconfig = _orchestrator_identity(kube, plan)
    with config.new_client_from_config(config_file=kubeconfig) as api:
        backend = KubernetesBackend(plan, api, require_remote_store=False)
        try:
            backend.submit(stage)

            def finished() -> Any:
                status = backend.poll().get(stage.key)
                return status if status is not None and status.state in ("finished", "failed") else None

            assert kube.cluster.wait_for(finished, 60, 0.2).state == "finished"
            assert backend.problems == []
            assert "fake stage" in pod_log(api, kube.ns, backend.job_name(stage.key))
        finally:
            backend.close()
        # What the Role does not grant is refused, as a real authorizer refuses it.
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).list_namespaced_secret(kube.ns)
        assert refused.value.status == 403
        assert ('secrets is forbidden: User \\"system:serviceaccount:' in refused.value.body
                and 'cannot list resource \\"secrets\\" in API group \\"\\" in the namespace' in refused.value.body)
        # Nor one by name: `xtrc apply` checks the spec's Secrets with the user's credentials, and
        # the orchestrator only names them in the pods it creates (xtrc.kube.secrets).
        kube.core.create_namespaced_secret(kube.ns, {"metadata": {"name": "hf-token"}, "stringData": {"token": "x"}})
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(api).read_namespaced_secret("hf-token", kube.ns)
        assert refused.value.status == 403 and 'cannot get resource \\"secrets\\"' in refused.value.body
        # So the check, made with such an identity, says it could not check instead of failing.
        problems, notes = secret_problems(plan.experiment.model_copy(update={"hub": Hub(secret="hf-token")}), api)
        assert problems == [] and len(notes) == 1 and notes[0].startswith(f"cannot check Secret {kube.ns}/hf-token")


def test_a_role_without_watch_on_jobs_stops_the_loop_with_the_authorizers_reason(kube: Kube) -> None:  # noqa: F811
    spec = kube.spec("norbac", intermediate=("none",), augmentation=("none",), targets=("panx",), seeds=(1,))
    plan = build(load(spec))
    rules = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list"]},
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    kubeconfig = _orchestrator_identity(kube, plan, rules)
    with config.new_client_from_config(config_file=kubeconfig) as api:
        backend = KubernetesBackend(plan, api, require_remote_store=False)
        def refused() -> str | None:
            try:
                backend.poll()
            except ClusterError as exc:  # the loop shows it and waits, as for any unreadable watch
                return str(exc)
            return None

        try:
            message = kube.cluster.wait_for(refused, 20, 0.2)
        finally:
            backend.close()
    assert "forbidden" in message and 'cannot watch resource "jobs"' in message, message
