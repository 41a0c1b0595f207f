"""The experiment spec (``apiVersion: xtrc.dev/v1alpha1``, ``kind: Experiment``) as pydantic models.

Field-level rules live on the fields; rules that span fields live in :mod:`xtrc.crosscheck`,
which names the exact field to change. Limits carry the reason they exist.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic_core import PydanticCustomError

from xtrc import tasks

API_VERSION = "xtrc.dev/v1alpha1"

MAX_NAME = 30
"""Experiment names appear in Job names (``<name>-<kind>-<key>``), which Kubernetes caps at 63."""
MAX_ARMS = 1024
"""A factorial design multiplies quickly; past this, a typo (a 40-level factor) is likelier than intent."""
MAX_STAGES = 100_000
"""Every stage becomes a Job object in the API server; 100k is far past one cluster's useful queue."""

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_QUALIFIED_NAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_LABEL = 63
"""Kubernetes caps label values, and the name part of label keys and resource names, at 63 characters."""
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
STORE_SCHEMES = ("file", "s3", "gs", "gcs", "az", "abfs", "memory")
CREDENTIAL_WORDS = ("key", "secret", "token", "password", "credential", "sas")
"""Words that make an option or field name look like a credential (which never goes in a spec)."""

BUILTIN_MODELS = ("builtin:tiny-xlmr",)
BUILTIN_FIXTURES = "builtin:fixtures"
"""Generated data (``xtrc_runtime.fixtures``): ``builtin:fixtures[/data|/dictionaries][/…][?options]``."""
BUILTIN_FIXTURE_DIRS = ("data", "dictionaries")
BUILTIN_FIXTURE_OPTIONS = ("dev", "languages", "seed", "test", "train")


