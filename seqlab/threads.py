"""`threads: auto`: torch's intra-op thread count chosen from the cores that are actually free, and kept so.

Why: torch runs each small LSTM op as an OpenMP parallel region that ends in a barrier. When another process holds
one of the cores, the thread scheduled there waits for its time slice at every op, and the whole step waits with it:
measured here, one competing busy process made a 2-thread run 19x slower (77k -> 4k tokens/s), while a 1-thread
run kept 45k tokens/s. So `auto`:

- at start, uses the cores this process may run on (`sched_getaffinity`) minus what other processes keep busy
  (sampled from /proc/stat over a fraction of a second, this process's own use subtracted); at least one;
- in a parallel sweep (Hydra's joblib launcher, `hydra/launcher=local_parallel`), gives each of the `n_jobs`
  worker processes its own share of the launching process's cores and pins each job there (`sched_setaffinity`),
  so jobs never overlap (`worker_slot`, `sweep_cpus`);
- before torch is imported (`wait_policy`, called by scripts/train.py), lets OpenMP's threads sleep while they wait
  for work (OMP_WAIT_POLICY=PASSIVE) when other processes are using the CPU. libgomp's default spins ~3 ms after
  each parallel region, on a core another process wants: on the shared 2-core development machine, other jobs
  running, 2 threads trained 8-17x slower spinning than sleeping (scripts/bench_busy.py --env). On an idle machine
  the default is kept;
- during training (`ThreadGovernor`), re-reads the load every `check_every_s` seconds and moves the thread count
  to the free cores when they change (a browser starts, another job ends). With `trainer.deterministic=true` the
  count chosen at start is kept, since float results can depend on it.

A fixed integer is used as given; `null` leaves torch's default (one thread per core).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from typing import Any

from seqlab.arguments import check_positive_int

log = logging.getLogger(__name__)


def allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


class LoadProbe:
    """Busy cores of *other* processes between two `sample()` calls (Linux /proc; elsewhere the load average)."""

    def __init__(self):
        self.last = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        """(wall seconds, busy CPU seconds of the allowed cores, CPU seconds of this process)."""
        try:
            tick = os.sysconf("SC_CLK_TCK")
            cpus = {f"cpu{i}" for i in allowed_cpus()}
            busy = 0.0
            with open("/proc/stat") as f:
                for line in f:
                    name, *fields = line.split()
                    if name in cpus:
                        v = [float(x) for x in fields[:8]]
                        busy += sum(v) - v[3] - v[4]  # all but idle and iowait
            own = os.times()
            return time.monotonic(), busy / tick, own.user + own.system
        except (OSError, ValueError):
            return None

    def sample(self) -> float:
        """Cores other processes kept busy since the last sample (or the 1-minute load average off Linux)."""
        now = self._read()
        prev, self.last = self.last, now
        if now is None or prev is None or now[0] - prev[0] <= 0:
            return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        wall = now[0] - prev[0]
        return max(0.0, ((now[1] - prev[1]) - (now[2] - prev[2])) / wall)


def free_cores(busy_others: float, cpus: int) -> int:
    """Cores left by other processes, rounded so that a core busy more than half the time counts as taken."""
    return max(1, min(cpus, cpus - int(busy_others + 0.5)))


def sweep_cpus() -> list[int]:
    """The cores of the process that launched this parallel sweep job. A joblib (loky) worker is that process's
    child and stays pinned to its previous job's share, so its own affinity no longer says what the sweep may use."""
    try:
        return sorted(os.sched_getaffinity(os.getppid()))
    except (AttributeError, OSError):
        return allowed_cpus()


_claim: tuple[tuple[int, int], int, socket.socket] | None = None  # ((launcher pid, n), slot, the socket holding it)


def worker_slot(n: int, job_num: int) -> int:
    """This worker process's slot among the `n` concurrent workers of its sweep: the lowest one no live worker
    holds, kept for the process's lifetime. Keyed on the worker, not the job number: loky hands the next job to
    whichever worker is free, so jobs k and k + n can run at the same time. A slot is claimed by binding an abstract
    Unix socket name (Linux), which the kernel frees when the process ends; elsewhere, job number modulo `n`."""
    global _claim
    key = (os.getppid(), n)
    if _claim is not None and _claim[0] == key:
        return _claim[1]
    for slot in range(n):
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except (AttributeError, OSError):  # no Unix sockets
            break
        try:
            sock.bind(f"\0seqlab-cores-{key[0]}-{n}-{slot}")
        except OSError:  # another worker holds it (or no abstract names: not Linux)
            sock.close()
            continue
        if _claim is not None:
            _claim[2].close()
        _claim = (key, slot, sock)
        return slot
    return job_num % n  # more live workers than slots


