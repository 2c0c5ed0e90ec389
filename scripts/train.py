"""Train and evaluate from Hydra configs: python scripts/train.py model=bilstm data=imdb [key=value ...]

Sweeps: python scripts/train.py -m model.hidden_size=64,128 seed=1,2,3 (see README, "Sweeps"). A multirun goes on
when a job fails and exits non-zero afterwards: 2 when every failure was a config or data error, else 1.
"""

import logging
import os
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seqlab.cli import as_config_error, run_hydra
from seqlab.errors import SeqlabError, report
from seqlab.naming import task_overrides
from seqlab.sweep.callback import exit_status, summarize_multirun
from seqlab.sweep.ddp import ddp_ready_job
from seqlab.sweep.jobs import DEFAULT_MONITOR, write_error
from seqlab.threads import LoadProbe, wait_policy

warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning's own use of a deprecated torch API
log = logging.getLogger("seqlab")
STARTED = os.getpid(), LoadProbe()  # the load while Hydra composes the config decides the OpenMP wait policy


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    start, hc = time.time(), HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        # before torch is imported (threads=auto); a joblib worker, another process, samples the load itself
        wait_policy(cfg.get("threads"), STARTED[1] if STARTED[0] == os.getpid() else None)
        from seqlab.train import train

        with ddp_ready_job(hc) if multirun else nullcontext():
            metrics = train(cfg)
        return metrics.get(metrics.get("monitor", DEFAULT_MONITOR[0]))  # the value Hydra sweepers optimise
    except Exception as error:
        e = as_config_error(error)  # e.g. an interpolation (${...}) that does not resolve
        write_error(Path(cfg.paths.output_dir or hc.runtime.output_dir), e, time.time() - start,
                    task_overrides(hc))
        user_error = isinstance(e, SeqlabError)
        if multirun:
            # Hydra's basic sweeper would abort the sweep after this batch (and a SystemExit at once): record the
            # failure and carry on; the exit status reports it. None is not a number: Optuna marks the trial FAIL.
            log.error("Job failed: %s: %s", type(e).__name__, e, exc_info=not user_error)
            report(e)
            return None
        if user_error:
            log.error("%s", e)
            sys.exit(report(e))
        raise


if __name__ == "__main__":
    try:
        run_hydra(main)  # a config Hydra cannot compose (data=imbd, model.hiden_size=4): one error line, exit 2
    except SystemExit as e:  # a single run's user error (2)
        sys.exit(exit_status(e.code))
    except Exception as e:  # a sweeper that raised after its jobs ran (Optuna, when no trial completed)
        status = exit_status(1)  # prints the summary and, when jobs failed, the error line that says why
        if status == 1 and not summarize_multirun():
            raise
        print(f"warning: the sweeper stopped with {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(status)
    sys.exit(exit_status(0))
