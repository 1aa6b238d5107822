"""Keelson scheduler plugin in Python: the twin of ``plugins/examples/prefer-nodes``
(Rust), built with componentize-py against the WIT world ``scheduler`` in ``wit/``.

Filter: refuses nodes labelled ``keelson.dev/no-wasm`` (any value), unresolvably.
Score: a node carrying the configured label (``{"preferLabel": {"key": "disk",
"value": "ssd"}}``; an empty value matches any) scores 100; other nodes score by
their free memory, 0 to ``otherMax`` (default 50) in proportion to the freest
node's. Same answers as the Rust plugin for the same input.
"""

import json

import wit_world
from wit_world.imports.scheduler_types import FilterCode, FilterResult

NO_WASM = "keelson.dev/no-wasm"


def label(labels, key):
    """The value of label ``key`` in a WIT label list, or None."""
    for item in labels:
        if item.key == key:
            return item.value
    return None


def config_of(pod):
    """The plugin's config; a missing or malformed one counts as ``{}``, as in Rust."""
    try:
        config = json.loads(pod.config or "{}")
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def free_memory(node):
    return max(node.allocatable.memory_bytes - node.requested.memory_bytes, 0)


class WitWorld(wit_world.WitWorld):
    def filter(self, pod, nodes):
        return [
            FilterResult(
                code=FilterCode.UNSCHEDULABLE_AND_UNRESOLVABLE,
                reason=f"node(s) had label {NO_WASM}",
            )
            if label(node.labels, NO_WASM) is not None
            else FilterResult(code=FilterCode.SUCCESS, reason="")
            for node in nodes
        ]

    def score(self, pod, nodes):
        config = config_of(pod)
        prefer = config.get("preferLabel")
        prefer = prefer if isinstance(prefer, dict) else None
        other_max = config.get("otherMax")
        other_max = min(other_max if isinstance(other_max, int) else 50, 100)
        most_free = max([free_memory(n) for n in nodes] + [0], default=0) or 1

        def preferred(node):
            if prefer is None:
                return False
            value = label(node.labels, str(prefer.get("key", "")))
            return value is not None and (not prefer.get("value") or value == prefer.get("value"))

        return [
            100 if preferred(node) else free_memory(node) * other_max // most_free
            for node in nodes
        ]
