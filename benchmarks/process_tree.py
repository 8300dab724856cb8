"""Run a command and sample the memory of its whole process tree (the benchmarks' one way to do it)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import psutil

SAMPLE_S = 0.2  # how often the tree's memory is read


def rollup(pid: int) -> dict[str, int]:
    """The kernel's memory totals of process ``pid`` (/proc/PID/smaps_rollup), in bytes."""
    totals = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                totals[key] = int(value.split()[0]) * 1024
    return totals


def tree_memory(process: psutil.Process) -> tuple[int, int]:
    """Bytes of the process and its children together: (PSS, anonymous PSS).

    PSS counts shared pages once, and counts the pages of memory-mapped files the tree has
    read (page cache the kernel can drop). Anonymous PSS (``Pss_Anon``) leaves those out:
    what the processes allocated themselves, where a stage's own buffers show.
    """
    pss = anonymous = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            totals = rollup(member.pid)
        except (OSError, psutil.Error):  # a worker that just ended
            continue
        pss += totals["Pss"]
        anonymous += totals["Pss_Anon"]
    return pss, anonymous


def run_sampled(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
                ) -> tuple[int, float, int, str, int]:
    """Run ``cmd``: (return code, wall seconds, peak tree PSS in bytes, its stdout and stderr,
    peak tree anonymous memory in bytes).

    Output goes to a temporary file, not a pipe, so a chatty command never blocks on a full
    pipe while it is being sampled.
    """
    with tempfile.TemporaryFile(mode="w+") as output:
        start = time.perf_counter()
        process = psutil.Popen(cmd, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        peak = peak_anonymous = 0
        while process.poll() is None:
            pss, anonymous = tree_memory(process)
            peak, peak_anonymous = max(peak, pss), max(peak_anonymous, anonymous)
            time.sleep(SAMPLE_S)
        seconds = time.perf_counter() - start
        output.seek(0)
        return process.returncode, seconds, peak, output.read(), peak_anonymous