def _did_you_mean(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"


def _data_path(value: str) -> str:
    """A ``builtin:`` data path must name generated data that exists (a typo fails here, at its line)."""
    if not value.startswith("builtin:"):
        return value
    path, _, query = value.partition("?")
    known = [BUILTIN_FIXTURES, *(f"{BUILTIN_FIXTURES}/{d}" for d in BUILTIN_FIXTURE_DIRS)]
    rest = path[len(BUILTIN_FIXTURES):] if path.startswith(BUILTIN_FIXTURES) else None
    folder = rest.strip("/").split("/")[0] if rest else ""
    if rest is None or (rest and (not rest.startswith("/") or folder not in BUILTIN_FIXTURE_DIRS)):
        head = "/".join(path.split("/")[:2])
        raise PydanticCustomError("builtin_data", "no built-in data '{value}'{hint}",
                                  {"value": path, "hint": _did_you_mean(head, known)})
    for item in filter(None, query.split("&")):
        key = item.partition("=")[0]
        if key not in BUILTIN_FIXTURE_OPTIONS:
            raise PydanticCustomError("builtin_data", "unknown option '{key}' of {base}{hint}",
                                      {"key": key, "base": BUILTIN_FIXTURES,
                                       "hint": _did_you_mean(key, list(BUILTIN_FIXTURE_OPTIONS))})
    return value


DataPath = Annotated[str, AfterValidator(_data_path)]


def _matching(pattern: str, max_length: int, what: str) -> AfterValidator:
    """A string rule whose error says in words what is allowed (not the regex)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_length or not compiled.fullmatch(value):
            raise PydanticCustomError(
                "format", "'{value}' must be {what}, at most {max_length} characters",
                {"value": value, "what": what, "max_length": max_length},
            )
        return value

    return AfterValidator(check)


HubRevision = Annotated[str, _matching(r"[A-Za-z0-9][A-Za-z0-9._/-]*", 200,
                                       "a hub revision: a branch, tag, refs/pr/N or a 40-hex commit sha")]
"""Resolved to a commit sha at plan time and pinned in the store (xtrc.revisions); a sha is used as is."""
HubDatasetRef = Annotated[str, _matching(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(@[A-Za-z0-9][A-Za-z0-9._/-]*)?",
                                         300, "a hub dataset id, optionally @revision as the task registry names it")]


_DNS_WORDS = "a DNS-1123 name: lowercase letters, digits and '-', starting and ending with a letter or digit"
DnsLabel = Annotated[str, _matching(_DNS_LABEL, 63, _DNS_WORDS)]
DnsSubdomain = Annotated[str, _matching(_DNS_SUBDOMAIN, 253, _DNS_WORDS + " ('.' allowed)")]
Quantity = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                                          else v, json_schema_input_type=str | int | float),
                     _matching(_QUANTITY, 64, "a Kubernetes quantity such as 8, 500m, 64Gi or 16G")]
LevelName = Annotated[str, _matching(r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$", 40,
                                     "a level name: lowercase letters, digits, '-' and '_'")]
Language = Annotated[str, _matching(r"^[a-z]{2,3}$", 3, "an ISO 639 language code such as de or haw")]


def _qualified_parts(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if len(name) > MAX_LABEL or len(prefix) > 253:
        raise PydanticCustomError(
            "format", "'{value}': a qualified name's prefix has at most 253 characters and its name at most "
            "{limit}", {"value": value, "limit": MAX_LABEL})
    return value


QualifiedName = Annotated[str, _matching(_QUALIFIED_NAME, 316, "a Kubernetes qualified name such as nvidia.com/gpu"),
                          AfterValidator(_qualified_parts)]
LabelValue = Annotated[str, _matching(_LABEL_VALUE, MAX_LABEL, "a Kubernetes label value")]
LabelSubdomain = Annotated[str, _matching(_DNS_SUBDOMAIN, MAX_LABEL, _DNS_WORDS + " ('.' allowed; it is also a label value)")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _task_or_group(value: str) -> str:
    """A canonical task name, or a group name (``xtreme-r``, ``phang2020``) kept as written so
    errors point at the list item the user wrote; :func:`xtrc.tasks.expand` expands it."""
    if value.strip().lower() in tasks.GROUPS:
        return value.strip().lower()
    return _task_name(value)


def _task_name(value: str) -> str:
    """Accept a task name or alias (canonicalised)."""
    try:
        return tasks.resolve(value)
    except KeyError:
        hint = tasks.suggest(value)
        raise PydanticCustomError(
            "unknown_task",
            "unknown task '{name}'{hint}",
            {"name": value, "hint": f"; did you mean '{hint}'?" if hint else "; see `xtrc tasks`"},
        ) from None


TaskName = Annotated[str, AfterValidator(_task_name)]
TaskList = list[Annotated[str, AfterValidator(_task_or_group)]]


def _duration(value: Any) -> Any:
    """``"30m"``, ``"24h"``, ``"7d"``, ``"1h30m"`` or an integer of seconds → seconds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match and any(match.groups()):
            d, h, m, s = (int(g or 0) for g in match.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
        raise PydanticCustomError(
            "duration", "'{value}' is not a duration; write seconds or e.g. 30m, 24h, 7d, 1h30m", {"value": value}
        )
    return value


Duration = Annotated[int, BeforeValidator(_duration, json_schema_input_type=int | str), Field(gt=0)]


class _Model(BaseModel):
    # strict: YAML already types its scalars, so `gpus: true` or `seeds: ["1"]` is a mistake to report
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)


class Metadata(_Model):
    name: Annotated[str, _matching(_DNS_LABEL, MAX_NAME, _DNS_WORDS)] = Field(
        description=f"DNS-1123 label, at most {MAX_NAME} characters (it prefixes every Job name)."
    )
    description: str = ""
    """Free text about the experiment, shown nowhere else."""


_AZURE_SCHEMES = ("az", "abfs", "abfss")  # az://container@account/...: the '@' names an account


def _no_credentials_in_url(value: Any, *, secret_field: str = "storage.secret") -> Any:
    """Refuse ``scheme://user:password@host``: a spec travels in ConfigMaps, Job annotations and logs."""
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme = value.split("://", 1)[0].lower()
    try:
        userinfo = urlsplit(value).netloc.rpartition("@")[0]
    except ValueError:
        return value
    if userinfo and (":" in userinfo or scheme not in _AZURE_SCHEMES):
        raise PydanticCustomError(
            "credential_in_spec",
            "'{userinfo}@' in a URL is a credential, and credentials never go in a spec: remove it and put "
            "the credentials in a Kubernetes Secret named in {secret_field}",
            {"userinfo": userinfo.split(":", 1)[0] + (":…" if ":" in userinfo else ""), "secret_field": secret_field},
        )
    return value


def _store_uri(value: str) -> str:
    scheme = value.split("://", 1)[0] if "://" in value else "file"
    if scheme not in STORE_SCHEMES:
        raise PydanticCustomError(
            "store_scheme",
            "unsupported store scheme '{scheme}'; use one of {allowed}",
            {"scheme": scheme, "allowed": ", ".join(f"{s}://" for s in STORE_SCHEMES)},
        )
    return _no_credentials_in_url(value)


def _not_a_credential(key: str) -> str:
    if any(word in key.lower() for word in CREDENTIAL_WORDS):
        raise PydanticCustomError(
            "credential_in_spec",
            "option '{key}' looks like a credential; credentials never go in a spec: "
            "put them in a Kubernetes Secret and name it in storage.secret",
            {"key": key},
        )
    return key


class Storage(_Model):
    uri: Annotated[str, AfterValidator(_store_uri)] = Field(
        description="Store root: file://, s3://, gs://, az://; a bare path means file://, relative to the spec file."
    )
    secret: DnsSubdomain | None = Field(
        None, description="Kubernetes Secret holding the store credentials, mounted into stage pods as files."
    )
    options: dict[Annotated[str, AfterValidator(_not_a_credential)],
                  Annotated[str | int | float | bool, AfterValidator(_no_credentials_in_url)]] = Field(
        default_factory=dict, description="Non-secret fsspec options, e.g. endpoint_url."
    )


HUB_TOKEN_KEY = "token"
"""The key of ``hub.secret`` that holds the hub token (mounted as the file ``token``, read through HF_TOKEN_PATH)."""


def _hub_endpoint(value: str) -> str:
    """A hub (or mirror) base URL: http(s)://host[:port][/path], nothing that could carry a credential."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise PydanticCustomError(
            "hub_endpoint", "'{value}' is not a hub URL; write https://host[:port][/path] (http:// for a mirror "
            "inside the cluster's network)", {"value": value})
    _no_credentials_in_url(value, secret_field="hub.secret")
    if parts.query or parts.fragment:
        raise PydanticCustomError(
            "credential_in_spec", "a hub endpoint takes no '?query' or '#fragment' (a token there would travel "
            "with the spec): remove it and put the token in a Kubernetes Secret named in hub.secret", {})
    return value.rstrip("/")


class Hub(_Model):
    """How stage pods and the orchestrator reach the Hugging Face hub: a token by Secret reference, a mirror."""

    secret: DnsSubdomain | None = Field(
        None, description=f"Kubernetes Secret holding the hub token under the key '{HUB_TOKEN_KEY}' "
        f"(kubectl create secret generic NAME --from-file={HUB_TOKEN_KEY}=PATH): mounted read-only into stage "
        "and orchestrator pods, which find it through HF_TOKEN_PATH. The token itself never goes in a spec.")
    endpoint: Annotated[str, AfterValidator(_hub_endpoint)] | None = Field(
        None, description="The hub's base URL (a mirror), set as HF_ENDPOINT in every pod; default "
        "https://huggingface.co. HF_ENDPOINT in xtrc's own environment overrides it for plan-time resolution.")


class TrainingOverrides(_Model):
    """Hyperparameters; every field optional here, resolved per stage (see xtrc.stage)."""

    learning_rate: Annotated[float, Field(gt=0, le=1)] | None = None
    """Peak learning rate (linear warm-up, then linear decay)."""
    batch_size: Annotated[int, Field(ge=1, le=65536)] | None = None
    """Examples per device step."""
    grad_accum: Annotated[int, Field(ge=1, le=4096)] | None = None
    """Steps accumulated per optimizer update (effective batch = batch_size x grad_accum)."""
    epochs: Annotated[float, Field(gt=0, le=1000)] | None = None
    """Passes over the training data (may be fractional)."""
    max_steps: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many optimizer updates, whatever epochs says."""
    max_seq_length: Annotated[int, Field(ge=8, le=8192)] | None = None
    """Tokens per input; longer inputs are truncated (QA contexts are windowed)."""
    doc_stride: Annotated[int, Field(ge=1, le=8192)] | None = None
    """QA: the step between the starts of a long context's windows, in subwords (XTREME's doc_stride)."""
    max_query_length: Annotated[int, Field(ge=1, le=8192)] | None = None
    """QA questions and dual-encoder queries are truncated to this many subwords."""
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] | None = None
    """Fraction of the updates spent warming the learning rate up from 0."""
    weight_decay: Annotated[float, Field(ge=0, le=1)] | None = None
    """AdamW weight decay."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] | None = None
    """Numeric precision of training: auto (bf16 where the GPU has it), bf16, fp16 or fp32."""
    eval_every_steps: Annotated[int, Field(ge=1)] | None = None
    """Evaluate for model selection every this many updates."""
    checkpoint_every_steps: Annotated[int, Field(ge=1)] | None = None
    """Save resumable training state to the store every this many updates."""
    checkpoint_every_minutes: Annotated[float, Field(gt=0)] | None = None
    """Also save resumable state at least this often (minutes)."""
    early_stopping_patience: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Evaluations without improvement before stopping; 0 turns early stopping off."
    )
    max_train_examples: Annotated[int, Field(ge=1)] | None = None
    """Use at most this many training examples (the first ones)."""
    max_eval_examples: Annotated[int, Field(ge=1)] | None = Field(None, description="Per language.")
    selection: Literal["last", "dev"] | None = Field(
        None, description="Which checkpoint a stage keeps: the last, or the best on the English dev set "
        "(the target's own where it has one). Default per task from the benchmark protocol: QA and "
        "dual encoders last, classification and tagging dev."
    )
    group_by_length: bool | None = Field(
        None, description="Batch examples of similar length, as the Hugging Face Trainer's group_by_length "
        "does (less padding, faster; batches shuffled within megabatches). On by default except for UD-POS, "
        "where bench/throughput.py measured a zero-shot accuracy drop (PAN-X: none). false: every batch a random draw."
    )


class Training(_Model):
    recipe: Literal["xtreme", "none"] = Field(
        "xtreme",
        description="Per-task reference hyperparameters (XTREME's scripts) under the spec's values; "
        "precedence: built-in base < recipe < training.defaults < training.tasks.<task> < level.training.",
    )
    defaults: TrainingOverrides = TrainingOverrides()
    """Hyperparameters for every stage, over the recipe."""
    tasks: dict[TaskName, TrainingOverrides] = Field(default_factory=dict)
    """Per-task hyperparameters, over training.defaults."""


class MultiTaskSampling(_Model):
    cap: Annotated[int, Field(ge=1)] = Field(
        100_000, description="Examples-proportional sampling, each task's size capped at this (Raffel et al.)."
    )


def _level_shorthand(value: Any) -> Any:
    """``none`` → the empty level; a task or group name → a level of those tasks, named after it."""
    if isinstance(value, str):
        if value == "none":
            return {"name": "none"}
        return {"name": value.strip().lower().replace(".", "-"), "tasks": [value]}
    return value


class IntermediateLevel(_Model):
    name: LevelName
    """The level's name, used in arm names (<intermediate>+<augmentation>)."""
    tasks: TaskList = Field(default_factory=list, description="One task, several (multi-task), or none.")
    sampling: MultiTaskSampling = MultiTaskSampling()
    """How a multi-task level samples its tasks."""
    training: TrainingOverrides = TrainingOverrides()
    """Hyperparameters of this level's intermediate stage, over training.defaults."""

    @property
    def is_none(self) -> bool:
        return not self.tasks

    @property
    def task_names(self) -> list[str]:
        """The tasks, groups expanded."""
        return tasks.expand(self.tasks)


