"""Permissions and automation: pure logic over doc_model types; I/O only through what callers pass in."""

from .grants import GrantRefusal, RefusalKind, check_grant_change, is_owner, owners
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
    "GrantRefusal",
    "Permission",
    "RefusalKind",
    "Role",
    "UnknownPermission",
    "can_read",
    "check_grant_change",
    "decide",
    "effective_permissions",
    "is_owner",
    "owners",
    "parse_permissions",
    "resolve_role",
]
