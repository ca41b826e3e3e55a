"""Option types, option tables and option values, as Exim's readconf.c has them.

SUMMARY
    OptType names every kind of value an Exim option can hold (Exim's
    opt_stringptr, opt_int, opt_mkint, opt_Kint, opt_time, opt_bool ...).
    OptionSpec describes one option (name, type, default); OptionTable is a
    sorted tuple of them (Exim's optionlist arrays, searched in order);
    OptionStore holds the values of one table for the main section or for
    one driver instance's generic or private options.

DESCRIPTION
    OptionStore.set_from_line() takes one logical configuration line
    ("hide foo = bar", "no_foo", "foo = 2d", "foo=1K") and parses it with
    Exim 4.96's rules (readconf_handle_option), raising ConfigError with
    Exim's wording for every malformed value.  OptionStore.format() gives
    the line(s) `exim -bP` prints for an option (print_ol).

    Values are stored already parsed:
        STRING, REWRITE        str | None
        INT, MKINT, OCTINT     int
        KINT                   int, in K (Exim 4.96 keeps it as a 64-bit count
                               of kilobytes; no suffix means K)
        FIXED                  int, thousandths (1.5 -> 1500); -1 = unset
        TIME                   int, seconds
        TIMELIST               tuple[int, ...] of seconds
        BOOL*                  bool
        EXPAND_BOOL            bool, or str when the value holds a "$"
        UID, GID               int | None (None = unset)
        EXPAND_UID/GID         int | str | None (str when it holds a "$")
        UIDLIST, GIDLIST       tuple[int, ...] | None
        TIME_OR_EXPAND         int seconds, or str starting with "$"
                               (smtp_receive_timeout, an opt_func in Exim)

    A default may be a Computed(key) marker: the value is worked out when
    first asked for, by the resolver the store was given (main section:
    eximpy.config.main_options.compute_default).

SECURITY
    Values are configuration text, trusted as far as the configuration file
    is.  "hide" marks an option whose value -bP shows only to admin users.

SEE ALSO
    spec chapter 6 "The Exim run time configuration file" (6.13-6.20 option
    value syntax); Exim readconf.c readconf_handle_option(), print_ol(),
    readconf_readtime(), readconf_printtime().
"""
from __future__ import annotations

import enum
import grp
import pwd
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from eximpy.errors import ConfigError, SourcePos

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

HIDDEN_TEXT = "<value not displayable>"


class OptType(enum.Enum):
    """Exim's option types (the opt_* constants of readconf.c)."""

    STRING = "opt_stringptr"
    INT = "opt_int"
    OCTINT = "opt_octint"
    MKINT = "opt_mkint"        # int printed with K/M suffix
    KINT = "opt_Kint"          # kilobytes, 64-bit, printed with K/M/G/T
    FIXED = "opt_fixed"        # three decimals
    TIME = "opt_time"
    TIMELIST = "opt_timelist"
    BOOL = "opt_bool"
    BOOL_VERIFY = "opt_bool_verify"   # sets x_sender and x_recipient too
    BOOL_SET = "opt_bool_set"  # bool whose "was set" is remembered
    EXPAND_BOOL = "opt_expand_bool"
    UID = "opt_uid"
    GID = "opt_gid"
    EXPAND_UID = "opt_expand_uid"
    EXPAND_GID = "opt_expand_gid"
    UIDLIST = "opt_uidlist"
    GIDLIST = "opt_gidlist"
    REWRITE = "opt_rewrite"
    TIME_OR_EXPAND = "opt_func:smtp_receive_timeout"

    @property
    def is_bool(self) -> bool:
        return self in _BOOL_TYPES


_BOOL_TYPES = frozenset({OptType.BOOL, OptType.BOOL_VERIFY, OptType.BOOL_SET,
                         OptType.EXPAND_BOOL})
_STRINGISH = frozenset({OptType.STRING, OptType.UID, OptType.GID,
                        OptType.EXPAND_UID, OptType.EXPAND_GID,
                        OptType.UIDLIST, OptType.GIDLIST, OptType.REWRITE})


@dataclass(frozen=True)
class Computed:
    """A default that is computed at start-up (e.g. primary_hostname)."""

    key: str


@dataclass(frozen=True)
class OptionSpec:
    """One option: its name, type and default.

    ``expanded``: the value is string-expanded when used (manual "string*").
    ``implemented``: eximpy really uses the option (else it is "known, not
    implemented", listed by -bV).  ``hidden``: an obsolete synonym or internal
    entry that -bP does not list (Exim's opt_hidden).  ``repeat``: "con" for
    Exim's opt_rep_con (repeated settings are and-ed: router `condition`),
    "str" for opt_rep_str (repeated settings are joined into one list:
    headers_add / headers_remove).  ``maxcount``: the most values a TIMELIST
    holds.  ``alias``: this hidden entry is an old name that sets another
    option (Exim points both entries at one variable).
    """

    name: str
    type: OptType
    default: Any = None
    expanded: bool = False
    implemented: bool = False
    hidden: bool = False
    repeat: str = ""
    maxcount: int = 0
    alias: str = ""


