"""Time trackers: Toggl Track (v9), Harvest (v2) and Clockify (v1): read entries, write them.

Requests (each provider's documented API; the client is authorized by
``Connections.call``: Toggl basic auth with the API token, Clockify ``X-Api-Key``,
Harvest an OAuth2 bearer token plus ``Harvest-Account-Id``):

- who the token is: Toggl ``GET /api/v9/me``, Clockify ``GET /api/v1/user``, Harvest
  ``GET https://id.getharvest.com/api/v2/accounts`` then ``GET /v2/users/me``
- entries: Toggl ``GET /api/v9/me/time_entries?start_date&end_date``, Harvest
  ``GET /v2/time_entries?from&to&user_id&page`` (following ``next_page``), Clockify
  ``GET /api/v1/workspaces/{ws}/user/{user}/time-entries?start&end&page&page-size``
- a new entry: Toggl ``POST /api/v9/workspaces/{ws}/time_entries``, Harvest
  ``POST /v2/time_entries``, Clockify ``POST /api/v1/workspaces/{ws}/time-entries``

:func:`plan_import` (pure) turns the provider's entries into the finance
document's ``time_entries`` records: the record's id is ``<provider>-<entry id>``,
so importing again finds the same record (idempotent; a changed entry updates it),
and the task is the one whose key (``TDM-42``) the entry's description names. A
connection's ``config.projects`` (the provider's project ids) limits what is
imported into this Tandem project; empty: all of the user's entries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from integrations.providers import Provider

# a task key, PREFIX-N (the same shape as doc_model.task_keys on the vcs branch)
TASK_KEY = re.compile(r"(?<![A-Za-z0-9-])([A-Z][A-Z0-9]{1,5}-[1-9][0-9]{0,9})(?![A-Za-z0-9])")
ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PAGE_SIZE = 200
MAX_PAGES = 50
CREATED_WITH = "Tandem"


class TrackerAnswerInvalid(ValueError):
    """The provider answered with something that is not the documented shape."""


@dataclass(frozen=True)
class ExternalEntry:
    """One finished time entry at a provider."""

    provider: str
    id: str
    date: dt.date
    hours: float
    description: str
    project: str | None  # the provider's project id


def _json(response: httpx.Response) -> Any:
    response.raise_for_status()
    try:
        return response.json()
    except ValueError as e:
        raise TrackerAnswerInvalid(f"{response.request.url.host} answered with no JSON") from e


def _harvest_headers(config: Mapping[str, Any]) -> dict[str, str]:
    return {"Harvest-Account-Id": str(config.get("account_id", "")), "User-Agent": CREATED_WITH}


def whoami(client: httpx.Client, spec: Provider) -> tuple[str, dict[str, Any]]:
    """The account a credential is (a label fit to show) and the ids later calls need."""
    api = spec.api_url.rstrip("/")
    if spec.name == "toggl":
        me = _json(client.get(f"{api}/api/v9/me"))
        return str(me.get("email") or me.get("fullname") or me["id"]), {
            "user_id": me["id"],
            "workspace_id": me.get("default_workspace_id"),
        }
    if spec.name == "clockify":
        me = _json(client.get(f"{api}/api/v1/user"))
        return str(me.get("email") or me.get("name") or me["id"]), {
            "user_id": me["id"],
            "workspace_id": me.get("activeWorkspace") or me.get("defaultWorkspace"),
        }
    if spec.name == "harvest":
        accounts = _json(client.get(spec.accounts_url, headers={"User-Agent": CREATED_WITH}))
        harvest = [a for a in accounts.get("accounts", []) if a.get("product") == "harvest"]
        if not harvest:
            raise TrackerAnswerInvalid("the Harvest token has no Harvest account")
        config = {"account_id": harvest[0]["id"]}
        me = _json(client.get(f"{api}/v2/users/me", headers=_harvest_headers(config)))
        config["user_id"] = me["id"]
        return str(me.get("email") or me["id"]), config
    raise ValueError(f"{spec.title} is not a time tracker")


def _hours_of_iso_duration(value: str) -> float:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", value or "")
    if not match:
        raise TrackerAnswerInvalid(f"not an ISO 8601 duration: {value!r}")
    h, m, s = match.groups()
    return int(h or 0) + int(m or 0) / 60 + float(s or 0) / 3600


def _date_of(timestamp: str) -> dt.date:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).date()


def fetch_entries(
    client: httpx.Client,
    spec: Provider,
    config: Mapping[str, Any],
    since: dt.date,
    until: dt.date,
) -> list[ExternalEntry]:
    """The user's finished entries from ``since`` to ``until`` (inclusive), blocking."""
    api = spec.api_url.rstrip("/")
    out: list[ExternalEntry] = []
    try:
        if spec.name == "toggl":
            data = _json(
                client.get(
                    f"{api}/api/v9/me/time_entries",
                    params={
                        "start_date": since.isoformat(),
                        "end_date": (until + dt.timedelta(days=1)).isoformat(),
                    },
                )
            )
            for e in data:
                if e.get("duration") is None or e["duration"] < 0 or not e.get("stop"):
                    continue  # running
                out.append(
                    ExternalEntry(
                        "toggl",
                        str(e["id"]),
                        _date_of(e["start"]),
                        e["duration"] / 3600,
                        e.get("description") or "",
                        str(e["project_id"]) if e.get("project_id") is not None else None,
                    )
                )
        elif spec.name == "harvest":
            page: int | None = 1
            for _ in range(MAX_PAGES):
                if page is None:
                    break
                data = _json(
                    client.get(
                        f"{api}/v2/time_entries",
                        params={
                            "from": since.isoformat(),
                            "to": until.isoformat(),
                            "user_id": str(config.get("user_id", "")),
                            "page": str(page),
                            "per_page": str(PAGE_SIZE),
                        },
                        headers=_harvest_headers(config),
                    )
                )
                for e in data["time_entries"]:
                    if e.get("is_running"):
                        continue
                    project = e.get("project") or {}
                    out.append(
                        ExternalEntry(
                            "harvest",
                            str(e["id"]),
                            dt.date.fromisoformat(e["spent_date"]),
                            float(e["hours"]),
                            e.get("notes") or "",
                            str(project["id"]) if project.get("id") is not None else None,
                        )
                    )
                page = data.get("next_page")
        elif spec.name == "clockify":
            ws, user = config.get("workspace_id"), config.get("user_id")
            start = dt.datetime.combine(since, dt.time(), dt.UTC)
            end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
            for page_no in range(1, MAX_PAGES + 1):
                data = _json(
                    client.get(
                        f"{api}/api/v1/workspaces/{ws}/user/{user}/time-entries",
                        params={
                            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "page": str(page_no),
                            "page-size": str(PAGE_SIZE),
                        },
                    )
                )
                for e in data:
                    interval = e.get("timeInterval") or {}
                    if not interval.get("end"):
                        continue  # running
                    out.append(
                        ExternalEntry(
                            "clockify",
                            str(e["id"]),
                            _date_of(interval["start"]),
                            _hours_of_iso_duration(interval.get("duration") or ""),
                            e.get("description") or "",
                            str(e["projectId"]) if e.get("projectId") else None,
                        )
                    )
                if len(data) < PAGE_SIZE:
                    break
        else:
            raise ValueError(f"{spec.title} is not a time tracker")
    except (KeyError, TypeError, AttributeError) as e:
        raise TrackerAnswerInvalid(f"a {spec.title} time entry without {e}") from e
    return out


