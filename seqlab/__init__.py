"""seqlab: recurrent sequence models, configured, reproducible and fast."""

__version__ = "0.1.0"
