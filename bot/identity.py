"""Kubernetes usernames the bot binds: which are safe to grant, and when two are one person.

A RoleBinding's User subject is matched by name, so a bad name grants the
wrong thing: `system:serviceaccount:ns:name` is that ServiceAccount,
`system:kube-controller-manager` a control-plane component; a name with a
stray space or an invisible character matches nobody or somebody unexpected.
Used by bot.config (identity.map and identity.username_prefix are checked at
start), bot.policy (an approver may not decide a grant to their own identity)
and bot.slack.people (names read from Slack profiles). Pure.
"""

from __future__ import annotations

import unicodedata

RESERVED_PREFIX = "system:"


def username_problem(name: str) -> str | None:
    """Why `name` must not be granted as a Kubernetes user, or None if it may."""
    if not name:
        return "is empty"
    if any(_hidden_or_space(char) for char in name):
        return "contains whitespace or control characters"
    if name.casefold().startswith(RESERVED_PREFIX):
        return (
            f"starts with `{RESERVED_PREFIX}`, which Kubernetes reserves for its own "
            "identities (a User `system:serviceaccount:NS:NAME` is that ServiceAccount)"
        )
    return None


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` must not be put before every username, or None (empty is fine)."""
    if not prefix:
        return None
    return username_problem(prefix)


def same_user(first: str, second: str) -> bool:
    """Whether two usernames name one person; email-like names ignore case."""
    return comparable(first) == comparable(second)


def comparable(name: str) -> str:
    """The form two usernames are compared in."""
    # Mail systems and OIDC providers treat addresses case-insensitively, so
    # Bob@example.com and bob@example.com are one person; other names are exact.
    return name.casefold() if "@" in name else name


def _hidden_or_space(char: str) -> bool:
    """Whitespace, or a control/format/unassigned code point (Unicode category C*)."""
    return char.isspace() or unicodedata.category(char).startswith("C")
