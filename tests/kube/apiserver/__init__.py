"""A small, real Kubernetes API server for tests: ``FakeCluster``.

It is an HTTP server (stdlib ``ThreadingHTTPServer``, JSON, chunked watch streams) on
127.0.0.1 that speaks the REST paths the official ``kubernetes`` Python client uses for the
objects xtrc's Kubernetes backend creates, plus a simulated Job controller, scheduler and
kubelet that run each pod's containers as local processes.

Resources (namespaced; objects may be created in any namespace, which need not exist):
batch/v1 Jobs; v1 Pods, ConfigMaps, Secrets, ServiceAccounts, Events;
rbac.authorization.k8s.io/v1 Roles, RoleBindings; networking.k8s.io/v1 NetworkPolicies; Kueue's
kueue.x-k8s.io/v1beta1 Workloads and LocalQueues (custom resources: their list items keep
``kind``/``apiVersion``). No Kueue controller runs: with ``kueue_webhook=True`` a Job created with
the ``kueue.x-k8s.io/queue-name`` label is suspended at creation (as Kueue's mutating webhook does),
and a test plays Kueue's controller by creating a Workload owned by the Job, writing its status
conditions and un-suspending the Job; plus cluster-scoped v1 Namespaces (default, kube-system and kube-public exist).

Verbs: create (POST), get, list (``labelSelector``, ``fieldSelector``, ``limit``/``continue`` with
the real paging semantics: every page shows the objects as of the first page's resourceVersion, a
compacted continue token is 410 Expired, ``remainingItemCount`` only without selectors;
``resourceVersion`` with ``resourceVersionMatch`` Exact/NotOlderThan, and the options a real server
refuses refused the same way),
watch (``watch=true``, ``resourceVersion``, ``labelSelector``, ``fieldSelector``,
``timeoutSeconds``, ``allowWatchBookmarks``), replace (PUT, optimistic concurrency on
``metadata.resourceVersion``), patch (JSON merge patch; strategic merge patch is applied as a
JSON merge patch; JSON patch), delete (``propagationPolicy``; ``gracePeriodSeconds`` is
ignored; ``Foreground`` keeps a Job, with ``deletionTimestamp`` and the ``foregroundDeletion``
finalizer, until its pods have terminated gracefully (SIGTERM, SIGKILL after the grace period);
other deletions remove objects at once), deletecollection, ``dryRun=All``, the ``status``
subresource of Jobs and Pods, pod ``log`` (``follow``, ``tailLines``, ``limitBytes``, ``container``) and pod
``eviction``. Failures are ``Status`` objects with the reason and code a real server uses
(NotFound 404, AlreadyExists 409, Conflict 409, Invalid 422, BadRequest 400, Forbidden 403,
Unauthorized 401, MethodNotAllowed 405, UnsupportedMediaType 415, Gone 410 in watches).

Admission, as a real server does it (tests/kube/admission.py): bodies of built-in kinds are decoded
against the official client's models, so an unknown field is dropped with a ``Warning`` header
(``fieldValidation`` Warn, the default, or Ignore) or refused with 400 (Strict), and a value of the
wrong JSON type is refused with 400; a pod in a namespace labelled
``pod-security.kubernetes.io/enforce`` (baseline or restricted) that breaks that Pod Security
Standard is refused with 403 ``violates PodSecurity "restricted:latest": ...`` (a Job's pods
then show as FailedCreate events); an unlabelled namespace is privileged, a cluster's default.

Things a real server does that this one mirrors on purpose, because client code gets them
wrong: deleting a batch/v1 Job *without* ``propagationPolicy`` orphans its pods (the real
default for Jobs; the response carries the same ``Warning`` header); list items carry no
``kind``/``apiVersion``; zero counters in Job status (``active``, ``succeeded``, ``failed``)
are omitted; a finished Job has ``SuccessCriteriaMet``/``FailureTarget`` conditions before
``Complete``/``Failed``; a Job pod whose ServiceAccount does not exist is refused (403) and the
Job controller keeps retrying with ``FailedCreate`` events.

Scheduling and execution (``_Simulator``, one background thread): the Job controller creates
``<job>-<5 random lowercase letters>`` pods from ``spec.template`` (with the ``controller-uid``,
``job-name`` and ``batch.kubernetes.io/*`` labels and a controller ownerReference), honouring
``suspend``, ``parallelism``/``completions``, ``backoffLimit``, ``activeDeadlineSeconds``,
``ttlSecondsAfterFinished`` and ``podFailurePolicy`` (rules in order; FailJob/Ignore/Count;
``onExitCodes`` In/NotIn with ``containerName``, exit code 0 never matches; ``onPodConditions``);
it writes Events (SuccessfulCreate, FailedCreate, Completed, BackoffLimitExceeded, ...). The
scheduler binds pods FIFO to one node whose only finite capacity is ``gpus`` of
``gpu_resource``; a pod that does not fit stays Pending with PodScheduled=False/Unschedulable
("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.") and is retried whenever anything
changes. The kubelet runs each container as a local process in its own process group:
``container.command`` (else the image entrypoint from ``entrypoints``/``default_entrypoint``)
followed by ``container.args``, with ``$(VAR)`` references expanded as Kubernetes does. The
environment is the test process's environment plus ``env``/``envFrom`` (values, Secret and
ConfigMap keys, a few fieldRefs) and ``HOSTNAME``; a missing Secret/ConfigMap keeps the pod
Pending (CreateContainerConfigError, or ContainerCreating for volumes) until it appears.
Volumes become directories under the cluster's temporary root (``FakeCluster.root``): Secret
and ConfigMap volumes hold one file per key (``items``, ``defaultMode`` honoured), everything
else (emptyDir, and any other volume type) is an empty directory; a missing ``subPath`` is
created. Where bubblewrap works (``FakeCluster.sandboxed``), each container runs **under its
pod's securityContext** (tests/kube/sandbox.py): this machine's root read-only when
``readOnlyRootFilesystem``, only the pod's volumes writable at their real ``mountPath``s (plus
the directories given to ``FakeCluster.share``), the pod's ``runAsUser``/``runAsGroup``, no
capabilities; ``runAsNonRoot`` with uid 0 keeps the pod Pending with CreateContainerConfigError
as a kubelet does. Without bubblewrap, processes run as the test user with a writable
filesystem and cannot see the real mount paths, so **paths are mapped**: every env value,
command element and argument that equals a volumeMount's ``mountPath`` or starts with
``mountPath + "/"`` has that prefix rewritten to the volume's directory (``subPath`` honoured,
longest mountPath wins); ``workingDir`` is mapped the same way, and otherwise the process runs
in a fresh temporary directory. Pods that do not set ``automountServiceAccountToken: false`` get ``KUBECONFIG``
pointing at this server with their ServiceAccount's own token (standing in for in-cluster
configuration), and what that token may do is decided by RBAC (tests/kube/rbac.py: the Roles bound
to the ServiceAccount; 403 Forbidden otherwise); the others have ``KUBECONFIG`` removed. Clients
holding the cluster's ``token`` are not restricted. stdout and stderr together are the container log. Pod phases go
Pending -> Running -> Succeeded/Failed with containerStatuses (waiting/running/terminated with
exitCode and reason; a signal N reads as exit code 128+N; an argv that cannot be executed is
exit code 128, reason StartError); restartPolicy Always/OnFailure containers restart after a
short CrashLoopBackOff. Deleting a pod (directly or by cascade) removes it at once and sends its
process group SIGTERM, then SIGKILL after the grace period. ``FakeCluster.evict`` and the pod
``eviction`` subresource mark the pod DisruptionTarget=True (EvictionByEvictionAPI), kill it
and leave it Failed (it is not deleted), so a Job's Ignore rule can be seen to work.

Not implemented: ClusterRoles and ClusterRoleBindings (a binding to a ClusterRole grants nothing),
admission beyond the ServiceAccount check and Pod Security Admission, NetworkPolicy enforcement, the securityContext fields sandbox.py lists
as not modelled (all of it without bubblewrap), CPU/memory accounting and OOM kills, init and sidecar
containers, probes and readiness gates, indexed Jobs (treated as NonIndexed),
backoffLimitPerIndex, successPolicy, the Job controller's delay between failed pods, graceful
deletion other than Foreground cascades, finalizers other than foregroundDeletion, garbage collection of
objects whose owner never existed, log ``timestamps``/``sinceSeconds``/``sinceTime``/``stream``,
periodic watch bookmarks (one is sent when a watch with ``allowWatchBookmarks`` ends),
``sendInitialEvents``, server-side apply, strategic-merge list semantics, protobuf, table
output, and cluster-scoped resources other than Namespaces (which are never enforced: objects
may be created in a namespace that does not exist).

Modules: resources.py (the served kinds and the errors as Status objects), objects.py (helpers on
stored objects), selectors.py, patches.py, validation.py (validation and defaulting), store.py
(objects, resourceVersions, events), server.py (HTTP), cluster.py (``FakeCluster``), and the
simulator: simulator.py (its thread, events and the scheduler), kubelet.py, jobs.py (the Job
controller) and state.py (what they keep per container, pod and Job).
"""

from __future__ import annotations

from .cluster import FakeCluster
from .objects import parse_quantity
from .resources import JOBS, PODS, ApiError
from .selectors import parse_label_selector
from .store import PSA_ENFORCE_LABEL

__all__ = ["FakeCluster", "ApiError", "parse_label_selector", "parse_quantity"]
