"""The Quart application: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from quart import Quart, jsonify, websocket
from quart_schema import hide

from doc_model import InvalidDocName, add_member, doc_name, parse_doc_name, remove_member
from integrations.outbound import OutboundPolicy
from rules import missing_for_document

from . import access, accounts, security_headers
from .access_watch import AccessWatch
from .activity import ActivityRecorder
from .api_access import access_api
from .api_analytics import analytics_api
from .api_finance import finance_api
from .api_me import me_api
from .api_v1 import v1_api
from .connection import CloseCode, Connection
from .database import DeferredWrites, SQLiteWorker, connect, open_database
from .extensions.feed import ChangeFeed
from .gate import NotAnUpdate, PermissionCheck, UnrevertableUpdate
from .hooks import Actor, DocumentObserver, DocumentStore
from .keepalive import keep_alive
from .live_documents import LiveDocuments
from .login_guard import LoginGuard
from .notifications import NotificationCenter, vapid_key
from .offline_edit import edit_stored_document
from .problems import TITLES, problem_response
from .protocol import (
    AwarenessMessage,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TandemMessage,
    decode_message,
)
from .pwa import pwa_blueprint
from .room import RoomSettings
from .rooms import RoomManager
from .settings import Settings
from .storage import SQLiteStore, StorageError
from .web_api import configure_web_api

log = logging.getLogger("tandem.sync")


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    if query_token:
        return query_token
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def origin_allowed(origin: str, host: str, allowed: set[str]) -> bool:
    """A browser's Origin on the sync socket: the server's own (same host and port), or one
    of ``allowed``. Clients that send no Origin (Node, pycrdt) are not browsers and are not
    asked: a browser always sends it, and only a browser carries another site's cookies or
    runs another site's script."""
    normalized = origin.strip().lower().rstrip("/")
    if normalized in allowed:
        return True
    parts = urlsplit(normalized)
    return parts.scheme in ("http", "https") and parts.netloc == host.lower()


TEST_OBSERVER_VARIABLE = "TANDEM_TEST_OBSERVER"


def test_observers() -> list[DocumentObserver]:
    """TEST ONLY: ``TANDEM_TEST_OBSERVER=module:Class`` adds ``Class()`` as an observer, so
    that a test can load a feed consumer into a real server process (tests/feed_consumer.py
    for the kill -9 test). Replaced by ``tandem serve --extension`` once that exists."""
    spec = os.environ.get(TEST_OBSERVER_VARIABLE, "").strip()
    if not spec:
        return []
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{TEST_OBSERVER_VARIABLE}={spec!r} is not module:Class")
    return [getattr(importlib.import_module(module), name)()]


def subscribe_observers(feed: ChangeFeed, observers: Sequence[DocumentObserver]) -> None:
    """Each observer becomes a consumer of the change feed, in a task of its own, under its
    ``name`` attribute or its class name (numbered when two share one); durable unless it
    says ``durable = False``; ``batch`` (default 500) changes per call at most."""
    taken: set[str] = set()
    for observer in observers:
        base = str(getattr(observer, "name", "") or type(observer).__name__)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        feed.subscribe(
            name,
            observer.documents_changed,
            durable=bool(getattr(observer, "durable", True)),
            batch=int(getattr(observer, "batch", 500)),
        )


