"""A small metric logger: JSON lines always, TensorBoard and Weights & Biases when asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class MetricLogger:
    """``log(step, metrics, prefix)`` to ``<run>/metrics.jsonl`` (+ TensorBoard, + W&B)."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True,
                 wandb_project: str | None = None, config: dict[str, Any] | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = None
        self._wandb = None
        if tensorboard:
            import tensorflow as tf  # training already depends on TensorFlow for tf.data

            self._tb = tf.summary.create_file_writer(str(Path(run_dir) / "tensorboard"))
        if wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError("--wandb needs Weights & Biases: pip install wandb") from exc
            self._wandb = wandb.init(project=wandb_project, config=config, dir=str(run_dir))

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        row = {"step": int(step), "time": time.time(),
               **{f"{prefix}/{k}": float(v) for k, v in metrics.items()}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            import tensorflow as tf

            with self._tb.as_default(step=int(step)):
                for key, value in row.items():
                    if key not in ("step", "time"):
                        tf.summary.scalar(key, value)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "time"}, step=int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
