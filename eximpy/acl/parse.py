"""ACL definitions: from configuration lines to statements.

SUMMARY
    read_acl() turns the logical lines of one ACL (from `begin acl`, from an
    ACL file, or inline ACL text) into AclStatement values, with the checks
    and error texts of Exim's acl_read().

DESCRIPTION
    A statement is a verb (accept defer deny discard drop require warn)
    followed by conditions and modifiers, one per logical line, each
    `[!]name = value` (`endpass` takes no value; `set acl_xxx = value`).
    A line that is not a verb continues the previous statement.  A line of
    the form `name:` or a macro definition `NAME = ...` ends the ACL; the
    caller receives that line back.

    Only the conditions and modifiers that Exim 4.96 as built by Debian
    knows are accepted; anything else is a configuration error, as in Exim.

SEE ALSO
    spec chapter 44 "Access control lists", 44.18-44.26.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from eximpy.config.options import readname

VERBS = ("accept", "defer", "deny", "discard", "drop", "require", "warn")

# name -> True when it is a modifier (modifiers cannot be negated).  These
# are the names Exim 4.96 from Debian (exim4-daemon-heavy) accepts.
CONDITIONS: dict[str, bool] = {
    "acl": False,
    "add_header": True,
    "authenticated": False,
    "condition": False,
    "continue": True,
    "control": True,
    "decode": False,
    "delay": True,
    "dkim_signers": False,
    "dkim_status": False,
    "dnslists": False,
    "domains": False,
    "encrypted": False,
    "endpass": True,
    "hosts": False,
    "local_parts": False,
    "log_message": True,
    "log_reject_target": True,
    "logwrite": True,
    "malware": False,
    "message": True,
    "mime_regex": False,
    "queue": True,
    "ratelimit": False,
    "recipients": False,
    "regex": False,
    "remove_header": True,
    "seen": False,
    "sender_domains": False,
    "senders": False,
    "set": True,
    "spam": False,
    "spf": False,
    "spf_guess": False,
    "udpsend": True,
    "verify": False,
}


class AclSyntaxError(Exception):
    """An ACL line Exim would refuse; the text is Exim's error message."""


@dataclass
class AclCondition:
    """One condition or modifier of a statement."""

    name: str
    arg: str | None            # None only for endpass
    negated: bool = False
    varname: str | None = None  # for set: "c0", "m_foo", "dkim_verify_status"

    @property
    def is_modifier(self) -> bool:
        return CONDITIONS[self.name]


@dataclass
class AclStatement:
    """A verb and its conditions/modifiers, in order."""

    verb: str
    conditions: list[AclCondition] = field(default_factory=list)
    lineno: int = 0


def _is_acl_end(line: str) -> bool:
    """True when a line starts a new ACL (`name:`) or defines a macro."""
    s = line.lstrip()
    if s.startswith("!"):
        s = s[1:]
    name, i = readname(s, 0)
    rest = s[i:i + 1]
    return rest == ":" or (name[:1].isupper() and rest == "=")


def read_acl(next_line: Callable[[], tuple[str, int] | None]
             ) -> tuple[list[AclStatement], tuple[str, int] | None]:
    """Read statements until end of input or the start of another ACL.

    ``next_line`` returns (logical line, line number) or None.  Returns the
    statements and the line that ended the ACL (or None at end of input).
    Raises AclSyntaxError with Exim's message.
    """
    statements: list[AclStatement] = []
    this: AclStatement | None = None
    while True:
        item = next_line()
        if item is None:
            return statements, None
        saveline, lineno = item
        if _is_acl_end(saveline):
            return statements, item
        s = saveline
        i = 0
        while i < len(s) and s[i].isspace():
            i += 1
        negated = False
        if i < len(s) and s[i] == "!":
            negated = True
            i += 1
        name, i = readname(s, i)
        if name in VERBS:
            if negated:
                raise AclSyntaxError(f'malformed ACL line "{saveline}"')
            this = AclStatement(name, lineno=lineno)
            statements.append(this)
            if i >= len(s):
                continue
            if s[i] == "!":
                negated = True
                i += 1
            name, i = readname(s, i)
        elif this is None:
            raise AclSyntaxError(
                f'unknown ACL verb "{name}" in "{saveline}"')
        this.conditions.append(_read_condition(s, i, name, negated, saveline,
                                               this.verb))


def _read_condition(s: str, i: int, name: str, negated: bool, saveline: str,
                    verb: str) -> AclCondition:
    if name not in CONDITIONS:
        raise AclSyntaxError(
            f'unknown ACL condition/modifier in "{saveline}"')
    is_modifier = CONDITIONS[name]
    if negated and is_modifier:
        raise AclSyntaxError(
            f'ACL error: negation is not allowed with "{name}"')
    if name == "endpass" and verb not in ("accept", "discard"):
        raise AclSyntaxError(
            f'ACL error: "{name}" is not allowed with "{verb}"')
    cond = AclCondition(name, None, negated)
    if name == "set":
        i = _read_set_name(s, i, cond)
    if name != "endpass":
        if i >= len(s) or s[i] != "=":
            kind = "modifier" if is_modifier else "condition"
            raise AclSyntaxError(f'"=" missing after ACL "{name}" {kind}')
        i += 1
        while i < len(s) and s[i].isspace():
            i += 1
        cond.arg = s[i:]
    return cond


def _read_set_name(s: str, i: int, cond: AclCondition) -> int:
    rest = s[i:]
    for dk in ("dkim_verify_status", "dkim_verify_reason"):
        if rest.startswith(dk):
            end = i + len(dk)
            if end < len(s) and s[end].isascii() and s[end].isalnum():
                raise AclSyntaxError(
                    'invalid variable name after "set" in ACL modifier '
                    f'"set {rest}" (only "dkim_verify_status" or '
                    '"dkim_verify_reason" permitted)')
            cond.varname = dk
            while end < len(s) and s[end].isspace():
                end += 1
            return end
    if not (rest.startswith("acl_c") or rest.startswith("acl_m")):
        raise AclSyntaxError(
            'invalid variable name after "set" in ACL modifier '
            f'"set {rest}" (must start "acl_c" or "acl_m")')
    end = i + 5
    if end >= len(s) or not (s[end].isdigit() or s[end] == "_"):
        raise AclSyntaxError(
            'invalid variable name after "set" in ACL modifier '
            f'"set {rest}" (digit or underscore must follow acl_c or acl_m)')
    while end < len(s) and s[end] != "=" and not s[end].isspace():
        if not (s[end].isascii() and (s[end].isalnum() or s[end] == "_")):
            raise AclSyntaxError(
                f'invalid character "{s[end]}" in variable name in ACL '
                f'modifier "set {rest}"')
        end += 1
    cond.varname = s[i + 4:end]
    while end < len(s) and s[end].isspace():
        end += 1
    return end
