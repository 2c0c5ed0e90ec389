"""Train and evaluate from Hydra configs: python scripts/train.py model=bilstm data=imdb [key=value ...]

Sweeps: python scripts/train.py -m model.hidden_size=64,128 backend=torch,custom (see README, "Sweeps").
"""

import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, read_write

from seqlab.errors import SeqlabError
from seqlab.sweep import write_error
from seqlab.train import train

warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning's own use of a deprecated torch API
log = logging.getLogger("seqlab")
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def ddp_ready_job(hc: DictConfig) -> Iterator[None]:
    """One job of a multirun, made safe for Lightning's `ddp` launcher.

    That launcher starts ranks 1.. by re-running this script with sys.argv plus `hydra.run.dir=<hydra.run.dir>`:
    in a multirun that would be the whole sweep again, in the wrong directory. Give it this job's overrides as a
    single run in this job's directory instead; afterwards leave no process group or rank variables behind, or the
    next job would wait for ranks that never come.
    """
    argv, env = sys.argv, {k: os.environ.get(k) for k in DDP_ENV}
    sys.argv = [argv[0], *hc.overrides.task, "hydra.mode=RUN"]
    with read_write(hc):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    start, hc = time.time(), HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        if multirun:
            with ddp_ready_job(hc):
                return train(cfg).get("val_acc")  # the value Hydra sweepers optimise
        return train(cfg).get("val_acc")
    except Exception as e:
        write_error(Path(cfg.paths.output_dir or hc.runtime.output_dir), e, time.time() - start,
                    list(hc.overrides.task))
        user_error = isinstance(e, SeqlabError)
        if multirun:
            # Hydra's basic sweeper would abort the sweep after this batch (and a SystemExit at once): record the
            # failure and carry on. None is not a number, so the Optuna sweeper marks the trial FAIL.
            log.error("Job failed: %s: %s", type(e).__name__, e, exc_info=not user_error)
            print(f"error: {e}", file=sys.stderr)
            return None
        if user_error:
            log.error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
