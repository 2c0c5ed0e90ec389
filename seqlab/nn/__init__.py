"""The recurrent core: a hand-written LSTM cell and a drop-in for torch.nn.LSTM (plain PyTorch, no Lightning)."""

from seqlab.nn.cell import LSTMCell, lstm_cell, lstm_pointwise
from seqlab.nn.lstm import LSTM

__all__ = ["LSTM", "LSTMCell", "lstm_cell", "lstm_pointwise"]
