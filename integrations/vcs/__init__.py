"""Inbound webhooks of version control hosts (GitHub, GitLab, Bitbucket). Pure: no I/O.

    signatures.py  each provider's signature / token check, in constant time
    models.py      pydantic models of the providers' event payloads (lenient about extras)
    keys.py        task keys and closing words ("fixes TDM-42") in commit messages and titles
    activity.py    a delivery -> what it means for tasks: links to add, keys to close

The server side (endpoints, deliveries, writing through ``ctx.edit``) is
``sync_server.extensions.vcs`` and ``sync_server.api.webhooks``.
"""

from .activity import Activity, Delivery, LinkMention, activity_of
from .keys import closing_keys, mentioned_keys
from .signatures import PROVIDERS, Provider, delivery_id, sign_github, verify

__all__ = [
    "PROVIDERS",
    "Activity",
    "Delivery",
    "LinkMention",
    "Provider",
    "activity_of",
    "closing_keys",
    "delivery_id",
    "mentioned_keys",
    "sign_github",
    "verify",
]