def create_app(
    settings: Settings | None = None,
    *,
    store: DocumentStore | None = None,
    observers: Sequence[DocumentObserver] = (),
    permission_check: PermissionCheck | None = None,
) -> Quart:
    settings = settings or Settings.from_env()
    app = Quart("tandem")
    app.config["TANDEM_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    state: dict = {
        "outbound": OutboundPolicy(allow_private=settings.outbound_allow_private),
        "login_guard": LoginGuard(
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            settings.login_window_seconds,
        ),
    }
    api_blueprints = [
        access_api(state),
        v1_api(state),
        finance_api(state),
        analytics_api(state),
        me_api(state),
    ]
    configure_web_api(app, api_blueprints, settings)
    security_headers.install(app)
    app.register_blueprint(pwa_blueprint(settings.static_dir))

    for status in (400, 404, 405, 413):

        @app.errorhandler(status)
        async def http_problem(error, status=status):
            detail = getattr(error, "description", None) or TITLES.get(status, "error")
            return problem_response(status, str(detail))

    async def project_members(project: str, user: str, role: str | None) -> None:
        """Show a grant change in the project's members map (the running room catches up)."""

        def edit(doc):
            if role is None:
                remove_member(doc, user)
            else:
                add_member(doc, user, role)

        await edit_stored_document(state["store"], doc_name(project), "system:team", edit)
        state["feed"].wake()

    state["project_members"] = project_members

    @app.before_serving
    async def startup() -> None:
        db = open_database(settings.db, synchronous=settings.sqlite_synchronous)
        state["db"] = db
        state["accounts"] = db.conn
        vapid_key(db.conn)  # Web Push: the key pair is made on first start
        accounts.session_secret(db.conn)  # and the session-signing secret
        # No SQLite write runs on the event loop: another process (the CLI, a backup) may
        # hold the write lock for seconds, and a write waiting for it there would stall every
        # room and request. REST writes wait on the writer's thread (ApiContext.write); writes
        # nobody waits for (a token's last use, audit rows of rejections) are batched. Grant
        # changes (the grant rule reads and writes in one transaction) and logins (Argon2)
        # run on the writer too.
        state["writer"] = SQLiteWorker(
            connect(settings.db, synchronous=settings.sqlite_synchronous)
        )
        deferred = DeferredWrites(
            SQLiteWorker(connect(settings.db, synchronous=settings.sqlite_synchronous))
        )
        state["deferred"] = deferred
        touched: dict[int, float] = {}  # token id -> last use already submitted

        def touch(token_id: int, now: float) -> None:
            if now - touched.get(token_id, 0.0) > accounts.LAST_USED_RESOLUTION_SECONDS:
                touched[token_id] = now
                deferred.submit(accounts.touch_token, token_id, now)

        state["touch"] = touch
        # Observers write derived data (activity, notifications) on connections of their own
        # with synchronous=NORMAL: a commit is not an fsync (WAL still survives a killed
        # process; only a power cut can lose the last rows), each on its connection's worker
        # thread, so the event loop never waits for SQLite's write lock.
        activity_db = SQLiteWorker(connect(settings.db, synchronous="NORMAL"))
        state["activity_db"] = activity_db
        notices_db = SQLiteWorker(connect(settings.db, synchronous="NORMAL"))
        state["notices_db"] = notices_db
        resolver = access.PermissionResolver(db.conn, ttl=settings.permission_cache_seconds)
        state["access"] = resolver
        doc_store = store or SQLiteStore(
            settings.db,
            compact_threshold=settings.compact_threshold,
            synchronous=settings.sqlite_synchronous,
        )
        state["store"] = doc_store
        # sockets' access: read on a connection and worker thread of its own, never on the loop
        watch = AccessWatch(
            SQLiteWorker(connect(settings.db, synchronous="NORMAL")),
            resolver,
            poll_seconds=settings.access_poll_seconds,
            stored_generation=lambda: getattr(doc_store, "access_generation", None),
            touch=touch,
        )
        state["watch"] = watch

        # Observers are consumers of the durable change feed, each in a task of its own,
        # reading the rows every writer (this server, the CLI) stores beside its updates.
        def live_doc(name: str):
            # TRANSITIONAL (issue 19): activity and notifications still read titles from the
            # live document; they move to DocumentChanged.events, and this goes
            room = state["rooms"].rooms.get(name) if "rooms" in state else None
            return room.doc if room is not None and not room.closed else None

        feed = ChangeFeed(
            settings.db,
            poll_seconds=settings.feed_poll_seconds,
            retention_seconds=settings.feed_retention_seconds,
            max_retention_seconds=settings.feed_max_retention_seconds,
            prune_interval_seconds=settings.feed_prune_interval_seconds,
            doc_lookup=live_doc,
        )
        state["feed"] = feed
        subscribe_observers(
            feed,
            [
                *observers,
                *test_observers(),
                ActivityRecorder(activity_db),
                NotificationCenter(notices_db, state["outbound"]),
            ],
        )
        rooms = RoomManager(
            doc_store,
            settings=RoomSettings(
                coalesce_seconds=settings.coalesce_ms / 1000,
                idle_unload_seconds=settings.room_idle_seconds,
                max_unflushed_updates=settings.max_unflushed_updates,
            ),
            on_stored=feed.wake,
            permission_check=permission_check or resolver.check,
            on_rejected=lambda actor, doc_name, denial: deferred.submit(
                access.rejection_row, actor, doc_name, denial
            ),
            poll_seconds=settings.external_poll_seconds,
            before_broadcast=watch.settle,
            before_external=watch.refresh,
        )
        await rooms.start()
        state["rooms"] = rooms
        await feed.start()
        await watch.start()
        state["keepalive"] = (
            asyncio.create_task(keep_alive(rooms, settings.ping_timeout_seconds), name="keepalive")
            if settings.ping_timeout_seconds > 0
            else None
        )
        state["live"] = LiveDocuments(rooms, doc_store)
        app.extensions["tandem_rooms"] = rooms
        log.info("serving documents from %s", settings.db)

    @app.after_serving
    async def shutdown() -> None:
        if state["keepalive"] is not None:
            state["keepalive"].cancel()
        await state["watch"].close()
        await state["rooms"].close()
        await state["feed"].close()  # after the rooms' last appends, before the observers' dbs
        await state["store"].close()
        await state["deferred"].close()
        await state["writer"].close()
        state["db"].conn.close()
        await state["activity_db"].close()
        await state["notices_db"].close()
        await state["watch"].worker.close()

    @app.get("/healthz")
    @hide
    async def healthz():
        rooms: RoomManager = state["rooms"]
        return jsonify(
            status="ok",
            rooms=sum(1 for r in rooms.rooms.values() if not r.closed),
            connections=sum(len(r.connections) for r in rooms.rooms.values()),
        )

    ws_origins = {o.strip().lower().rstrip("/") for o in settings.ws_origins.split(",")} - {""}

    @app.websocket("/sync/<path:doc>")
    async def sync(doc: str):
        # quart types its LocalProxy as the Websocket it stands for: the proxy's own method
        ws = websocket._get_current_object()  # type: ignore[attr-defined]
        await ws.accept()
        origin = ws.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, ws.host, ws_origins):
            log.info("refused cross-origin connection from %s", origin, extra={"doc": doc})
            await ws.close(
                CloseCode.FORBIDDEN,
                f"origin {origin[:100]} may not connect (allowed: this server's own and"
                " TANDEM_WS_ORIGINS)",
            )
            return
        watch: AccessWatch = state["watch"]
        token = bearer_token(ws.headers.get("Authorization"), ws.args.get("token"))
        try:
            doc_name = parse_doc_name(doc)
        except InvalidDocName as e:
            doc_name = None
            bad_name = str(e)
        opening = await watch.authenticate(token, doc_name.project_id if doc_name else None)
        if token is None or opening is None or opening.credential is None:
            log.info("refused unauthenticated connection", extra={"doc": doc})
            await ws.close(CloseCode.UNAUTHENTICATED, "missing, invalid, expired or revoked token")
            return
        user = opening.credential.user
        if doc_name is None:
            log.info(
                "refused unknown document: %s", bad_name, extra={"doc": doc, "user": user.name}
            )
            await ws.close(CloseCode.UNKNOWN_DOCUMENT, bad_name)
            return
        missing = missing_for_document(opening.permissions, doc_name.kind)
        if missing:
            needs = ", ".join(p.value for p in missing)
            log.info(
                "refused read: needs %s", needs, extra={"doc": doc_name.name, "user": user.name}
            )
            await ws.close(
                CloseCode.FORBIDDEN, f"{user.name} may not read {doc_name.name}: needs {needs}"
            )
            return
        actor = Actor(user.name)
        try:
            room = await state["rooms"].get(doc_name)
        except StorageError as e:  # nothing of it is served; every other document is
            log.error("refused a document that does not read back: %s", e, extra={"doc": doc})
            await ws.close(
                CloseCode.DOCUMENT_UNREADABLE,
                f"{doc_name.name} is damaged on the server; an administrator must run"
                " `tandem doctor`",
            )
            return
        conn = Connection(
            ws,
            actor,
            wants_tandem_messages=ws.args.get("tandem") == "1",
            max_queue_bytes=settings.send_queue_bytes,
            display_name=user.display_name,
            presence_rate=settings.presence_per_second,
            presence_burst=settings.presence_burst,
        )
        extra = {"doc": doc_name.name, "user": user.name, "conn": conn.id}
        watch.watch(conn, token, opening, doc_name)
        room.join(conn)
        sender = asyncio.create_task(conn.run_sender())
        log.info("connected", extra=extra)
        receiver: asyncio.Task | None = None
        try:
            await room.start_sync(conn)
            # Read until the client leaves or breaks the protocol, or until the connection is
            # closed from our side (access taken away, keepalive, cut off for not reading) or
            # its sender is done: a silent peer must not keep this handler, its room and its
            # socket waiting for its next frame.
            receiver = asyncio.create_task(
                _receive_loop(room, conn, ws, settings.max_message_bytes, extra)
            )
            stops = [
                asyncio.create_task(conn.close_requested.wait()),
                asyncio.create_task(conn.closed.wait()),
            ]
            try:
                await asyncio.wait({receiver, *stops}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for stop in stops:
                    stop.cancel()
            if receiver.done() and not receiver.cancelled():
                receiver.result()  # a receive error ends the connection as before
        finally:
            watch.unwatch(conn)
            if receiver is not None and not receiver.done():
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
            room.leave(conn)
            if not sender.done():
                if conn.close_code is None:
                    sender.cancel()
                else:
                    try:  # let the close frame and its reason go out
                        await asyncio.wait_for(sender, timeout=5)
                    except (TimeoutError, asyncio.CancelledError):
                        sender.cancel()
            log.info(
                "disconnected%s",
                f" ({conn.close_code}: {conn.close_reason})" if conn.close_code else "",
                extra=extra,
            )

    return app


async def _receive_loop(room, conn: Connection, ws, max_bytes: int, extra: dict) -> None:
    """Read frames until the client leaves or breaks the protocol."""
    while conn.close_code is None:
        frame = await ws.receive()
        conn.last_heard = time.monotonic()
        if len(frame) > max_bytes:
            reason = f"message of {len(frame)} bytes exceeds the limit of {max_bytes}"
            log.warning("closing: %s", reason, extra=extra)
            conn.close(CloseCode.MESSAGE_TOO_BIG, reason)
            return
        if room.is_presence_echo(frame):
            continue  # presence we sent, sent back (stock y-websocket does): nothing new
        try:
            message = decode_message(frame)
            if isinstance(message, SyncStep1):
                await room.reply_sync_step1(conn, message.state_vector)
            elif isinstance(message, SyncStep2 | SyncUpdate):
                await room.receive_update(
                    conn, message.update, step2=isinstance(message, SyncStep2)
                )
            elif isinstance(message, AwarenessMessage):
                room.receive_awareness(conn, message)
            elif isinstance(message, QueryAwareness):
                conn.send(room.awareness_snapshot())
            elif isinstance(message, TandemMessage):
                pass  # client -> server Tandem messages are reserved for later versions
        except (ProtocolError, NotAnUpdate) as e:
            log.warning("closing on bad message: %s", e, extra=extra)
            conn.close(CloseCode.BAD_MESSAGE, str(e))
            return
        except UnrevertableUpdate as e:
            log.warning("closing on unrevertable update: %s", e, extra=extra)
            conn.close(CloseCode.UNREVERTABLE, str(e))
            return