class OptionTable:
    """A sorted, duplicate-free tuple of OptionSpec (Exim's optionlist)."""

    def __init__(self, specs: tuple[OptionSpec, ...] | list[OptionSpec]) -> None:
        self.specs: tuple[OptionSpec, ...] = tuple(specs)
        self._by_name = {s.name: s for s in self.specs}
        self.check()

    def check(self) -> None:
        """Raise ValueError unless the table is sorted (byte order) and unique."""
        names = [s.name for s in self.specs]
        for a, b in zip(names, names[1:]):
            if a.encode() >= b.encode():
                raise ValueError(f"option table not sorted/unique at {a!r}, {b!r}")
        for s in self.specs:
            if not isinstance(s.type, OptType):
                raise ValueError(f"option {s.name!r} has no valid type")

    def get(self, name: str) -> OptionSpec | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[OptionSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return [s.name for s in self.specs]


# --------------------------------------------------------------------------
# Low-level readers, following readconf.c and string.c.

def _isspace(c: str) -> bool:
    return c in " \t\n\r\f\v"


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _isalnum(c: str) -> bool:
    return _isalpha(c) or _isdigit(c)


def extra_chars_message(rest: str, t1: str, t2: str, t3: str) -> str:
    """Exim's extra_chars_error() text."""
    comment = " (# is comment only at line start)" if rest.startswith("#") else ""
    return f"extra characters follow {t1}{t2}{t3}{comment}"


def _byte(v: int) -> str:
    """One byte as a character: ASCII as itself, 0x80-0xFF as the
    surrogate-escape character that encodes back to that byte (text read
    from a configuration file is UTF-8 with surrogateescape)."""
    v &= 0xFF
    return chr(v) if v < 0x80 else chr(0xDC00 + v)


def interpret_escape(s: str, i: int) -> tuple[str, int]:
    """string_interpret_escape(): decode the escape whose backslash is s[i].

    Returns the character and the index of the last character used.
    """
    if i + 1 >= len(s):
        return "\\", i
    i += 1
    c = s[i]
    if "0" <= c <= "7":
        v = ord(c) - 48
        if i + 1 < len(s) and "0" <= s[i + 1] <= "7":
            i += 1
            v = v * 8 + ord(s[i]) - 48
            if i + 1 < len(s) and "0" <= s[i + 1] <= "7":
                i += 1
                v = v * 8 + ord(s[i]) - 48
        return _byte(v), i
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    if c in simple:
        return simple[c], i
    if c == "x":
        v = 0
        hexd = "0123456789abcdefABCDEF"
        if i + 1 < len(s) and s[i + 1] in hexd:
            i += 1
            v = int(s[i], 16)
            if i + 1 < len(s) and s[i + 1] in hexd:
                i += 1
                v = v * 16 + int(s[i], 16)
        return _byte(v), i
    return c, i


def dequote(s: str, i: int = 0) -> tuple[str, int]:
    """string_dequote(): a quoted string or a word from s[i:].

    Returns the text (cut at a NUL, as a C string is) and the index after
    what was consumed.
    """
    out: list[str] = []
    if i < len(s) and s[i] == '"':
        i += 1
        while i < len(s) and s[i] != '"':
            if s[i] == "\\":
                ch, i = interpret_escape(s, i)
                out.append(ch)
            else:
                out.append(s[i])
            i += 1
        if i < len(s):
            i += 1
    else:
        while i < len(s) and not _isspace(s[i]):
            if s[i] == "\\":
                ch, i = interpret_escape(s, i)
                out.append(ch)
            else:
                out.append(s[i])
            i += 1
    text = "".join(out)
    nul = text.find("\0")
    return (text if nul < 0 else text[:nul]), i


def read_string(s: str, name: str, pos: SourcePos | None) -> str:
    """readconf.c read_string(): verbatim, or de-quoted when s starts with '"'."""
    if not s.startswith('"'):
        return s
    value, end = dequote(s, 0)
    if end == 1 or s[end - 1] != '"':
        raise ConfigError(f"missing quote at end of string value for {name}", pos)
    if end < len(s):
        raise ConfigError(extra_chars_message(s[end:], "string value for ",
                                              name, ""), pos)
    return value


def readname(s: str, i: int = 0, maxlen: int = 63) -> tuple[str, int]:
    """readconf_readname(): skip space, read [A-Za-z][A-Za-z0-9_]*, skip space."""
    while i < len(s) and _isspace(s[i]):
        i += 1
    start = i
    if i < len(s) and _isalpha(s[i]):
        while i < len(s) and (_isalnum(s[i]) or s[i] == "_"):
            i += 1
    name = s[start:i][:maxlen]
    while i < len(s) and _isspace(s[i]):
        i += 1
    return name, i


def _c_strtol(s: str, i: int, base: int) -> tuple[int | None, int, bool]:
    """C strtol(): (value or None when no digits, end index, overflow)."""
    j = i
    while j < len(s) and _isspace(s[j]):
        j += 1
    neg = False
    if j < len(s) and s[j] in "+-":
        neg = s[j] == "-"
        j += 1
    digits = "01234567"
    if base == 0:
        if s[j:j + 2].lower() == "0x" and j + 2 < len(s) and \
                s[j + 2] in "0123456789abcdefABCDEF":
            base, j = 16, j + 2
        elif s[j:j + 1] == "0":
            base = 8
        else:
            base = 10
    if base == 16:
        digits = "0123456789abcdefABCDEF"
    elif base == 10:
        digits = "0123456789"
    k = j
    while k < len(s) and s[k] in digits:
        k += 1
    if k == j:
        return None, i, False
    v = int(s[j:k], base)
    if neg:
        v = -v
    overflow = v > INT64_MAX or v < INT64_MIN
    return v, k, overflow


def _c_scan_int(s: str, i: int) -> tuple[int | None, int]:
    """sscanf("%d%n"): a 32-bit int (wrapped as glibc does), or None."""
    v, k, _ = _c_strtol(s, i, 10)
    if v is None:
        return None, i
    v &= 0xFFFFFFFF
    if v >= 2**31:
        v -= 2**32
    return v, k


def _wrap32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 2**32 if v >= 2**31 else v


def readtime(s: str, terminator: str = "", msec: bool = False) -> int:
    """readconf_readtime(): seconds for "1w2d3h4m5s", or -1 on error.

    ``terminator`` is the character that must follow ("" = end of text).
    """
    total = 0
    i = 0
    while True:
        if i >= len(s) or not _isdigit(s[i]):
            return -1
        value, i = _c_scan_int(s, i)
        assert value is not None
        c = s[i] if i < len(s) else ""
        mult = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
        if c in mult and c:
            value = _wrap32(value * mult[c])
            i += 1
        elif c == "." and msec:
            k = i + 1
            while k < len(s) and _isdigit(s[k]):
                k += 1
            frac = float("0" + s[i:k]) if k > i + 1 else 0.0
            i = k
            if i >= len(s) or s[i] != "s":
                return -1
            i += 1
            total += int(frac * 1000.0)
        else:
            return -1
        if msec:
            value *= 1000
        total = _wrap32(total + value)
        if (s[i] if i < len(s) else "") == terminator:
            return total


def printtime(t: int) -> str:
    """readconf_printtime(): 93600 -> "1d2h", 0 -> "0s"."""
    out = ""
    if t < 0:
        out = "-"
        t = -t
    s, t = t % 60, t // 60
    m, t = t % 60, t // 60
    h, t = t % 24, t // 24
    d, w = t % 7, t // 7
    for n, unit in ((w, "w"), (d, "d"), (h, "h"), (m, "m")):
        if n > 0:
            out += f"{n}{unit}"
    if s > 0 or out in ("", "-"):
        out += f"{s}s"
    return out


def nextinlist(text: str, i: int, sep: str | None) -> tuple[str | None, int, str]:
    """string_nextinlist(): the next item of a list, the new index, the sep.

    ``sep`` None means "default ':' unless the list starts with <c".
    Leading/trailing white space of items is removed; a doubled separator
    stands for one literal separator.
    """
    if sep is None:
        j = i
        while j < len(text) and _isspace(text[j]):
            j += 1
        if j + 1 < len(text) and text[j] == "<" and \
                not _isalnum(text[j + 1]) and not _isspace(text[j + 1]):
            sep = text[j + 1]
            i = j + 2
        else:
            sep = ":"
    while i < len(text) and _isspace(text[i]):
        i += 1
    if i >= len(text):
        return None, i, sep
    out: list[str] = []
    while i < len(text):
        if text[i] == sep:
            if i + 1 < len(text) and text[i + 1] == sep:
                out.append(sep)
                i += 2
                continue
            i += 1
            break
        out.append(text[i])
        i += 1
    item = "".join(out).rstrip(" \t\n\r\f\v")
    return item, i, sep


def list_items(text: str, sep: str | None = None) -> list[str]:
    """All items of a colon (or <c) list, as string_nextinlist gives them."""
    items: list[str] = []
    i = 0
    while True:
        item, i, sep = nextinlist(text, i, sep)
        if item is None:
            return items
        items.append(item)


def string_printing(s: str, allow_tab: bool = False) -> str:
    """string_printing2(): escape non-printing characters for display.

    Printing ASCII stays; \\b \\t \\n \\v \\f \\r get letter escapes; other
    bytes become \\ooo (UTF-8 bytes of non-ASCII characters, one by one).
    """
    if all(" " <= c <= "~" for c in s):
        return s
    named = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
             "\r": "\\r"}
    out: list[str] = []
    for c in s:
        if " " <= c <= "~" or (allow_tab and c == "\t"):
            out.append(c)
        elif c in named:
            out.append(named[c])
        else:
            for b in c.encode("utf-8", "surrogateescape"):
                out.append(f"\\{b:03o}")
    return "".join(out)