def task_key_in(text: str) -> str | None:
    """The first task key (``TDM-42``) in ``text``."""
    match = TASK_KEY.search(text or "")
    return match.group(1) if match else None


def record_id(entry: ExternalEntry) -> str | None:
    """The finance document's id of an imported entry, or None for a provider id that
    does not make a valid one."""
    value = f"{entry.provider}-{entry.id}"
    return value if ENTRY_ID.fullmatch(value) else None


def plan_import(
    entries: Iterable[ExternalEntry],
    *,
    user: str,
    task_keys: Mapping[str, str],
    existing: Mapping[str, Mapping[str, Any]],
    projects: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """The records to write (id -> fields) so that ``existing`` (the finance document's
    time entries, id -> fields) holds every entry: new ones, and ones whose hours, date,
    note or task changed at the provider. Entries this project exported (an existing
    record with the same ``source`` and ``external_id``) are not imported again.
    ``task_keys``: task key -> task id. Pure."""
    wanted = {str(p) for p in projects}
    exported = {
        (r.get("source"), r.get("external_id"))
        for r in existing.values()
        if r.get("source") and r.get("external_id")
    }
    out: dict[str, dict[str, Any]] = {}
    # one entry per id (a page boundary that moved between two requests repeats one): the last
    latest = {(e.provider, e.id): e for e in entries}
    for entry in latest.values():
        if wanted and entry.project not in wanted:
            continue
        hours = round(entry.hours, 4)
        rid = record_id(entry)
        if hours <= 0 or rid is None:
            continue
        if rid not in existing and (entry.provider, entry.id) in exported:
            continue
        fields: dict[str, Any] = {
            "user": user,
            "hours": hours,
            "date": entry.date.isoformat(),
            "note": entry.description[:10_000],
            "source": entry.provider,
            "external_id": entry.id,
        }
        key = task_key_in(entry.description)
        if key is not None and key in task_keys:
            fields["task"] = task_keys[key]
        old = existing.get(rid)
        if old is not None:
            before = {k: old.get(k) for k in (*fields, "task") if old.get(k) is not None}
            if before == fields:
                continue  # imported before, unchanged
        out[rid] = fields
    return out


def create_entry(
    client: httpx.Client,
    spec: Provider,
    config: Mapping[str, Any],
    *,
    date: dt.date,
    hours: float,
    note: str,
) -> str:
    """Create one entry at the provider (blocking); returns its id there."""
    api = spec.api_url.rstrip("/")
    start = dt.datetime.combine(date, dt.time(9, 0), dt.UTC)
    seconds = max(1, round(hours * 3600))
    if spec.name == "toggl":
        ws = config.get("workspace_id")
        body: dict[str, Any] = {
            "created_with": CREATED_WITH,
            "description": note,
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": seconds,
            "workspace_id": ws,
        }
        if config.get("export_project_id"):
            body["project_id"] = int(config["export_project_id"])
        created = _json(client.post(f"{api}/api/v9/workspaces/{ws}/time_entries", json=body))
    elif spec.name == "clockify":
        ws = config.get("workspace_id")
        end = start + dt.timedelta(seconds=seconds)
        body = {
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "description": note,
        }
        if config.get("export_project_id"):
            body["projectId"] = str(config["export_project_id"])
        created = _json(client.post(f"{api}/api/v1/workspaces/{ws}/time-entries", json=body))
    elif spec.name == "harvest":
        if not config.get("export_project_id") or not config.get("export_task_id"):
            raise ValueError(
                "Harvest needs config.export_project_id and config.export_task_id to export"
            )
        created = _json(
            client.post(
                f"{api}/v2/time_entries",
                json={
                    "project_id": int(config["export_project_id"]),
                    "task_id": int(config["export_task_id"]),
                    "spent_date": date.isoformat(),
                    "hours": round(hours, 2),
                    "notes": note,
                },
                headers=_harvest_headers(config),
            )
        )
    else:
        raise ValueError(f"{spec.title} is not a time tracker")
    try:
        return str(created["id"])
    except (KeyError, TypeError) as e:
        raise TrackerAnswerInvalid(f"{spec.title} created an entry without an id") from e
