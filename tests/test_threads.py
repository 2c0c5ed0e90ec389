"""threads=auto: thread counts from the free cores, own cores per parallel job, re-checked while training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from omegaconf import OmegaConf

from seqlab import threads
from seqlab.errors import ConfigError


@pytest.fixture(autouse=True)
def restore_threads_and_affinity():
    n = torch.get_num_threads()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    yield
    torch.set_num_threads(n)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


@pytest.mark.parametrize("busy, cpus, expected", [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.0, 2, 1), (3.5, 2, 1),
                                                  (1.0, 8, 7), (2.6, 8, 5)])
def test_free_cores_counts_a_core_busy_more_than_half_the_time_as_taken(busy, cpus, expected):
    assert threads.free_cores(busy, cpus) == expected


def test_auto_uses_the_cores_other_processes_leave(monkeypatch):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1])
    monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: 1.0)  # one other process keeps a core busy
    assert threads.configure("auto", probe_s=0) == 1 == torch.get_num_threads()
    monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: 0.1)
    assert threads.configure("auto", probe_s=0) == 2 == torch.get_num_threads()
    assert threads.configure("auto", processes=2, probe_s=0) == 1  # DDP on CPU: ranks share the cores


def test_fixed_and_bad_settings():
    assert threads.configure(1) == 1 == torch.get_num_threads()
    assert threads.configure(None) is None
    for bad in (0, -2, "two", True, 1.5):
        with pytest.raises(ConfigError, match="threads must be a positive integer, auto or null"):
            threads.configure(bad)


# A stand-in for a joblib (loky) worker: a child process that runs `configure` for each job number it reads.
WORKER = """
import json, os, sys
from omegaconf import OmegaConf
from seqlab import threads
for line in sys.stdin:
    hc = OmegaConf.create({"launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.JoblibLauncher",
                                        "n_jobs": 2}, "job": {"num": int(line)}})
    print(json.dumps([threads.configure("auto", hc), sorted(os.sched_getaffinity(0))]), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux CPU affinity and 2 cores")
def test_parallel_sweep_workers_get_disjoint_cores_of_the_launching_process():
    """Jobs reach workers in any order (loky gives the next job to whichever worker is free), and a worker keeps
    the affinity of its previous job: each worker still gets its own half of the launcher's cores for every job.
    The steps are sequenced by the pipes; nothing depends on timing."""
    cpus = sorted(os.sched_getaffinity(0))
    half = len(cpus) // 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def worker(start_on: list[int] | None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=env,
                                preexec_fn=(lambda: os.sched_setaffinity(0, start_on)) if start_on else None)

    def job(proc: subprocess.Popen, num: int) -> list[int]:
        proc.stdin.write(f"{num}\n")
        proc.stdin.flush()
        count, cores = json.loads(proc.stdout.readline())
        assert count == len(cores) == half
        return cores

    a, b = worker(start_on=cpus[-1:]), worker(start_on=None)  # a: still pinned by an earlier job to the last core
    try:
        first = job(a, 0)
        assert first == cpus[:half]  # the first slot's share of the launcher's cores, not of a's shrunken set
        second = job(b, 2)  # b's first job has an even number too: it must not take a's cores
        assert second == cpus[half:2 * half]
        assert job(a, 1) == first and job(b, 3) == second and job(b, 4) == second
    finally:
        for proc in (a, b):
            proc.stdin.close()
            proc.wait(timeout=60)
    basic = OmegaConf.create({"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
                              "job": {"num": 1}})
    assert threads.parallel_share(basic) is None  # one job at a time: no sharing


def test_shares_split_the_cores_evenly():
    assert [threads.share_of([0, 1], s, 2) for s in range(2)] == [[0], [1]]
    assert [threads.share_of([0, 1, 2], s, 2) for s in range(2)] == [[0], [1, 2]]  # every core used
    assert [threads.share_of([4, 5], s, 4) for s in range(4)] == [[4], [4], [5], [5]]  # more jobs than cores


def test_governor_follows_the_load_and_stays_off_when_deterministic(monkeypatch):
    assert threads.governor("auto", deterministic=True) is None and threads.governor(2, deterministic=False) is None
    monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1])
    load = {"busy": 1.0}
    monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: load["busy"])
    gov = threads.governor("auto", deterministic=False, check_every_s=0.0)
    torch.set_num_threads(2)
    gov.on_train_batch_end(None, None, None, None, 0)
    assert torch.get_num_threads() == 1  # a competing process appeared
    load["busy"] = 0.0
    gov.on_train_batch_end(None, None, None, None, 1)
    assert torch.get_num_threads() == 2  # and went away


def test_probe_subtracts_this_process_own_cpu_time(monkeypatch):
    """2 s of wall time, 3.0 busy core-seconds in all, 1.0 of them this process's: others kept 1 core busy."""
    reads = iter([(10.0, 100.0, 5.0), (12.0, 103.0, 6.0), (13.0, 103.5, 6.5)])
    monkeypatch.setattr(threads.LoadProbe, "_read", staticmethod(lambda: next(reads)))
    probe = threads.LoadProbe()
    assert probe.sample() == pytest.approx(1.0)
    assert probe.sample() == pytest.approx(0.0)  # all of the next second's use was our own


def test_probe_reads_proc_stat():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat")
    wall, busy, own = threads.LoadProbe._read()
    assert busy > 0 and own > 0 and wall > 0


def test_wait_policy_is_passive_only_for_auto_on_a_shared_machine_and_never_overrides_the_user(monkeypatch):
    for key in threads.WAIT_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delitem(sys.modules, "torch")  # as in scripts/train.py before it imports torch
    monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: 0.1)
    assert threads.wait_policy("auto", probe_s=0) is None and "OMP_WAIT_POLICY" not in os.environ  # idle: default
    monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: 1.0)  # one core busy elsewhere
    assert threads.wait_policy(2, probe_s=0) is None and threads.wait_policy(None, probe_s=0) is None
    assert threads.wait_policy("auto", probe_s=0) == "PASSIVE" == os.environ["OMP_WAIT_POLICY"]
    for key, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000")):  # the user's own choice
        for k in threads.WAIT_ENV:
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv(key, value)
        assert threads.wait_policy("auto", probe_s=0) is None and os.environ.get("OMP_WAIT_POLICY") != "PASSIVE"
    for k in threads.WAIT_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert threads.wait_policy("auto", probe_s=0) is None  # too late: libgomp has read its environment