class CodeSwitch(_Model):
    """CoSDA-ML-style code-switching with bilingual (MUSE-format) dictionaries."""

    languages: Annotated[list[Language], Field(min_length=1)]
    """Languages whose dictionaries the switched words come from."""
    dictionaries: DataPath = Field(description="fsspec path: a directory of en-<lang>.txt files, or one file.")
    ratio: Fraction = Field(1.0, description="Probability that an example is selected for switching.")
    word_prob: Fraction = Field(0.5, description="Probability that a word of a selected example is switched.")
    per: Literal["example", "word"] = Field("example", description="Draw the target language per example or per word.")
    dynamic: bool = Field(True, description="Re-sample the switches every epoch; false makes one augmented copy.")


class TranslateTrain(_Model):
    languages: Annotated[list[Language], Field(min_length=1)]
    """Languages whose translated training sets are mixed in."""
    ratio: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="Fraction of each language's translated training set mixed in."
    )
    paths: dict[TaskName, DataPath] = Field(
        default_factory=dict, description="Per-task fsspec paths of translated training data (task schema)."
    )


class AugmentationLevel(_Model):
    name: LevelName
    """The level's name, used in arm names (<intermediate>+<augmentation>)."""
    apply_to: Literal["target", "intermediate", "both"] = "target"
    """Which stages train on augmented data: target, intermediate, or both."""
    code_switch: CodeSwitch | None = None
    """Code-switching of the English training data with bilingual dictionaries."""
    translate_train: TranslateTrain | None = None
    """Machine-translated training data mixed into the English data."""

    @property
    def is_none(self) -> bool:
        return self.code_switch is None and self.translate_train is None

    def applies_to(self, stage_kind: str) -> bool:
        return not self.is_none and self.apply_to in (stage_kind, "both")


