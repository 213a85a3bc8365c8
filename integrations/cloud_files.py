"""Cloud files: search a provider's files and read one file's metadata, through its API.

The file stays with the provider; a task keeps its name, size, link and the
provider's id (``doc_model.attachments``). Each function takes an httpx client
already authorized for the connection (``Connections.call``) and the provider's
configured endpoints, and makes the provider's documented requests:

- Google Drive v3: ``GET /drive/v3/files?q=name contains '...' and trashed = false``,
  ``GET /drive/v3/files/{id}`` (``fields``: id, name, size, mimeType, webViewLink)
- Dropbox: ``POST /2/files/search_v2`` ``{"query": ...}``,
  ``POST /2/files/get_metadata`` ``{"path": "id:..."}``
- Microsoft Graph (OneDrive): ``GET /v1.0/me/drive/root/search(q='...')``,
  ``GET /v1.0/me/drive/items/{id}``

A folder is never returned: only files can be attached.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

import httpx

from integrations.providers import Provider

MAX_RESULTS = 25
DRIVE_FIELDS = "id,name,size,mimeType,webViewLink"
FOLDER_MIME = "application/vnd.google-apps.folder"


class ProviderAnswerInvalid(ValueError):
    """The provider answered with something that is not the documented shape."""


@dataclass(frozen=True)
class CloudFile:
    provider: str
    file_id: str
    name: str
    size: int | None
    link: str
    mime: str = ""

    def as_attachment(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, "")}
        return out


def _json(response: httpx.Response) -> Any:
    response.raise_for_status()
    try:
        return response.json()
    except ValueError as e:
        raise ProviderAnswerInvalid(f"{response.request.url.host} answered with no JSON") from e


def _drive_query(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"name contains '{escaped}' and trashed = false and mimeType != '{FOLDER_MIME}'"


def _drive_file(item: Any) -> CloudFile:
    try:
        size = item.get("size")  # a string of digits; absent for Google Docs
        return CloudFile(
            "google",
            str(item["id"]),
            str(item["name"]),
            int(size) if size is not None else None,
            str(item.get("webViewLink") or f"https://drive.google.com/file/d/{item['id']}/view"),
            str(item.get("mimeType", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProviderAnswerInvalid(f"a Drive file without {e}") from e


def _dropbox_file(meta: Any) -> CloudFile | None:
    try:
        if meta.get(".tag") != "file":
            return None
        return CloudFile(
            "dropbox",
            str(meta["id"]),
            str(meta["name"]),
            int(meta["size"]),
            "https://www.dropbox.com/home" + quote(str(meta["path_display"])),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProviderAnswerInvalid(f"a Dropbox file without {e}") from e


def _graph_file(item: Any) -> CloudFile | None:
    try:
        if "file" not in item:
            return None  # a folder (or a package)
        return CloudFile(
            "microsoft",
            str(item["id"]),
            str(item["name"]),
            int(item["size"]) if item.get("size") is not None else None,
            str(item["webUrl"]),
            str((item.get("file") or {}).get("mimeType", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProviderAnswerInvalid(f"a OneDrive item without {e}") from e


def search(client: httpx.Client, spec: Provider, text: str) -> list[CloudFile]:
    """Files whose name matches ``text``, at most MAX_RESULTS (blocking)."""
    api = spec.api_url.rstrip("/")
    if spec.name == "google":
        data = _json(
            client.get(
                f"{api}/drive/v3/files",
                params={
                    "q": _drive_query(text),
                    "pageSize": str(MAX_RESULTS),
                    "fields": f"files({DRIVE_FIELDS})",
                    "spaces": "drive",
                },
            )
        )
        return [_drive_file(f) for f in _list(data, "files")]
    if spec.name == "dropbox":
        data = _json(
            client.post(
                f"{api}/2/files/search_v2",
                json={
                    "query": text,
                    "options": {"max_results": MAX_RESULTS, "file_status": "active"},
                },
            )
        )
        out = []
        for match in _list(data, "matches"):
            meta = (
                (match.get("metadata") or {}).get("metadata") if isinstance(match, dict) else None
            )
            found = _dropbox_file(meta or {})
            if found is not None:
                out.append(found)
        return out
    if spec.name == "microsoft":
        escaped = text.replace("'", "''")
        data = _json(
            client.get(
                f"{api}/v1.0/me/drive/root/search(q='{quote(escaped, safe='')}')",
                params={"$top": str(MAX_RESULTS)},
            )
        )
        return [f for f in (_graph_file(i) for i in _list(data, "value")) if f is not None]
    raise ValueError(f"{spec.title} has no files")


def get_file(client: httpx.Client, spec: Provider, file_id: str) -> CloudFile:
    """One file's metadata, as the provider says it is now (blocking). Raises
    LookupError for a folder, ProviderAnswerInvalid for an answer of another shape and
    httpx.HTTPStatusError for an error answer (404: no such file)."""
    api = spec.api_url.rstrip("/")
    found: CloudFile | None
    if spec.name == "google":
        item = _json(
            client.get(
                f"{api}/drive/v3/files/{quote(file_id, safe='')}", params={"fields": DRIVE_FIELDS}
            )
        )
        found = None if item.get("mimeType") == FOLDER_MIME else _drive_file(item)
    elif spec.name == "dropbox":
        path = file_id if file_id.startswith("id:") else f"id:{file_id}"
        found = _dropbox_file(
            _json(client.post(f"{api}/2/files/get_metadata", json={"path": path}))
        )
    elif spec.name == "microsoft":
        found = _graph_file(
            _json(client.get(f"{api}/v1.0/me/drive/items/{quote(file_id, safe='')}"))
        )
    else:
        raise ValueError(f"{spec.title} has no files")
    if found is None:
        raise LookupError(f"{file_id!r} is a folder: only files can be attached")
    return found


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise ProviderAnswerInvalid(f"the answer has no list {key!r}")
    return value
