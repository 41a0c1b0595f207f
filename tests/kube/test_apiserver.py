"""The Kubernetes API test server (tests/kube/apiserver/), exercised only through the official client."""

from __future__ import annotations

import base64
import json
import sys
import uuid

import pytest
from kubernetes import client, config, watch
from kubernetes.client import ApiException

from tests.helpers import alive
from tests.kube.apiserver import FakeCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(gpus=2, gpu_resource="nvidia.com/gpu", default_entrypoint=[sys.executable, "-c"]) as c:
        yield c
        assert c.errors == [], c.errors[0]


@pytest.fixture
def ns(cluster: FakeCluster) -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(cluster: FakeCluster) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture(scope="module")
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def batch(api) -> client.BatchV1Api:
    return client.BatchV1Api(api)


def status_of(exc: ApiException) -> tuple[int, str]:
    return exc.status, json.loads(exc.body)["reason"]


def job_body(name: str, code: str, *, backoff: int = 0, rules: list | None = None, gpus: int = 0,
             suspend: bool | None = None, env: list | None = None, volumes: list | None = None,
             mounts: list | None = None) -> dict:
    container: dict = {"name": "stage", "image": "xtrc-runtime:test", "command": [sys.executable, "-c", code]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if env:
        container["env"] = env
    if mounts:
        container["volumeMounts"] = mounts
    spec: dict = {"backoffLimit": backoff, "template": {"metadata": {"labels": {"app": "t"}},
                                                       "spec": {"restartPolicy": "Never", "containers": [container],
                                                                "volumes": volumes or []}}}
    if rules is not None:
        spec["podFailurePolicy"] = {"rules": rules}
    if suspend is not None:
        spec["suspend"] = suspend
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": {"app": "t"}}, "spec": spec}


def condition(job: client.V1Job, ctype: str) -> client.V1JobCondition | None:
    for c in (job.status.conditions or []) if job.status else []:
        if c.type == ctype and c.status == "True":
            return c
    return None


def wait_job(cluster: FakeCluster, batch: client.BatchV1Api, name: str, ns: str, ctype: str,
             timeout: float = 15) -> client.V1Job:
    return cluster.wait_for(lambda: (lambda j: j if condition(j, ctype) else None)(batch.read_namespaced_job(name, ns)),
                            timeout)


# ------------------------------------------------------------------------------------------------
# REST


def test_discovery_and_kubeconfig(cluster: FakeCluster, tmp_path) -> None:
    path = cluster.kubeconfig(tmp_path / "config")
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == cluster.url
    with client.ApiClient(cfg) as api:
        assert client.VersionApi(api).get_code().major == "1"
        assert "v1" in client.CoreApi(api).get_api_versions().versions
        groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
        assert {"batch", "rbac.authorization.k8s.io", "networking.k8s.io"} <= groups
        client.CoreV1Api(api).list_namespaced_pod("default")
    anonymous = client.Configuration()
    anonymous.host = cluster.url
    with client.ApiClient(anonymous) as api, pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespaced_pod("default")
    assert status_of(err.value) == (401, "Unauthorized")


def test_crud_and_errors(cluster: FakeCluster, api, core, ns) -> None:
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "spec", "labels": {"a": "1"}}, "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.namespace == ns and cm.metadata.creation_timestamp
    rv = int(cm.metadata.resource_version)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "spec"}})
    assert status_of(err.value) == (409, "AlreadyExists")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("nope", ns)
    assert status_of(err.value) == (404, "NotFound")
    assert json.loads(err.value.body)["message"] == 'configmaps "nope" not found'
    for bad in ({"metadata": {}}, {"metadata": {"name": "Not_Valid"}}):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_config_map(ns, bad)
        assert status_of(err.value) == (422, "Invalid")

    cm.data["k"] = "w"
    replaced = core.replace_namespaced_config_map("spec", ns, cm)
    assert replaced.data == {"k": "w"} and int(replaced.metadata.resource_version) > rv
    with pytest.raises(ApiException) as err:  # stale resourceVersion
        core.replace_namespaced_config_map("spec", ns, cm)
    assert status_of(err.value) == (409, "Conflict")
    patched = core.patch_namespaced_config_map("spec", ns, {"data": {"x": "y"}, "metadata": {"labels": {"a": None}}})
    assert patched.data == {"k": "w", "x": "y"} and not patched.metadata.labels
    core.delete_namespaced_config_map("spec", ns)
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("spec", ns)
    assert status_of(err.value) == (404, "NotFound")

    secret = core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}})
    assert base64.b64decode(secret.data["token"]) == b"s3cr3t" and secret.type == "Opaque"

    rbac, net = client.RbacAuthorizationV1Api(api), client.NetworkingV1Api(api)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "orch"}})
    rbac.create_namespaced_role(ns, {"metadata": {"name": "orch"}, "rules": [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["*"]}]})
    rbac.create_namespaced_role_binding(ns, {"metadata": {"name": "orch"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "orch"},
        "subjects": [{"kind": "ServiceAccount", "name": "orch", "namespace": ns}]})
    net.create_namespaced_network_policy(ns, {"metadata": {"name": "deny"}, "spec": {"podSelector": {},
                                                                                     "policyTypes": ["Ingress"]}})
    assert rbac.read_namespaced_role("orch", ns).rules[0].resources == ["jobs"]
    assert [p.metadata.name for p in net.list_namespaced_network_policy(ns).items] == ["deny"]
    assert [s.metadata.name for s in core.list_namespaced_service_account(ns).items] == ["orch"]
    with pytest.raises(ApiException) as err:
        rbac.read_namespaced_role_binding("missing", ns)
    assert status_of(err.value) == (404, "NotFound")


