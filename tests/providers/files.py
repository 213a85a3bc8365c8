"""Stand-ins for Google Drive (v3), Dropbox (API v2) and OneDrive (Microsoft Graph v1.0),
built from their API references, for the calls Tandem makes: OAuth2 (authlib's
authorization server at each provider's own paths) and file search / metadata."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Flask, jsonify, request

from .base import OAuthState, StandIn, add_oauth, json_error


@dataclass
class File:
    id: str
    name: str
    size: int
    mime: str = "application/pdf"
    folder: bool = False


DEFAULT_FILES = [
    File("1AbCdEfGhIjKlMnOp", "Budget 2027.xlsx", 48213, "application/vnd.ms-excel"),
    File("1QrStUvWxYz012345", "Design review.pdf", 1048576),
    File("1FolderIdFolderId", "Budget archive", 0, "application/vnd.google-apps.folder", True),
]


class FilesStandIn(StandIn):
    oauth: OAuthState

    def __init__(self, app: Flask, files: list[File]) -> None:
        super().__init__(app)
        self.files = list(files)

    def matching(self, text: str) -> list[File]:
        return [f for f in self.files if text.lower() in f.name.lower()]

    def by_id(self, file_id: str) -> File | None:
        return next((f for f in self.files if f.id == file_id), None)


# Google Drive v3: GET /drive/v3/files?q=...&fields=files(...), GET /drive/v3/files/{fileId}
_DRIVE_Q = re.compile(r"name contains '((?:[^'\\]|\\.)*)'")


def google(files: list[File] = DEFAULT_FILES) -> FilesStandIn:
    app = Flask("google-stand-in")
    stand_in = FilesStandIn(app, files)
    stand_in.oauth, protect = add_oauth(
        app, authorize_path="/o/oauth2/v2/auth", token_path="/token", revoke_path="/revoke"
    )

    def drive_file(f: File) -> dict:
        out = {
            "kind": "drive#file",
            "id": f.id,
            "name": f.name,
            "mimeType": f.mime,
            "webViewLink": f"https://drive.google.com/file/d/{f.id}/view?usp=drivesdk",
        }
        if not f.folder:
            out["size"] = str(f.size)  # int64 as a string, as Drive sends it
        return out

    @app.get("/drive/v3/files")
    @protect()
    def files_list():
        q = request.args.get("q", "")
        match = _DRIVE_Q.search(q)
        if match is None:
            return json_error(400, {"error": {"code": 400, "message": "Invalid Value"}})
        text = re.sub(r"\\(.)", r"\1", match.group(1))
        found = stand_in.matching(text)
        if "mimeType != 'application/vnd.google-apps.folder'" in q:
            found = [f for f in found if not f.folder]
        return jsonify({"kind": "drive#fileList", "files": [drive_file(f) for f in found]})

    @app.get("/drive/v3/files/<file_id>")
    @protect()
    def files_get(file_id: str):
        f = stand_in.by_id(file_id)
        if f is None:
            return json_error(
                404, {"error": {"code": 404, "message": f"File not found: {file_id}."}}
            )
        return jsonify(drive_file(f))

    return stand_in


# Dropbox: POST /2/files/search_v2, POST /2/files/get_metadata, POST /2/auth/token/revoke
def dropbox(files: list[File] = DEFAULT_FILES) -> FilesStandIn:
    app = Flask("dropbox-stand-in")
    stand_in = FilesStandIn(app, files)
    stand_in.oauth, protect = add_oauth(
        app,
        authorize_path="/oauth2/authorize",
        token_path="/oauth2/token",
        rotate_refresh_tokens=False,  # Dropbox keeps the refresh token
    )

    def metadata(f: File) -> dict:
        if f.folder:
            return {
                ".tag": "folder",
                "id": f"id:{f.id}",
                "name": f.name,
                "path_display": f"/{f.name}",
                "path_lower": f"/{f.name.lower()}",
            }
        return {
            ".tag": "file",
            "id": f"id:{f.id}",
            "name": f.name,
            "path_display": f"/Projects/{f.name}",
            "path_lower": f"/projects/{f.name.lower()}",
            "size": f.size,
            "client_modified": "2026-11-30T09:12:00Z",
            "server_modified": "2026-11-30T09:12:03Z",
            "rev": "a1c10ce0dd78",
            "is_downloadable": True,
        }

    @app.post("/2/files/search_v2")
    @protect()
    def search_v2():
        body = request.get_json(silent=True) or {}
        if not isinstance(body.get("query"), str):
            return json_error(400, {"error_summary": "path/malformed_path/..", "error": {}})
        found = stand_in.matching(body["query"])
        return jsonify(
            {
                "has_more": False,
                "matches": [
                    {
                        "match_type": {".tag": "filename"},
                        "metadata": {".tag": "metadata", "metadata": metadata(f)},
                    }
                    for f in found
                ],
            }
        )

    @app.post("/2/files/get_metadata")
    @protect()
    def get_metadata():
        path = (request.get_json(silent=True) or {}).get("path", "")
        f = stand_in.by_id(path.removeprefix("id:"))
        if f is None:
            return json_error(
                409,
                {
                    "error_summary": "path/not_found/..",
                    "error": {".tag": "path", "path": {".tag": "not_found"}},
                },
            )
        return jsonify(metadata(f))

    @app.post("/2/auth/token/revoke")
    @protect()
    def revoke():
        from authlib.integrations.flask_oauth2 import current_token

        current_token.revoked = True
        stand_in.oauth.revoked.append("access_token")
        return jsonify(None)

    return stand_in


# Microsoft Graph: GET /v1.0/me/drive/root/search(q='...'), GET /v1.0/me/drive/items/{id}
def microsoft(files: list[File] = DEFAULT_FILES) -> FilesStandIn:
    app = Flask("microsoft-stand-in")
    stand_in = FilesStandIn(app, files)
    stand_in.oauth, protect = add_oauth(
        app,
        authorize_path="/common/oauth2/v2.0/authorize",
        token_path="/common/oauth2/v2.0/token",
    )

    def item(f: File) -> dict:
        out = {
            "id": f.id,
            "name": f.name,
            "size": f.size,
            "webUrl": f"https://contoso-my.sharepoint.com/personal/ada/Documents/{f.name}",
        }
        out["folder" if f.folder else "file"] = (
            {"childCount": 0} if f.folder else {"mimeType": f.mime}
        )
        return out

    @app.get("/v1.0/me/drive/root/search(q=<path:query>)")
    @protect()
    def search(query: str):
        match = re.fullmatch(r"'((?:[^']|'')*)'", query)
        if match is None:
            return json_error(400, {"error": {"code": "invalidRequest", "message": "Invalid q"}})
        found = stand_in.matching(match.group(1).replace("''", "'"))
        return jsonify(
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)",
                "value": [item(f) for f in found],
            }
        )

    @app.get("/v1.0/me/drive/items/<item_id>")
    @protect()
    def get_item(item_id: str):
        f = stand_in.by_id(item_id)
        if f is None:
            return json_error(
                404, {"error": {"code": "itemNotFound", "message": "Item does not exist"}}
            )
        return jsonify(item(f))

    return stand_in
