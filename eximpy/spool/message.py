"""SpoolMessage: the in-memory form of a spooled message's envelope.

SUMMARY
    SpoolMessage, Recipient, Header, NonRecipients (Exim's AVL tree)
    DSN flag constants (NOTIFY_*), DSN_RET_FULL / DSN_RET_HDRS

DESCRIPTION
    One SpoolMessage holds everything the -H file carries: id, originator
    (login, uid, gid), sender, received time (seconds, microseconds, and the
    time reception completed), warning count, the ``-name value`` fields
    (host, interface, HELO, ident, protocol, authentication, TLS, DSN,
    flags), ACL variables, the non-recipients tree, the recipients with
    their DSN / errors_to / one_time parent forms, and the headers with
    their type letters.  receive, delivery and the queue tools share it;
    eximpy.spool.header_file turns it into bytes and back.

    Strings are Python str decoded from UTF-8 with ``surrogateescape``, so
    any byte sequence round-trips; lengths written to the spool are byte
    lengths (:func:`blen`).

    ``tainted`` is the set of field names written with a double hyphen
    (``--helo_name``); ``quoters`` maps a field to the lookup type a value
    was quoted for (``--(pgsql)name``).

SEE ALSO
    spec "Format of spool files"; EXIM-INVENTORY 3.3.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

# Recipient DSN flags as Exim 4.96 stores them in -H (rf_* in Exim).
NOTIFY_NEVER = 0x02
NOTIFY_SUCCESS = 0x04
NOTIFY_FAILURE = 0x08
NOTIFY_DELAY = 0x10
DSN_LASTHOP = 0x20
DSN_RET_FULL = 1
DSN_RET_HDRS = 2

# Header type letters (Exim's htype_*).
HTYPE_OTHER = " "
HTYPE_BCC = "B"
HTYPE_CC = "C"
HTYPE_FROM = "F"
HTYPE_ID = "I"
HTYPE_RECEIVED = "P"
HTYPE_REPLY_TO = "R"
HTYPE_SENDER = "S"
HTYPE_TO = "T"
HTYPE_OLD = "*"

_TYPE_BY_NAME = {
    "bcc": HTYPE_BCC, "cc": HTYPE_CC, "from": HTYPE_FROM,
    "message-id": HTYPE_ID, "received": HTYPE_RECEIVED,
    "reply-to": HTYPE_REPLY_TO, "sender": HTYPE_SENDER, "to": HTYPE_TO,
}


def blen(s: str) -> int:
    """Byte length of a spool string."""
    return len(s.encode("utf-8", "surrogateescape"))


#: Resent-<name> headers typed as <name> (Exim's header_checkname with
#: is_resent).
_RESENT_TYPED = ("bcc", "cc", "from", "message-id", "sender", "to")


def header_type_for(name: str) -> str:
    """The -H type letter Exim gives a header with this name."""
    low = name.strip().lower()
    if low.startswith("resent-") and low[7:] in _RESENT_TYPED:
        low = low[7:]
    return _TYPE_BY_NAME.get(low, HTYPE_OTHER)


@dataclass
class Header:
    """One header line (``text`` includes the name and the final newline)."""

    type: str
    text: str

    @property
    def slen(self) -> int:
        return blen(self.text)

    @property
    def name(self) -> str:
        return self.text.split(":", 1)[0].rstrip()

    @property
    def value(self) -> str:
        return self.text.split(":", 1)[1] if ":" in self.text else ""

    @classmethod
    def make(cls, text: str) -> "Header":
        if not text.endswith("\n"):
            text += "\n"
        return cls(header_type_for(text.split(":", 1)[0].strip()), text)


@dataclass
class Recipient:
    """A recipient line: address plus the optional #3 extension fields."""

    address: str
    pno: int = -1                  # parent number for one_time addresses
    errors_to: str | None = None
    orcpt: str | None = None
    dsn_flags: int = 0

    @property
    def simple(self) -> bool:
        return self.pno < 0 and self.errors_to is None and self.dsn_flags == 0


@dataclass
class _Node:
    name: str
    left: "_Node | None" = None
    right: "_Node | None" = None
    height: int = 1


def _h(n: _Node | None) -> int:
    return n.height if n else 0


def _fix(n: _Node) -> _Node:
    n.height = 1 + max(_h(n.left), _h(n.right))
    return n


def _rot_right(n: _Node) -> _Node:
    l = n.left
    assert l is not None
    n.left, l.right = l.right, n
    _fix(n)
    return _fix(l)


def _rot_left(n: _Node) -> _Node:
    r = n.right
    assert r is not None
    n.right, r.left = r.left, n
    _fix(n)
    return _fix(r)


