"""The loss curve of a run as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def plot_losses(history: Sequence[dict], path: str | Path, *, ngram_nll: float | None = None,
                unigram_nll: float | None = None) -> None:
    """Training loss and validation NLL per epoch (nats/token), baselines as horizontal lines.
    Written atomically (temporary file, then rename)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    try:
        ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss (augmented)")
        ax.plot(epochs, [h["val_nll"] for h in history], "s-", label="validation NLL")
        if ngram_nll is not None:
            ax.axhline(ngram_nll, color="gray", ls="--", label=f"n-gram validation ({ngram_nll:.3f})")
        if unigram_nll is not None:
            ax.axhline(unigram_nll, color="gray", ls=":", label=f"unigram validation ({unigram_nll:.3f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per token")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
