"""Sweeps (`scripts/train.py -m ...`), one job per module:

- `jobs`: a job folder's records: `error.json` when a job failed, and reading a job back (overrides, metrics, status);
- `summary`: the jobs of a sweep ranked by the monitored metric, and grouped over seeds (mean, standard deviation);
- `tables`: summary.csv and summary.md;
- `callback`: the Hydra callback that writes the summary when a multirun ends, and the multirun's exit status;
- `ddp`: one job of a multirun made safe for Lightning's `ddp` launcher.

Run names (job folders, TensorBoard runs) are in `seqlab.naming`. Nothing here imports torch at import time.
"""