class Factors(_Model):
    intermediate: Annotated[
        list[Annotated[IntermediateLevel, BeforeValidator(_level_shorthand,
                                                          json_schema_input_type=str | IntermediateLevel)]],
        Field(min_length=1),
    ] = Field(default_factory=lambda: [IntermediateLevel(name="none")])
    """Intermediate-task levels: none, a task or group name, or a level with its own tasks and training."""
    augmentation: Annotated[
        list[Annotated[AugmentationLevel, BeforeValidator(_level_shorthand,
                                                          json_schema_input_type=str | AugmentationLevel)]],
        Field(min_length=1),
    ] = Field(default_factory=lambda: [AugmentationLevel(name="none")])
    """Augmentation levels: none, or a level with code_switch and/or translate_train."""


class Arm(_Model):
    name: LevelName | None = Field(None, description="Defaults to <intermediate>+<augmentation>.")
    intermediate: str = "none"
    """The name of an intermediate level of factors.intermediate."""
    augmentation: str = "none"
    """The name of an augmentation level of factors.augmentation."""


class DataSource(_Model):
    path: DataPath = Field(description="fsspec path of a directory (or file) holding JSONL or Parquet in the task's schema.")
    format: Literal["auto", "jsonl", "parquet"] = "auto"
    """File format of the path: auto (from the suffix), jsonl or parquet."""


