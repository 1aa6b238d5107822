"""Keelson admission plugin in Python: refuses creates and updates of objects
that lack any of the labels listed in its config, e.g. ``{"labels": ["team"]}``.

The Python twin of ``plugins/examples/require-labels`` (Rust), built with
componentize-py against the WIT world ``admission`` in ``wit/``.
"""

import json

import wit_world
from wit_world.imports.admission_types import (
    MutateVerdict,
    Operation,
    Request,
    Verdict,
)


def allow() -> Verdict:
    return Verdict(allowed=True, message="", code=0, warnings=[])


def deny(message: str, code: int = 0) -> Verdict:
    return Verdict(allowed=False, message=message, code=code, warnings=[])


class WitWorld(wit_world.WitWorld):
    def validate(self, req: Request) -> Verdict:
        if req.operation not in (Operation.CREATE, Operation.UPDATE) or req.subresource:
            return allow()
        try:
            config = json.loads(req.config or "{}")
            wanted = config.get("labels", []) if isinstance(config, dict) else None
            if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
                raise ValueError('"labels" must be a list of strings')
        except ValueError as err:
            return deny(f"plugin config: {err}", 500)
        try:
            obj = json.loads(req.object) if req.object else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            return allow()
        labels = (obj.get("metadata") or {}).get("labels") or {}
        missing = [want for want in wanted if want not in labels]
        if not missing:
            return allow()
        return deny(
            f"{req.kind} {json.dumps(req.name)} is missing required label(s): "
            + ", ".join(missing)
        )

    def mutate(self, req: Request) -> MutateVerdict:
        # Validation only: let every request through unchanged.
        return MutateVerdict(verdict=allow(), patch=None)