def test_job_validation(batch, ns) -> None:
    bad = job_body("bad", "pass")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(ns, bad)
    assert status_of(err.value) == (422, "Invalid")
    assert "spec.template.spec.restartPolicy" in json.loads(err.value.body)["message"]
    unordered = job_body("bad", "pass", rules=[{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3, 2]}}])
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(ns, unordered)
    assert status_of(err.value) == (422, "Invalid")
    job = batch.create_namespaced_job(ns, job_body("ok", "pass", suspend=True))
    assert job.spec.backoff_limit == 0 and job.spec.template.metadata.labels["job-name"] == "ok"


def test_label_and_field_selectors(core, ns) -> None:
    for name, labels in {"a": {"tier": "x", "env": "prod"}, "b": {"tier": "y", "env": "dev"},
                         "c": {"tier": "z"}}.items():
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})

    def names(**kw) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(ns, **kw).items]

    assert names(label_selector="tier=x") == ["a"]
    assert names(label_selector="tier==y") == ["b"]
    assert names(label_selector="tier!=x") == ["b", "c"]
    assert names(label_selector="env") == ["a", "b"]
    assert names(label_selector="!env") == ["c"]
    assert names(label_selector="tier in (x, z)") == ["a", "c"]
    assert names(label_selector="tier notin (x,z)") == ["b"]
    assert names(label_selector="env,tier notin (y)") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    page = core.list_namespaced_config_map(ns, limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    assert [i.metadata.name for i in core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue).items] == ["c"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(ns, label_selector="tier in (")
    assert status_of(err.value) == (400, "BadRequest")
    core.delete_collection_namespaced_config_map(ns, label_selector="env")
    assert names() == ["c"]


def test_paginated_list_is_one_snapshot_and_refuses_what_a_real_server_refuses(cluster: FakeCluster, core,
                                                                                  ns) -> None:
    for name in ("p1", "p2", "p3", "p4"):
        core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"set": "p"}}, "data": {"v": "0"}})
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [i.metadata.name for i in first.items] == ["p1", "p2"]
    assert first.metadata.remaining_item_count == 2  # counted only without a selector
    assert core.list_namespaced_config_map(ns, limit=2, label_selector="set=p").metadata.remaining_item_count is None
    # Changes made between pages are not in later pages: every page is read at the first one's version.
    core.patch_namespaced_config_map("p3", ns, {"data": {"v": "1"}})
    core.delete_namespaced_config_map("p4", ns)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "p5"}})
    rest = core.list_namespaced_config_map(ns, limit=2, _continue=first.metadata._continue)
    assert [(i.metadata.name, i.data["v"]) for i in rest.items] == [("p3", "0"), ("p4", "0")]
    assert rest.metadata.resource_version == first.metadata.resource_version and not rest.metadata._continue
    # ... so a watch from the list's version sees each of those changes once.
    seen = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, resource_version=first.metadata.resource_version, timeout_seconds=1)]
    assert seen == [("MODIFIED", "p3"), ("DELETED", "p4"), ("ADDED", "p5")]
    exact = core.list_namespaced_config_map(ns, resource_version=first.metadata.resource_version,
                                            resource_version_match="Exact")
    assert [i.metadata.name for i in exact.items] == ["p1", "p2", "p3", "p4"]

    def refused(**kw) -> tuple[int, str, str]:
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map(ns, **kw)
        body = json.loads(err.value.body)
        return err.value.status, body["reason"], body["message"]

    token = first.metadata._continue
    assert refused(_continue=token, resource_version="5")[:2] == (400, "BadRequest")
    assert refused(resource_version_match="Exact")[:2] == (422, "Invalid")
    assert refused(resource_version="0", resource_version_match="Exact")[:2] == (422, "Invalid")
    assert refused(resource_version="5", resource_version_match="Newest")[:2] == (422, "Invalid")
    assert refused(_continue="not-a-token")[:2] == (400, "BadRequest")
    assert refused(resource_version=str(10 ** 9))[:2] == (504, "Timeout")
    cluster.compact()  # the first page's version is gone from history
    code, reason, message = refused(_continue=token)
    assert (code, reason) == (410, "Expired") and "continue parameter is too old" in message
    assert refused(resource_version=first.metadata.resource_version, resource_version_match="Exact")[:2] == \
        (410, "Expired")


