"""What a run shows while it trains: a Keras-style bar per epoch with the live loss, one line of
metrics at each epoch's end, and a closing table. ``Silent`` is the ``--quiet`` variant."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SHOWN = {  # history key -> short label, in Keras' order
    "train_loss": "loss",
    "train_accuracy": "acc",
    "val_loss": "val_loss",
    "val_accuracy": "val_acc",
    "val_macro_f1": "val_macro_f1",
    "lr": "lr",
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.2e}"
    return str(value)


class Silent:
    """Reports nothing."""

    def start(self, run_path, n_train: int, n_val: int, device: str) -> None: ...
    def resumed(self, history: list[dict]) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, n_batches: int) -> None: ...
    def batch_end(self, done: int, loss: float | None) -> None: ...
    def epoch_end(self, row: dict, note: str = "") -> None: ...
    def finish(self, metrics: dict, run_path, status: str) -> None: ...

    def pruned(self) -> bool:
        """Whether the run should stop before its next epoch (a sweep's pruner says so)."""
        return False


class Terminal(Silent):
    """Live progress bars and per-epoch lines through a rich console."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.progress = None
        self.task = None

    def start(self, run_path, n_train, n_val, device):
        self.console.print(f"[bold]reglab[/] {n_train} training / {n_val} validation samples on {device} → {escape(str(run_path))}", soft_wrap=True)

    def resumed(self, history):
        self.console.print(f"resuming after epoch {len(history)}", soft_wrap=True)

    def epoch_start(self, epoch, epochs, n_batches):
        if not self.console.is_terminal:  # logs and CI get the per-epoch line only
            return
        self.progress = Progress(
            TextColumn(f"Epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("train", total=n_batches, loss="")
        self.progress.start()

    def batch_end(self, done, loss):
        if self.progress is None:
            return
        fields = {"loss": f"loss {loss:.4f}"} if loss is not None else {}
        self.progress.update(self.task, completed=done, **fields)

    def epoch_end(self, row, note=""):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        shown = "  ".join(f"{label} {_fmt(row[key])}" for key, label in SHOWN.items() if key in row)
        self.console.print(f"Epoch {row['epoch']:>3}  {shown}  {row['seconds']:.1f}s{note}", soft_wrap=True)

    def finish(self, metrics, run_path, status):
        table = Table(title=f"final validation metrics ({escape(status)})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                table.add_row(key, _fmt(float(value)))
        self.console.print(table)
        self.console.print(f"run saved to [bold]{escape(str(run_path))}[/]", soft_wrap=True)
