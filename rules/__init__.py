"""Permissions and automation: pure logic over doc_model types; I/O only through what callers pass in."""

from .permissions import (
    ALL,
    BUILTIN_ROLES,
    Decision,
    Grant,
    Permission,
    Role,
    UnknownPermission,
    can_read,
    decide,
    effective_permissions,
    parse_permissions,
    resolve_role,
)

__all__ = [
    "ALL",
    "BUILTIN_ROLES",
    "Decision",
    "Grant",
    "Permission",
    "Role",
    "UnknownPermission",
    "can_read",
    "decide",
    "effective_permissions",
    "parse_permissions",
    "resolve_role",
]