def test_kueue_workloads_are_custom_objects_owned_by_their_job(cluster: FakeCluster, api, batch, ns) -> None:
    custom = client.CustomObjectsApi(api)
    job = batch.create_namespaced_job(ns, job_body("queued", "pass", suspend=True))
    workload = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
                "metadata": {"name": "job-queued-1a2b3", "labels": {"kueue.x-k8s.io/job-uid": job.metadata.uid},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "queued",
                                                  "uid": job.metadata.uid, "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": {"queueName": "team-a", "podSets": [{"name": "main", "count": 1,
                                                             "template": job.to_dict()["spec"]["template"]}]},
                "status": {"conditions": [{"type": "Admitted", "status": "True"}]}}
    created = custom.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", ns, "workloads", workload)
    assert created["status"] == {}  # status is a subresource: create ignores it
    condition = {"type": "QuotaReserved", "status": "False", "reason": "Pending", "lastTransitionTime":
                 "2026-12-01T00:00:00Z", "message": "couldn't assign flavors to pod set main: insufficient quota"}
    custom.patch_namespaced_custom_object_status("kueue.x-k8s.io", "v1beta1", ns, "workloads", "job-queued-1a2b3",
                                                 {"status": {"conditions": [condition]}})
    listed = custom.list_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", ns, "workloads")
    (item,) = listed["items"]
    assert item["kind"] == "Workload" and item["status"]["conditions"] == [condition]
    bad = dict(workload, metadata={"name": "no-pod-sets"}, spec={"queueName": "team-a"})
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", ns, "workloads", bad)
    assert status_of(err.value) == (422, "Invalid")
    batch.delete_namespaced_job("queued", ns, propagation_policy="Background")
    assert custom.list_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", ns, "workloads")["items"] == []


def test_dry_run(core, batch, ns) -> None:
    created = core.create_namespaced_config_map(ns, {"metadata": {"name": "d"}, "data": {"k": "v"}}, dry_run="All")
    assert created.metadata.name == "d"
    assert core.list_namespaced_config_map(ns).items == []
    core.create_namespaced_config_map(ns, {"metadata": {"name": "d"}, "data": {"k": "v"}})
    core.patch_namespaced_config_map("d", ns, {"data": {"k": "changed"}}, dry_run="All")
    assert core.read_namespaced_config_map("d", ns).data == {"k": "v"}
    core.delete_namespaced_config_map("d", ns, dry_run="All")
    assert core.read_namespaced_config_map("d", ns).data == {"k": "v"}
    bad = job_body("x", "pass")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(ns, bad, dry_run="All")
    assert status_of(err.value) == (422, "Invalid")
    batch.create_namespaced_job(ns, job_body("x", "pass"), dry_run="All")
    assert batch.list_namespaced_job(ns).items == []


