"""Plan → Kubernetes manifests, from the jinja2 templates in charts/ (or a site's own copy).

Every value reaches YAML through the ``q`` filter, which writes it as a JSON scalar, list or
mapping (JSON is YAML): a spec string holding quotes, newlines, ``{{ }}``, anchors or ``---``
stays one string. Templates use StrictUndefined, and each rendered document is parsed back
and checked before it is returned.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Collection, Iterator

import jinja2
import yaml

from xtrc.errors import XtrcError
from xtrc.plan import Plan
from xtrc.spec import HUB_TOKEN_KEY, Hub, image_digest
from xtrc.stage import IMAGE_ENV, StageConfig

TEMPLATES = ("stage-job.yaml.j2", "networkpolicy.yaml.j2", "orchestrator.yaml.j2")
CONFIG_ERROR_EXIT_CODE = 2
SECRET_MOUNT = "/var/run/secrets/xtrc/storage"
HUB_SECRET_MOUNT = "/var/run/secrets/xtrc/hub"
"""Where pods mount ``hub.secret`` (its key ``token`` only), read-only; HF_TOKEN_PATH names the file.
A file rather than an env ``secretKeyRef``: it reaches only what opens it, not the environment of
every child process, crash report and ``/proc/<pid>/environ``, as the storage Secret's files do."""
HUB_TOKEN_FILE = f"{HUB_SECRET_MOUNT}/{HUB_TOKEN_KEY}"
SPEC_DIR = "/etc/xtrc"
"""Where the orchestrator Job mounts the spec's ConfigMap (``<SPEC_DIR>/spec.yaml``)."""
ORCHESTRATOR_FINAL_EXIT_CODES = (2, 3)
"""``xtrc orchestrate`` exits 2 for a bad spec and 3 when stages failed: its Job must not retry."""
SPEC_HASH_ANNOTATION = "xtrc.dev/spec-sha256"
IMAGE_ANNOTATION = "xtrc.dev/image"
IMAGE_DIGEST_ANNOTATION = "xtrc.dev/image-digest"
KIND_ABBREVIATION = {"intermediate": "int", "target": "tgt", "retrieval": "ret"}
POD_UID = 10001
"""The uid and gid of every xtrc pod (and the Dockerfile's user): above 10000, so no host user shares it."""
POD_HOME = "/home/xtrc"
POD_TMP = "/tmp"
SCRATCH_MOUNTS = ({"mountPath": POD_TMP, "subPath": "tmp"}, {"mountPath": POD_HOME, "subPath": "home"})
"""Where a pod's scratch emptyDir is mounted. A kubelet creates each subPath in the volume, so both
directories exist, writable, before the container starts: the root filesystem is read-only."""
POD_ENV = {
    "HOME": POD_HOME,
    "TMPDIR": POD_TMP,  # `import torch` already needs a writable temporary directory
    "XDG_CACHE_HOME": f"{POD_HOME}/.cache",
    "XDG_CONFIG_HOME": f"{POD_HOME}/.config",
    "HF_HOME": f"{POD_HOME}/.cache/huggingface",
    "TRITON_CACHE_DIR": f"{POD_HOME}/.cache/triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{POD_TMP}/torchinductor",
    "MPLCONFIGDIR": f"{POD_HOME}/.config/matplotlib",
    "PYTHONUNBUFFERED": "1",
}
"""Every path a pod's processes write, all on its scratch emptyDir (SCRATCH_MOUNTS)."""

