"""A pipeline stage ends when the ``dvc`` process that runs it ends.

dvc runs a stage as ``$SHELL -c "alcycle <stage>"`` (the shell may exec the command or stay
between them) in dvc's own process group, ignores SIGINT while the stage runs, and does
nothing to its child when it is killed itself: ``kill`` or ``kill -9`` of dvc alone left the
stage running on, writing outputs nobody would record. ``hold_to_dvc`` ties the stage to dvc
through the shells between them. Linux only (``/proc``, ``prctl``); elsewhere it only
installs the signal handlers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

# From <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 0.5
# The kernel and the watcher say "dvc ended" with a signal of its own, so the stop message can
# tell it from a kill: when dvc dies the kernel signals as its forking thread exits, before its
# other threads, so the stage's parent still looks alive at that moment.
_DVC_ENDED = signal.SIGUSR2

Chain = list[tuple[int, int]]


def hold_to_dvc(stage: str) -> None:
    """Make this process stop, running its ``finally`` blocks, when dvc ends.

    Call it first in a command that runs as the stage ``stage`` (dvc's ``DVC_STAGE``). The stage
    then exits with "dvc ended; stopping stage <stage>" within about half a second of dvc's end
    ("terminated; ..." on SIGTERM), and on SIGINT even where it started with SIGINT ignored.
    """
    # A dvc started in the background of a script ignores SIGINT, and so would its stages; dvc
    # leaves Ctrl-C to the stage, so the stage must not ignore it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = _stop_handler(stage)
    signal.signal(signal.SIGTERM, stop)
    if sys.platform != "linux":
        return
    chain = ancestry(stage)
    signal.signal(_DVC_ENDED, stop)
    # The kernel's signal comes at once when the parent is dvc (the shell exec'd the stage);
    # the watcher covers a shell that stays between them, and a parent gone before prctl.
    _signal_on_parent_death(_DVC_ENDED)
    threading.Thread(target=_watch, args=(chain,), name="alcycle-lifeline", daemon=True).start()


def ancestry(stage: str) -> Chain:
    """``(pid, parent pid)`` from this process up to the last one dvc started for ``stage``.

    dvc gives the processes it starts for a stage ``DVC_STAGE=<stage>`` in their environment and
    has none itself, which tells dvc apart from a shell or any wrapper between it and the stage.
    The last pair's parent is dvc.
    """
    chain = [(os.getpid(), os.getppid())]
    while chain[-1][1] > 1 and _has_stage_env(chain[-1][1], stage):
        pid = chain[-1][1]
        parent = _parent(pid)
        if parent is None:
            break
        chain.append((pid, parent))
    return chain


def _parent(pid: int) -> int | None:
    """The parent pid of ``pid``; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may hold spaces or ')': read after the last one.
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _has_stage_env(pid: int, stage: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # another user's process: not one dvc started for us
        return False
    return f"DVC_STAGE={stage}".encode() in environ.split(b"\0")


def _intact(chain: Chain) -> bool:
    """Whether every process of the chain still has its parent: when one ends, its children
    are handed to another process at once, so a changed parent means a link ended."""
    return all(_parent(pid) == parent for pid, parent in chain)


def _watch(chain: Chain) -> None:
    while _intact(chain):
        time.sleep(_POLL_SECONDS)
    os.kill(os.getpid(), _DVC_ENDED)


def _signal_on_parent_death(signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _stop_handler(stage: str):
    """A handler that raises SystemExit in the main thread, so cleanup code runs."""

    def stop(signum: int, frame: object) -> None:
        # One stop: the kernel and the watcher may both signal, and a second SystemExit
        # would cut the first one's cleanup (temporary files, MLflow run status) short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(_DVC_ENDED, signal.SIG_IGN)
        why = "dvc ended" if signum == _DVC_ENDED else "terminated"
        raise SystemExit(f"{why}; stopping stage {stage}")

    return stop