class Data(_Model):
    root: DataPath | None = Field(
        None, description="fsspec directory with one sub-directory per task (generated fixtures, mirrors)."
    )
    tasks: dict[TaskName, DataSource] = Field(default_factory=dict)
    """Per-task data paths, over data.root."""
    revisions: dict[HubDatasetRef, HubRevision] = Field(
        default_factory=dict, description="Hub datasets read from the hub: the revision to read instead of the "
        "registry's (a dataset id, or id@revision for one of several revisions of it) → a branch, tag or commit "
        "sha. A sha is used as is; anything else is resolved at plan time and pinned in the store.")
    check: bool = Field(
        True, description="Validate every split the stages read (xtrc-runtime check-data) before submitting any "
        "stage; stages whose data fail are not run. Each stage also validates its data before training.",
    )

    def has_path(self, task: str) -> bool:
        return self.root is not None or task in self.tasks


class Toleration(_Model):
    key: QualifiedName | None = None
    """The taint key (empty with operator Exists: every taint)."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Equal (key and value match) or Exists (the key is there)."""
    value: LabelValue | None = None
    """The taint value, with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect tolerated (empty: every effect)."""
    toleration_seconds: int | None = None
    """With NoExecute: how long the pod stays after the taint appears."""


class Estimate(_Model):
    """Assumptions behind the GPU-hour estimate of `xtrc plan` (see docs in README)."""

    gpu_tflops: Annotated[float, Field(gt=0)] = Field(312.0, description="Peak dense bf16 TFLOP/s of one GPU (A100: 312).")
    mfu: Annotated[float, Field(gt=0, le=1)] = Field(0.3, description="Achieved fraction of peak over real tokens.")
    stage_overhead_minutes: Annotated[float, Field(ge=0)] = Field(5.0, description="Start, load, save per stage.")
    model_params: Annotated[int, Field(ge=1)] | None = Field(None, description="Override the model's parameter count.")


