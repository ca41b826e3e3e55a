"""Entry point of a role process: `python -m eximpy.proc.role NAME ...`.

SUMMARY
    The launcher execs this once per role with the configuration file, the
    -D macros, the listening descriptors and the queue interval.  It loads
    everything a role needs (so that forked children start warm), drops
    privilege for the role (eximpy.proc.skeleton.become_role) and runs the
    role's loop:

        receiver      eximpy.proc.receiver.run_receiver   no capabilities
        delivery      eximpy.proc.delivery.run_delivery   CAP_SETUID/SETGID
                                                          when started by root
        queue runner  eximpy.proc.queuerun.run_queue_runner  no capabilities

SEE ALSO
    eximpy.proc.launcher.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from eximpy.privilege import PrivilegeError
from eximpy.proc.skeleton import RoleContext, become_role


def warm_imports() -> list[str]:
    """Import every eximpy module (and so the stdlib modules they use).

    This happens before the privilege drop and before any fork: afterwards
    the interpreter's files may not even be readable (a Python installed
    under root's home), and forked children should find everything warm.
    Returns the modules that could not be imported.
    """
    import importlib
    import pkgutil
    import traceback  # noqa: F401  (used by crash reports in children)

    import eximpy
    failed = []
    for info in pkgutil.walk_packages(eximpy.__path__, "eximpy."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            failed.append(info.name)
    _warm_dnspython()
    return failed


def _warm_dnspython() -> None:
    """dnspython decides about its optional features (through
    importlib.metadata) at the first query, which may come in a child
    that can no longer read the interpreter's files: decide them now."""
    try:
        import dns._features as features
        import dns.resolver
        import dns.reversename  # noqa: F401
        for name in ("dnssec", "doh", "doq", "idna", "trio", "wmi"):
            features.have(name)
        dns.resolver.Resolver(configure=False)
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="eximpy-role")
    ap.add_argument("name", choices=["receiver", "delivery", "queue runner"])
    ap.add_argument("--config", required=True)
    ap.add_argument("--macros", default="{}")
    ap.add_argument("--fds", default="")
    ap.add_argument("--interval", type=int, default=0)
    a = ap.parse_args(argv)
    from eximpy.config import load_config
    config = load_config(a.config, json.loads(a.macros))
    ctx = RoleContext(a.name, config, a.config, json.loads(a.macros),
                      [int(f) for f in a.fds.split(",") if f],
                      a.interval or None)
    failed = warm_imports()
    if failed:
        sys.stderr.write(f"eximpy: {a.name}: modules not importable: "
                         f"{' '.join(failed)}\n")
    keep = ("setuid", "setgid") if a.name == "delivery" and \
        os.geteuid() == 0 else ()
    # Everything read from outside a chroot jail is read now: sessions'
    # TLS keys and options, the exim user's ids.
    warm = None
    if a.name == "receiver":
        from eximpy.proc.receiver import Warm
        warm = Warm.prepare(config)
    from eximpy.proc import jail
    from eximpy.proc.skeleton import exim_ids
    ids = exim_ids(config)
    try:
        jail.enter(config)
        become_role(ctx, keep, ids)
    except (PrivilegeError, OSError) as e:
        sys.stderr.write(f"eximpy: {a.name}: cannot drop privilege: {e}\n")
        return 1
    # After the uid change (which clears it): a role never outlives its
    # launcher.
    import signal
    from eximpy.privilege import set_parent_death_signal
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() == 1:
        return 1
    if a.name == "receiver":
        from eximpy.proc.receiver import run_receiver
        return run_receiver(ctx, warm)
    if a.name == "delivery":
        from eximpy.proc.delivery import run_delivery
        return run_delivery(ctx)
    from eximpy.proc.queuerun import run_queue_runner
    return run_queue_runner(ctx)


if __name__ == "__main__":
    raise SystemExit(main())
