"""REST API v1: my account (e-mail address, digest, locale and time zone), notifications and Web Push subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

import anyio
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from quart import Blueprint, Response, g
from quart_schema import document_querystring, document_request, document_response

from integrations.outbound import OutboundRefused, check_url
from sync_server.api.common import ApiContext, json_response, read_body
from sync_server.api.models import NoContent
from sync_server.api.models import problems_documented as _problems
from sync_server.api.params import only_args, simple_int
from sync_server.api.problems import Problem
from sync_server.extensions import notifications
from sync_server.identity import accounts

if TYPE_CHECKING:
    from sync_server.extensions.context import TandemContext


class MeOut(BaseModel):
    """My account; the address is shown to its owner only (never in member listings)."""

    name: str
    display_name: str
    email: str | None
    digest: Literal["daily", "off"] = Field(
        description="the daily e-mail digest of changes to my tasks (sent only with an address)"
    )
    locale: str | None = Field(
        description="BCP 47 tag (en-GB, de, pt-BR): dates and numbers in what the server"
        " writes for me (notifications, e-mail, automation messages); null: ISO dates"
    )
    time_zone: str | None = Field(
        description="IANA time zone name (Europe/Berlin): times in what the server writes"
        " for me; null: UTC"
    )


class MeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr | None = Field(
        default=None, max_length=accounts.MAX_EMAIL_LENGTH, description="null: remove it"
    )
    digest: Literal["daily", "off"] | None = None
    locale: str | None = Field(
        default=None, max_length=35, description="a BCP 47 tag (de, en-GB); null: remove it"
    )
    time_zone: str | None = Field(
        default=None, max_length=64, description="an IANA name (Europe/Berlin); null: UTC"
    )


def _me(profile: accounts.Profile) -> dict[str, object]:
    return {
        "name": profile.name,
        "display_name": profile.display_name,
        "email": profile.email,
        "digest": profile.digest,
        "locale": profile.locale,
        "time_zone": profile.time_zone,
    }


def _update_me(conn, name: str, fields: set[str], data: MeUpdate):
    # checked before anything is written: a bad locale leaves the address as it was
    from sync_server.identity.locales import LocaleInvalid, normalize_locale, normalize_time_zone

    for field_name, check in (("locale", normalize_locale), ("time_zone", normalize_time_zone)):
        value = getattr(data, field_name)
        if field_name in fields and value is not None:
            try:
                check(value)
            except LocaleInvalid as e:
                raise accounts.AccountError(f"{field_name}: {e}") from e
    if "email" in fields:
        accounts.set_email(conn, name, data.email)
    if data.digest is not None:
        accounts.set_digest(conn, name, data.digest)
    chosen: dict[str, str | None] = {
        f: getattr(data, f) for f in ("locale", "time_zone") if f in fields
    }
    if chosen:
        accounts.set_locale(conn, name, chosen)
    return accounts.get_profile(conn, name)


class NotificationOut(BaseModel):
    id: int
    project: str
    kind: str
    title: str
    body: str
    url: str
    created_at: float
    read_at: float | None


class NotificationList(BaseModel):
    items: list[NotificationOut]
    unread: int


class NotificationArgs(BaseModel):
    unread: int | None = Field(default=None, ge=0, le=1)
    limit: int | None = Field(default=None, ge=1, le=200)


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # SQLite's integers are 64-bit: a wider id is a bad request, not an OverflowError
    ids: list[Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]] | None = Field(
        default=None, max_length=1000, description="omit: all"
    )


class Marked(BaseModel):
    marked: int


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p256dh: str = Field(min_length=16, max_length=200)
    auth: str = Field(min_length=8, max_length=100)


class PushSubscription(BaseModel):
    """What the browser's PushSubscription.toJSON() gives (expirationTime is ignored)."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(max_length=2000)
    keys: PushKeys
    expirationTime: float | None = None

    @field_validator("endpoint")
    @classmethod
    def push_service_url(cls, value: str) -> str:
        """The shape only; where it points is the outbound guard's to judge (see subscribe)."""
        parts = urlsplit(value)
        if parts.scheme in ("https", "http") and parts.hostname:
            return value
        raise ValueError("a push service URL (https)")


class Unsubscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(max_length=2000)


class PublicKey(BaseModel):
    public_key: str


def me_api(server: TandemContext) -> Blueprint:
    bp = Blueprint("api_me", __name__, url_prefix="/api/v1")
    ctx = ApiContext(server)

    @bp.get("/me/")
    @document_response(MeOut)
    @_problems()
    async def me():
        user = ctx.user()
        profile = accounts.get_profile(ctx.conn, user.name)
        if profile is None:
            raise Problem(404, "your account is gone")
        return json_response(_me(profile))

    @bp.patch("/me/")
    @document_request(MeUpdate)
    @document_response(MeOut)
    @_problems(400, 413, 415, 422)
    async def update_me():
        user = ctx.user()
        data = await read_body(MeUpdate)
        try:
            profile = await ctx.write(_update_me, user.name, set(data.model_fields_set), data)
        except accounts.AccountError as e:  # a bad locale or time zone (or the validator
            # and the model disagree on an address)
            text = str(e)
            field = next((f for f in ("locale", "time_zone") if text.startswith(f + ":")), "email")
            detail = text if field != "email" else f"email: {text}"
            raise Problem(422, detail, field=field) from e
        if profile is None:
            raise Problem(404, "your account is gone")
        return json_response(_me(profile))

    @bp.get("/me/notifications")
    @document_querystring(NotificationArgs)
    @document_response(NotificationList)
    @_problems(400)
    async def my_notifications():
        only_args("unread", "limit")
        user = ctx.user()
        unread = simple_int("unread", 0, 0, 1) == 1
        limit = simple_int("limit", 50, 1, 200)
        items, unread_count = notifications.inbox(
            ctx.conn, user.name, unread_only=unread, limit=limit
        )
        return json_response({"items": items, "unread": unread_count})

    @bp.post("/me/notifications/read")
    @document_request(MarkRead)
    @document_response(Marked)
    @_problems(400, 413, 415, 422)
    async def read_notifications():
        user = ctx.user()
        data = await read_body(MarkRead)
        marked = await ctx.write(notifications.mark_read, user.name, data.ids)
        return json_response({"marked": marked})

    @bp.get("/push/key")
    @document_response(PublicKey)
    @_problems()
    async def push_key():
        ctx.user()
        key = notifications.vapid_key(ctx.conn)
        return json_response({"public_key": notifications.application_server_key(key)})

    @bp.post("/me/push-subscriptions")
    @document_request(PushSubscription)
    @document_response(NoContent, 204)
    @_problems(400, 413, 415, 422)
    async def subscribe():
        user = ctx.user()
        data = await read_body(PushSubscription)
        try:  # resolving the host blocks: on a worker thread
            await anyio.to_thread.run_sync(check_url, data.endpoint, server.outbound)
        except OutboundRefused as e:
            raise Problem(422, f"endpoint: {e}", field="endpoint") from e
        # bound to this login or token: a logout, a revoked token or an expired session ends it
        token = getattr(g.get("tandem_identity"), "token", None)
        await ctx.write(
            notifications.save_subscription,
            user.name,
            data.endpoint,
            data.keys.p256dh,
            data.keys.auth,
            accounts.credential_of(ctx.conn, token),
        )
        return Response(status=204)

    @bp.delete("/me/push-subscriptions")
    @document_request(Unsubscribe)
    @document_response(NoContent, 204)
    @_problems(400, 404, 413, 415, 422)
    async def unsubscribe():
        user = ctx.user()
        data = await read_body(Unsubscribe)
        if not await ctx.write(notifications.delete_subscription, user.name, data.endpoint):
            raise Problem(404, "no such subscription of yours")
        return Response(status=204)

    return bp