def test_watch_selector_and_resume(core, ns) -> None:
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w1", "labels": {"w": "yes"}}})
    first = core.list_namespaced_config_map(ns)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w2", "labels": {"w": "yes"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}})
    core.patch_namespaced_config_map("w1", ns, {"metadata": {"labels": {"w": "no"}}})  # leaves the selection
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, ns, label_selector="w=yes", resource_version=first.metadata.resource_version,
        timeout_seconds=1)]
    assert events == [("ADDED", "w2"), ("DELETED", "w1")]


# ------------------------------------------------------------------------------------------------
# Job controller, scheduler and kubelet

SLEEP = "import time\nwhile True: time.sleep(0.1)"
STAGE_RULES = [  # as in charts/stage-job.yaml.j2
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    {"action": "FailJob", "onExitCodes": {"containerName": "stage", "operator": "In", "values": [2]}},
]


def job_pods(core, ns: str, name: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items


def running_pod(cluster: FakeCluster, core, ns: str, name: str, exclude: tuple = ()) -> client.V1Pod:
    def find():
        for p in job_pods(core, ns, name):
            if p.metadata.name not in exclude and p.status.phase == "Running" and cluster.pid(p.metadata.name, ns):
                return p
        return None

    return cluster.wait_for(find, 10)


def test_job_runs_to_completion_with_watch_and_logs(cluster: FakeCluster, core, batch, ns) -> None:
    rv = batch.list_namespaced_job(ns).metadata.resource_version
    batch.create_namespaced_job(ns, job_body("hello", "print('hi')"))
    seen = []
    w = watch.Watch()
    for event in w.stream(batch.list_namespaced_job, ns, resource_version=rv, timeout_seconds=20):
        job = event["object"]
        seen.append((event["type"], job.status.active if job.status else None))
        if condition(job, "Complete"):
            w.stop()
    assert seen[0][0] == "ADDED" and seen[-1][0] == "MODIFIED"
    assert (("MODIFIED", 1) in seen) and condition(job, "Complete").reason == "CompletionsReached"
    assert job.status.succeeded == 1 and not job.status.failed and job.status.completion_time
    [pod] = job_pods(core, ns, "hello")
    assert pod.metadata.name.startswith("hello-") and len(pod.metadata.name) == len("hello-") + 5
    assert pod.metadata.owner_references[0].uid == job.metadata.uid and pod.metadata.labels["controller-uid"]
    assert pod.status.phase == "Succeeded" and pod.spec.node_name and pod.status.start_time
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert core.read_namespaced_pod_log(pod.metadata.name, ns) == "hi\n"


def test_log_follow_and_tail(cluster: FakeCluster, core, batch, ns) -> None:
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\nprint('hi')"
    batch.create_namespaced_job(ns, job_body("logs", code))
    pod = cluster.wait_for(lambda: [p for p in job_pods(core, ns, "logs") if p.status.phase == "Running"], 10)[0]
    resp = core.read_namespaced_pod_log(pod.metadata.name, ns, follow=True, _preload_content=False)
    streamed = b"".join(resp.stream(amt=None))
    resp.release_conn()
    assert streamed == b"0\n1\n2\nhi\n"
    lines = list(watch.Watch().stream(core.read_namespaced_pod_log, pod.metadata.name, ns, container="stage"))
    assert lines == ["0", "1", "2", "hi"]
    assert core.read_namespaced_pod_log(pod.metadata.name, ns, tail_lines=1) == "hi\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod.metadata.name, ns, container="nope")
    assert err.value.status == 400


def test_backoff_limit_counts_failures(cluster: FakeCluster, core, batch, ns) -> None:
    batch.create_namespaced_job(ns, job_body("flaky", "raise SystemExit(1)", backoff=2))
    job = wait_job(cluster, batch, "flaky", ns, "Failed")
    assert condition(job, "Failed").reason == "BackoffLimitExceeded" and job.status.failed == 3
    pods = job_pods(core, ns, "flaky")
    assert len(pods) == 3 and all(p.status.phase == "Failed" for p in pods)
    assert {p.status.container_statuses[0].state.terminated.exit_code for p in pods} == {1}


def test_fail_job_rule_on_exit_code_2(cluster: FakeCluster, core, batch, ns) -> None:
    batch.create_namespaced_job(ns, job_body("config-error", "raise SystemExit(2)", backoff=3, rules=STAGE_RULES))
    job = wait_job(cluster, batch, "config-error", ns, "Failed")
    failed = condition(job, "Failed")
    assert failed.reason == "PodFailurePolicy" and "exit code 2" in failed.message and job.status.failed == 1
    assert len(job_pods(core, ns, "config-error")) == 1


def test_eviction_is_ignored_and_pod_replaced(cluster: FakeCluster, core, batch, ns) -> None:
    batch.create_namespaced_job(ns, job_body("preempted", SLEEP, backoff=0, rules=STAGE_RULES))
    first = running_pod(cluster, core, ns, "preempted")
    pid = cluster.pid(first.metadata.name, ns)
    cluster.evict(first.metadata.name, ns)
    evicted = core.read_namespaced_pod(first.metadata.name, ns)
    assert evicted.status.phase == "Failed"
    assert any(c.type == "DisruptionTarget" and c.status == "True" and c.reason == "EvictionByEvictionAPI"
               for c in evicted.status.conditions)
    cluster.wait_for(lambda: not alive(pid), 10)
    second = running_pod(cluster, core, ns, "preempted", exclude=(first.metadata.name,))
    job = batch.read_namespaced_job("preempted", ns)
    assert not job.status.failed and job.status.active == 1 and not condition(job, "Failed")
    batch.delete_namespaced_job("preempted", ns, propagation_policy="Background")
    cluster.wait_for(lambda: not job_pods(core, ns, "preempted"), 10)
    assert second.metadata.name != first.metadata.name


def test_unschedulable_until_gpus_free(cluster: FakeCluster, core, batch, ns) -> None:
    batch.create_namespaced_job(ns, job_body("big", SLEEP, gpus=2))
    running_pod(cluster, core, ns, "big")
    batch.create_namespaced_job(ns, job_body("small", "print('ran')", gpus=1))

    def unschedulable():
        for p in job_pods(core, ns, "small"):
            for c in p.status.conditions or []:
                if c.type == "PodScheduled" and c.status == "False":
                    return c
        return None

    cond = cluster.wait_for(unschedulable, 10)
    assert cond.reason == "Unschedulable" and cond.message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert job_pods(core, ns, "small")[0].status.phase == "Pending"
    batch.delete_namespaced_job("big", ns, propagation_policy="Foreground")
    wait_job(cluster, batch, "small", ns, "Complete")


def test_secret_volume_and_env_mapping(cluster: FakeCluster, core, batch, ns) -> None:
    core.create_namespaced_secret(ns, {"metadata": {"name": "storage"}, "stringData": {"key": "abc"},
                                       "data": {"other": base64.b64encode(b"xyz").decode()}})
    code = ("import json, os\nd = os.environ['XTRC_STORAGE_SECRET_DIR']\n"
            "print(json.dumps({'dir': d, 'key': open(os.path.join(d, 'key')).read(),"
            " 'other': open(os.path.join(d, 'other')).read(), 'token': os.environ['TOKEN'],"
            " 'hf': os.environ['HF_HOME'], 'scratch': os.path.isdir(os.path.dirname(os.environ['HF_HOME']))}))")
    body = job_body("creds", code,
                    env=[{"name": "XTRC_STORAGE_SECRET_DIR", "value": "/var/run/xtrc/storage"},
                         {"name": "HF_HOME", "value": "/scratch/hf"},
                         {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "storage", "key": "key"}}}],
                    volumes=[{"name": "scratch", "emptyDir": {}},
                             {"name": "storage-credentials", "secret": {"secretName": "storage", "defaultMode": 0o400}}],
                    mounts=[{"name": "scratch", "mountPath": "/scratch"},
                            {"name": "storage-credentials", "mountPath": "/var/run/xtrc/storage", "readOnly": True}])
    batch.create_namespaced_job(ns, body)
    wait_job(cluster, batch, "creds", ns, "Complete")
    [pod] = job_pods(core, ns, "creds")
    out = json.loads(core.read_namespaced_pod_log(pod.metadata.name, ns))
    assert out["key"] == "abc" and out["other"] == "xyz" and out["token"] == "abc" and out["scratch"]
    if cluster.sandboxed:  # the volumes are mounted where the pod says
        assert out["dir"] == "/var/run/xtrc/storage" and out["hf"] == "/scratch/hf"
    else:  # paths under a mountPath are mapped to the volume's directory
        assert out["dir"] != "/var/run/xtrc/storage" and out["dir"].startswith(cluster.root)
        assert out["hf"].startswith(cluster.root) and out["hf"].endswith("/hf")