def find_user(name: str) -> tuple[int, int | None] | None:
    """route_finduser(): (uid, gid from the passwd entry or None), or None.

    An all-digit name is a numeric uid (its passwd entry, if any, still
    gives the gid).
    """
    if name and all(_isdigit(c) for c in name):
        try:
            return int(name), pwd.getpwuid(int(name)).pw_gid
        except (KeyError, OverflowError):
            return int(name), None
    try:
        pw = pwd.getpwnam(name)
    except (KeyError, ValueError):
        return None
    return pw.pw_uid, pw.pw_gid


def find_group(name: str) -> int | None:
    """route_findgroup(): a gid for a group name or number, or None."""
    if name and all(_isdigit(c) for c in name):
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except (KeyError, ValueError):
        return None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return str(gid)


# Rewrite flags (readconf_one_rewrite) used to check transport headers_rewrite.
_REWRITE_FLAGS = set("qwhsftcbrEFTQRS")


def check_rewrite_rules(text: str, pos: SourcePos | None) -> None:
    """Check a transport's headers_rewrite list as readconf_one_rewrite does."""
    for rule in list_items(text):
        key, i = dequote(rule, 0)
        while i < len(rule) and _isspace(rule[i]):
            i += 1
        if i >= len(rule):
            raise ConfigError("missing rewrite replacement string", pos)
        _, i = dequote(rule, i)
        envelope = False
        for c in rule[i:]:
            if c in " \t":
                continue
            if c not in _REWRITE_FLAGS:
                raise ConfigError(
                    f"unknown rewrite flag character '{c}' "
                    "(could be missing quotes round replacement item)", pos)
            if c == "S" and not (key.startswith("^") or key.startswith("\\N^")):
                raise ConfigError("rewrite rule has the S flag but is not a "
                                  "regular expression", pos)
            if c in "EFTS":
                envelope = True
        if envelope:
            raise ConfigError("rewrite rule specifies a non-header rewrite - "
                              "not allowed at transport time -", pos)