def share_of(cpus: list[int], slot: int, n: int) -> list[int]:
    """Slot `slot`'s cores out of `n` equal shares of `cpus` (more jobs than cores: jobs share a core)."""
    lo, hi = slot * len(cpus) // n, (slot + 1) * len(cpus) // n
    return cpus[lo:hi] or [cpus[lo % len(cpus)]]


def parallel_share(hydra_cfg: Any) -> tuple[int, int] | None:
    """(this worker's slot, concurrent jobs) when Hydra's joblib launcher runs jobs side by side, else None."""
    try:
        launcher = hydra_cfg.launcher
        if "joblib" not in str(launcher.get("_target_", "")):
            return None
        n = int(launcher.get("n_jobs") or 1)
        n = len(sweep_cpus()) if n < 0 else n
        return (worker_slot(n, int(hydra_cfg.job.num)), n) if n > 1 else None
    except Exception:  # not a multirun, or a launcher config of another shape
        return None


def configure(setting: Any, hydra_cfg: Any = None, processes: int = 1, probe_s: float = 0.3,
              probe: LoadProbe | None = None) -> int | None:
    """Apply `threads` (an int, "auto" or None) to torch; returns the thread count set (None: torch's default).
    `processes`: training processes of this run on this machine (DDP on CPU), which share the free cores.
    `probe`: a LoadProbe started earlier (e.g. before start-up work), read now instead of waiting `probe_s`."""
    import torch

    if setting is None:
        return None
    check_positive_int("threads", setting, allow_none=True, also=("auto",))
    if setting != "auto":
        torch.set_num_threads(setting)
        return setting
    share = parallel_share(hydra_cfg)
    if share is not None:  # pin this job to its worker's own slice of the sweep's cores
        slot, n = share
        mine = share_of(sweep_cpus(), slot, n)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, mine)
        torch.set_num_threads(len(mine))
        log.info("threads=auto: parallel sweep worker %d of %d, %d thread(s) on cores %s", slot + 1, n, len(mine),
                 mine)
        return len(mine)
    cpus = allowed_cpus()
    if probe is None:
        probe = LoadProbe()
        time.sleep(probe_s)
    busy = probe.sample()
    threads = max(1, free_cores(busy, len(cpus)) // max(1, processes))
    torch.set_num_threads(threads)
    log.info("threads=auto: %d thread(s) (%d cores, %.1f busy with other processes)", threads, len(cpus), busy)
    return threads


WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # the user's choice when set: left alone
SHARED = 0.25  # cores other processes use (sampled at start) from which the machine counts as shared


def wait_policy(setting: Any, probe: LoadProbe | None = None, probe_s: float = 0.3) -> str | None:
    """For `threads: auto`, before torch is imported (libgomp reads the policy once, when torch loads it): sets
    OMP_WAIT_POLICY=PASSIVE when other processes use at least `SHARED` cores; returns the policy set, else None (an
    idle machine, a fixed `threads`, a wait policy in the environment already, torch imported already).
    `probe`: a LoadProbe started earlier (e.g. at the script's start); the sample spans at least `probe_s`."""
    if setting != "auto" or "torch" in sys.modules or any(k in os.environ for k in WAIT_ENV):
        return None
    probe = probe or LoadProbe()
    if probe.last is not None:
        time.sleep(max(0.0, probe.last[0] + probe_s - time.monotonic()))
    busy = probe.sample()
    if busy < SHARED:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    log.info("threads=auto: other processes use %.1f cores: OpenMP threads sleep while they wait "
             "(OMP_WAIT_POLICY=PASSIVE)", busy)
    return "PASSIVE"


def governor(setting: Any, deterministic: bool, check_every_s: float = 30.0):
    """The Lightning callback that keeps `threads: auto` on the free cores during training, or None."""
    if setting != "auto" or deterministic:
        return None
    import pytorch_lightning as pl
    import torch

    class ThreadGovernor(pl.Callback):
        """Every `check_every_s` seconds (checked after a training batch), moves torch's thread count to the cores
        other processes leave free."""

        def __init__(self):
            self.probe, self.next_check = LoadProbe(), time.monotonic() + check_every_s

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now = time.monotonic()
            if now < self.next_check:
                return
            self.next_check = now + check_every_s
            threads = free_cores(self.probe.sample(), len(allowed_cpus()))
            if threads != torch.get_num_threads():
                log.info("threads=auto: %d -> %d thread(s) (the load of other processes changed)",
                         torch.get_num_threads(), threads)
                torch.set_num_threads(threads)

    return ThreadGovernor()
