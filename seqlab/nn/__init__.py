"""The recurrent core: hand-written LSTM and GRU cells, one layer stack for any cell, drop-ins for torch.nn.LSTM,
LSTMCell, GRU and GRUCell (plain PyTorch, no Lightning)."""

from seqlab.nn.cell import GRUCell, LSTMCell, gru_cell, gru_pointwise, lstm_cell, lstm_pointwise
from seqlab.nn.gru import GRU
from seqlab.nn.lstm import LSTM
from seqlab.nn.rnn import RNNBase, layer_weights

__all__ = ["GRU", "LSTM", "GRUCell", "LSTMCell", "RNNBase", "gru_cell", "gru_pointwise", "layer_weights",
           "lstm_cell", "lstm_pointwise"]
