"""Stand-ins for Toggl Track (API v9), Harvest (API v2) and Clockify (API v1), built from
their API references, for the calls Tandem makes: who the credential is, the user's time
entries in a date range, and creating an entry."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import secrets
from typing import Any

from flask import Flask, jsonify, request

from .base import OAuthState, StandIn, add_oauth, json_error

API_TOKEN = "test-api-token-0123456789abcdef"


class TimeStandIn(StandIn):
    oauth: OAuthState | None = None

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.entries: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []  # bodies of the entries Tandem created
        self._ids = itertools.count(4_000_000_001)

    def next_id(self) -> int:
        return next(self._ids)


def _day(value: str) -> dt.date:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()


# Toggl Track v9: basic auth <token>:api_token
def toggl() -> TimeStandIn:
    app = Flask("toggl-stand-in")
    s = TimeStandIn(app)
    workspace = 7_654_321

    def authorized() -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return secrets.compare_digest(user, API_TOKEN) and password == "api_token"

    @app.before_request
    def check():
        if not authorized():
            return json_error(403, "Incorrect username and/or password")  # type: ignore[arg-type]
        return None

    @app.get("/api/v9/me")
    def me():
        return jsonify(
            {
                "id": 9_876_543,
                "email": "ada@example.com",
                "fullname": "Ada Lovelace",
                "default_workspace_id": workspace,
                "timezone": "Europe/London",
            }
        )

    @app.get("/api/v9/me/time_entries")
    def entries():
        start = dt.date.fromisoformat(request.args["start_date"])
        end = dt.date.fromisoformat(request.args["end_date"])  # exclusive, as Toggl reads it
        return jsonify([e for e in s.entries if start <= _day(e["start"]) < end])

    @app.post("/api/v9/workspaces/<int:ws>/time_entries")
    def create(ws: int):
        body = request.get_json()
        if ws != workspace or body.get("workspace_id") != ws or "created_with" not in body:
            return json_error(400, "workspace_id and created_with are required")  # type: ignore[arg-type]
        s.created.append(body)
        start = dt.datetime.fromisoformat(body["start"].replace("Z", "+00:00"))
        entry = {
            "id": s.next_id(),
            "workspace_id": ws,
            "project_id": body.get("project_id"),
            "task_id": None,
            "billable": False,
            "start": body["start"],
            "stop": (start + dt.timedelta(seconds=body["duration"])).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": body["duration"],
            "description": body.get("description", ""),
            "tags": [],
            "tag_ids": [],
            "duronly": False,
            "at": body["start"],
            "server_deleted_at": None,
            "user_id": 9_876_543,
            "uid": 9_876_543,
            "wid": ws,
        }
        s.entries.append(entry)
        return jsonify(entry)

    return s


def toggl_entry(
    entry_id: int, start: str, seconds: int, description: str, project_id: int | None = 193_838_628
) -> dict[str, Any]:
    """An entry as GET /me/time_entries returns it (duration < 0: running)."""
    begin = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    return {
        "id": entry_id,
        "workspace_id": 7_654_321,
        "project_id": project_id,
        "task_id": None,
        "billable": False,
        "start": start,
        "stop": None
        if seconds < 0
        else (begin + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "duration": seconds,
        "description": description,
        "tags": [],
        "tag_ids": [],
        "duronly": True,
        "at": start,
        "server_deleted_at": None,
        "user_id": 9_876_543,
        "uid": 9_876_543,
        "wid": 7_654_321,
        "pid": project_id,
    }


# Clockify v1: X-Api-Key
def clockify() -> TimeStandIn:
    app = Flask("clockify-stand-in")
    s = TimeStandIn(app)
    ws, uid = "64a687e29ae1f428e7ebe303", "64a687e29ae1f428e7ebe302"

    @app.before_request
    def check():
        if not secrets.compare_digest(request.headers.get("X-Api-Key", ""), API_TOKEN):
            return json_error(401, {"message": "Api key does not exist", "code": 4003})
        return None

    @app.get("/api/v1/user")
    def user():
        return jsonify(
            {
                "id": uid,
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "activeWorkspace": ws,
                "defaultWorkspace": ws,
                "status": "ACTIVE",
            }
        )

    @app.get("/api/v1/workspaces/<w>/user/<u>/time-entries")
    def entries(w: str, u: str):
        if (w, u) != (ws, uid):
            return json_error(403, {"message": "Forbidden", "code": 403})
        start, end = _day(request.args["start"]), _day(request.args["end"])
        page, size = int(request.args.get("page", 1)), int(request.args.get("page-size", 50))
        found = [e for e in s.entries if start <= _day(e["timeInterval"]["start"]) < end]
        return jsonify(found[(page - 1) * size : page * size])

    @app.post("/api/v1/workspaces/<w>/time-entries")
    def create(w: str):
        body = request.get_json()
        s.created.append(body)
        entry = clockify_entry(
            f"{s.next_id():024x}",
            body["start"],
            body["end"],
            body.get("description", ""),
            body.get("projectId"),
        )
        s.entries.append(entry)
        return jsonify(entry), 201

    return s


def clockify_entry(
    entry_id: str,
    start: str,
    end: str | None,
    description: str,
    project_id: str | None = "64c777ddd3fcab07cfbb210c",
) -> dict[str, Any]:
    duration = None
    if end is not None:
        seconds = int((_dt(end) - _dt(start)).total_seconds())
        duration = f"PT{seconds // 3600}H{seconds % 3600 // 60}M" + (
            f"{seconds % 60}S" if seconds % 60 else ""
        )
    return {
        "id": entry_id,
        "description": description,
        "tagIds": None,
        "userId": "64a687e29ae1f428e7ebe302",
        "billable": True,
        "taskId": None,
        "projectId": project_id,
        "workspaceId": "64a687e29ae1f428e7ebe303",
        "timeInterval": {"start": start, "end": end, "duration": duration},
        "customFieldValues": [],
        "type": "REGULAR",
        "kioskId": None,
        "hourlyRate": None,
        "costRate": None,
        "isLocked": False,
    }


def _dt(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


# Harvest v2: OAuth2 (id.getharvest.com) + Harvest-Account-Id
def harvest() -> TimeStandIn:
    app = Flask("harvest-stand-in")
    s = TimeStandIn(app)
    s.oauth, protect = add_oauth(
        app, authorize_path="/oauth2/authorize", token_path="/api/v2/oauth2/token"
    )
    account = 1_234_567

    def account_ok() -> bool:
        return request.headers.get("Harvest-Account-Id") == str(account)

    @app.get("/api/v2/accounts")
    @protect()
    def accounts():
        return jsonify(
            {
                "user": {
                    "id": 1_782_959,
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "email": "ada@example.com",
                },
                "accounts": [
                    {"id": account, "name": "Analytical Engines Ltd", "product": "harvest"},
                    {"id": 7_654, "name": "AE Forecast", "product": "forecast"},
                ],
            }
        )

    @app.get("/v2/users/me")
    @protect()
    def me():
        if not account_ok():
            return json_error(401, {"error": "invalid_token"})
        return jsonify(
            {
                "id": 1_782_959,
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.com",
                "is_active": True,
            }
        )

    @app.get("/v2/time_entries")
    @protect()
    def entries():
        if not account_ok():
            return json_error(401, {"error": "invalid_token"})
        start = dt.date.fromisoformat(request.args["from"])
        end = dt.date.fromisoformat(request.args["to"])
        page, per = int(request.args.get("page", 1)), int(request.args.get("per_page", 100))
        found = [e for e in s.entries if start <= dt.date.fromisoformat(e["spent_date"]) <= end]
        pages = max(1, -(-len(found) // per))
        return jsonify(
            {
                "time_entries": found[(page - 1) * per : page * per],
                "per_page": per,
                "total_pages": pages,
                "total_entries": len(found),
                "next_page": page + 1 if page < pages else None,
                "previous_page": page - 1 if page > 1 else None,
                "page": page,
                "links": {},
            }
        )

    @app.post("/v2/time_entries")
    @protect()
    def create():
        if not account_ok():
            return json_error(401, {"error": "invalid_token"})
        body = request.get_json()
        if "project_id" not in body or "task_id" not in body or "spent_date" not in body:
            return json_error(422, {"message": "Project, task and spent date are required"})
        s.created.append(body)
        entry = harvest_entry(
            s.next_id(),
            body["spent_date"],
            body.get("hours", 0),
            body.get("notes", ""),
            body["project_id"],
        )
        s.entries.append(entry)
        return jsonify(entry), 201

    return s


def harvest_entry(
    entry_id: int,
    day: str,
    hours: float,
    notes: str,
    project_id: int = 14_307_913,
    running: bool = False,
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "spent_date": day,
        "hours": hours,
        "rounded_hours": hours,
        "notes": notes,
        "is_locked": False,
        "is_running": running,
        "is_billed": False,
        "billable": True,
        "budgeted": True,
        "timer_started_at": None,
        "user": {"id": 1_782_959, "name": "Ada Lovelace"},
        "client": {"id": 5_735_776, "name": "123 Industries", "currency": "EUR"},
        "project": {"id": project_id, "name": "Marketing Website", "code": "MW"},
        "task": {"id": 8_083_365, "name": "Graphic Design"},
        "created_at": f"{day}T10:00:00Z",
        "updated_at": f"{day}T10:00:00Z",
    }
