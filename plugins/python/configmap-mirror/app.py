"""Keelson controller plugin in Python, built with componentize-py against the WIT world
``controller`` in ``wit/``: ConfigMaps labelled ``keelson.dev/mirror=true`` in a source
namespace (``shared`` by default) are copied into every other namespace, and copies are
kept in step with their source (their ``data`` is merge-patched when it differs).

Watches Namespaces and ConfigMaps. Config (every field optional)::

    {"sourceNamespace": "shared", "selector": "keelson.dev/mirror=true",
     "skipNamespaces": ["kube-system", "kube-public", "kube-node-lease"]}

Copies carry the label ``keelson.dev/mirrored-from: <source namespace>``; a ConfigMap of the
same name without it is left alone.
"""

import json

import wit_world
from wit_world.imports import cache
from wit_world.imports.controller_types import (
    Action_Create,
    Action_Patch,
    ObjectRef,
    Patch,
    PatchType,
)
from wit_world.imports.types import GroupVersionKind
from componentize_py_types import Err

CONFIG_MAP = GroupVersionKind(group="", version="v1", kind="ConfigMap")
NAMESPACE = GroupVersionKind(group="", version="v1", kind="Namespace")
MIRRORED_FROM = "keelson.dev/mirrored-from"
SKIP = ["kube-system", "kube-public", "kube-node-lease"]


def config():
    try:
        c = json.loads(cache.config() or "{}")
    except ValueError:
        return {}
    return c if isinstance(c, dict) else {}


def get(kind, namespace, name):
    try:
        found = cache.get(kind, namespace, name)
    except Err as e:
        raise Err(f"cache get {kind.kind}: {e.value}")
    return json.loads(found) if found is not None else None


def listed(kind, namespace, selector):
    try:
        return [json.loads(o) for o in cache.list(kind, namespace, selector)]
    except Err as e:
        raise Err(f"cache list {kind.kind}: {e.value}")


def live(namespace):
    ns = get(NAMESPACE, "", namespace)
    if ns is None or ns.get("metadata", {}).get("deletionTimestamp"):
        return False
    return ns.get("status", {}).get("phase") != "Terminating"


class WitWorld(wit_world.WitWorld):
    def reconcile(self, key):
        c = config()
        source = c.get("sourceNamespace", "shared")
        selector = c.get("selector", "keelson.dev/mirror=true")
        skip = set(c.get("skipNamespaces", SKIP)) | {source}
        if key.kind.kind == "Namespace":
            targets = [key.name]
        elif key.namespace == source:
            targets = [n["metadata"]["name"] for n in listed(NAMESPACE, None, "")]
        else:
            targets = [key.namespace]
        sources = listed(CONFIG_MAP, source, selector)
        actions = []
        for ns in targets:
            if ns in skip or not live(ns):
                continue
            for src in sources:
                name = src["metadata"]["name"]
                data = src.get("data", {})
                copy = get(CONFIG_MAP, ns, name)
                if copy is None:
                    body = {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": name,
                            "namespace": ns,
                            "labels": {MIRRORED_FROM: source},
                        },
                        "data": data,
                    }
                    actions.append(Action_Create(json.dumps(body)))
                elif copy.get("metadata", {}).get("labels", {}).get(MIRRORED_FROM) == source:
                    if copy.get("data", {}) != data:
                        target = ObjectRef(kind=CONFIG_MAP, namespace=ns, name=name)
                        # Merge patch: keys removed at the source become null.
                        patch = {k: None for k in copy.get("data", {}) if k not in data}
                        patch.update(data)
                        actions.append(
                            Action_Patch(
                                Patch(
                                    target=target,
                                    patch_type=PatchType.MERGE_PATCH,
                                    body=json.dumps({"data": patch}),
                                )
                            )
                        )
        return actions
