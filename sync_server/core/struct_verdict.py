"""Judge a keystroke from its own structs: which task's text it edits, before applying it.

Typing into a task's title or description is one transaction per keystroke,
and each one is a string item whose left origin is the character typed before
it. Yjs gives an item the parent of its origin (``Item.getMissing``: the parent
is the left origin's, or the right origin's when there is no left one; the
other origin only has to be in the document), so a
keystroke that builds on characters the gate already knows the text of edits
that text, and nothing else. :func:`read_text_edit` reads that shape from the
update (one client's run of string items, each with an origin; deletions
outside the run) and :class:`ItemIndex` says which text each known id is in:
the gate learns it from the keystrokes it accepted (the first one in a text is
judged the ordinary way, after applying it; the ones that build on it are
judged here).

What this decides is the verdict's input, not the verdict: the gate runs the
same permission check and length limit on the change these structs make, and
still applies the update under its undo manager and compares the change the
document reports with the one read here; anything else (another shape, an id
the index does not know, a run that does not start at the document's clock,
a mismatch) takes the ordinary path: apply, read the events, check, undo if
refused.

Ids learned stay valid as long as their text does: the gate reports every
change that replaces or deletes a task, a field of one, or the tasks map
(:meth:`ItemIndex.forget`), and the ids of a text that is gone no longer resolve.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from doc_model import Change
from sync_server.core.protocol import ProtocolError, varuint_at
from sync_server.core.update_squash import ORIGIN, RIGHT_ORIGIN, STRING, read_struct

TextPath = tuple[str, str]  # (task id, field)


@dataclass(frozen=True, slots=True)
class TextEdit:
    """One client's run of string items (clocks ``clock``..``end``-1), the ids outside the
    run they take their parent from (``refs``) and the other ids they build on (``needs``:
    right origins beside a left one), and the deletion ranges ``(client, first, end)``."""

    client: int
    clock: int
    end: int
    structs: int
    refs: tuple[tuple[int, int], ...]
    needs: tuple[tuple[int, int], ...]
    deletes: tuple[tuple[int, int, int], ...]
    inserted_bytes: int  # UTF-8 bytes of the inserted strings


def read_text_edit(update: bytes) -> TextEdit | None:
    """The update as a text edit, or None when it is any other shape (or does not decode)."""
    try:
        return _read(update)
    except (ProtocolError, IndexError, UnicodeDecodeError):
        return None


def _id(raw: bytes) -> tuple[int, int]:
    client, at = varuint_at(raw, 0)
    return client, varuint_at(raw, at)[0]


def _read(buf: bytes) -> TextEdit | None:
    clients, pos = varuint_at(buf, 0)
    if clients != 1:
        return None
    count, pos = varuint_at(buf, pos)
    client, pos = varuint_at(buf, pos)
    first, pos = varuint_at(buf, pos)
    if count < 1:
        return None
    clock = first
    refs: list[tuple[int, int]] = []
    needs: list[tuple[int, int]] = []
    inserted = 0
    for _ in range(count):
        info = buf[pos]
        if info & 0x1F != STRING or not info & (ORIGIN | RIGHT_ORIGIN):
            return None  # not a string, or its parent is written out: not this shape
        item = read_struct(buf, pos)
        for raw, parent in ((item.origin, True), (item.right, item.origin is None)):
            if raw is None:
                continue
            ref = _id(raw)
            if ref[0] == client and ref[1] >= first:
                if ref[1] >= clock:
                    return None  # builds on a later struct of its own run
                continue  # builds on the run itself: same text as what it builds on
            (refs if parent else needs).append(ref)
        inserted += varuint_at(buf, item.content_start)[0]
        pos = item.end
        clock += item.length
    deletes: list[tuple[int, int, int]] = []
    ds_clients, pos = varuint_at(buf, pos)
    for _ in range(ds_clients):
        deleter, pos = varuint_at(buf, pos)
        ranges, pos = varuint_at(buf, pos)
        for _ in range(ranges):
            start, pos = varuint_at(buf, pos)
            length, pos = varuint_at(buf, pos)
            if deleter == client and start < clock and start + length > first:
                return None  # deletes what it inserts: may change nothing visible
            deletes.append((deleter, start, start + length))
    if pos != len(buf):
        return None
    return TextEdit(
        client, first, clock, count, tuple(refs), tuple(needs), tuple(deletes), inserted
    )


class ItemIndex:
    """Which task text each known item id is in: per client, runs of clocks."""

    LIMIT = 100_000  # runs kept; past this, everything is forgotten and learned again

    def __init__(self) -> None:
        # client -> (run starts, run ends, run keys); key: (task, field, task gen, field gen)
        self._runs: dict[int, tuple[list[int], list[int], list[tuple[str, str, int, int]]]] = {}
        self._size = 0
        self._task_gen: dict[str, int] = {}
        self._field_gen: dict[TextPath, int] = {}

    def _key(self, path: TextPath) -> tuple[str, str, int, int]:
        return (path[0], path[1], self._task_gen.get(path[0], 0), self._field_gen.get(path, 0))

    def _valid(self, key: tuple[str, str, int, int]) -> bool:
        return (
            self._task_gen.get(key[0], 0) == key[2]
            and self._field_gen.get((key[0], key[1]), 0) == key[3]
        )

    def learn(self, client: int, clock: int, end: int, path: TextPath) -> None:
        """Items ``clock``..``end``-1 of ``client`` are in the text at ``path``."""
        if end <= clock:
            return
        key = self._key(path)
        runs = self._runs.get(client)
        if runs is None:
            runs = self._runs[client] = ([], [], [])
        starts, ends, keys = runs
        if starts and ends[-1] == clock and keys[-1] == key:
            ends[-1] = end  # typed right after: the same run
            return
        if starts and clock < ends[-1]:
            return  # known already (clocks only grow)
        if self._size >= self.LIMIT:
            self.clear()
            self.learn(client, clock, end, path)
            return
        starts.append(clock)
        ends.append(end)
        keys.append(key)
        self._size += 1

    def _find(self, client: int, clock: int) -> int | None:
        runs = self._runs.get(client)
        if runs is None:
            return None
        i = bisect_right(runs[0], clock) - 1
        if i < 0 or clock >= runs[1][i]:
            return None
        return i

    def path_of(self, client: int, clock: int) -> TextPath | None:
        i = self._find(client, clock)
        if i is None:
            return None
        key = self._runs[client][2][i]
        return (key[0], key[1]) if self._valid(key) else None

    def covers(self, client: int, first: int, end: int, path: TextPath) -> bool:
        """Whether every id in ``first``..``end``-1 of ``client`` is known to be in ``path``."""
        i = self._find(client, first)
        if i is None:
            return False
        starts, ends, keys = self._runs[client]
        want = self._key(path)
        at = first
        while True:
            if keys[i] != want or starts[i] > at:
                return False
            at = ends[i]
            if at >= end:
                return True
            i += 1
            if i >= len(starts):
                return False

    def resolve(self, edit: TextEdit) -> TextPath | None:
        """The one text ``edit`` inserts into and deletes from, or None when that is not known
        (an id the index does not hold, or ids in several texts). Its ``needs`` are not
        looked at: the caller checks that the document has them."""
        path: TextPath | None = None
        for client, clock in edit.refs:
            found = self.path_of(client, clock)
            if found is None or (path is not None and found != path):
                return None
            path = found
        if path is None:
            return None
        for client, first, end in edit.deletes:
            if not self.covers(client, first, end, path):
                return None
        return path

    def forget(self, changes: tuple[Change, ...] | list[Change]) -> None:
        """Drop what ``changes`` (of a committed transaction) may have replaced or deleted:
        a task, a field of one, or the whole tasks map."""
        for change in changes:
            path = change.path
            if change.root != "tasks" or (change.action == "edit" and len(path) >= 3):
                continue
            if len(path) == 1:
                self.clear()
                return
            task = str(path[1])
            if len(path) == 2:
                self._task_gen[task] = self._task_gen.get(task, 0) + 1
            elif len(path) == 3:
                field = (task, str(path[2]))
                self._field_gen[field] = self._field_gen.get(field, 0) + 1

    def clear(self) -> None:
        self._runs.clear()
        self._size = 0
        self._task_gen.clear()
        self._field_gen.clear()
