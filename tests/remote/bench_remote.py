"""Remote delivery throughput: N queued messages (2 recipients each)
delivered by a queue run (-qf) of real Exim and of eximpy to the scripted
SMTP server on 127.0.0.2, in the same run; prints both times and the
ratio.  Exim forks a delivery process (and a transport process) per
message; eximpy delivers them from one process.

    .venv/bin/python tests/remote/bench_remote.py [N]
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _remote import EXIM, ROOT, WORK, copy_spool, ids_in, prepare, receive  # noqa: E402
from smtpserver import ScriptedServer  # noqa: E402
from test_smtp_transport import CONF, MESSAGE  # noqa: E402


def main(n: int) -> None:
    srv = ScriptedServer().start()
    conf_text = (CONF.replace("@PORTLINE@", "    port = @PORT@").replace("@TRANSPORT@", "").replace("@MAIN@", "")
                 .replace("@AUTH@", "").replace("@HOSTS@", "127.0.0.2")
                 .replace("@PORT@", str(srv.port)))
    work = WORK / "bench"
    ex, py = work / "exim", work / "eximpy"
    cex, cpy = prepare(ex, conf_text, {}), prepare(py, conf_text, {})
    for _ in range(n):
        receive(cex, ["-f", "sender@sender.example", "a@dest.example",
                      "b@dest.example"], MESSAGE)
    copy_spool(ex, py)
    t0 = time.monotonic()
    subprocess.run([EXIM, "-C", str(cex), "-qf"], capture_output=True)
    t_ex = time.monotonic() - t0
    n_ex = len(srv.sessions)
    srv.sessions.clear()
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "eximpy", "-C", str(cpy), "-qf"],
                   capture_output=True, cwd=str(ROOT),
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    t_py = time.monotonic() - t0
    n_py = len(srv.sessions)
    srv.stop()
    left_ex, left_py = len(ids_in(ex)), len(ids_in(py))
    print(f"messages: {n}  sessions exim={n_ex} eximpy={n_py}  "
          f"left on queue exim={left_ex} eximpy={left_py}")
    print(f"exim -qf:   {t_ex:.2f}s  ({n / t_ex:.1f} msg/s)")
    print(f"eximpy -qf: {t_py:.2f}s  ({n / t_py:.1f} msg/s)")
    print(f"ratio eximpy/exim throughput: {t_ex / t_py:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
