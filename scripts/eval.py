"""Evaluate a checkpoint on its run's test split: python scripts/eval.py ckpt=PATH [split=val] [data.root=DIR]

Prints the metrics as one JSON object on stdout and writes them next to the checkpoint
(`<checkpoint name>.<split>.json`, or `output=PATH`). Settings and defaults: configs/eval.yaml.
"""

import json
import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from seqlab.cli import run_hydra
from seqlab.errors import SeqlabError, report

warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning's own use of a deprecated torch API


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(name)s][%(levelname)s] - %(message)s")
    from seqlab.evaluate import evaluate  # after Hydra has parsed the command line (fast --help, fast errors)

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # accelerator banners and tips

    try:
        metrics = evaluate(cfg)
    except SeqlabError as e:
        sys.exit(report(e))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    run_hydra(main, "scripts/eval.py")  # a config Hydra cannot compose: one error line, exit 2