def _exim_id_items(text: str) -> list[str]:
    """The items readconf takes from a uid/gid list.

    Exim counts the entries as 1 + the colons that are followed by
    something, then takes that many items from string_nextinlist() (which
    knows "<;" and "::"); missing items repeat the last one.
    """
    if not text:
        return []
    count = 1 + sum(1 for k, c in enumerate(text)
                    if c == ":" and k + 1 < len(text))
    items = list_items(text)
    out: list[str] = []
    last = ""
    for k in range(count):
        if k < len(items):
            last = items[k]
        out.append(last)
    return out


# --------------------------------------------------------------------------
# Value parsing by type.

def _parse_int(s: str, name: str, spec: OptionSpec,
               pos: SourcePos | None) -> int:
    octal = spec.type is OptType.OCTINT
    inttype = "octal " if octal else ""
    v, end, overflow = _c_strtol(s, 0, 8 if octal else 0)
    if v is None:
        raise ConfigError(f"{inttype}integer expected for {name}", pos)
    suffix = s[end:end + 1].lower()
    if spec.type is OptType.KINT:
        mult = {"k": 1, "m": 1024, "g": 1024**2, "t": 1024**3}
        if suffix in mult and suffix:
            v *= mult[suffix]
            end += 1
        if overflow or v > INT64_MAX or v < INT64_MIN:
            raise ConfigError(
                f'absolute value of integer "{s}" is too large (overflow)', pos)
    else:
        mult = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
        if suffix in mult and suffix:
            v *= mult[suffix]
            end += 1
        if overflow or v > INT_MAX or v < INT_MIN:
            raise ConfigError(
                f'absolute value of integer "{s}" is too large (overflow)', pos)
    while end < len(s) and _isspace(s[end]):
        end += 1
    if end < len(s):
        raise ConfigError(extra_chars_message(s[end:], inttype,
                                              "integer value for ", name), pos)
    return v


