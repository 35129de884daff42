"""The run directory: resolved config, atomic checkpoints, per-epoch history, final metrics."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .config import TrainConfig
from .errors import CheckpointError

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
HISTORY = "history.jsonl"
PICTURES = "pictures.npz"  # what Fig. 2 and 4 decode from the run (imae.pictures.RunPictures)
RESTARTS = "restarts.json"  # with --restarts: every candidate's score and the one continued


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over `path`,
    so a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to others
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete temporary files of writes a killed process never finished (atomic_write's names)."""
    for path in Path(run_dir).glob(".*.tmp"):
        path.unlink(missing_ok=True)


def write_json(path: Path, data) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode()))


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from None


def prepare(run_dir: Path, cfg: TrainConfig) -> None:
    """Create a new run directory; refuse one that already holds a run."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG).exists():
        raise CheckpointError(f"{run_dir}: already holds a run; use --resume {run_dir} to continue it, "
                              f"or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: exists and is not a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG, cfg.to_dict())


def load_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; is {run_dir} a run directory?")
    return TrainConfig.load(path)


def save_checkpoint(run_dir: Path, state: dict) -> None:
    atomic_write(Path(run_dir) / CHECKPOINT, lambda f: torch.save(state, f))


def load_checkpoint(run_dir: Path) -> dict:
    """Load the latest checkpoint without executing pickled code (weights_only=True)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the run has not finished an epoch yet")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or tampered files
        raise CheckpointError(f"{path}: unreadable or not a checkpoint of this tool ({type(exc).__name__})") from None


def append_history(run_dir: Path, row: dict) -> None:
    with open(Path(run_dir) / HISTORY, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def read_history(run_dir: Path) -> list[dict]:
    """history.jsonl's rows, one per finished epoch; [] where the run has none."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from None


def truncate_history(run_dir: Path, last_epoch: int) -> None:
    """Drop history rows written after the checkpoint a resumed run restarts from."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if json.loads(r)["epoch"] <= last_epoch]
    atomic_write(path, lambda f: f.write("".join(r + "\n" for r in kept).encode()))
