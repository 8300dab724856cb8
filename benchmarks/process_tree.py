"""Run a command and sample the memory of its whole process tree (the benchmarks' one way to do it)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import psutil

SAMPLE_S = 0.2  # how often the tree's memory is read


def tree_pss(process: psutil.Process) -> int:
    """Bytes of the process and its children together (PSS: shared pages counted once)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except psutil.Error:  # a worker that just ended
            pass
    return total


def run_sampled(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
                ) -> tuple[int, float, int, str]:
    """Run ``cmd``: (return code, wall seconds, peak tree PSS in bytes, its stdout and stderr).

    Output goes to a temporary file, not a pipe, so a chatty command never blocks on a full
    pipe while it is being sampled.
    """
    with tempfile.TemporaryFile(mode="w+") as output:
        start = time.perf_counter()
        process = psutil.Popen(cmd, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_pss(process))
            time.sleep(SAMPLE_S)
        seconds = time.perf_counter() - start
        output.seek(0)
        return process.returncode, seconds, peak, output.read()
