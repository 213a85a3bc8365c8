"""The Quart application: ``create_app(settings)`` builds everything; nothing happens at import."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from quart import Quart, g, jsonify, request
from quart_schema import hide

from doc_model import InvalidDocName, parse_doc_name
from integrations.outbound import OutboundPolicy
from integrations.secrets import load_keys
from rules import Permission, missing_for_document
from sync_server.api import security_headers
from sync_server.api.access import access_api
from sync_server.api.analytics import analytics_api
from sync_server.api.finance import finance_api
from sync_server.api.integrations import integrations_api
from sync_server.api.live_documents import LiveDocuments
from sync_server.api.me import me_api
from sync_server.api.ops import ops_blueprint
from sync_server.api.problems import TITLES, problem_response
from sync_server.api.pwa import pwa_blueprint
from sync_server.api.rules import rules_api
from sync_server.api.v1 import v1_api
from sync_server.api.web import configure_web_api
from sync_server.api.webhooks import intake_request_class, webhook_intake, webhooks_api
from sync_server.core.connection import CloseCode, Connection
from sync_server.core.gate import Denial, NotAnUpdate, PermissionCheck, UnrevertableUpdate
from sync_server.core.keepalive import keep_alive
from sync_server.core.protocol import (
    AwarenessMessage,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TandemMessage,
    decode_message,
)
from sync_server.core.room import Room, RoomSettings
from sync_server.core.rooms import RoomManager
from sync_server.extensions.automation import AutomationExtension
from sync_server.extensions.builtins import (
    ActivityExtension,
    MembersSync,
    NotificationsExtension,
    RejectionAudit,
    TokenAuth,
    TokenIdentity,
)
from sync_server.extensions.connectors import ConnectorsExtension
from sync_server.extensions.context import TandemContext
from sync_server.extensions.feed import ChangeFeed
from sync_server.extensions.host import ExtensionHost
from sync_server.extensions.loading import third_party_extensions
from sync_server.extensions.mentions import MentionWatch
from sync_server.extensions.notifications import vapid_key
from sync_server.extensions.protocol import AuthRequest, ConnectionInfo, Rejection
from sync_server.extensions.task_keys import TaskKeys
from sync_server.extensions.vcs import VcsWebhooks
from sync_server.identity import access, accounts
from sync_server.identity.access_watch import AccessWatch
from sync_server.identity.login_guard import LoginGuard
from sync_server.interfaces import Actor, DocumentObserver, DocumentStore
from sync_server.scale.leases import RedisLeases
from sync_server.scale.redis_fanout import RedisFanout, redis_client
from sync_server.shell.monitoring import ServerMetrics, sqlite_outbox_depth
from sync_server.shell.readiness import Readiness, storage_probe
from sync_server.shell.settings import Settings
from sync_server.shell.sync_socket import AsgiSocket, SyncRoute
from sync_server.storage.database import DeferredWrites, SQLiteWorker, connect, open_database
from sync_server.storage.postgres import display_target
from sync_server.storage.sqlite_store import SQLiteStore, StorageError

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


def scale_out(settings: Settings) -> tuple[RedisFanout | None, RedisLeases | None]:
    """The Redis fan-out and leases when ``settings.redis`` names a Redis, else None."""
    if not settings.redis:
        return None, None
    fanout = RedisFanout(redis_client(settings.redis))
    leases = RedisLeases(
        redis_client(settings.redis),
        fanout.node_id,
        SQLiteWorker(connect(settings.db, synchronous="NORMAL")),
        ttl_seconds=settings.lease_ttl_seconds,
    )
    log.info("one of several servers: node %s, Redis %s", fanout.node_id, settings.redis)
    return fanout, leases


def create_app(
    settings: Settings | None = None,
    *,
    store: DocumentStore | None = None,
    observers: Sequence[DocumentObserver] = (),
    permission_check: PermissionCheck | None = None,
    extensions: Sequence[object] = (),
    third_party: Sequence[object] | None = None,
) -> Quart:
    """The app. ``third_party``: the extensions of the ``tandem.extensions`` entry points and
    ``settings.extensions``, already loaded (the CLI loads them to report a bad one), else
    loaded here; ``extensions`` come after them. ``observers`` are change-feed consumers
    (``documents_changed``), for tests and embedding."""
    settings = settings or Settings.from_env()
    app = Quart("tandem")
    app.config["TANDEM_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.request_class = intake_request_class(settings.max_webhook_body_bytes)
    members = MembersSync()
    vcs = VcsWebhooks()
    automation = AutomationExtension()
    connectors = ConnectorsExtension()
    # Every extension, in the order its hooks are called (shutdown: reversed): the built-in
    # ones, then the tandem.extensions entry points, then --extension / TANDEM_EXTENSIONS.
    host = ExtensionHost(
        [
            TokenAuth(),
            ActivityExtension(),
            NotificationsExtension(),
            MentionWatch(),
            RejectionAudit(),
            members,
            TaskKeys(),
            vcs,
            automation,
            connectors,
            *(third_party_extensions(settings.extensions) if third_party is None else third_party),
            *extensions,
        ]
    )
    ctx = TandemContext(
        settings=settings,
        outbound=OutboundPolicy(allow_private=settings.outbound_allow_private),
        login_guard=LoginGuard(
            settings.login_failures_per_account,
            settings.login_failures_per_address,
            settings.login_window_seconds,
        ),
        host=host,
        members=members,
    )
    app.extensions["tandem_context"] = ctx
    # operations: /readyz's probes (the storage's at startup; other backends add theirs)
    # and /metrics, in a registry of this app's own
    ctx.readiness = Readiness(timeout=settings.ready_timeout_seconds)
    ctx.metrics = metrics = ServerMetrics()
    app.extensions["tandem_readiness"] = ctx.readiness
    api_blueprints = [
        access_api(ctx),
        v1_api(ctx),
        finance_api(ctx),
        analytics_api(ctx),
        me_api(ctx),
        webhooks_api(ctx),
        integrations_api(ctx, connectors),
        rules_api(ctx, automation),
    ]
    configure_web_api(app, api_blueprints, settings)
    app.register_blueprint(webhook_intake(ctx, vcs))  # signed by providers, no rate limit
    security_headers.install(app)
    app.register_blueprint(pwa_blueprint(settings.static_dir))
    app.register_blueprint(ops_blueprint(ctx.readiness, metrics, settings))

    for status in (400, 404, 405, 413):

        @app.errorhandler(status)
        async def http_problem(error, status=status):
            detail = getattr(error, "description", None) or TITLES.get(status, "error")
            return problem_response(status, str(detail))

    host.register_routes(app, ctx)

    @app.before_request
    async def identify() -> None:
        """Who a REST request is, asked of the extensions (token-auth first); routes read
        it with ``api_common.caller()``."""
        if request.path.startswith("/api/"):
            g.tandem_identity = await host.authenticate(
                AuthRequest(
                    path=request.path,
                    headers=dict(request.headers),
                    token=bearer_token(request.headers.get("Authorization"), None),
                    project_id=None,
                    remote_addr=request.remote_addr,
                )
            )

    @app.after_request
    async def count_request(response):
        if request.path.startswith("/api/"):
            metrics.request_done(response.status_code)
        return response

    def rejected(actor: Actor, name, denial: Denial) -> None:
        host.notify(
            "update_rejected",
            Rejection(name.name, actor, denial.reason, denial.path, denial.permission),
        )

    def loaded(room: Room) -> None:
        host.notify("document_loaded", room.name)

    def unloaded(room: Room) -> None:
        host.notify("document_unloaded", room.name)

    @app.before_serving
    async def startup() -> None:
        # Creating and migrating the file fsyncs (0.1 s on the shared test machine, and 14 ms
        # of CPU): on a worker thread, like every other SQLite call, not in a loop callback
        db = await asyncio.to_thread(
            open_database, settings.db, synchronous=settings.sqlite_synchronous
        )
        ctx.db = db
        ctx.secret_keys = await asyncio.to_thread(load_keys, settings.db, settings.secret_key)
        await asyncio.to_thread(vapid_key, db.conn)  # Web Push: the key pair is made on first start
        await asyncio.to_thread(accounts.session_secret, db.conn)  # and the session secret
        # No SQLite write runs on the event loop: another process (the CLI, a backup) may
        # hold the write lock for seconds, and a write waiting for it there would stall every
        # room and request. REST writes wait on the writer's thread (ApiContext.write); writes
        # nobody waits for (a token's last use, audit rows of rejections) are batched. Grant
        # changes (the grant rule reads and writes in one transaction) and logins (Argon2)
        # run on the writer too.
        ctx.writer = SQLiteWorker(connect(settings.db, synchronous=settings.sqlite_synchronous))
        deferred = DeferredWrites(
            SQLiteWorker(connect(settings.db, synchronous=settings.sqlite_synchronous))
        )
        ctx.deferred = deferred
        touched: dict[int, float] = {}  # token id -> last use already submitted

        def touch(token_id: int, now: float) -> None:
            if now - touched.get(token_id, 0.0) > accounts.LAST_USED_RESOLUTION_SECONDS:
                touched[token_id] = now
                deferred.submit(accounts.touch_token, token_id, now)

        ctx.touch = touch
        # Extensions that write derived data (activity, notifications) do it on connections
        # of their own with synchronous=NORMAL, each on its connection's worker thread, so
        # the event loop never waits for SQLite's write lock (see extensions.builtins).
        resolver = access.PermissionResolver(db.conn, ttl=settings.permission_cache_seconds)
        ctx.access = resolver
        doc_store = store or SQLiteStore(
            settings.db,
            compact_threshold=settings.compact_threshold,
            synchronous=settings.sqlite_synchronous,
        )
        ctx.store = doc_store
        # sockets' access: read on a connection and worker thread of its own, never on the loop
        watch = AccessWatch(
            SQLiteWorker(connect(settings.db, synchronous="NORMAL")),
            resolver,
            poll_seconds=settings.access_poll_seconds,
            stored_generation=lambda: getattr(doc_store, "access_generation", None),
            touch=touch,
        )
        ctx.watch = watch
        # Several servers on this storage (docs/scale.md): updates and presence between them
        # through Redis, and a lease decides which node runs each change-feed consumer and
        # the outbox's delivery; without Redis, ctx.fanout and ctx.leases stay None
        fanout, leases = scale_out(settings)
        ctx.fanout, ctx.leases = fanout, leases
        if fanout is not None:  # /readyz: a node that cannot reach Redis is not ready

            async def redis_probe() -> None:
                await fanout.client.ping()

            ctx.readiness.add("redis", redis_probe)

        async def before_remote(generation: int | None) -> None:
            await (watch.refresh() if generation is None else watch.settle_at(generation))

        # The durable change feed: every writer (this server's rooms, the CLI) stores a row
        # with each update; extensions' change_accepted and the observers given to
        # create_app consume it, each from its own cursor in a task of its own.
        feed = ChangeFeed(
            settings.db,
            poll_seconds=settings.feed_poll_seconds,
            retention_seconds=settings.feed_retention_seconds,
            max_retention_seconds=settings.feed_max_retention_seconds,
            prune_interval_seconds=settings.feed_prune_interval_seconds,
            leases=leases,
        )
        ctx.feed = feed
        host.changes = feed
        subscribe_observers(feed, observers)
        rooms = RoomManager(
            doc_store,
            settings=RoomSettings(
                coalesce_seconds=settings.coalesce_ms / 1000,
                idle_unload_seconds=settings.room_idle_seconds,
                max_unflushed_updates=settings.max_unflushed_updates,
            ),
            on_stored=feed.wake,  # consumers read the new rows now, not at the next poll
            permission_check=permission_check or resolver.check,
            on_rejected=rejected,
            on_loaded=loaded,
            on_unloaded=unloaded,
            poll_seconds=settings.redis_poll_seconds if fanout else settings.external_poll_seconds,
            before_broadcast=watch.settle,
            before_external=watch.refresh,
            instruments=metrics,
            fanout=fanout,
            before_remote=before_remote,
        )
        await rooms.start()
        if fanout is not None:  # rows another node stored: its update reaches our rooms first
            feed.before_deliver = rooms.hold_stored
        ctx.rooms = rooms
        await watch.start()
        ctx.keepalive = (
            asyncio.create_task(keep_alive(rooms, settings.ping_timeout_seconds), name="keepalive")
            if settings.ping_timeout_seconds > 0
            else None
        )
        ctx.live = LiveDocuments(rooms, doc_store)
        app.extensions["tandem_rooms"] = rooms
        await host.startup(ctx)  # in order; ctx.edit works from here on
        await feed.start()  # every consumer's cursor settled before the first request
        ctx.readiness.add("storage", storage_probe(doc_store))
        metrics.rooms_source = lambda: rooms.rooms
        metrics.read_feed_lag = feed.lag
        ctx.metrics_reader = SQLiteWorker(connect(settings.db, synchronous="NORMAL"))
        metrics.read_outbox = sqlite_outbox_depth(ctx.metrics_reader)
        ctx.readiness.started = True
        log.info("serving documents from %s", display_target(settings.db))

    @app.after_serving
    async def shutdown() -> None:
        ctx.readiness.draining = True
        if ctx.keepalive is not None:
            ctx.keepalive.cancel()
        await ctx.watch.close()
        await ctx.rooms.close()
        await host.shutdown()  # after the rooms' last changes were handed over; reversed
        if ctx.leases is not None:  # after the feed stored its cursors under them
            await ctx.leases.close()
            await ctx.leases.db.close()
        await ctx.store.close()
        await ctx.deferred.close()
        await ctx.writer.close()
        ctx.db.conn.close()
        await ctx.watch.worker.close()
        await ctx.metrics_reader.close()

    @app.get("/healthz")
    @hide
    async def healthz():
        rooms = ctx.rooms
        return jsonify(
            status="ok",
            rooms=sum(1 for r in rooms.rooms.values() if not r.closed),
            connections=sum(len(r.connections) for r in rooms.rooms.values()),
        )

    ws_origins = {o.strip().lower().rstrip("/") for o in settings.ws_origins.split(",")} - {""}

    async def sync(ws: AsgiSocket, doc: str) -> None:
        """One client's socket on ``/sync/<doc>`` (served by SyncRoute, not Quart)."""
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
        watch: AccessWatch = ctx.watch
        token = bearer_token(ws.headers.get("Authorization"), ws.args.get("token"))
        try:
            doc_name = parse_doc_name(doc)
        except InvalidDocName as e:
            doc_name = None
            bad_name = str(e)
        identity = await host.authenticate(
            AuthRequest(
                path=f"/sync/{doc}",
                headers=dict(ws.headers),
                token=token,
                project_id=doc_name.project_id if doc_name else None,
                remote_addr=ws.remote_addr,
            )
        )
        if identity is None:
            log.info("refused unauthenticated connection", extra={"doc": doc})
            await ws.close(CloseCode.UNAUTHENTICATED, "missing, invalid, expired or revoked token")
            return
        actor = Actor(identity.user, kind=identity.kind)
        name = access.principal(actor)
        if doc_name is None:
            log.info("refused unknown document: %s", bad_name, extra={"doc": doc, "user": name})
            await ws.close(CloseCode.UNKNOWN_DOCUMENT, bad_name)
            return
        # what the identity says it holds (codes), else the grants of its name; this decides
        # reading only: the gate judges every write by the grants of the name
        permissions = (
            ctx.access.permissions(name, doc_name.project_id)
            if identity.permissions is None
            else frozenset(Permission(p) for p in identity.permissions)
        )
        missing = missing_for_document(permissions, doc_name.kind)
        if missing:
            needs = ", ".join(p.value for p in missing)
            log.info("refused read: needs %s", needs, extra={"doc": doc_name.name, "user": name})
            await ws.close(
                CloseCode.FORBIDDEN, f"{name} may not read {doc_name.name}: needs {needs}"
            )
            return
        try:
            room = await ctx.rooms.get(doc_name)
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
            display_name=identity.display_name or identity.user,
            presence_rate=settings.presence_per_second,
            presence_burst=settings.presence_burst,
        )
        extra = {"doc": doc_name.name, "user": name, "conn": conn.id}
        if isinstance(identity, TokenIdentity) and identity.opening is not None:
            watch.watch(conn, identity.token, identity.opening, doc_name)
        room.join(conn)
        sender = asyncio.create_task(conn.run_sender())
        log.info("connected", extra=extra)
        host.notify("connected", ConnectionInfo(conn.id, doc_name.name, name))
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
            await asyncio.wait({receiver, conn.stop_reading}, return_when=asyncio.FIRST_COMPLETED)
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
            host.notify(
                "disconnected",
                ConnectionInfo(conn.id, doc_name.name, name, conn.close_code, conn.close_reason),
            )
            # The tasks hold the exceptions they ended with (the client leaving, the
            # sender's cancellation), whose tracebacks hold this frame, which holds the
            # tasks: a cycle per connection that only a full collection freed. Let go of
            # them here, and a closed connection is freed by reference counting.
            del receiver, sender

    app.asgi_app = SyncRoute(app.asgi_app, sync)  # type: ignore[method-assign, assignment]
    return app


