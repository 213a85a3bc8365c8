"""Document names: ``p/<project id>`` and its ``/finance``, ``/resources`` and ``/chat`` siblings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property, lru_cache

PROJECT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN, re.ASCII)
MAX_NAME_LENGTH = 2 + 64 + 10


class DocKind(StrEnum):
    MAIN = "main"
    FINANCE = "finance"
    RESOURCES = "resources"
    CHAT = "chat"


_SUFFIXES = {DocKind.FINANCE: "finance", DocKind.RESOURCES: "resources", DocKind.CHAT: "chat"}
_KINDS_BY_SUFFIX = {suffix: kind for kind, suffix in _SUFFIXES.items()}


class InvalidDocName(ValueError):
    """A document name Tandem does not serve."""


@dataclass(frozen=True)
class DocName:
    project_id: str
    kind: DocKind

    @cached_property
    def name(self) -> str:  # asked per observed change: built once
        return doc_name(self.project_id, self.kind)

    def __str__(self) -> str:
        return self.name


def doc_name(project_id: str, kind: DocKind = DocKind.MAIN) -> str:
    if not _PROJECT_ID.fullmatch(project_id):
        raise InvalidDocName(f"invalid project id {project_id!r}")
    return f"p/{project_id}" if kind is DocKind.MAIN else f"p/{project_id}/{_SUFFIXES[kind]}"


def parse_doc_name(name: str) -> DocName:
    """``p/<id>`` or ``p/<id>/(finance|resources|chat)``; anything else raises InvalidDocName."""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise InvalidDocName("document name is too long")
    return _parse_doc_name(name)


@lru_cache(maxsize=4096)  # observers parse the name of every change they see
def _parse_doc_name(name: str) -> DocName:
    parts = name.split("/")
    if len(parts) not in (2, 3) or parts[0] != "p":
        raise InvalidDocName(
            f"unknown document {name!r}: expected p/<project>, p/<project>/finance,"
            " p/<project>/resources or p/<project>/chat"
        )
    project_id = parts[1]
    if not _PROJECT_ID.fullmatch(project_id):
        raise InvalidDocName(
            f"invalid project id {project_id!r}: 1-64 ASCII letters, digits, '_' or '-'"
        )
    if len(parts) == 2:
        return DocName(project_id, DocKind.MAIN)
    kind = _KINDS_BY_SUFFIX.get(parts[2])
    if kind is None:
        raise InvalidDocName(
            f"unknown document {name!r}: a project has finance, resources and chat documents"
        )
    return DocName(project_id, kind)