def _parse_fixed(s: str, name: str, pos: SourcePos | None) -> int:
    value, count = _c_scan_int(s, 0)
    if value is None:
        raise ConfigError(f"fixed-point number expected for {name}", pos)
    if value < 0:
        raise ConfigError(f'integer "{s}" is too large (overflow)', pos)
    # Exim's second overflow test (after *1000) is compiled away: the value
    # simply wraps, and a negative result then prints as unset.
    value = _wrap32(value * 1000)
    if count < len(s) and s[count] == ".":
        d = 100
        count += 1
        while count < len(s) and _isdigit(s[count]):
            value += (ord(s[count]) - 48) * d
            d //= 10
            count += 1
    while count < len(s) and _isspace(s[count]):
        count += 1
    if count < len(s):
        raise ConfigError(extra_chars_message(s[count:], "fixed-point value for ",
                                              name, ""), pos)
    return value


def _parse_timelist(s: str, name: str, spec: OptionSpec,
                    pos: SourcePos | None) -> tuple[int, ...]:
    maxcount = spec.maxcount or 10
    values: list[int] = []
    count = 0
    if s:
        count = 1
        while count <= maxcount:
            snext = s.find(":")
            terminator = ""
            if snext >= 0:
                k = snext
                while k > 0 and _isspace(s[k - 1]):
                    k -= 1
                terminator = s[k]
            value = readtime(s, terminator)
            if value < 0:
                raise ConfigError(f"invalid time value for {name}", pos)
            if count > 1 and value <= values[-1]:
                raise ConfigError(f"time value out of order for {name}", pos)
            values.append(value)
            if snext < 0:
                break
            s = s[snext + 1:].lstrip(" \t\n\r\f\v")
            count += 1
        if count > maxcount:
            raise ConfigError(f"too many time values for {name}", pos)
    if values and values[0] == 0:
        values = []
    return tuple(values)


@dataclass
class _Parsed:
    """What one option line asks for."""

    spec: OptionSpec
    name: str          # as written, with any no_/not_ prefix
    value: Any
    hide: bool


