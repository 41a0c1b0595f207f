"""RBAC for the API test server: what a ServiceAccount's token may do, read off the Roles bound to
it in its namespace, as the real authorizer decides it (rules are additive; a verb, API group,
resource (``pods/log`` for a subresource) and, for requests naming one object, its name must all
match one rule; ``*`` matches anything). ClusterRoles are not stored, so a binding to one grants
nothing here; requests that name no resource (``/api``, ``/apis``, ``/version``) are allowed, as
``system:discovery`` allows them to every authenticated user.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["forbidden_message", "permits", "verb_of"]


def verb_of(method: str, name: str | None, watch: bool) -> str:
    """The RBAC verb of a request on a resource path."""
    if method == "GET":
        return "watch" if watch else ("get" if name else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
        "delete" if name else "deletecollection")


def _matches(values: Iterable[str], wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def permits(rules: Iterable[dict], verb: str, group: str, resource: str, name: str | None) -> bool:
    """Whether any of ``rules`` (a Role's ``rules``) allows ``verb`` on ``group``/``resource``
    (``pods/log`` for a subresource) and, when given, the object ``name``."""
    for rule in rules:
        if not (_matches(rule.get("verbs") or [], verb) and _matches(rule.get("apiGroups") or [], group)
                and _matches(rule.get("resources") or [], resource)):
            continue
        names = rule.get("resourceNames") or []
        if names and (name is None or name not in names):
            continue
        return True
    return False


def forbidden_message(user: str, verb: str, group: str, resource: str, name: str | None, namespace: str | None,
                      plural: str) -> str:
    """The authorizer's refusal, in the API server's words."""
    base, _, sub = resource.partition("/")
    what = f"{plural}.{group}" if group else plural
    subject = f'{what} "{name}"' if name else what
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    shown = f"{base}/{sub}" if sub else base
    return (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{shown}" in API group "{group}"'
            f"{where}")
