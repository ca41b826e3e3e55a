"""${perl{sub}{arg}...}: one long-lived Perl helper per eximpy process.

DESCRIPTION
    The first ${perl} call starts ``perl`` with a small driver script, sends
    it the perl_startup code (evaluated in package main, as Exim's embedded
    interpreter does), and keeps it for the life of the process.  With
    perl_at_start (or -ps; -pd delays), start_at_startup() starts it as
    soon as the configuration is read, as Exim does.  Code that does not
    compile is "error in perl_startup code: Compilation error"; a die()
    while the code runs is ignored, as in Exim.  Each call
    sends the subroutine name and arguments over a pipe and reads the
    result back: a string, undef (Exim's forced failure: 'Perl subroutine
    "x" returned undef to force failure') or a die() message (an expansion
    error carrying $@).  Perl code may call back Exim::expand_string(),
    Exim::debug_write() and Exim::log_write(), which are answered by this
    process while the call is in progress.

    The pipe protocol is framed: a one-byte tag and a 4-byte big-endian
    length before every string.

SECURITY
    The helper runs with the privileges of the calling process; perl_startup
    comes from the configuration (trusted), arguments from expansions.

SEE ALSO
    spec chapter "Embedded Perl".
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys

from eximpy.errors import ExpansionError, ExpansionForcedFail
from eximpy.expand.bytestr import from_bytes, to_bytes

_DRIVER = r'''
use strict;
binmode STDIN; binmode STDOUT;
$| = 1;
sub _rd { my $h; my $r = read(STDIN, $h, 5); exit 0 unless defined $r && $r == 5;
  my ($t, $len) = unpack("aN", $h); my $d = '';
  while (length($d) < $len) { my $n = read(STDIN, $d, $len - length($d), length($d)); exit 0 unless $n; }
  return ($t, $d); }
sub _wr { my ($t, $s) = @_; $s = '' unless defined $s; print STDOUT pack("aN", $t, length($s)), $s; }
package Exim;
sub expand_string { my ($s) = @_; main::_wr("X", $s); my ($t, $d) = main::_rd();
  return undef if $t eq 'F'; die "$d\n" if $t eq 'E'; return $d; }
sub debug_write { main::_wr("D", join('', @_)); my ($t, $d) = main::_rd(); return; }
sub log_write { main::_wr("L", join('', @_)); my ($t, $d) = main::_rd(); return; }
package main;
# As Exim: code that does not compile is an error ("Compilation error");
# a die() while it runs is not (what ran before it stays).
{ my ($t, $code) = _rd();
  my $ok = do { no strict; no warnings; eval "return 1;\n" . $code };
  if (!$ok) { _wr("E", "Compilation error"); }
  else { { no strict; no warnings 'redefine'; eval $code; } _wr("O", ""); } }
while (1) {
  my ($t, $n) = _rd();
  my @a; for (1 .. $n) { my ($t2, $d) = _rd(); push @a, $d; }
  my $fn = shift @a;
  if (!defined &{"main::$fn"}) { _wr("E", "Undefined subroutine &main::$fn called.\n"); next; }
  my $r = eval { no strict 'refs'; &{"main::$fn"}(@a) };
  if ($@) { _wr("E", "$@"); } elsif (!defined $r) { _wr("U", ""); } else { _wr("O", "$r"); }
}
'''

# (pid, perl_startup) -> helper: a forked child starts its own, and a
# process that reads another configuration (tests, -be of another file)
# never calls into code loaded for a different perl_startup.
_HELPERS: dict[tuple[int, str], "PerlHelper"] = {}


class PerlHelper:
    def __init__(self, startup: str) -> None:
        self.proc = subprocess.Popen(["perl", "-e", _DRIVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self._send("S", startup)
        t, d = self._recv()
        # As Exim: the interpreter stays after code that did not compile;
        # only the call that started it reports the error.
        self.start_error = f"error in perl_startup code: {d}\n" if t == "E" else None

    def _send(self, tag: str, s: str) -> None:
        b = to_bytes(s) if isinstance(s, str) else s
        self.proc.stdin.write(struct.pack(">cI", tag.encode(), len(b)) + b)

    def _recv(self) -> tuple[str, str]:
        self.proc.stdin.flush()
        h = self.proc.stdout.read(5)
        if len(h) < 5:
            raise ExpansionError("Perl helper process ended unexpectedly")
        tag, ln = struct.unpack(">cI", h)
        d = self.proc.stdout.read(ln)
        return tag.decode(), from_bytes(d)

    def call(self, ctx, name: str, args: list[str]) -> str:
        self._send("C", str(len(args) + 1))
        self._send("A", name)
        for a in args:
            self._send("A", a)
        while True:
            t, d = self._recv()
            if t == "X":
                from eximpy.expand import expand_string
                try:
                    self._send("O", expand_string(d, ctx))
                except ExpansionForcedFail:
                    self._send("F", "")
                except ExpansionError as e:
                    self._send("E", str(e))
                continue
            if t in ("D", "L"):
                sys.stderr.write(d)
                self._send("O", "")
                continue
            if t == "U":
                raise ExpansionForcedFail(
                    f'Perl subroutine "{name}" returned undef to force failure')
            if t == "E":
                raise ExpansionError(d)
            return d

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()


def start(config) -> None:
    """Start the helper now: raises ExpansionError("error in perl_startup
    code: ...") when the code does not compile."""
    from eximpy.expand import ExpandContext
    ctx = ExpandContext(config=config)
    startup = ctx.main_option("perl_startup")
    if startup:
        _helper(startup)


def start_at_startup(config, option: bool | None = None) -> str | None:
    """Exim's start-up step for perl_at_start: called once the configuration
    is read, before the mode runs.  ``option`` is the command line's choice
    (True for -ps, False for -pd, None when neither), which overrides
    perl_at_start.  Returns None, or the text for Exim's fatal
    "exim: error in perl_startup code: <text>" (exit status 1)."""
    at_start = option
    if at_start is None:
        main = getattr(config, "main", None)
        at_start = bool(main.get("perl_at_start")) if main is not None else False
    if not at_start:
        return None
    try:
        start(config)
    except ExpansionError as e:
        msg = str(e)
        prefix = "error in perl_startup code: "
        return (msg[len(prefix):] if msg.startswith(prefix) else msg).rstrip("\n")
    return None


def _helper(startup: str) -> "PerlHelper":
    key = (os.getpid(), startup)
    h = _HELPERS.get(key)
    if h is None:
        for (pid, _s), old in list(_HELPERS.items()):
            if pid == key[0]:
                old.close()        # this process's helper for another config
        _HELPERS.clear()
        h = _HELPERS[key] = PerlHelper(startup)
        if h.start_error:
            raise ExpansionError(h.start_error)
    return h


def call(ctx, name: str, args: list[str]) -> str:
    startup = ctx.main_option("perl_startup")
    if not startup:
        raise ExpansionError("A setting of perl_startup is needed when using the Perl "
                             "interpreter")
    return _helper(startup).call(ctx, name, args)