# Characters JSON leaves raw but YAML would not read back as themselves: C1 controls,
# NEL and the Unicode line/paragraph separators (line breaks in YAML 1.1), the BOM, and
# lone surrogates.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def q(value: Any) -> str:
    """Any value as a single-line YAML flow node that reads back equal to it."""
    if isinstance(value, (str, int, float)):  # bool is an int
        return _q_scalar(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{q(str(k))}: {q(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(q(v) for v in value) + "]"
    return _q_scalar(str(value)) if value is not None else "null"


@lru_cache(maxsize=4096, typed=True)  # typed: True and 1 must not share an entry
def _q_scalar(value: str | int | float) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return _float(value)
    return _yaml_safe(_ENCODER.encode(value))


def _float(value: float) -> str:
    """YAML 1.1 (PyYAML, many tools) reads ``1e-05`` as a string: write ``1.0e-05``."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def _yaml_safe(text: str) -> str:
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


RENDER_NOTE = """\
# xtrc render: one Job per stage, and a NetworkPolicy. These Jobs carry no ordering: applied all at
# once (kubectl apply -f -), a stage whose upstream stage has not finished fails for want of its
# checkpoint and burns its retries. `xtrc apply` runs the plan in order, in-cluster; `xtrc render
# --ready-only` prints only the stages that can start now (their upstream stages are done in the store).
"""
"""The comment `xtrc render` prints above its documents."""


def hub_env(hub: Hub) -> dict[str, str]:
    """What a pod's environment says about the hub: where the token file is, which endpoint (never the token)."""
    env = {"HF_TOKEN_PATH": HUB_TOKEN_FILE} if hub.secret else {}
    if hub.endpoint:
        env["HF_ENDPOINT"] = hub.endpoint
    return env


def default_charts_dir() -> Path:
    return Path(str(resources.files("xtrc.charts")))


@dataclass(frozen=True)
class Manifest:
    kind: str
    name: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.kind.lower()}-{self.name}.yaml"


def orchestrator_name(experiment: str) -> str:
    """``xtrc-<experiment>-orchestrator``: the orchestrator Job, its ServiceAccount, Role and RoleBinding."""
    return f"xtrc-{experiment}-orchestrator"


def spec_configmap_name(experiment: str) -> str:
    return f"xtrc-{experiment}-spec"


def network_policy_name(experiment: str) -> str:
    return f"{experiment}-stages-no-ingress"


def job_name(experiment: str, stage: StageConfig) -> str:
    """``<experiment>-<int|tgt|ret>-<key>``: at most 30 + 4 + 21 = 55 characters, stable, unique."""
    return f"{experiment}-{KIND_ABBREVIATION[stage.kind]}-{stage.key}"


class Renderer:
    def __init__(self, charts_dir: str | Path | None = None):
        self.charts_dir = Path(charts_dir) if charts_dir else default_charts_dir()
        self.custom = self.charts_dir.resolve() != default_charts_dir().resolve()
        missing = [t for t in TEMPLATES if not (self.charts_dir / t).is_file()]
        if missing:
            raise XtrcError(f"--charts {self.charts_dir}: missing template(s) {', '.join(missing)}; "
                            f"copy them from {default_charts_dir()}")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.charts_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=False,
        )
        self.env.filters["q"] = q

    def template(self, name: str) -> jinja2.Template:
        if name not in TEMPLATES:
            raise ValueError(f"unknown template {name!r}; known: {', '.join(TEMPLATES)}")
        return self.env.get_template(name)

    def render(self, plan: Plan) -> list[Manifest]:
        """The NetworkPolicy, then one Job per stage, upstream stages first."""
        return list(self.iter_render(plan))

    def iter_render(self, plan: Plan, keys: Collection[str] | None = None) -> Iterator[Manifest]:
        """``render`` one document at a time (only the stages in ``keys``, when given), so a caller
        that writes each as it comes holds one, not all: memory stays flat in the stage count."""
        context = _PlanContext(plan)
        yield self._checked(self.template("networkpolicy.yaml.j2").render(context.network_policy()),
                            "NetworkPolicy", context.network_policy_name)
        job = self.template("stage-job.yaml.j2")
        shape: int | None = None
        for stage in plan.stages.values():
            if keys is not None and stage.key not in keys:
                continue
            values = context.stage(stage)
            text = job.render(values)
            if shape is None or self.custom:
                yield self._checked(text, "Job", values["name"], values["hub_secret"])
                shape = text.count("\n")
            else:
                # The built-in template branches only on values shared by every stage, and every
                # per-stage value is one line of JSON: each Job has the first one's line
                # structure, which was parsed back in full. A differing line count would mean a
                # value broke out of its quoting, so that Job is parsed back in full too.
                # (A site's own --charts may branch per stage: every Job is parsed back then.)
                yield (Manifest("Job", values["name"], text) if text.count("\n") == shape
                       else self._checked(text, "Job", values["name"]))

    def render_stage(self, plan: Plan, stage: StageConfig) -> Manifest:
        """One stage's Job, parsed back in full (the Kubernetes backend renders them one at a time)."""
        values = self._context(plan).stage(stage)
        return self._checked(self.template("stage-job.yaml.j2").render(values), "Job", values["name"],
                             values["hub_secret"])

    def render_network_policy(self, plan: Plan) -> Manifest:
        context = self._context(plan)
        return self._checked(self.template("networkpolicy.yaml.j2").render(context.network_policy()),
                             "NetworkPolicy", context.network_policy_name)

    def render_orchestrator(self, plan: Plan, *, spec_text: str, spec_hash: str, args: list[str],
                            env: dict[str, str] | None = None) -> list[Manifest]:
        """What `xtrc apply` creates besides the NetworkPolicy: the spec's ConfigMap, the orchestrator's
        ServiceAccount, Role and RoleBinding, and its Job (``xtrc <args>``), in that order."""
        values = self._context(plan).orchestrator(spec_text, spec_hash, args, env or {})
        text = self.template("orchestrator.yaml.j2").render(values)
        expected = [("ConfigMap", values["configmap"]), ("ServiceAccount", values["account"]),
                    ("Role", values["account"]), ("RoleBinding", values["account"]), ("Job", values["name"])]
        parts = [part for part in re.split(r"(?m)^---[ \t]*$\n?", text) if part.strip()]
        if len(parts) != len(expected):
            raise XtrcError(f"orchestrator.yaml.j2 in {self.charts_dir} produced {len(parts)} documents; expected "
                            + ", ".join(kind for kind, _ in expected))
        return [self._checked(part, kind, name, values["hub_secret"] if kind == "Job" else None)
                for part, (kind, name) in zip(parts, expected)]

    def _context(self, plan: Plan) -> _PlanContext:
        cached = getattr(self, "_cached_context", None)
        if cached is None or cached.plan is not plan:
            cached = self._cached_context = _PlanContext(plan)
        return cached

    def _checked(self, text: str, kind: str, name: str, hub_secret: str | None = None) -> Manifest:
        try:
            doc = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise XtrcError(f"template produced invalid YAML for {kind} {name}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != kind or doc.get("metadata", {}).get("name") != name:
            raise XtrcError(f"template for {kind} {name} did not produce that object; check {self.charts_dir}")
        if hub_secret and self.custom and hub_secret not in _secrets_of(doc):
            # a site's copy from before hub.secret existed: its pods would download anonymously
            raise XtrcError(f"the Job {name} from {self.charts_dir} does not use the Secret {hub_secret!r} the spec "
                            f"names in hub.secret; copy the hub-token volume and volumeMount blocks from "
                            f"{default_charts_dir()}")
        return Manifest(kind, name, text)


class _PlanContext:
    """Template values: what is the same for every stage is computed once."""

    def __init__(self, plan: Plan):
        exp = plan.experiment
        self.plan = plan
        self.experiment = exp.metadata.name
        self.compute = exp.compute
        self.network_policy_name = network_policy_name(self.experiment)

    @cached_property
    def shared(self) -> dict[str, Any]:
        exp = self.plan.experiment
        gpu = {self.compute.gpu_resource: str(self.compute.gpus)} if self.compute.gpus else {}
        return {
            "compute": self.compute,
            "image": exp.image,
            "pod_uid": POD_UID,
            "pod_env": [{"name": k, "value": v}
                        for k, v in {**POD_ENV, IMAGE_ENV: exp.image, **hub_env(exp.hub)}.items()],
            "scratch_mounts": list(SCRATCH_MOUNTS),
            "secret": exp.storage.secret,
            "secret_mount": SECRET_MOUNT,
            **self.hub_volume,
            "config_error_exit_code": CONFIG_ERROR_EXIT_CODE,
            "tolerations": [_toleration(t.model_dump(exclude_none=True)) for t in self.compute.tolerations],
            "image_pull_secrets": [{"name": s} for s in self.compute.image_pull_secrets],
            # limits = requests: Guaranteed QoS (last to be evicted; a CPU limit a scanner can see)
            "requests": {"cpu": self.compute.cpu, "memory": self.compute.memory, **gpu},
            "limits": {"cpu": self.compute.cpu, "memory": self.compute.memory, **gpu},
        }

    @cached_property
    def hub_volume(self) -> dict[str, Any]:
        """The hub Secret's volume: only its token key, as the file HUB_TOKEN_FILE."""
        return {"hub_secret": self.plan.experiment.hub.secret, "hub_secret_mount": HUB_SECRET_MOUNT,
                "hub_secret_items": [{"key": HUB_TOKEN_KEY, "path": HUB_TOKEN_KEY}]}

    def labels(self, stage: StageConfig | None = None) -> dict[str, str]:
        labels = {
            "app.kubernetes.io/name": "xtrc",
            "app.kubernetes.io/managed-by": "xtrc",
            "app.kubernetes.io/component": "stage",
            "xtrc.dev/experiment": self.experiment,
        }
        if stage is not None:
            labels["xtrc.dev/stage-kind"] = stage.kind
            labels["xtrc.dev/stage-key"] = stage.key
            if self.compute.queue:
                labels["kueue.x-k8s.io/queue-name"] = self.compute.queue
        return labels

    def network_policy(self) -> dict[str, Any]:
        return {
            "name": self.network_policy_name,
            "namespace": self.compute.namespace,
            "labels": self.labels(),
            "selector": {"xtrc.dev/experiment": self.experiment, "app.kubernetes.io/component": "stage"},
        }

    def orchestrator(self, spec_text: str, spec_hash: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
        labels = {**self.labels(), "app.kubernetes.io/component": "orchestrator"}
        secret = self.plan.experiment.storage.secret
        variables = dict(POD_ENV)
        if secret:
            variables["XTRC_STORAGE_SECRET_DIR"] = SECRET_MOUNT
        variables.update(hub_env(self.plan.experiment.hub))
        variables.update(env)
        return {
            "compute": self.compute,
            "namespace": self.compute.namespace,
            "name": orchestrator_name(self.experiment),
            "account": orchestrator_name(self.experiment),
            "configmap": spec_configmap_name(self.experiment),
            "labels": labels,
            "annotations": {SPEC_HASH_ANNOTATION: spec_hash},
            "spec_text": spec_text,
            "spec_dir": SPEC_DIR,
            "image": self.plan.experiment.image,
            "pod_uid": POD_UID,
            "scratch_mounts": list(SCRATCH_MOUNTS),
            "command": ["xtrc"],
            "args": list(args),
            "env": [{"name": k, "value": v} for k, v in variables.items()],
            "secret": secret,
            "secret_mount": SECRET_MOUNT,
            **self.hub_volume,
            "image_pull_secrets": [{"name": s} for s in self.compute.image_pull_secrets],
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
            "backoff_limit": 6,
            "final_exit_codes": list(ORCHESTRATOR_FINAL_EXIT_CODES),
        }

    @cached_property
    def image_annotations(self) -> dict[str, str]:
        image = self.plan.experiment.image
        digest = image_digest(image)
        return {IMAGE_ANNOTATION: image, **({IMAGE_DIGEST_ANNOTATION: digest} if digest else {})}

    def stage(self, stage: StageConfig) -> dict[str, Any]:
        tasks = [*stage.train_tasks, *(e.task for e in stage.eval_tasks)]
        return {
            **self.shared,
            "name": job_name(self.experiment, stage),
            "labels": self.labels(stage),
            "annotations": {
                "xtrc.dev/arms": ",".join(self.plan.arms_by_stage.get(stage.key, [])),
                "xtrc.dev/tasks": ",".join(dict.fromkeys(tasks)),
                "xtrc.dev/upstream": ",".join(stage.upstream),
                **self.image_annotations,
            },
            "config_json": stage.to_json(),
        }


def _secrets_of(job: dict[str, Any]) -> set[str]:
    """The Secrets a Job's pod reads: volumes, and env ``secretKeyRef``/``envFrom`` (a site's chart may)."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    names = {(v.get("secret") or {}).get("secretName") for v in pod.get("volumes") or []}
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for variable in container.get("env") or []:
            names.add(((variable.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name"))
        names |= {(e.get("secretRef") or {}).get("name") for e in container.get("envFrom") or []}
    return {n for n in names if n}


def _toleration(values: dict[str, Any]) -> dict[str, Any]:
    if "toleration_seconds" in values:
        values["tolerationSeconds"] = values.pop("toleration_seconds")
    return values
