"""An outbox delivery worker on a database file, running until it is killed (test_outbox's
``kill -9`` test): ``python -m tests.outbox_worker DB``. Prints ``started`` once the worker
runs. Outbound calls may reach 127.0.0.1 (the test's receiver)."""

from __future__ import annotations

import asyncio
import sys

from integrations.outbound import OutboundPolicy
from integrations.outbox import Outbox, OutboxConfig
from integrations.secrets import SecretStore, load_keys
from integrations.senders import Senders
from sync_server.storage.database import SQLiteWorker, connect, open_database


async def main(db: str) -> None:
    open_database(db).conn.close()
    worker = SQLiteWorker(connect(db))
    outbox = Outbox(
        worker,
        SecretStore(worker, load_keys(db)),
        Senders(OutboundPolicy(allow_private=True, timeout=30.0), concurrency=8),
        OutboxConfig(batch=8, poll_seconds=0.1, backoff_base=0.2, backoff_cap=1.0),
    )
    await outbox.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
