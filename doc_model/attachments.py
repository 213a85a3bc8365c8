"""Files attached to a task: a task's ``attachments`` (the file stays with its provider).

Each item is a Map of plain fields: ``provider`` (google, dropbox, microsoft), ``file_id``
(the provider's id of the file), ``name``, ``size`` (bytes), ``link`` (an http(s) URL
that opens the file at the provider), and optionally ``mime``, ``added_by``,
``added_at``. The server writes them (``sync_server.extensions.connectors``) after
reading the file's metadata from the provider, through the gate as the user who attached
it; any client may remove one (editing the task). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Map

ATTACHMENT_PROVIDERS = ("google", "dropbox", "microsoft")
MAX_ATTACHMENTS = 100  # on one task
ATTACHMENT_FIELDS = {  # field -> longest string (size: a number)
    "provider": 40,
    "file_id": 500,
    "name": 1_000,
    "link": 2_000,
    "mime": 200,
    "added_by": 200,
    "added_at": 40,
}
REQUIRED = ("provider", "file_id", "name", "link")


def check_attachments(value: Any) -> str | None:
    """None if ``value`` is a valid ``attachments`` Array, else what was expected."""
    expected = (
        f"Array of at most {MAX_ATTACHMENTS} Maps with {', '.join(REQUIRED)} (strings),"
        f" size (number >= 0), provider one of {', '.join(ATTACHMENT_PROVIDERS)}, link http(s)"
    )
    if not isinstance(value, Array) or len(value) > MAX_ATTACHMENTS:
        return expected
    for item in value:
        if not isinstance(item, Map) or any(k not in item for k in REQUIRED):
            return expected
        for key, field_value in item.items():
            if key == "size":
                if isinstance(field_value, bool) or not isinstance(field_value, int | float):
                    return expected
                if field_value < 0:
                    return expected
                continue
            limit = ATTACHMENT_FIELDS.get(key)
            if limit is None or not isinstance(field_value, str) or len(field_value) > limit:
                return expected
        if item.get("provider") not in ATTACHMENT_PROVIDERS:
            return expected
        link = item.get("link")
        if not isinstance(link, str) or not link.lower().startswith(("https://", "http://")):
            return expected
    return None


def add_attachment(task: Map[Any], attachment: dict[str, Any]) -> bool:
    """Append ``attachment`` to the task's list (made on first use); False (nothing written)
    if that provider's file is attached already."""
    existing = task.get("attachments")
    if isinstance(existing, Array):
        for item in existing:
            if (
                isinstance(item, Map)
                and item.get("provider") == attachment["provider"]
                and item.get("file_id") == attachment["file_id"]
            ):
                return False
        existing.append(Map(attachment))
        return True
    task["attachments"] = Array([Map(attachment)])
    return True
