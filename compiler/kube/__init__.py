"""The Kubernetes backend: each stage is one batch/v1 Job, created (only) when the stage is ready.

- :mod:`xtrc.kube.client`: :func:`api_client`, the official client configured in-cluster (when
  ``KUBERNETES_SERVICE_HOST`` is set: the orchestrator Job) or from kubeconfig (``$KUBECONFIG``,
  ``--context``); :func:`call`, one API call retried on throttling and dropped connections.
- :mod:`xtrc.kube.backend`: :class:`KubernetesBackend`, the orchestration loop's backend.
  ``submit`` renders the stage's Job with the :class:`~xtrc.render.Renderer` and creates it (an
  existing Job of that name is the same stage: Job names are content-keyed, so creating is
  idempotent); ``poll`` says in words why a stage waits or failed; ``cancel`` deletes the Jobs
  (propagation Background, so their pods go too). Jobs are never pre-created suspended: Kueue
  owns ``suspend``.
- :mod:`xtrc.kube.apply`, :mod:`xtrc.kube.status`, :mod:`xtrc.kube.logs`: what `xtrc apply`,
  `xtrc delete`, `xtrc status` and `xtrc logs` do.
- :mod:`xtrc.kube.secrets`: what `xtrc apply` checks first: the Secrets the spec names exist and
  hold the keys their pods read.

Pods run elsewhere, so the store must be object storage (s3://, gs://, az://): a ``file://``
store is refused unless ``XTRC_KUBE_SHARED_FILESYSTEM=1`` says the pods see this machine's
filesystem at the same paths (tests against a local API server whose pods are local processes,
and single-node clusters with a hostPath store mounted at the same path).
"""

from xtrc.kube.apply import (
    Applied, apply, apply_manifests, delete, orchestrator_args, orchestrator_env, retry_failed, spec_hash,
)
from xtrc.kube.backend import KubernetesBackend, StageDetail
from xtrc.kube.client import (
    COMPONENT_LABEL, EXPERIMENT_LABEL, QUEUE_LABEL, SHARED_FS_ENV, STAGE_KEY_LABEL, ClusterError, api_client, call,
    check_store,
)
from xtrc.kube.logs import newest_pod, pod_log, resolve_stage
from xtrc.kube.status import STATUS_STATES, StageRow, Transitions, age_text, stage_rows

__all__ = [
    "Applied", "COMPONENT_LABEL", "ClusterError", "EXPERIMENT_LABEL", "KubernetesBackend", "QUEUE_LABEL",
    "SHARED_FS_ENV", "STAGE_KEY_LABEL", "STATUS_STATES", "StageDetail", "StageRow", "Transitions", "age_text",
    "api_client", "apply", "apply_manifests", "call", "check_store", "delete", "newest_pod", "orchestrator_args",
    "orchestrator_env", "pod_log", "resolve_stage", "retry_failed", "spec_hash", "stage_rows",
]