def test_missing_secret_keeps_pod_waiting(cluster: FakeCluster, core, batch, ns) -> None:
    body = job_body("nosecret", "print('ok')",
                    env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}])
    batch.create_namespaced_job(ns, body)

    def waiting():
        for p in job_pods(core, ns, "nosecret"):
            for cs in p.status.container_statuses or []:
                if cs.state.waiting and cs.state.waiting.reason == "CreateContainerConfigError":
                    return cs.state.waiting
        return None

    assert cluster.wait_for(waiting, 10).message == 'secret "later" not found'
    core.create_namespaced_secret(ns, {"metadata": {"name": "later"}, "stringData": {"k": "v"}})
    wait_job(cluster, batch, "nosecret", ns, "Complete")


def test_deleting_job_deletes_pods_and_kills_process(cluster: FakeCluster, core, batch, ns) -> None:
    batch.create_namespaced_job(ns, job_body("doomed", SLEEP))
    pod = running_pod(cluster, core, ns, "doomed")
    pid = cluster.pid(pod.metadata.name, ns)
    batch.delete_namespaced_job("doomed", ns, propagation_policy="Background")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod(pod.metadata.name, ns)
    assert status_of(err.value) == (404, "NotFound")
    cluster.wait_for(lambda: not alive(pid), 10)

    # Like a real server, a Job deleted without propagationPolicy orphans its pods.
    batch.create_namespaced_job(ns, job_body("orphaning", SLEEP))
    pod = running_pod(cluster, core, ns, "orphaning")
    pid = cluster.pid(pod.metadata.name, ns)
    batch.delete_namespaced_job("orphaning", ns)
    orphan = core.read_namespaced_pod(pod.metadata.name, ns)
    assert not orphan.metadata.owner_references and alive(pid)
    core.delete_namespaced_pod(pod.metadata.name, ns)
    cluster.wait_for(lambda: not alive(pid), 10)