class OptionStore:
    """The values of one option table (main section or one driver's options).

    ``kind`` is "main", "router", "transport", "authenticator" (messages);
    ``resolver(store, key)`` computes Computed defaults; ``expander(text)``
    expands uid/gid list text at read time as Exim does (None: text with
    "$" in it is an error).
    """

    def __init__(self, table: OptionTable, kind: str = "main",
                 resolver: Callable[["OptionStore", str], Any] | None = None,
                 expander: Callable[[str], str] | None = None) -> None:
        self.table = table
        self.kind = kind
        self._values: dict[str, Any] = {}
        self._set: set[str] = set()
        self._hidden: set[str] = set()
        self._defaults: dict[str, Any] = {}
        self._resolver = resolver
        self._expander = expander
        self._computed: dict[str, Any] = {}
        self._implied: set[str] = set()

    # -- reading values ---------------------------------------------------
    def get(self, name: str) -> Any:
        """The option's value (set, or default); KeyError for unknown names."""
        spec = self.table.get(name)
        if spec is not None and spec.alias:
            return self.get(spec.alias)
        if name in self._values:
            return self._values[name]
        spec = self.table.get(name)
        if spec is None:
            raise KeyError(name)
        default = self._defaults.get(name, spec.default)
        if isinstance(default, Computed):
            if name not in self._computed:
                if self._resolver is None and self.kind == "main":
                    from eximpy.config.main_options import compute_default
                    self._resolver = compute_default
                if self._resolver is None:
                    raise KeyError(f"no resolver for computed default {name}")
                self._computed[name] = self._resolver(self, default.key)
            return self._computed[name]
        return default

    def is_set(self, name: str) -> bool:
        """True when the configuration set the option (Exim's opt_set)."""
        return name in self._set

    def hidden(self, name: str) -> bool:
        """True when the option was set with the "hide" prefix."""
        return name in self._hidden

    def set_default(self, name: str, value: Any) -> None:
        """Change a default without marking the option set (driver init)."""
        if self.table.get(name) is None:
            raise KeyError(name)
        self._defaults[name] = value
        self._computed.pop(name, None)

    def set_value(self, name: str, value: Any) -> None:
        """Set an already-parsed value (for init code and tests)."""
        if self.table.get(name) is None:
            raise KeyError(name)
        self._values[name] = value

    def items(self) -> Iterator[tuple[OptionSpec, Any]]:
        for spec in self.table:
            yield spec, self.get(spec.name)

    # -- parsing ----------------------------------------------------------
    def set_from_line(self, text: str, pos: SourcePos | None = None) -> None:
        """Parse one logical option line and store its value.

        Raises ConfigError (Exim's message) for unknown options, options set
        twice, and malformed values.
        """
        parsed = self._parse_line(text, pos)
        if parsed is None:
            name, _ = self._line_name(text, pos)
            if self.kind == "main":
                raise ConfigError(f'main option "{name}" unknown', pos)
            raise ConfigError(f'option "{name}" unknown', pos)
        self._store(parsed, pos)

    def try_set_from_line(self, text: str, pos: SourcePos | None = None) -> bool:
        """As set_from_line(), but False (nothing done) for an unknown option."""
        parsed = self._parse_line(text, pos)
        if parsed is None:
            return False
        self._store(parsed, pos)
        return True

    @staticmethod
    def _line_name(text: str, pos: SourcePos | None) -> tuple[str, int]:
        i = 0
        while i < len(text) and _isspace(text[i]):
            i += 1
        if i >= len(text) or not _isalpha(text[i]):
            raise ConfigError(f"option setting expected: {text[i:]}", pos)
        name = ""
        for _round in range(2):
            start = i
            while i < len(text) and (_isalnum(text[i]) or text[i] == "_"):
                i += 1
            name = text[start:i][:63]
            while i < len(text) and _isspace(text[i]):
                i += 1
            if name != "hide":
                break
        return name, i

    def option_name(self, text: str) -> str:
        """The option name a line sets, without hide/no_/not_ (for dispatch)."""
        name, _ = self._line_name(text, None)
        if name.startswith("no_"):
            return name[3:]
        if name.startswith("not_"):
            return name[4:]
        return name

    def _parse_line(self, text: str, pos: SourcePos | None) -> _Parsed | None:
        text = text.rstrip(" \t\n\r\f\v")
        i = 0
        while i < len(text) and _isspace(text[i]):
            i += 1
        if i >= len(text) or not _isalpha(text[i]):
            raise ConfigError(f"option setting expected: {text[i:]}", pos)
        hide = False
        name = ""
        for _round in range(2):
            start = i
            while i < len(text) and (_isalnum(text[i]) or text[i] == "_"):
                i += 1
            name = text[start:i][:63]
            while i < len(text) and _isspace(text[i]):
                i += 1
            if name != "hide":
                break
            hide = True
        boolvalue = True
        offset = 0
        if name.startswith("no_"):
            boolvalue, offset = False, 3
        if name.startswith("not_"):
            boolvalue, offset = False, 4
        spec = self.table.get(name[offset:])
        if spec is None or spec.name.startswith("*"):
            return None
        if name[offset:] in self._set and not spec.repeat:
            raise ConfigError(f'"{name}" option set for the second time', pos)
        s = text[i:]
        if not spec.type.is_bool:
            if offset:
                raise ConfigError(
                    "negation prefix applied to a non-boolean option", pos)
            if not s:
                raise ConfigError(
                    f"unexpected end of line (data missing) after {name}", pos)
            if not s.startswith("="):
                raise ConfigError(f'missing "=" after {name}', pos)
        elif s and (offset or not s.startswith("=")):
            raise ConfigError(extra_chars_message(s, "boolean option ", name, ""),
                              pos)
        if s.startswith("="):
            s = s[1:].lstrip(" \t\n\r\f\v")
        value = self._parse_value(spec, name, s, boolvalue, pos)
        return _Parsed(spec, name, value, hide)

    def _parse_value(self, spec: OptionSpec, name: str, s: str,
                     boolvalue: bool, pos: SourcePos | None) -> Any:
        t = spec.type
        if t in _STRINGISH:
            sval = read_string(s, name, pos)
            if t is OptType.STRING:
                return sval
            if t is OptType.REWRITE:
                check_rewrite_rules(sval, pos)
                return sval
            if t in (OptType.EXPAND_UID, OptType.UID):
                if t is OptType.EXPAND_UID and "$" in sval:
                    return sval
                found = find_user(sval)
                if found is None:
                    raise ConfigError(f"user {sval} was not found", pos)
                return found
            if t in (OptType.EXPAND_GID, OptType.GID):
                if t is OptType.EXPAND_GID and "$" in sval:
                    return sval
                gid = find_group(sval)
                if gid is None:
                    raise ConfigError(f"group {sval} was not found", pos)
                return gid
            # UIDLIST / GIDLIST: expanded now, then looked up item by item.
            text = sval
            if "$" in text or "\\" in text:
                if self._expander is None:
                    raise ConfigError(f"failed to expand {name}: "
                                      "expansion is not available here", pos)
                try:
                    text = self._expander(text)
                except Exception as exc:  # ExpansionError and kin
                    raise ConfigError(f"failed to expand {name}: {exc}",
                                      pos) from exc
            ids: list[int] = []
            for item in _exim_id_items(text):
                if t is OptType.UIDLIST:
                    found = find_user(item)
                    if found is None:
                        raise ConfigError(f"user {item} was not found", pos)
                    ids.append(found[0])
                else:
                    gid = find_group(item)
                    if gid is None:
                        raise ConfigError(f"group {item} was not found", pos)
                    ids.append(gid)
            return tuple(ids)
        if t is OptType.EXPAND_BOOL and s and "$" in s:
            return read_string(s, name, pos)
        if t.is_bool:
            if s:
                word, j = readname(s, 0)
                if word.lower() in ("true", "yes"):
                    boolvalue = True
                elif word.lower() in ("false", "no"):
                    boolvalue = False
                else:
                    raise ConfigError(f'"{word}" is not a valid value for the '
                                      f'"{name}" option', pos)
                if j < len(s):
                    raise ConfigError(extra_chars_message(
                        s[j:], f'"{word}" ', "for boolean option ", name), pos)
            return boolvalue
        if t in (OptType.INT, OptType.MKINT, OptType.OCTINT, OptType.KINT):
            return _parse_int(s, name, spec, pos)
        if t is OptType.FIXED:
            return _parse_fixed(s, name, pos)
        if t is OptType.TIME or (t is OptType.TIME_OR_EXPAND
                                 and not s.startswith("$")):
            v = readtime(s)
            if v < 0:
                raise ConfigError(f"invalid time value for {name}", pos)
            return v
        if t is OptType.TIME_OR_EXPAND:
            return s
        if t is OptType.TIMELIST:
            return _parse_timelist(s, name, spec, pos)
        raise AssertionError(f"unhandled option type {t}")  # pragma: no cover

    def _store(self, p: _Parsed, pos: SourcePos | None) -> None:
        spec = p.spec
        key = spec.name
        self._set.add(key)
        if p.hide:
            self._hidden.add(key)
        t = spec.type
        value = p.value
        if spec.repeat == "con" and key in self._values and \
                self._values[key] is not None:
            value = ("${if and{{bool_lax{" + self._values[key] + "}}{bool_lax{"
                     + value + "}}}}")
        elif spec.repeat == "str":
            sep = "\n" if key.startswith("headers_add") else ":"
            old = self._values.get(key)
            items = [] if old is None else [old]
            for item in list_items(value, sep):
                items.append(item.replace(sep, sep + sep) if sep == ":" else item)
            value = sep.join(items) if items else old
        if t in (OptType.UID, OptType.EXPAND_UID) and isinstance(value, tuple):
            uid, pw_gid = value
            value = uid
            # Exim: a user found in the passwd file also sets the matching
            # "...group" option, unless that was set already.
            if pw_gid is not None and key.endswith("user"):
                gname = key[:-4] + "group"
                gspec = self.table.get(gname)
                if gspec is not None and gspec.type in (OptType.GID,
                                                        OptType.EXPAND_GID) \
                        and not self._group_is_set(gname):
                    # Exim notes the group as having a value, but not as
                    # "set" by the configuration: an explicit group line
                    # later is no second setting.
                    self._values[gname] = pw_gid
                    self._implied.add(gname)
        if t is OptType.EXPAND_BOOL and isinstance(value, str):
            # Exim keeps the text in a "*expand_<name>" entry, which some
            # drivers list in -bP (appendfile's maildir_use_size_file).
            star = "*expand_" + key
            if self.table.get(star) is not None:
                self._values[star] = value
        if t is OptType.BOOL_VERIFY:
            # "verify" sets verify_sender and verify_recipient together.
            for other in (key + "_sender", key + "_recipient"):
                if self.table.get(other) is not None:
                    self._values[other] = value
        # An old synonym (hidden alias) stores into the option it names.
        self._values[spec.alias or key] = value

    def _group_is_set(self, gname: str) -> bool:
        if gname in self._values and self._values[gname] is not None:
            return True
        default = self._defaults.get(gname, self.table.get(gname).default)  # type: ignore[union-attr]
        if isinstance(default, Computed):
            return True
        return default is not None

    # -- printing ---------------------------------------------------------
    def format(self, name: str, no_labels: bool = False,
               admin: bool = True) -> str:
        """The line `exim -bP name` prints for this option (no newline)."""
        spec = self.table.get(name)
        if spec is None:
            return f"{name} is not a known option"
        if not admin and name in self._hidden:
            return HIDDEN_TEXT if no_labels else f"{name} = {HIDDEN_TEXT}"
        return format_value(spec, self.get(name), no_labels)


