"""The PyTorch modules of issue #16's tests, defined once: a keyword-spotting shape
(Conv1d -> LSTM, optionally with a projection -> Linear) and an OCR shape (Conv2d + pooling
over height -> BiLSTM over width -> per-column Linear). Imported only where torch is."""

from __future__ import annotations

import torch


class Conv1dLstm(torch.nn.Module):
    """x [B, 4, T] -> Conv1d(``channels``) -> LSTM(``hidden``, ``proj`` units out) ->
    Linear(``n_out``); every step's output, or only the last one (``last_step``)."""

    def __init__(
        self,
        proj: int = 0,
        n_out: int = 3,
        last_step: bool = False,
        channels: int = 6,
        hidden: int = 8,
    ) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, channels, 3, padding=1)
        self.lstm = torch.nn.LSTM(channels, hidden, batch_first=True, proj_size=proj)
        self.fc = torch.nn.Linear(proj or hidden, n_out)
        self.last_step = last_step

    def forward(self, x):
        y, _ = self.lstm(torch.relu(self.conv(x)).transpose(1, 2))
        return self.fc(y[:, -1] if self.last_step else y)


class Crnn(torch.nn.Module):
    """x [B, 1, 8, W] -> Conv2d, MaxPool over height -> BiLSTM over the W columns ->
    a per-column Linear(``n_out``)."""

    def __init__(self, n_out: int = 5) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = torch.nn.MaxPool2d((2, 1))
        self.lstm = torch.nn.LSTM(16, 12, bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(24, n_out)

    def forward(self, x):
        f = self.pool(torch.relu(self.conv(x)))
        b, c, h, w = f.shape
        y, _ = self.lstm(f.permute(0, 3, 1, 2).reshape(b, w, c * h))
        return self.fc(y)
