"""The ``tandem`` command. Every subcommand takes ``--db FILE`` or ``--storage URL`` (a
PostgreSQL database) and works while a server runs on it."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import socket
import sqlite3
import sys
import time
from pathlib import Path

from doc_model.schema import ROLE_PATTERN
from sync_server.identity import accounts
from sync_server.shell.settings import Settings, default_db_path, storage_target
from sync_server.storage.database import open_database
from sync_server.storage.postgres import is_postgres

ROLES = ("owner", "manager", "member", "viewer", "finance")


class CliError(Exception):
    """A message for the person at the terminal; exit status 2."""


def _db_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db",
        default=None,
        metavar="FILE",
        help="SQLite database file (default: $TANDEM_STORAGE, else $TANDEM_DB, else ./tandem.db)",
    )
    parent.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="where Tandem stores everything: postgresql://USER@HOST:PORT/DB, or"
        " sqlite:///FILE (the same as --db FILE)",
    )
    return parent


def storage_of(args: argparse.Namespace) -> str:
    """The storage a command works on: --storage or --db (not both), else the default."""
    db, storage = getattr(args, "db", None), getattr(args, "storage", None)
    if db and storage:
        raise CliError("give --db or --storage, not both")
    try:
        if storage:
            return storage_target(storage)
        return db or default_db_path()
    except ValueError as e:
        raise CliError(str(e)) from e


def build_parser() -> argparse.ArgumentParser:
    db = _db_parent()
    parser = argparse.ArgumentParser(prog="tandem", description="Tandem sync server and admin tool")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[db], help="run the sync server")
    serve.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--log-format", choices=("text", "json"), default=None)
    serve.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="load an extension (a class or object in an importable module); repeatable,"
        " after the built-in ones, the tandem.extensions entry points and $TANDEM_EXTENSIONS",
    )
    serve.add_argument(
        "--redis",
        default=None,
        metavar="redis://HOST:PORT/N",
        help="run as one of several servers on the same storage: updates, presence and the"
        " change-feed consumers' leases go through this Redis (default $TANDEM_REDIS; none:"
        " a single server)",
    )

    demo = sub.add_parser("demo", parents=[db], help="seed the demo project (owner: user 'demo')")
    demo.add_argument("--project", default="demo", help="project id (default: demo)")
    demo.add_argument("--tasks", type=int, default=300, help="number of tasks (default 300)")

    doctor = sub.add_parser(
        "doctor", parents=[db], help="verify every stored document (checksums, decoding)"
    )
    doctor.add_argument(
        "--recover",
        action="store_true",
        help="move each damaged update and the ones after it out of its document's log"
        " (into quarantined_updates), keeping the document up to its last good update",
    )

    copy = sub.add_parser(
        "migrate-storage",
        help="copy every table and document to another storage (SQLite to PostgreSQL) and"
        " verify the copy",
        description="Copies every table (documents' snapshots and logs byte for byte) from"
        " one consistent read of --from, then compares every document's state vector and"
        " content and every table's row count. A server may run on --from meanwhile; what"
        " it writes after the read is not copied: stop it before the copy you switch to.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="STORAGE")
    copy.add_argument(
        "--to", dest="target", required=True, metavar="STORAGE", help="postgresql://..."
    )
    copy.add_argument(
        "--replace",
        action="store_true",
        help="the target holds data: delete it and copy over it (default: refuse)",
    )

    user = sub.add_parser("user", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create = user.add_parser("create", parents=[db], help="add an account")
    create.add_argument("name")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    create.add_argument("--display-name", default="")
    create.add_argument("--project", help="also grant a role on this project")
    create.add_argument("--role", choices=ROLES, help="role on --project (default member)")
    create.add_argument("--email", help="the account's e-mail address (rule e-mails, digest)")
    user.add_parser("list", parents=[db], help="list accounts")
    set_email = user.add_parser(
        "set-email", parents=[db], help="set (or with --clear, remove) an account's e-mail address"
    )
    set_email.add_argument("name")
    set_email.add_argument("address", nargs="?")
    set_email.add_argument("--clear", action="store_true", help="remove the address")
    set_email.add_argument(
        "--digest", choices=accounts.DIGEST_CHOICES, help="the daily digest: daily or off"
    )

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    tcreate = token.add_parser("create", parents=[db], help="print a new API token (last line)")
    tcreate.add_argument("user")
    tcreate.add_argument("--label", default="")
    tcreate.add_argument(
        "--expires-in",
        type=float,
        default=None,
        metavar="DAYS",
        help="the token stops working this many days from now (default: until revoked)",
    )
    tlist = token.add_parser("list", parents=[db], help="list a user's tokens")
    tlist.add_argument("user")
    trevoke = token.add_parser("revoke", parents=[db], help="revoke a token by id")
    trevoke.add_argument("id", type=int)
    role = sub.add_parser("role", help="manage custom roles").add_subparsers(
        dest="action", required=True
    )
    rcreate = role.add_parser(
        "create", parents=[db], help="add a custom role, global unless --project is given"
    )
    rcreate.add_argument("name")
    rcreate.add_argument("--permissions", required=True, help="comma-separated permission codes")
    rcreate.add_argument("--description", default="")
    rcreate.add_argument("--project", help="only for this project (default: every project)")
    rlist = role.add_parser("list", parents=[db], help="list roles (built-in and custom)")
    rlist.add_argument("--project", help="include this project's own roles")
    rdelete = role.add_parser("delete", parents=[db], help="delete a custom role")
    rdelete.add_argument("name")
    rdelete.add_argument("--project", help="a project's role (default: a global one)")
    webhook = sub.add_parser(
        "webhook", help="inbound webhook endpoints (GitHub, GitLab, Bitbucket)"
    ).add_subparsers(dest="action", required=True)
    wcreate = webhook.add_parser(
        "create",
        parents=[db],
        help="a new endpoint: prints its path, and its secret on the last line",
    )
    wcreate.add_argument("provider", choices=("github", "gitlab", "bitbucket"))
    wcreate.add_argument("--project", required=True)
    wlist = webhook.add_parser("list", parents=[db], help="a project's endpoints")
    wlist.add_argument("--project", required=True)
    wdelete = webhook.add_parser("delete", parents=[db], help="delete an endpoint by id")
    wdelete.add_argument("id")
    secrets = sub.add_parser(
        "secrets", help="the encrypted secrets (webhook secrets, tokens, channel URLs)"
    ).add_subparsers(dest="action", required=True)
    secrets.add_parser(
        "rotate",
        parents=[db],
        help="encrypt every secret again with the first key of TANDEM_SECRET_KEY (then the"
        " old keys after it can be removed)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            if sys.stdout is not None:  # (None: started with its standard output closed)
                sys.stdout.flush()  # a reader that went away shows here, not at exit
    except BrokenPipeError:
        # whoever read the output stopped early (`tandem token create ann | head -0`): say
        # so in one line, without a traceback; what the command did (a token created) stays
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("tandem: the output was closed before all of it was written", file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args, storage_of(args))
    except (CliError, accounts.AccountError) as e:
        print(f"tandem: {e}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:  # the storage cannot be opened or reached (PostgreSQL down)
        print(f"tandem: the storage failed: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _check_listen(host: str, port: int) -> None:
    """Refuse, before anything starts, an address the server could not listen on (a port out
    of range, a host that does not resolve here, a port another process listens on): the
    server binds only after its startup, where it would end in a traceback."""
    if not 0 <= port <= 65535:
        raise CliError(f"--port must be 0-65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise CliError(f"cannot listen on {host!r}: {e.strerror}") from e
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as e:
            raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


def _dispatch(args: argparse.Namespace, db_path: str) -> int:
    if args.command == "serve":
        from sync_server.extensions.host import ExtensionError, ExtensionHost
        from sync_server.extensions.loading import parse_specs, third_party_extensions
        from sync_server.shell.logs import configure_logging
        from sync_server.shell.serve import run

        settings = Settings.from_env(
            db=db_path, host=args.host, port=args.port, log_format=args.log_format, redis=args.redis
        )
        try:
            settings.check_redis()
        except ValueError as e:
            raise CliError(str(e)) from e
        _check_listen(settings.host, settings.port)
        if not 0 <= settings.digest_hour <= 23:
            raise CliError(
                f"TANDEM_DIGEST_HOUR must be an hour 0-23 (UTC), not {settings.digest_hour}"
            )
        settings.extensions = ",".join([*parse_specs(settings.extensions), *args.extension])
        configure_logging(settings.log_level, settings.log_format)
        try:  # a bad spec is a usage error, reported before anything starts
            third_party = third_party_extensions(settings.extensions)
            ExtensionHost(third_party)  # refuses two extensions of one name
        except ExtensionError as e:
            raise CliError(str(e)) from e
        if is_postgres(settings.db):  # said plainly before anything starts
            from sync_server.storage.postgres import PgConnection, display_target

            try:
                PgConnection(settings.db).close()
            except sqlite3.Error as e:
                raise CliError(f"cannot reach {display_target(settings.db)}: {e}") from e
        run(settings, third_party)
        return 0
    if args.command == "demo":
        from sync_server.shell.demo import seed_demo

        if args.tasks < 1 or args.tasks > 100_000:
            raise CliError("--tasks must be between 1 and 100000")
        print(asyncio.run(seed_demo(db_path, project_id=args.project, task_count=args.tasks)))
        return 0
    if args.command == "migrate-storage":
        return _migrate_storage(args)
    if args.command == "doctor" and not is_postgres(db_path) and not Path(db_path).exists():
        raise CliError(f"no database file {db_path!r}")
    conn = open_database(db_path).conn
    try:
        if args.command == "doctor":
            return _doctor(conn, args.recover)
        if args.command == "user" and args.action == "create":
            return _user_create(conn, db_path, args)
        if args.command == "user" and args.action == "set-email":
            return _user_set_email(conn, args)
        if args.command == "user" and args.action == "list":
            for row in conn.execute("SELECT name, display_name FROM users ORDER BY name"):
                print(f"{row[0]}\t{row[1]}")
            return 0
        if args.command == "token" and args.action == "create":
            print(accounts.create_token(conn, args.user, args.label, args.expires_in))
            return 0
        if args.command == "token" and args.action == "list":
            if accounts.get_user(conn, args.user) is None:
                raise CliError(f"no user named {args.user!r}")
            for t in accounts.list_tokens(conn, args.user):
                used = (
                    time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.last_used_at))
                    if t.last_used_at
                    else "never"
                )
                if t.revoked_at:
                    state = "revoked"
                elif t.expires_at is not None and t.expires_at <= time.time():
                    state = "expired"
                elif t.expires_at is not None:
                    state = "expires " + time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.expires_at))
                else:
                    state = "active"
                print(f"{t.id}\t{state}\tlast used {used}\t{t.label}")
            return 0
        if args.command == "token" and args.action == "revoke":
            if not accounts.revoke_token(conn, args.id):
                raise CliError(f"no active token with id {args.id}")
            print(f"revoked token {args.id}")
            return 0
        if args.command == "role":
            return _role(conn, args)
        if args.command == "webhook":
            return _webhook(conn, args)
        if args.command == "secrets":
            return _secrets(conn, args)
    finally:
        conn.close()
    raise CliError("unknown command")


def _migrate_storage(args: argparse.Namespace) -> int:
    import os

    from sync_server.storage.copy import CopyError, copy_storage

    try:
        source, target = storage_target(args.source), storage_target(args.target)
    except ValueError as e:
        raise CliError(str(e)) from e
    try:
        report = copy_storage(
            source,
            target,
            replace=args.replace,
            secret_key_configured=bool(os.environ.get("TANDEM_SECRET_KEY", "").strip()),
            progress=print,
        )
    except CopyError as e:
        raise CliError(str(e)) from e
    except sqlite3.Error as e:
        raise CliError(f"the copy failed (nothing of it was kept): {e}") from e
    print(report.describe())
    return 0


def _doctor(conn, recover: bool) -> int:
    """Exit status 0: every document is sound (after recovery, if asked); 1: some is not."""
    from sync_server.storage import doctor

    names = doctor.document_names(conn)
    damaged = 0
    for name in names:
        report = doctor.check_document(conn, name)
        print(report.describe())
        if report.ok:
            continue
        if recover and not report.snapshot_bad:
            moved = doctor.recover(conn, report)
            after = doctor.check_document(conn, name)
            print(
                f"{name}: recovered: {moved} update(s) moved to quarantined_updates;"
                f" now {after.describe().split(': ', 1)[1]}"
            )
            if after.ok:
                continue
        damaged += 1
    print(f"{len(names)} document(s) checked, {damaged} damaged")
    return 1 if damaged else 0


def _role(conn, args: argparse.Namespace) -> int:
    from rules import BUILTIN_ROLES, Role, UnknownPermission, parse_permissions
    from sync_server.identity import access

    if args.action == "list":
        roles = list(BUILTIN_ROLES.values()) + access.custom_roles(conn, args.project)
        for r in roles:
            where = "built-in" if r.builtin else (f"project {r.project}" if r.project else "global")
            print(f"{r.name}\t{where}\t{','.join(sorted(p.value for p in r.permissions))}")
        return 0
    try:
        if args.action == "create":
            codes = [c.strip() for c in args.permissions.split(",") if c.strip()]
            try:
                perms = parse_permissions(codes)
            except UnknownPermission as e:
                raise CliError(str(e)) from e
            if not re.fullmatch(ROLE_PATTERN, args.name):
                raise CliError(
                    f"invalid role name {args.name!r}: lowercase letters, digits, - and _"
                )
            access.create_role(
                conn, Role(args.name, perms, args.description, args.project), "system:cli"
            )
            print(
                f"created role {args.name} ({'project ' + args.project if args.project else 'global'})"
            )
            return 0
        access.delete_role(conn, args.project, args.name, "system:cli")
        print(f"deleted role {args.name}")
        return 0
    except access.AccessError as e:
        raise CliError(str(e)) from e


def _secret_keys(conn):
    """The keys the server encrypts secrets with (TANDEM_SECRET_KEY, else <db>.key)."""
    from integrations.secrets import load_keys

    path = next(r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main")
    try:
        return load_keys(path, Settings.from_env().secret_key)
    except ValueError as e:
        raise CliError(str(e)) from e


def _secrets(conn, args: argparse.Namespace) -> int:
    from integrations.secrets import SecretUnreadable, store_on

    try:
        count = store_on(conn, _secret_keys(conn)).reencrypt_sync()
    except SecretUnreadable as e:
        raise CliError(f"{e}; nothing was changed") from e
    print(f"{count} secret(s) encrypted again with the first key of TANDEM_SECRET_KEY")
    return 0


def _webhook(conn, args: argparse.Namespace) -> int:
    from sync_server.extensions import webhook_store
    from sync_server.identity import access, projects

    try:
        if args.action == "create":
            if projects.get_project(conn, args.project) is None:
                raise CliError(f"no project {args.project!r}")
            endpoint, secret = webhook_store.create_endpoint(
                conn, _secret_keys(conn), args.provider, args.project, access.ADMIN, access.ADMIN
            )
            print(
                f"created {endpoint.provider} webhook endpoint {endpoint.id} for project"
                f" {endpoint.project}, acting as {endpoint.identity}; its path (after the"
                " server's address) and its secret (shown only now):"
            )
            print(endpoint.path)
            print(secret)
            return 0
        if args.action == "list":
            for e in webhook_store.list_endpoints(conn, args.project):
                last = (
                    time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.last_delivery_at))
                    if e.last_delivery_at
                    else "never"
                )
                print(f"{e.id}\t{e.provider}\t{e.path}\tlast delivery {last}")
            return 0
        if not webhook_store.delete_endpoint(conn, args.id, access.ADMIN):
            raise CliError(f"no webhook endpoint {args.id!r}")
        print(f"deleted webhook endpoint {args.id}")
        return 0
    except access.AccessError as e:
        raise CliError(str(e)) from e


def _user_create(conn, db_path: str, args: argparse.Namespace) -> int:
    if args.role and not args.project:
        raise CliError("--role needs --project")
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin given but no password on standard input")
    elif sys.stdin.isatty():
        password = (
            getpass.getpass(f"password for {args.name} (empty: token-only account): ") or None
        )
    accounts.validate_username(args.name)
    email = accounts.normalize_email(args.email) if args.email is not None else None
    if args.project:
        from doc_model import InvalidDocName, parse_doc_name
        from rules import Grant
        from sync_server.identity import access

        try:
            parse_doc_name(f"p/{args.project}")
        except InvalidDocName as e:
            raise CliError(str(e)) from e
        role = args.role or "member"
        try:  # the grant rule first, so a refused grant creates no account either
            access.change_grant(
                conn,
                args.project,
                args.name,
                Grant(args.name, args.project, role),
                access.ADMIN,
                dry_run=True,
            )
        except access.AccessError as e:
            raise CliError(str(e)) from e
    user = accounts.create_user(conn, args.name, password, args.display_name)
    if email is not None:
        accounts.set_email(conn, user.name, email)
    print(f"created user {user.name}" + (f" <{email}>" if email else ""))
    if args.project:
        from sync_server.identity import access
        from sync_server.shell.demo import grant_project_role

        try:
            asyncio.run(grant_project_role(db_path, args.project, user.name, args.role or "member"))
        except access.AccessError as e:  # the grants changed since the check above
            raise CliError(f"created user {user.name}, but not the grant: {e}") from e
        print(f"granted {args.role or 'member'} on project {args.project}")
    return 0


def _user_set_email(conn, args: argparse.Namespace) -> int:
    if args.clear and args.address is not None:
        raise CliError("give an ADDRESS or --clear, not both")
    if not args.clear and args.address is None and not args.digest:
        raise CliError("give an ADDRESS, --clear or --digest")
    if accounts.get_user(conn, args.name) is None:
        raise CliError(f"no user named {args.name!r}")
    if args.clear or args.address is not None:
        accounts.set_email(conn, args.name, None if args.clear else args.address)
    if args.digest:
        accounts.set_digest(conn, args.name, args.digest)
    profile = accounts.get_profile(conn, args.name)
    assert profile is not None
    print(f"{profile.name}\t{profile.email or '(no address)'}\tdigest {profile.digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