def _format_mkint(x: int) -> str:
    if x != 0 and (x & 1023) == 0:
        c = "K"
        x >>= 10
        if (x & 1023) == 0:
            c = "M"
            x >>= 10
        return f"{x}{c}"
    return str(x)


def _format_kint(x: int) -> str:
    if x == 0:
        return "0"
    for unit in ("K", "M", "G"):
        if x % 1024 != 0:
            return f"{x}{unit}"
        x //= 1024
    return f"{x}T"


def _format_fixed(x: int) -> str:
    f = x % 1000
    d = 100
    out = f"{x // 1000}."
    while True:
        out += str(f // d)
        f %= d
        d //= 10
        if f == 0:
            break
    return out


def format_value(spec: OptionSpec, value: Any, no_labels: bool = False) -> str:
    """print_ol(): the -bP line for ``spec`` holding ``value`` (no newline)."""
    name = spec.name
    t = spec.type
    label = "" if no_labels else f"{name} = "

    if t.is_bool and not (t is OptType.EXPAND_BOOL and isinstance(value, str)):
        return f"{'' if value else 'no_'}{name}"
    if t in (OptType.STRING, OptType.REWRITE, OptType.EXPAND_BOOL):
        return label + ("" if value is None else string_printing(value))
    if t is OptType.INT:
        return label + str(value)
    if t is OptType.MKINT:
        return label + _format_mkint(value)
    if t is OptType.KINT:
        return label + _format_kint(value)
    if t is OptType.OCTINT:
        return label + (oct(value).replace("0o", "0") if value else "0")
    if t is OptType.FIXED:
        if value < 0:
            return f"{name} ="
        return label + _format_fixed(value)
    if t in (OptType.TIME, OptType.TIME_OR_EXPAND):
        if isinstance(value, str):
            return label + string_printing(value)
        return label + printtime(value)
    if t is OptType.TIMELIST:
        return label + ":".join(printtime(v) for v in value)
    if t in (OptType.UID, OptType.EXPAND_UID, OptType.GID, OptType.EXPAND_GID):
        if value is None:
            return label
        if isinstance(value, str):
            return label + string_printing(value)
        if t in (OptType.UID, OptType.EXPAND_UID):
            return label + user_name(value)
        return label + group_name(value)
    if t in (OptType.UIDLIST, OptType.GIDLIST):
        out = "" if no_labels else f"{name} ="
        if value:
            names = [user_name(v) if t is OptType.UIDLIST else group_name(v)
                     for v in value]
            out += ("" if no_labels else " ") + ":".join(names)
        return out
    raise AssertionError(f"unhandled option type {t}")  # pragma: no cover


def parse_default(spec: OptionSpec, text: str) -> Any:
    """Parse -bP-style default text for ``spec`` into a stored value.

    Used by the table generator and tests: "1d" -> 86400 for a TIME, etc.
    """
    store = OptionStore(OptionTable((spec,)), "main")
    if spec.type in (OptType.STRING, OptType.REWRITE):
        return text            # verbatim: trailing spaces are part of it
    if spec.type.is_bool:
        return text == spec.name
    if spec.type in (OptType.UIDLIST, OptType.GIDLIST):
        items = text.split("=", 1)[1].strip() if "=" in text else text
        store.set_from_line(f"{spec.name} = {items}")
    elif spec.type is OptType.FIXED and text.strip() == "":
        return -1
    elif spec.type in (OptType.UID, OptType.GID, OptType.EXPAND_UID,
                       OptType.EXPAND_GID) and text == "":
        return None
    else:
        store.set_from_line(f"{spec.name} = {text}")
    return store.get(spec.name)


def mapping_view(store: OptionStore) -> Mapping[str, Any]:
    """A read-only name -> value dict of a store (for debugging, tests)."""
    return {spec.name: store.get(spec.name) for spec in store.table}


def with_implemented(table: OptionTable, names: frozenset[str] | set[str]
                     ) -> OptionTable:
    """A copy of ``table`` with implemented=True for ``names``.

    Raises ValueError for a name the table does not have.
    """
    unknown = set(names) - set(table.names())
    if unknown:
        raise ValueError(f"implemented options not in table: {sorted(unknown)}")
    import dataclasses
    return OptionTable(tuple(
        dataclasses.replace(s, implemented=True) if s.name in names else s
        for s in table))