def test_suspended_job_has_no_pods(cluster: FakeCluster, core, batch, ns) -> None:
    batch.create_namespaced_job(ns, job_body("held", "print('go')", suspend=True))
    cluster.wait_for(lambda: condition(batch.read_namespaced_job("held", ns), "Suspended"), 10)
    assert job_pods(core, ns, "held") == []
    batch.patch_namespaced_job("held", ns, {"spec": {"suspend": False}})
    wait_job(cluster, batch, "held", ns, "Complete")


def test_status_subresource(cluster: FakeCluster, core, ns) -> None:
    # A pod that can never be scheduled keeps its status to itself and the scheduler.
    pod = {"metadata": {"name": "parked"}, "spec": {"containers": [
        {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "64"}}}]}}
    core.create_namespaced_pod(ns, pod)
    patched = core.patch_namespaced_pod_status("parked", ns, {"status": {"conditions": [
        {"type": "example.com/Checked", "status": "True"}]}})
    assert any(c.type == "example.com/Checked" for c in patched.status.conditions)
    # The merge patch replaced the conditions list; let the scheduler write its Unschedulable
    # condition back first: a read-then-replace racing that write would (rightly) get 409 Conflict.
    cluster.wait_for(lambda: {"PodScheduled", "example.com/Checked"} <= {
        c.get("type") for c in cluster.get("pods", "parked", ns)["status"].get("conditions", [])})
    current = core.read_namespaced_pod("parked", ns)
    current.status.phase = "Succeeded"  # ignored: the main resource does not write status
    current.metadata.labels = {"touched": "yes"}
    replaced = core.replace_namespaced_pod("parked", ns, current)
    assert replaced.status.phase == "Pending" and replaced.metadata.labels == {"touched": "yes"}
    core.delete_namespaced_pod("parked", ns)


def test_watch_from_compacted_version_is_gone() -> None:
    with FakeCluster() as c, c.api_client() as api:
        core = client.CoreV1Api(api)
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        c.compact()
        with pytest.raises(ApiException) as err:
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv,
                                      timeout_seconds=1))
        assert err.value.status == 410
        events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1))
        assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "a")]
