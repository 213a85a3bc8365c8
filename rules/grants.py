"""Who may change whose grant: the one rule every path that changes grants goes through. Pure.

A change to a project's grants (setting one, removing one, or changing a role
that grants use) is judged on every member's effective permissions before
and after it:

- the caller may not touch anyone who holds a permission the caller lacks
  (a manager cannot demote or remove the owner);
- the caller may not leave anyone holding a permission the caller lacks
  (nobody grants more than they hold);
- a project that had an owner keeps at least one (nobody, the last owner
  included, leaves a project that no one can delete or fully manage), and a
  project's first grant makes an owner. (A project that has members but no
  owner, from before this rule, can still be changed; it cannot get worse.)

An *owner* is anyone holding every permission (:data:`ALL`): the built-in
``owner`` role, or a custom role or grant that adds up to the same. Only an
owner can give back any permission a project could ever lose, which is why
the project must keep one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .permissions import ALL, Permission

Perms = frozenset[Permission]


class RefusalKind(StrEnum):
    EXCEEDS_CALLER = "exceeds_caller"  # touches or grants permissions the caller lacks
    LAST_OWNER = "last_owner"  # would leave the project without an owner


@dataclass(frozen=True)
class GrantRefusal:
    kind: RefusalKind
    reason: str
    user: str  # whose grant the refusal is about
    permissions: tuple[Permission, ...] = ()  # the permissions the caller lacks, if that is why


def is_owner(perms: Perms) -> bool:
    return perms >= ALL


def owners(members: Mapping[str, Perms]) -> list[str]:
    return sorted(user for user, perms in members.items() if is_owner(perms))


def _codes(perms: frozenset[Permission]) -> tuple[Permission, ...]:
    return tuple(sorted(perms))


def check_grant_change(
    caller: str,
    caller_perms: Perms,
    before: Mapping[str, Perms],
    after: Mapping[str, Perms],
) -> GrantRefusal | None:
    """None if ``caller`` (holding ``caller_perms`` on the project) may turn the project's
    members' effective permissions ``before`` into ``after``; else why not.

    Members missing from a mapping hold no grant. Server-side administration (the CLI)
    passes :data:`ALL` as ``caller_perms``: it may touch anyone, but the project still
    keeps an owner.
    """
    for user in sorted(set(before) | set(after)):
        old, new = before.get(user, frozenset()), after.get(user, frozenset())
        if old == new:
            continue
        lacking = old - caller_perms
        if lacking:
            codes = ", ".join(p.value for p in _codes(lacking))
            return GrantRefusal(
                RefusalKind.EXCEEDS_CALLER,
                f"{caller} may not change the access of {user}, who holds permissions"
                f" {caller} lacks: {codes}",
                user,
                _codes(lacking),
            )
        lacking = new - caller_perms
        if lacking:
            codes = ", ".join(p.value for p in _codes(lacking))
            return GrantRefusal(
                RefusalKind.EXCEEDS_CALLER,
                f"{caller} may not grant permissions they do not hold: {codes}",
                user,
                _codes(lacking),
            )
    had, has = owners(before), owners(after)
    if had and not has:
        return GrantRefusal(
            RefusalKind.LAST_OWNER,
            f"the project must keep an owner (someone holding every permission): changing"
            f" {had[0]} would leave it with none; make someone else owner first",
            had[0],
        )
    if not before and after and not has:
        first = sorted(after)[0]
        return GrantRefusal(
            RefusalKind.LAST_OWNER,
            f"a project's first grant must make an owner (someone holding every permission);"
            f" {first} would not be one",
            first,
        )
    return None
