"""The experiment a command's arguments name: the spec with --store, --rerun (and, for the cluster
commands, --namespace and --image) applied, its plan, its store, and whether it runs here."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from xtrc.errors import XtrcError

if TYPE_CHECKING:
    from xtrc.plan import Plan
    from xtrc.spec import Experiment


def is_local(args: argparse.Namespace, exp: Experiment) -> bool:
    from xtrc.local import state_dir_for
    from xtrc.store import normalize_uri

    if args.local:
        return True
    if args.context or args.namespace:
        return False
    return state_dir_for(normalize_uri(exp.storage.uri)).is_dir()


def load_experiment(args: argparse.Namespace) -> Experiment:
    from xtrc.loader import load

    exp = load(args.spec)
    update: dict[str, Any] = {}
    store = getattr(args, "store", None) or os.environ.get("XTRC_STORE")
    if store:
        update["storage"] = exp.storage.model_copy(update={"uri": store})
    if getattr(args, "rerun", None):
        update["salt"] = f"{exp.salt}|{args.rerun}" if exp.salt else args.rerun
    return exp.model_copy(update=update) if update else exp


def build_plan(args: argparse.Namespace) -> Plan:
    plan = pinned_plan(args, load_experiment(args))
    warn_unlisted(plan)
    return plan


def pinned_plan(args: argparse.Namespace, exp: Experiment) -> Plan:
    """The plan, its hub revisions pinned in the store's lock (xtrc.revisions): read there, the
    missing ones resolved and added; all resolved again with --refresh-revisions. With --no-store
    the lock is neither read nor written."""
    from xtrc.plan import build_pinned

    store = None if getattr(args, "no_store", False) else kube_store(exp)
    return build_pinned(exp, store, refresh=getattr(args, "refresh_revisions", False))


def warn_unlisted(plan: Plan) -> None:
    for problem in plan.unlisted:
        print(f"warning: {problem}; stage keys are provisional (done stages may show as not done)", file=sys.stderr)
    for problem in plan.unresolved:
        print(f"warning: hub {problem}; the stages reading them have provisional keys and cannot run", file=sys.stderr)


def kube_experiment(args: argparse.Namespace) -> Experiment:
    """The spec with --store, --rerun, --namespace and --image applied."""
    import re

    exp = load_experiment(args)
    compute: dict[str, Any] = {}
    update: dict[str, Any] = {}
    namespace = getattr(args, "namespace", None)
    if namespace:
        if len(namespace) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace):
            raise XtrcError(f"--namespace {namespace!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
        compute["namespace"] = namespace
    image = getattr(args, "image", None)
    if image:
        from xtrc.spec import image_error, image_warning

        error = image_error(image)
        if error:
            raise XtrcError(f"--image: {error}")
        warning = image_warning(image)
        if warning:
            print(f"warning: --image: {warning}", file=sys.stderr)
        update["image"] = image
    if compute:
        update["compute"] = exp.compute.model_copy(update=compute)
    return exp.model_copy(update=update) if update else exp


def kube_store(exp: Experiment) -> Any:
    """The store, with the credentials a mounted storage Secret holds (in-cluster) added to its options."""
    from xtrc.store import Store, credential_options

    uri = exp.storage.uri
    return Store(uri, credential_options(uri, dict(exp.storage.options), os.environ.get("XTRC_STORAGE_SECRET_DIR")))
