"""Every pod xtrc creates is one the Pod Security Admission plugin admits under the "restricted"
standard, and the checks the API test server enforces (tests/kube/admission.py) refuse what the
plugin refuses and decode bodies as the server's decoder does. (tests/unit/test_render.py validates
the rendered objects against the Kubernetes schemas.)"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube.admission import decode, pod_security_violations
from xtrc.loader import load
from xtrc.plan import Plan, build
from xtrc.render import Renderer

SPECS_DIR = Path(__file__).resolve().parents[2] / "specs"


@lru_cache(maxsize=None)
def _plan(name: str) -> Plan:
    return build(load(SPECS_DIR / f"{name}.yaml"))


def _documents(name: str) -> list[dict[str, Any]]:
    plan, renderer = _plan(name), Renderer()
    manifests = [*renderer.render(plan), renderer.render_network_policy(plan),
                 *renderer.render_orchestrator(plan, spec_text="x", spec_hash="0" * 64,
                                               args=["orchestrate", "/etc/xtrc/spec.yaml"])]
    return [yaml.safe_load(m.text) for m in manifests]


@pytest.mark.parametrize("spec", ["smoke", "combined"])
def test_every_pod_xtrc_creates_is_admitted_under_the_restricted_standard(spec: str) -> None:
    templates = [d["spec"]["template"] for d in _documents(spec) if d["kind"] == "Job"]
    assert len(templates) == len(_plan(spec).stages) + 1  # every stage and the orchestrator
    for template in templates:
        assert pod_security_violations(template, "restricted") == []


def _stage_pod() -> dict[str, Any]:
    return copy.deepcopy(next(d for d in _documents("smoke") if d["kind"] == "Job")["spec"]["template"])


def test_the_checker_refuses_what_the_admission_plugin_refuses() -> None:
    pod = _stage_pod()
    [container] = pod["spec"]["containers"]
    name = container["name"]
    context = container["securityContext"]
    del context["allowPrivilegeEscalation"]
    context["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["spec"]["securityContext"].pop("runAsNonRoot", None)
    context.pop("runAsNonRoot", None)
    pod["spec"]["securityContext"].pop("seccompProfile", None)
    context.pop("seccompProfile", None)
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})
    assert pod_security_violations(pod, "restricted") == [
        'hostPath volumes (volume "host")',
        'restricted volume types (volume "host" uses restricted volume type "hostPath")',
        f'allowPrivilegeEscalation != false (container "{name}" must set '
        'securityContext.allowPrivilegeEscalation=false)',
        f'unrestricted capabilities (container "{name}" must set securityContext.capabilities.drop=["ALL"]; '
        f'container "{name}" must not include "SYS_ADMIN" in securityContext.capabilities.add)',
        f'runAsNonRoot != true (pod or container "{name}" must set securityContext.runAsNonRoot=true)',
        f'seccompProfile (pod or container "{name}" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")',
    ]
    assert pod_security_violations(pod, "baseline") == [
        f'non-default capabilities (container "{name}" must not include "SYS_ADMIN" in '
        'securityContext.capabilities.add)', 'hostPath volumes (volume "host")']
    assert pod_security_violations(pod, "privileged") == []


def test_a_seccomp_profile_on_the_pod_covers_its_containers_and_root_is_refused() -> None:
    pod = _stage_pod()
    [container] = pod["spec"]["containers"]
    container["securityContext"].pop("seccompProfile", None)
    pod["spec"]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    assert pod_security_violations(pod, "restricted") == []
    container["securityContext"]["runAsUser"] = 0
    assert pod_security_violations(pod, "restricted") == [
        f'runAsUser=0 (container "{container["name"]}" must not set runAsUser=0)']


def test_a_misspelt_field_is_unknown_and_a_wrong_type_is_named_as_the_go_decoder_names_it() -> None:
    job = next(d for d in _documents("smoke") if d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["securityContxt"] = container.pop("securityContext")
    container["env"][0]["value"] = 3
    job["metadata"]["labels"]["xtrc.dev/seed"] = 1
    decoded, unknown, errors = decode("Job", job)
    assert unknown == ["spec.template.spec.containers[0].securityContxt"]
    assert "securityContxt" not in decoded["spec"]["template"]["spec"]["containers"][0]
    assert errors == [
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
        "json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value "
        "of type string"]
    # Quantities decode from numbers too; an IntOrString takes either.
    resources = {"limits": {"cpu": 2, "memory": "4Gi"}, "requests": {"cpu": 2, "memory": "4Gi"}}
    assert decode("Pod", {"spec": {"containers": [{"name": "c", "resources": resources}]}})[1:] == ([], [])
