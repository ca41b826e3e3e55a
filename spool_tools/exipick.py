"""exipick: select and display queued messages by criteria over variables.

SUMMARY
    exipick [options] [criterion ...]
    criterion: '$var OP value' | '$var' | '!$var ...'
      numeric OP: < <= > >= == !=   (value may end in d h m s K M B)
      string  OP: eq ne (exact), =~ !~ (/regex/flags), = (bare regex)
    options: --spool DIR  -C/--config FILE  --input-dir DIR  --queue Q
             --finput  --and  --or  --not  --caseful  --unsorted
             --reverse/-R  --random  --sort v1,v2  --show-vars v1,^re
             --show-rules  --show-tests  --size  --flatq
             -bp -l -bpa -bpc -bpr -bpra -bpru -bpu -i -c -b
             exiqgrep forms: -f re -r re -s str -o secs -y secs -z -x

DESCRIPTION
    Reads the spool directly (through eximpy.spool), like Exim's exipick:
    every -H file in input/ and its one-character subdirectories, sorted
    by id unless --unsorted / -bpr*.  Variables are Exim's expansion
    variables plus exipick's own ($recipients_del, $recipients_undel,
    $shown_message_size, $deliver_freeze, $message_body_missing,
    $each_recipients ...), and $h_name / $header_name for headers.
    Regular expressions (=~, !~, =) ignore case unless --caseful, as in
    exipick.  Output formats match exipick's: the -bp form (same as
    ``exim -bp``), -i ids, -b brief, --flatq, -c "N matches out of M
    messages", -bpc, --size, --show-vars.

SEE ALSO
    spec 54.6 "Finding individual messages (exipick)"; exipick(8).
"""
from __future__ import annotations

import os
import random
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from eximpy.message.ids import is_message_id
from eximpy.spool.layout import SPLIT_CHARS, SpoolLayout
from spool_tools._common import message_vars, run_main, spool_directory

_NUM_RE = re.compile(r"^(.*?)\s+(<=|>=|==|!=|<|>)\s+(.*)$", re.S)
_RE_RE = re.compile(r"^(.*?)\s+(=~|!~)\s+(.*)$", re.S)
_BARE_RE = re.compile(r"^(.*?)\s+=\s+(.*)$", re.S)
_STR_RE = re.compile(r"^(.*?)\s+(eq|ne)\s+(.*)$", re.S)
_UNIT = {"M": 1024 * 1024, "K": 1024, "B": 1, "d": 86400, "h": 3600,
         "m": 60, "s": 1, "": 1}


class CriterionError(ValueError):
    pass


@dataclass
class Criterion:
    var: str
    test: Callable[[Any], bool]
    text: str
    negate: bool = False
    each: str | None = None       # recipients / recipients_del / _undel


def _regex(spec: str, caseful: bool) -> re.Pattern[str]:
    """``/re/flags`` (or m{...}) as a Python pattern."""
    m = re.fullmatch(r"(?:m?)/(.*)/([imsx]*)", spec, re.S)
    if not m:
        m = re.fullmatch(r"m(.)(.*)\1([imsx]*)", spec, re.S)
        if not m:
            raise CriterionError("regular expression not in /.../ form")
        body, flags = m.group(2), m.group(3)
    else:
        body, flags = m.group(1), m.group(2)
    f = 0
    for c in flags:
        f |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[c]
    del caseful
    return re.compile(body, f)


def parse_criterion(text: str, caseful: bool, negate_all: bool) -> Criterion:
    t = text
    m = _NUM_RE.match(t)
    if m:
        var, op, n = m.group(1), m.group(2), m.group(3)
        nm = re.fullmatch(r"(-?[\d.]+)([MKBdhms]?)", n)
        if not nm:
            raise CriterionError(f"Expression {text} did not parse: numeric "
                                 "comparison with non-number")
        try:
            num = float(nm.group(1)) * _UNIT[nm.group(2)]
        except ValueError:
            raise CriterionError(f"Expression {text} did not parse") from None
        ops = {"<": lambda a: a < num, "<=": lambda a: a <= num,
               ">": lambda a: a > num, ">=": lambda a: a >= num,
               "==": lambda a: a == num, "!=": lambda a: a != num}
        f = ops[op]
        test = lambda v: f(_as_number(v))  # noqa: E731
    elif _RE_RE.match(t):
        m = _RE_RE.match(t)
        assert m
        var, op = m.group(1), m.group(2)
        rx = _regex(m.group(3), caseful)
        test = (lambda v: rx.search(_as_str(v)) is not None) if op == "=~" \
            else (lambda v: rx.search(_as_str(v)) is None)
    elif _BARE_RE.match(t):
        m = _BARE_RE.match(t)
        assert m
        var = m.group(1)
        rx = re.compile(m.group(2), 0 if caseful else re.I)
        test = lambda v: rx.search(_as_str(v)) is not None  # noqa: E731
    elif _STR_RE.match(t):
        m = _STR_RE.match(t)
        assert m
        var, op, val = m.group(1), m.group(2), m.group(3)
        qm = re.fullmatch(r"(['\"])(.*)\1", val, re.S)
        if qm:
            val = qm.group(2)
        test = (lambda v: _as_str(v) == val) if op == "eq" \
            else (lambda v: _as_str(v) != val)
    elif re.fullmatch(r"\S+", t):
        var = t
        test = lambda v: bool(v) and v != "0"  # noqa: E731
    else:
        raise CriterionError(f"Expression {text} did not parse")
    var = var.lower()
    neg = negate_all
    if var.startswith("!"):
        var = var[1:]
        neg = not neg
    each = None
    # As in exipick, only the bare name (no "$") is the per-recipient
    # pseudo variable; "$each_recipients" is an (empty) ordinary variable.
    em = re.fullmatch(r"each_(recipients(?:_(?:un)?del)?)", var)
    if em:
        each = em.group(1)
    var = var.lstrip("$").rstrip(":")
    return Criterion(var, test, text, neg, each)


