"""The LSTM language model over the token stream: embedding -> stacked LSTM -> dropout -> linear.

A checkpoint (see train/checkpoint.py) stores `model_args`, the keyword arguments of JamLSTM, so the
model's shape travels with its weights and is never re-typed from config.
"""

from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


class JamLSTM(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 256, hidden_size: int = 512,
                 num_layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(self.num_layers, batch, self.hidden_size, device=device)
        return zeros, zeros.clone()  # (L, B, H) each

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        x = self.embed(ids)                     # (B, T, E)
        y, state = self.lstm(x, state)          # (B, T, H); state (L, B, H) x2
        logits = self.head(self.drop(y))        # (B, T, V)
        return logits, state
