"""CPU use of a measured process tree over time, and its summary per build stage.

``TreeSampler.sample()`` adds one sample: seconds since the start, the CPU the tree used since the previous
sample in cores (1.0 = one core busy the whole interval; user + system time of every live process of the
tree, plus what its members' reaped children used, so that a worker that exits is not lost), the tree's
RSS, and the whole machine's busy percentage per core (the machine is shared: this says what else ran).
``stage_summary`` turns the samples and the stage start times the build logged into the mean CPU of each
stage and the fraction of each stage during which every core was busy with the tree's work.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

STAGE_START = re.compile(r"\[(\w+)\] starting")  # the build logs "[<stage>] starting" as each stage begins
ALL_BUSY = 0.9  # "every core busy": the tree used at least this fraction of every core in the interval


def _tree_cpu_seconds(procs: list[psutil.Process]) -> tuple[float, int]:
    cpu, rss = 0.0, 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += p.memory_info().rss
    return cpu, rss


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds ``pid`` and its descendants have used so far (reaped children included)."""
    try:
        root = psutil.Process(pid)
        return _tree_cpu_seconds([root, *root.children(recursive=True)])[0]
    except psutil.Error:
        return 0.0


def cpu_seconds(samples: list[list[Any]]) -> float:
    """Return the CPU seconds the samples account for (each sample's cores times its interval)."""
    total, last = 0.0, 0.0
    for s in samples:
        total += float(s[1]) * (float(s[0]) - last)
        last = float(s[0])
    return round(total, 1)


@dataclass
class TreeSampler:
    """Samples of the CPU and RSS of ``pid`` and its descendants (see the module docstring)."""

    pid: int
    t0: float = field(default_factory=time.perf_counter)
    samples: list[list[Any]] = field(default_factory=list)  # [t, tree cores, tree rss, [machine % per core]]
    peak_rss: int = 0
    _last: tuple[float, float] | None = None

    def sample(self) -> None:
        """Add one sample (nothing if the process is gone)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        cpu, rss = _tree_cpu_seconds(procs)
        now = time.perf_counter()
        machine = psutil.cpu_percent(percpu=True)
        self.peak_rss = max(self.peak_rss, rss)
        if self._last is not None and now > self._last[0]:
            cores = max(0.0, (cpu - self._last[1]) / (now - self._last[0]))
            self.samples.append([round(now - self.t0, 2), round(cores, 3), rss, machine])
        self._last = (now, cpu)


def stage_summary(samples: list[list[Any]], starts: dict[str, float], end: float, cores: int) -> dict[str, Any]:
    """Return, per stage (``starts``: its start in seconds since the run's start; a stage ends where the next
    starts, the last at ``end``), the mean CPU of the tree in percent of one core, the machine's mean busy
    percent over all cores, and the fraction of samples in which the tree kept every one of ``cores`` busy."""
    order = sorted(starts.items(), key=lambda kv: kv[1])
    out: dict[str, Any] = {}
    for i, (name, lo) in enumerate(order):
        hi = order[i + 1][1] if i + 1 < len(order) else end
        inside = [s for s in samples if lo < s[0] <= hi]
        if not inside:
            continue
        tree = [float(s[1]) for s in inside]
        machine = [sum(s[3]) / max(1, len(s[3])) for s in inside]
        out[name] = {
            "seconds": round(hi - lo, 2),
            "tree_cpu_percent": round(100 * sum(tree) / len(tree), 1),
            "machine_cpu_percent": round(sum(machine) / len(machine), 1),
            "all_cores_busy_fraction": round(sum(c >= ALL_BUSY * cores for c in tree) / len(tree), 3),
        }
    return out
