"""Tasks: what differs between sequence tasks (head, loss, decoding, metrics, outputs), one module per kind."""