class Compute(_Model):
    gpus: Annotated[int, Field(ge=0, le=64)] = 1
    """GPUs per stage (0: CPU only)."""
    gpu_resource: QualifiedName = "nvidia.com/gpu"
    """The extended resource name GPUs are requested under."""
    cpu: Quantity = "8"
    """CPU request and limit of each stage (a Kubernetes quantity)."""
    memory: Quantity = "64Gi"
    """Memory request and limit of each stage (a Kubernetes quantity)."""
    shm_size: Quantity = "16Gi"
    """Size of the /dev/shm emptyDir (data-loader workers share memory through it)."""
    scratch_size: Quantity = "100Gi"
    """Size of the scratch emptyDir (model downloads, temporary files)."""
    node_selector: dict[QualifiedName, LabelValue] = Field(default_factory=dict)
    """Node labels a stage pod must match."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints stage pods tolerate (e.g. GPU nodes' taints)."""
    affinity: dict[str, Any] | None = Field(None, description="A Kubernetes Affinity object, passed through.")
    priority_class: DnsSubdomain | None = None
    """PriorityClass of stage pods."""
    queue: LabelSubdomain | None = Field(None, description="Kueue LocalQueue name (label kueue.x-k8s.io/queue-name).")
    image_pull_secrets: list[DnsSubdomain] = Field(default_factory=list)
    """Secrets for pulling the image from a private registry."""
    service_account: DnsSubdomain | None = None
    """ServiceAccount stage pods run as (workload identity for the store)."""
    namespace: DnsLabel = "default"
    """Namespace of every object the experiment creates."""
    max_parallel: Annotated[int, Field(ge=1, le=10_000)] = 8
    """Stages at once (locally, also limited by the GPUs there)."""
    deadline: Duration | None = Field(86_400, description="activeDeadlineSeconds of each stage Job.")
    retries: Annotated[int, Field(ge=0, le=100)] = Field(3, description="backoffLimit: failures other than preemption.")
    ttl_after_finished: Duration = Field(7 * 86_400, description="ttlSecondsAfterFinished of each stage Job.")
    estimate: Estimate = Estimate()
    """Assumptions behind the GPU-hour estimate of xtrc plan."""


def _model_ref(value: str) -> str:
    if value in BUILTIN_MODELS or _URI.fullmatch(value) or _HUB_ID.fullmatch(value):
        return value
    if value.startswith("builtin:"):
        raise PydanticCustomError(
            "model_ref", "unknown built-in model '{value}'{hint}",
            {"value": value, "hint": _did_you_mean(value, list(BUILTIN_MODELS))},
        )
    raise PydanticCustomError(
        "model_ref",
        "'{value}' is neither a Hugging Face id (org/name), an fsspec URI of a model directory, "
        "nor a built-in ({known})",
        {"value": value, "known": ", ".join(BUILTIN_MODELS)},
    )


