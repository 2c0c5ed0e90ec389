"""Every configs/data/*.yaml whose real data is in ../shared/data trains a few steps and tests (globbed: a new data
yaml is picked up without edits). Generic configs (their files are the user's: `???` in the yaml) are skipped."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seqlab.train import train

SHARED = REPO.parent / "shared" / "data"
DATA = sorted(p.stem for p in (REPO / "configs/data").glob("*.yaml"))
SLOW = {"imdb"}  # first preparation tokenizes 50,000 reviews (about a minute)


def compose_data(name: str, *overrides: str):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=[f"data={name}", f"paths.data_dir={SHARED}", *overrides])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in DATA])
def test_data_config_trains_on_its_real_data(name, tmp_path):
    cfg = compose_data(name)
    if OmegaConf.missing_keys(cfg.data):
        pytest.skip(f"data={name} reads the user's own files ({', '.join(sorted(OmegaConf.missing_keys(cfg.data)))})")
    root = cfg.data.get("root")
    if root is None or not (SHARED / root.rsplit("/", 1)[-1]).exists():
        pytest.skip(f"the data of data={name} is not in {SHARED}")
    download = ["data.download=false"] if "download" in cfg.data else []
    cfg = compose_data(name, *download, f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
                       "model.embedding_dim=8", "model.hidden_size=8", "trainer.max_epochs=1",
                       "trainer.limit_train_batches=3", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
                       "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0", "threads=1")
    metrics = train(cfg)
    written = json.loads((tmp_path / "run/metrics.json").read_text())
    assert written[written["monitor"]] == metrics[metrics["monitor"]] is not None
    assert any(k.startswith("test_") for k in written)
