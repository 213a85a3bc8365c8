"""What one transaction changed, as paths from a root: the common language of the gate and rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["add", "update", "delete", "edit"]


@dataclass(frozen=True)
class Change:
    """One change at ``path`` (from the root: ("tasks", "t1", "title"))."""

    path: tuple[str | int, ...]
    action: Action

    @property
    def root(self) -> str:
        return str(self.path[0])

    @property
    def entity_id(self) -> str | int | None:
        return self.path[1] if len(self.path) > 1 else None

    @property
    def field(self) -> str | int | None:
        return self.path[2] if len(self.path) > 2 else None

    def __str__(self) -> str:
        return f"{self.action} {'/'.join(str(p) for p in self.path)}"


def _array_changes(base: tuple[str | int, ...], delta: list[dict[str, Any]]) -> list[Change]:
    """Inserted positions (in the new array) become "add"; any deletion one "delete" of the array."""
    out: list[Change] = []
    index = 0
    deleted = False
    for op in delta:
        if "retain" in op:
            index += op["retain"]
        elif "insert" in op:
            for _ in op["insert"]:
                out.append(Change((*base, index), "add"))
                index += 1
        elif "delete" in op:
            deleted = True
    if deleted:
        out.append(Change(base, "delete"))
    return out


def changes_from_events(
    events: Iterable[Any], root: str, maps: list[tuple[str | int, ...]] | None = None
) -> list[Change]:
    """Turn the deep events of one observed root into Changes (paths start at ``root``).

    Takes pycrdt's event objects or the raw ones its Rust core hands to a
    subscription on ``root.integrated`` (same class names, same ``path``,
    ``keys`` and ``delta``). The gate uses the raw ones: pycrdt's wrappers
    convert every attribute eagerly, a Text event's whole delta included,
    which cost it more than the rest of its event capture together.

    A map event says which keys changed value, and only that: a write that lost
    to a concurrent write of the same key changes nothing and is not among its
    keys, and neither is list content written into the map (invisible in it).
    Both make an event with no keys, which yields no Change here; the path of
    every map event is appended to ``maps`` when given, so that the caller can
    look for list content in those maps (the gate does: sync_server.core.map_content).
    """
    out: list[Change] = []
    for event in events:
        base: tuple[str | int, ...] = (root, *event.path)
        kind = type(event).__name__
        if kind == "MapEvent":
            if maps is not None:
                maps.append(base)
            for key, info in event.keys.items():
                out.append(Change((*base, key), info["action"]))
        elif kind == "TextEvent":
            out.append(Change(base, "edit"))
        elif kind == "ArrayEvent":
            if len(base) == 1:
                out.extend(_array_changes(base, event.delta))
            else:
                out.append(Change(base, "edit"))
        else:  # XML types are not part of any Tandem document
            out.append(Change(base, "edit"))
    return out