def image_error(value: str) -> str | None:
    """What is wrong with a container image reference (``repo[:tag]`` or ``repo[:tag]@sha256:<64 hex>``)."""
    if not _IMAGE.fullmatch(value) or len(value) > 255:
        return f"'{value}' is not a container image reference"
    if "@" in value and not _DIGEST.fullmatch(value.split("@", 1)[1]):
        return f"'{value}': a digest is written repo@sha256:<64 lowercase hex digits>"
    return None


def image_digest(value: str) -> str | None:
    """``sha256:…`` of an image pinned by digest, else None (a tag, which can move)."""
    return value.split("@", 1)[1] if "@" in value else None


def _image_ref(value: str) -> str:
    error = image_error(value)
    if error:
        raise PydanticCustomError("image_ref", "{error}", {"error": error})
    return value


def _unique_seeds(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise PydanticCustomError("duplicate_seed", "seeds repeat; list each seed once", {})
    return value


class Experiment(_Model):
    api_version: Literal["xtrc.dev/v1alpha1"] = Field(alias="apiVersion")
    """The spec format's version: xtrc.dev/v1alpha1."""
    kind: Literal["Experiment"]
    """Always Experiment."""
    metadata: Metadata
    """The experiment's name (it prefixes every Job and keys its results) and a description."""
    model: Annotated[str, AfterValidator(_model_ref)] = Field(
        "FacebookAI/xlm-roberta-large",
        description="Hugging Face id, fsspec URI of a model directory, or builtin:tiny-xlmr.",
    )
    model_revision: HubRevision = Field(
        "main", description="Revision of a hub model: a branch, tag or 40-hex commit sha. A sha is used as is; "
        "anything else is resolved at plan time and pinned in the store (see --refresh-revisions).")
    image: Annotated[str, AfterValidator(_image_ref)] = "ghcr.io/xtrc-dev/xtrc-runtime:0.1.0"
    """Container image every stage (and the in-cluster orchestrator) runs."""
    storage: Storage
    """Where checkpoints, metrics and predictions live: the store."""
    hub: Hub = Hub()
    """Access to the Hugging Face hub: its token by Secret reference, and an optional mirror."""
    seeds: Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(min_length=1, max_length=100),
                     AfterValidator(_unique_seeds)] = Field(default_factory=lambda: [1])
    """Fine-tuning seeds; every arm runs every target once per seed."""
    factors: Factors = Factors()
    """The two factors of the design: intermediate-task levels and augmentation levels."""
    design: Literal["factorial", "arms"] = Field(
        "factorial", description="factorial crosses every level of every factor; arms uses the explicit list."
    )
    arms: list[Arm] | None = None
    """With design: arms, the arms to run, each naming one level of each factor."""
    targets: Annotated[TaskList, Field(min_length=1)]
    """Target tasks (or groups such as xtreme-r) every arm is fine-tuned and scored on."""
    benchmark: Literal["xtreme-r", "xtreme"] = Field(
        "xtreme-r", description="Whose evaluation languages to use: XTREME-R's (50) or XTREME's (40)."
    )
    languages: dict[TaskName, Annotated[list[Language], Field(min_length=1)]] = Field(
        default_factory=dict, description="Evaluate these tasks on a subset of their languages only."
    )
    training: Training = Training()
    """Hyperparameters: a recipe, defaults for every stage, and per-task overrides."""
    data: Data = Data()
    """Where the data come from when not from the Hugging Face hub: a root and per-task paths."""
    compute: Compute = Compute()
    """Resources and scheduling of each stage Job, and how many run at once."""
    salt: str = Field("", description="Any text; changing it gives every stage a new key (forces a rerun).")

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True,
                              use_attribute_docstrings=True)

    @property
    def target_tasks(self) -> list[str]:
        """The targets, groups expanded."""
        return tasks.expand(self.targets)


def image_warning(image: str) -> str | None:
    if image_digest(image):
        return None
    return (f"'{image}' is a tag, which can move: stages may run different builds; pin the image by digest "
            "(repo@sha256:…, see the README's 'Runtime image')")
