"""Train and evaluate from Hydra configs: python scripts/train.py model=bilstm data=imdb [key=value ...]"""

import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from seqlab.errors import SeqlabError
from seqlab.train import train

warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # Lightning's own use of a deprecated torch API


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        return train(cfg).get("val_acc")  # the value Hydra sweepers optimise
    except SeqlabError as e:
        logging.getLogger("seqlab").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