async def _receive_loop(room, conn: Connection, ws, max_bytes: int, extra: dict) -> None:
    """Read frames until the client leaves or breaks the protocol.

    Each frame is read and handled in a call of its own: a loop's locals outlive the
    iteration, so its last frame and decoded message stayed alive while it waited for the
    next one. After a reconnect storm that was every connection's last presence echo of up
    to 250 entries: 12,900 tracked objects that each full collection walked (bench/README.md,
    "Slow callbacks in the reconnect storm")."""
    while conn.close_code is None and await _receive_one(room, conn, ws, max_bytes, extra):
        pass


async def _receive_one(room, conn: Connection, ws, max_bytes: int, extra: dict) -> bool:
    """Read and handle one frame; False: the connection is to close."""
    frame = await ws.receive()
    conn.last_heard = time.monotonic()
    if len(frame) > max_bytes:
        reason = f"message of {len(frame)} bytes exceeds the limit of {max_bytes}"
        log.warning("closing: %s", reason, extra=extra)
        conn.close(CloseCode.MESSAGE_TOO_BIG, reason)
        return False
    if room.is_presence_echo(frame):
        return True  # presence we sent, sent back (stock y-websocket does): nothing new
    try:
        message = decode_message(frame)
        if isinstance(message, SyncStep1):
            await room.reply_sync_step1(conn, message.state_vector)
        elif isinstance(message, SyncStep2 | SyncUpdate):
            await room.receive_update(conn, message.update, step2=isinstance(message, SyncStep2))
        elif isinstance(message, AwarenessMessage):
            room.receive_awareness(conn, message)
        elif isinstance(message, QueryAwareness):
            conn.send(room.awareness_snapshot())
        elif isinstance(message, TandemMessage):
            pass  # client -> server Tandem messages are reserved for later versions
    except (ProtocolError, NotAnUpdate) as e:
        log.warning("closing on bad message: %s", e, extra=extra)
        conn.close(CloseCode.BAD_MESSAGE, str(e))
        return False
    except UnrevertableUpdate as e:
        log.warning("closing on unrevertable update: %s", e, extra=extra)
        conn.close(CloseCode.UNREVERTABLE, str(e))
        return False
    return True
