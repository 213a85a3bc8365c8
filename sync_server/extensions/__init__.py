"""The extension surface: everything that reacts to documents (activity, notifications,
automation, integrations) is an :class:`Extension` loaded by the app factory."""

from sync_server.extensions.protocol import (
    AuthRequest,
    ConnectionInfo,
    EditOutcome,
    EditRefused,
    Extension,
    Identity,
    Rejection,
    ServerContext,
)

__all__ = [
    "AuthRequest",
    "ConnectionInfo",
    "EditOutcome",
    "EditRefused",
    "Extension",
    "Identity",
    "Rejection",
    "ServerContext",
]
