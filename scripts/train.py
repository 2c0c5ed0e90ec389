"""Train and evaluate from Hydra configs: python scripts/train.py model=bilstm data=imdb [key=value ...]

Sweeps: python scripts/train.py -m model.hidden_size=64,128 backend=torch,custom (see README, "Sweeps").
"""

import logging
import sys
import time
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seqlab.errors import SeqlabError
from seqlab.sweep import ddp_ready_job, write_error
from seqlab.train import train

warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning's own use of a deprecated torch API
log = logging.getLogger("seqlab")


def objective(metrics: dict) -> float | None:
    """The value Hydra sweepers (Optuna) optimise: the monitored validation metric."""
    return metrics.get(metrics.get("monitor", "val_acc"))


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    start, hc = time.time(), HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        if multirun:
            with ddp_ready_job(hc):
                return objective(train(cfg))
        return objective(train(cfg))
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
