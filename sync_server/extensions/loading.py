"""Third-party extensions: ``module:Name`` specs and the ``tandem.extensions`` entry points.

A spec names an attribute of an importable module: an extension class (made
with no arguments), or an extension object. Either way the result must have a
``name`` and at least one hook; anything else is refused with a message naming
the spec and why.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from typing import Any

from sync_server.extensions.host import ExtensionError

ENTRY_POINT_GROUP = "tandem.extensions"
HOOKS = (
    "startup",
    "shutdown",
    "authenticate",
    "connected",
    "disconnected",
    "document_loaded",
    "document_unloaded",
    "change_accepted",
    "update_rejected",
    "routes",
)
_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _instance(target: Any, where: str) -> Any:
    if isinstance(target, type):
        try:
            target = target()
        except Exception as e:
            raise ExtensionError(f"{where}: making {target.__name__}() failed: {e}") from e
    if not any(callable(getattr(target, hook, None)) for hook in HOOKS):
        raise ExtensionError(f"{where}: {target!r} is not an extension (it has none of the hooks)")
    if not isinstance(getattr(target, "name", None), str) or not target.name:
        raise ExtensionError(f"{where}: the extension has no name")
    return target


def load_spec(spec: str) -> Any:
    """The extension ``module:Name`` names, or :class:`ExtensionError` saying why not."""
    spec = spec.strip()
    if not _SPEC.fullmatch(spec):
        raise ExtensionError(f"extension {spec!r}: expected module:Name (e.g. mypkg.ext:Slack)")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ExtensionError(f"extension {spec!r}: cannot import {module_name}: {e}") from e
    target = getattr(module, attr, None)
    if target is None:
        raise ExtensionError(f"extension {spec!r}: module {module_name} has no {attr}")
    return _instance(target, f"extension {spec!r}")


def parse_specs(value: str) -> list[str]:
    """A comma-separated list (``TANDEM_EXTENSIONS``), blanks ignored."""
    return [part.strip() for part in value.split(",") if part.strip()]


def entry_point_extensions() -> list[Any]:
    """Every extension installed under the ``tandem.extensions`` entry-point group."""
    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value}"
        try:
            target = ep.load()
        except Exception as e:
            raise ExtensionError(f"{where}: cannot load: {e}") from e
        found.append(_instance(target, where))
    return found


def third_party_extensions(specs: str) -> list[Any]:
    """Entry points first, then ``specs`` (``--extension`` / ``TANDEM_EXTENSIONS``) in order."""
    return [*entry_point_extensions(), *(load_spec(s) for s in parse_specs(specs))]