def _as_number(v: Any) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    m = re.match(r"\s*(-?\d+(?:\.\d*)?)", str(v))
    return float(m.group(1)) if m else 0.0


def _as_str(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else ""
    return str(v)


def get_var(v: dict[str, Any], name: str) -> Any:
    name = name.lower().lstrip("$").rstrip(":")
    m = re.fullmatch(r"([rb]?h)(?:eader)?_(.+)", name)
    if m:
        return v["_headers"].get(m.group(2).lower(), "")
    return v.get(name, "")


def _find_messages(spool: str, input_dir: str) -> list[tuple[str, str]]:
    d = input_dir if input_dir.startswith("/") else \
        os.path.join(spool, input_dir)
    out: list[tuple[str, str]] = []
    for e in os.listdir(d):
        if e.startswith("."):
            continue
        p = os.path.join(d, e)
        if len(e) == 1 and e in SPLIT_CHARS and os.path.isdir(p):
            try:
                names = os.listdir(p)
            except OSError:
                continue
            for f in names:
                if f.endswith("-H") and is_message_id(f[:-2]):
                    out.append((f[:-2], p))
        elif e.endswith("-H") and is_message_id(e[:-2]):
            out.append((e[:-2], d))
    return out


def _format(v: dict[str, Any], style: str, show: list[str], undel: bool,
            generated: bool) -> str:
    from eximpy.cli.queue_ops import format_age
    mid = v["message_exim_id"]
    names: list[str] = []
    for e in show:
        if e.startswith("^"):
            rx = re.compile(e)
            names.extend(k for k in v if not k.startswith("_") and
                         rx.search(k) and k not in names)
        elif e not in names:
            names.append(e)
    if style == "id":
        return mid + "".join(f" {n}='{_as_str(get_var(v, n))}'"
                             for n in names) + "\n"
    o = ""
    if style in ("long", "flatq"):
        o += format_age(v["message_age"]) + " "
        if style == "flatq" and names:
            o += ";".join(f"{n}='{_as_str(get_var(v, n))}'" for n in names)
        else:
            o += f"{v['shown_message_size']:>5}"
        o += " "
    o += mid + " "
    if style == "brief":
        o += "From: "
    o += f"<{v['sender_address']}>"
    each = v["_each"]
    if style == "long":
        if v["sender_set_untrusted"]:
            o += f" ({v['originator_login']})"
        if v["deliver_freeze"]:
            o += " *** frozen ***"
        o += "\n"
        for n in names:
            o += f"  {n:>25} = '{_as_str(get_var(v, n))}'\n"
        for r in each["recipients"]:
            done = r in each["recipients_del"]
            if done and undel:
                continue
            o += f"        {'D' if done else ' '} {r}\n"
        if generated:
            for r in each["recipients_del"]:
                if r not in each["recipients"]:
                    o += f"       +D {r}\n"
    elif style == "brief":
        o += " To: " + ";".join(each["recipients_undel"])
        if names:
            o += " Vars: " + ";".join(f"{n}='{_as_str(get_var(v, n))}'"
                                      for n in names)
    elif style == "flatq":
        if v["deliver_freeze"]:
            o += " *** frozen ***"
        o += " " + " ".join(each["recipients_undel"])
    return o + "\n"


def main(argv: list[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    opts: dict[str, Any] = {"style": "long", "show": [], "sort": []}
    crit_text: list[str] = []
    i = 0
    with_arg = {"--spool", "-C", "--config", "--input-dir", "--queue",
                "--show-vars", "--sort", "-f", "-r", "-s", "-o", "-y",
                "--charset", "--freeze", "--thaw"}
    while i < len(argv):
        a = argv[i]
        if a in with_arg:
            if i + 1 >= len(argv):
                sys.stderr.write(f"Option {a} requires an argument\n")
                return 1
            val = argv[i + 1]
            i += 2
            if a == "-f":
                crit_text.append(f"$sender_address =~ /{val}/")
            elif a == "-r":
                crit_text.append(f"$recipients =~ /{val}/")
            elif a == "-s":
                crit_text.append(f"$shown_message_size eq {val}")
            elif a == "-o":
                crit_text.append(f"$message_age > {val}")
            elif a == "-y":
                crit_text.append(f"$message_age < {val}")
            elif a in ("--show-vars", "--sort"):
                opts["show" if a == "--show-vars" else "sort"] += \
                    val.split(",")
            else:
                opts[a.lstrip("-")] = val
            continue
        i += 1
        if a in ("--help", "-h"):
            out.write(__doc__ or "")
            return 0
        if a == "--version":
            out.write("exipick: eximpy\nbuild: 4.96\n")
            return 0
        if a in ("-bp", "-l"):
            opts["style"] = "long"
        elif a in ("-bpa", "-bpra"):
            opts["style"], opts["generated"] = "long", True
            opts["unsorted"] = opts.get("unsorted") or a == "-bpra"
        elif a in ("-bpu", "-bpru"):
            opts["style"], opts["undel"] = "long", True
            opts["unsorted"] = opts.get("unsorted") or a == "-bpru"
        elif a == "-bpr":
            opts["unsorted"] = True
        elif a == "-bpc":
            opts["bpc"] = True
        elif a == "-c":
            opts["count"] = True
        elif a == "-i":
            opts["style"] = "id"
        elif a == "-b":
            opts["style"] = "brief"
        elif a == "--flatq":
            opts["style"] = "flatq"
        elif a == "-z":
            crit_text.append("$deliver_freeze")
        elif a == "-x":
            crit_text.append("!$deliver_freeze")
        elif a in ("--reverse", "-R"):
            opts["reverse"] = True
        elif a in ("--and", "--or", "--not", "--caseful", "--caseless",
                   "--unsorted", "--random", "--size", "--finput",
                   "--show-rules", "--show-tests"):
            opts[a[2:]] = True
        elif a.startswith("-") and not a.startswith("-$") and a != "-":
            sys.stderr.write(f"Unknown option: {a.lstrip('-')}\n")
            return 1
        else:
            crit_text.append(a)
    try:
        crits = [parse_criterion(c, bool(opts.get("caseful")),
                                 bool(opts.get("not"))) for c in crit_text]
    except (CriterionError, re.error) as e:
        sys.stderr.write(f"{e}\n")
        return 1
    if opts.get("show-rules"):
        for c in crits:
            out.write(f"{c.var}\t{c.text}\n")
    spool = spool_directory(opts.get("C") or opts.get("config"),
                            opts.get("spool"))
    input_dir = (opts["queue"] + "/" if opts.get("queue") else "") + \
        (opts.get("input-dir") or ("Finput" if opts.get("finput")
                                   else "input"))
    try:
        msgs = _find_messages(spool, input_dir)
    except OSError as e:
        sys.stderr.write(f"Couldn't opendir {spool}/{input_dir}: "
                         f"{e.strerror}\n")
        return 2
    if opts.get("random"):
        random.shuffle(msgs)
    elif not opts.get("unsorted"):
        msgs.sort()
    if opts.get("reverse") and not opts["sort"]:
        msgs.reverse()
    layout = SpoolLayout(spool)
    now = time.time()
    want_body = any(c.var == "message_body" for c in crits) or \
        "message_body" in opts["show"]
    total = matched = size = 0
    printed: list[tuple[dict[str, Any], str]] = []
    use_or = bool(opts.get("or"))
    for mid, d in msgs:
        v = message_vars(layout, mid, d, now, want_body)
        if v is None:
            if os.path.exists(os.path.join(d, mid + "-H")):
                sys.stderr.write(f"Couldn't parse {mid}: spool format "
                                 "error\n")
            continue
        total += 1
        tests: list[tuple[Criterion, Any]] = []
        for c in crits:
            if c.each:
                tests.extend((c, a) for a in v["_each"][c.each])
            else:
                tests.append((c, get_var(v, c.var)))
        ok = not use_or or not tests
        for c, value in tests:
            r = c.test(value) != c.negate
            if opts.get("show-tests"):
                out.write(f"  {c.var:>25} =  '{_as_str(value)}'\n"
                          f"  {c.text:>25} => {1 if r else 0}\n")
            if use_or and r:
                ok = True
                break
            if not use_or and not r:
                ok = False
                break
        if not ok:
            continue
        matched += 1
        size += v["message_size"]
        if opts.get("count") or opts.get("bpc") or opts.get("size"):
            continue
        printed.append((v, _format(v, opts["style"], opts["show"],
                                   bool(opts.get("undel")),
                                   bool(opts.get("generated")))))
    if opts["sort"]:
        def key(item: tuple[dict[str, Any], str]) -> list[Any]:
            out_k: list[Any] = []
            for n in opts["sort"]:
                val = get_var(item[0], n)
                out_k.append((0, _as_number(val), "") if re.fullmatch(
                    r"-?\d+(\.\d+)?", _as_str(val)) else (1, 0, _as_str(val)))
            return out_k
        printed.sort(key=key, reverse=bool(opts.get("reverse")))
    for _v, text in printed:
        out.write(text)
    sz = f" ({size})" if opts.get("size") else ""
    if opts.get("count"):
        out.write(f"{matched} matches out of {total} messages{sz}\n")
    elif opts.get("bpc"):
        out.write(f"{matched}{sz}\n")
    elif opts.get("size"):
        out.write(f"{size}\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
