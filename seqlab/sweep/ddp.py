"""One job of a multirun, made safe for Lightning's `ddp` launcher."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, read_write

from seqlab.naming import task_overrides

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def ddp_ready_job(hc: DictConfig) -> Iterator[None]:
    """Run one job of a multirun (`hc`: its HydraConfig) so that DDP ranks 1.. run this job, not the sweep.

    Lightning's `ddp` launcher starts ranks 1.. by re-running this script with sys.argv plus
    `hydra.run.dir=<hydra.run.dir>`: in a multirun that would be the whole sweep again, in the wrong directory. Give
    it this job's overrides as a single run in this job's directory instead; afterwards leave no process group or
    rank variables behind, or the next job would wait for ranks that never come.
    """
    argv, env = sys.argv, {k: os.environ.get(k) for k in DDP_ENV}
    sys.argv = [argv[0], *task_overrides(hc), "hydra.mode=RUN"]
    with read_write(hc):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        import torch.distributed  # here, not at the top: summaries stay free of torch imports

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
