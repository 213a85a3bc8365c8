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
    decide,
    effective_permissions,
    parse_permissions,
    resolve_role,
)
from .reads import READS, ROOT_READS, Read, can_read, document_needs, may_read, missing_for_document

__all__ = [
    "ALL",
    "BUILTIN_ROLES",
    "READS",
    "ROOT_READS",
    "Decision",
    "Grant",
    "GrantRefusal",
    "Permission",
    "Read",
    "RefusalKind",
    "Role",
    "UnknownPermission",
    "can_read",
    "check_grant_change",
    "decide",
    "document_needs",
    "effective_permissions",
    "is_owner",
    "may_read",
    "missing_for_document",
    "owners",
    "parse_permissions",
    "resolve_role",
]
