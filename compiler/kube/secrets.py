"""What `xtrc apply` checks before it creates anything: every Secret the spec names exists in the
namespace and holds the keys its pods read.

A kubelet leaves a pod whose Secret volume is missing (or lacks an item's key) in
ContainerCreating, with FailedMount events, for as long as it exists: a stage Job would hold its
GPU quota in a queue and never start. So the check runs first, from the machine that applies,
with that user's credentials; the in-cluster orchestrator's Role gets no access to Secrets at all
(it only mounts them into pods by name). Values are read by the API call, looked at for their
keys only, and never kept, printed or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xtrc.kube.client import REQUEST_TIMEOUT, api_message, call, is_api_error
from xtrc.spec import HUB_TOKEN_KEY, Experiment
from xtrc.store import SECRET_FILES, uri_scheme
from xtrc.yamlsafe import Loc

_PULL_KEYS = (".dockerconfigjson", ".dockercfg")
_S3_PAIR = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class SecretNeed:
    """One Secret the spec names, and what its pods read from it."""

    loc: Loc
    """The spec field that names it, e.g. ``("hub", "secret")``."""
    name: str
    required: tuple[str, ...] = ()
    """Keys that must all be there (a volume item, a pair of credentials)."""
    any_of: tuple[str, ...] = ()
    """Keys of which at least one must be there (what the store reads, whichever credentials apply)."""
    create: str = ""
    """The command that creates it, with placeholders instead of values."""
    without: str = "its pods would wait in ContainerCreating (FailedMount)"
    """What happens on the cluster when it is missing."""


def needed_secrets(exp: Experiment) -> list[SecretNeed]:
    """The Secrets ``exp``'s pods mount or pull with, in spec order."""
    ns = exp.compute.namespace
    needs = []
    if exp.storage.secret:
        readable = tuple(SECRET_FILES.get(uri_scheme(exp.storage.uri), {}))
        example = (" ".join(f"--from-literal={k}=..." for k in _S3_PAIR) if uri_scheme(exp.storage.uri) == "s3"
                   else f"--from-file={readable[0]}=PATH" if readable else "--from-literal=KEY=...")
        needs.append(SecretNeed(("storage", "secret"), exp.storage.secret, any_of=readable,
                                create=f"kubectl -n {ns} create secret generic {exp.storage.secret} {example}"))
    if exp.hub.secret:
        needs.append(SecretNeed(("hub", "secret"), exp.hub.secret, required=(HUB_TOKEN_KEY,),
                                create=f"kubectl -n {ns} create secret generic {exp.hub.secret} "
                                       f"--from-file={HUB_TOKEN_KEY}=PATH_TO_TOKEN_FILE"))
    for i, name in enumerate(exp.compute.image_pull_secrets):
        needs.append(SecretNeed(("compute", "image_pull_secrets", i), name, any_of=_PULL_KEYS,
                                create=f"kubectl -n {ns} create secret docker-registry {name} "
                                       "--docker-server=... --docker-username=... --docker-password=...",
                                without="nodes would pull the image without registry credentials"))
    return needs


def check_secrets(exp: Experiment, spec_path: str, api: Any) -> list[str]:
    """Raise XtrcError (exit 2) listing, at their fields in the spec file, the Secrets that are
    missing or lack a key; else the notes of :func:`secret_problems`."""
    from xtrc.errors import XtrcError
    from xtrc.loader import issues_at

    problems, notes = secret_problems(exp, api)
    if problems:
        lines = [str(issue) for issue in issues_at(spec_path, problems)]
        raise XtrcError("\n".join([*lines, f"nothing was created in namespace {exp.compute.namespace}: create "
                                   "the Secrets above, then apply again"]))
    return notes


def secret_problems(exp: Experiment, api: Any) -> tuple[list[tuple[Loc, str]], list[str]]:
    """(problems: spec field → what to create or fix; notes: Secrets this user may not read, so
    not checked). One GET per Secret; a Secret named twice is read once."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    ns = exp.compute.namespace
    problems: list[tuple[Loc, str]] = []
    notes: list[str] = []
    keys_of: dict[str, set[str] | None] = {}
    for need in needed_secrets(exp):
        if need.name not in keys_of:
            found = call(core.read_namespaced_secret, need.name, ns, what=f"read Secret {ns}/{need.name}",
                         ok=(403, 404), _request_timeout=REQUEST_TIMEOUT)
            keys_of[need.name] = None if is_api_error(found) else set(found.data or {})
            if is_api_error(found) and found.status == 403:
                notes.append(f"cannot check Secret {ns}/{need.name} ({api_message(found)}): make sure it exists "
                             "with the keys its pods read")
            elif is_api_error(found):
                problems.append((need.loc, f"Secret {ns}/{need.name} does not exist: {need.without}. "
                                           f"Create it: {need.create}"))
        keys = keys_of[need.name]
        if keys is None:
            continue
        missing = [k for k in need.required if k not in keys]
        if need.loc[0] == "storage" and uri_scheme(exp.storage.uri) == "s3" and keys & set(_S3_PAIR):
            missing += [k for k in _S3_PAIR if k not in keys]  # one of a key pair is a mistake
        if need.any_of and not keys & set(need.any_of):
            missing.append(" or ".join(need.any_of))
        if missing:
            has = ", ".join(sorted(keys)) or "no keys"
            problems.append((need.loc, f"Secret {ns}/{need.name} has no key {', '.join(missing)} (it has {has}). "
                                       f"Recreate it: kubectl -n {ns} delete secret {need.name}; {need.create}"))
    return problems, notes