def _key(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


class NonRecipients:
    """Exim's non-recipients tree: addresses already dealt with.

    A balanced (AVL) binary tree ordered by byte comparison, as Exim's
    tree_insertnode() keeps it, so that inserting in the same order gives
    the same shape -- and the same -H bytes -- as Exim.  A tree read from a
    file keeps the shape it had there.
    """

    def __init__(self) -> None:
        self.root: _Node | None = None
        self._names: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.preorder())

    def __bool__(self) -> bool:
        return self.root is not None

    def add(self, name: str) -> bool:
        """Insert (no-op if present); True if it was added."""
        if name in self._names:
            return False
        self._names.add(name)
        self.root = self._insert(self.root, name)
        return True

    def _insert(self, n: _Node | None, name: str) -> _Node:
        if n is None:
            return _Node(name)
        if _key(name) < _key(n.name):
            n.left = self._insert(n.left, name)
        else:
            n.right = self._insert(n.right, name)
        _fix(n)
        bal = _h(n.left) - _h(n.right)
        if bal > 1:
            assert n.left is not None
            if _key(name) >= _key(n.left.name):
                n.left = _rot_left(n.left)
            return _rot_right(n)
        if bal < -1:
            assert n.right is not None
            if _key(name) < _key(n.right.name):
                n.right = _rot_right(n.right)
            return _rot_left(n)
        return n

    def preorder(self) -> list[str]:
        out: list[str] = []

        def walk(n: _Node | None) -> None:
            if n:
                out.append(n.name)
                walk(n.left)
                walk(n.right)
        walk(self.root)
        return out

    def inorder(self) -> list[str]:
        """Addresses in tree order (sorted), as Exim's tree_walk gives."""
        out: list[str] = []

        def walk(n: _Node | None) -> None:
            if n:
                walk(n.left)
                out.append(n.name)
                walk(n.right)
        walk(self.root)
        return out

    def lines(self) -> list[str]:
        """The -H lines (``YN name``), or ``["XX"]`` for an empty tree."""
        if self.root is None:
            return ["XX"]
        out: list[str] = []

        def walk(n: _Node) -> None:
            out.append(("Y" if n.left else "N") + ("Y" if n.right else "N")
                       + " " + n.name)
            if n.left:
                walk(n.left)
            if n.right:
                walk(n.right)
        walk(self.root)
        return out

    @classmethod
    def from_nodes(cls, root: _Node | None) -> "NonRecipients":
        t = cls()
        t.root = root

        def walk(n: _Node | None) -> int:
            if n is None:
                return 0
            t._names.add(n.name)
            n.height = 1 + max(walk(n.left), walk(n.right))
            return n.height
        walk(root)
        return t


@dataclass
class SpoolMessage:
    """The envelope, status and headers of one spooled message."""

    id: str
    sender: str = ""
    originator_login: str = "root"
    originator_uid: int = 0
    originator_gid: int = 0
    received_time: int = 0
    received_time_usec: int = 0
    received_time_complete: tuple[int, int] | None = None
    warning_count: int = 0

    helo_name: str | None = None
    host_address: str | None = None
    host_port: int = 0
    host_name: str | None = None
    host_auth: str | None = None
    host_auth_pubname: str | None = None
    interface_address: str | None = None
    interface_port: int = 0
    active_hostname: str | None = None
    ident: str | None = None
    received_protocol: str | None = None
    # ACL variables by full name without "acl_": "c_helo", "m0" ...
    acl_vars: dict[str, str] = field(default_factory=dict)
    debug_selector: int | None = None
    debuglog_name: str | None = None
    spool_file_wireformat: bool = False
    body_linecount: int = 0
    max_received_linelength: int = 0
    body_zerocount: int = 0
    auth_id: str | None = None
    auth_sender: str | None = None
    allow_unqualified_recipient: bool = False
    allow_unqualified_sender: bool = False
    deliver_firsttime: bool = False
    frozen: bool = False
    frozen_at: int = 0
    dont_deliver: bool = False            # -N
    host_lookup_deferred: bool = False
    host_lookup_failed: bool = False
    sender_local: bool = False            # -local
    local_error_message: bool = False     # -localerror
    local_scan: str | None = None
    spam_bar: str | None = None
    spam_score: str | None = None
    spam_score_int: str | None = None
    manual_thaw: bool = False
    sender_set_untrusted: bool = False
    tls_certificate_verified: bool = False
    tls_cipher: str | None = None
    tls_peercert: str | None = None
    tls_peerdn: str | None = None
    tls_sni: str | None = None
    tls_ourcert: str | None = None
    tls_ocsp: int | None = None
    tls_resumption: str | None = "A"      # written by a TLS_resume build
    tls_ver: str | None = None
    smtputf8: bool = False
    utf8_downconvert: int = 0             # 1 -utf8_downcvt, -1 -utf8_optdowncvt
    dsn_envid: str | None = None
    dsn_ret: int = 0

    non_recipients: NonRecipients = field(default_factory=NonRecipients)
    recipients: list[Recipient] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)

    tainted: set[str] = field(default_factory=set)
    quoters: dict[str, str] = field(default_factory=dict)
    unknown_lines: list[str] = field(default_factory=list)   # kept, not rewritten

    # Filled in by readers that also look at -D (not part of -H).
    body_size: int | None = None

    # --- derived values ------------------------------------------------
    @property
    def header_size(self) -> int:
        """Bytes of transmitted headers (type ``*`` ones excluded)."""
        return sum(h.slen for h in self.headers if h.type != HTYPE_OLD)

    @property
    def message_size(self) -> int:
        """Exim's $message_size: headers + body + 1 (needs body_size)."""
        return self.header_size + (self.body_size or 0) + 1

    @property
    def linecount(self) -> int:
        n = sum(h.text.count("\n") for h in self.headers
                if h.type != HTYPE_OLD)
        return n + self.body_linecount

    def header(self, name: str) -> Header | None:
        low = name.lower()
        for h in self.headers:
            if h.type != HTYPE_OLD and h.name.lower() == low:
                return h
        return None

    def undelivered(self) -> list[Recipient]:
        return [r for r in self.recipients
                if r.address not in self.non_recipients]

    def is_delivered(self, address: str) -> bool:
        return address in self.non_recipients


def mark_tainted_acl_vars(msg: "SpoolMessage") -> None:
    """Record which ACL variable values are tainted: Exim writes those as
    "--aclc"/"--aclm" lines in the -H file."""
    from eximpy.expand.taint import is_tainted
    for name, value in msg.acl_vars.items():
        if is_tainted(value):
            msg.tainted.add("acl_" + name)
