"""A run survives SIGKILL, refuses unsafe or broken checkpoints, stops cleanly on NaN, and
rejects bad input with one line and nothing half-written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imae import precision, runs, training
from imae.cli import main

from conftest import blob_images, write_idx

FAST = ["--batch-size", "64", "--no-progress", "--seed", "0"]


def _command(data_dir, out, epochs, *extra):
    return [sys.executable, "-m", "imae", "train", "--dataset", "mnist", "--data-dir", str(data_dir),
            "--out", str(out), "--epochs", str(epochs), *FAST, *extra]


def _env():
    # One thread, as the resumed process will have: CPU results depend on the thread count.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


def _history_rows(run_dir):
    path = run_dir / "history.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _kill_after(command, run_dir, rows):
    """Start a training process and SIGKILL it once its run directory exists (config.json: before
    that there is no run to resume) and `rows` epochs are in its history."""
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ((run_dir / "config.json").exists() and _history_rows(run_dir) >= rows) \
            and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("killed_after_rows, precision", [(0, "fp32"), (2, "fp32"), (2, "bf16")])
def test_sigkill_then_resume_gives_the_uninterrupted_metrics(tiny_mnist, tmp_path, killed_after_rows, precision):
    epochs = 6
    subprocess.run(_command(tiny_mnist, tmp_path / "full", epochs, "--precision", precision), env=_env(),
                   check=True, stdout=subprocess.DEVNULL)
    killed = tmp_path / "killed"
    _kill_after(_command(tiny_mnist, killed, epochs, "--precision", precision), killed, killed_after_rows)
    assert not (killed / "metrics.json").exists()
    resume = [sys.executable, "-m", "imae", "train", "--resume", str(killed), "--no-progress"]
    subprocess.run(resume, env=_env(), check=True, stdout=subprocess.DEVNULL)
    assert (killed / "metrics.json").read_text() == (tmp_path / "full" / "metrics.json").read_text()
    history = [json.loads(line)["epoch"] for line in (killed / "history.jsonl").read_text().splitlines()]
    assert history == list(range(1, epochs + 1))
    assert not list(killed.glob(".*.tmp")), "a temporary file was left behind"


def test_same_seed_and_precision_give_the_same_metrics(tiny_mnist, tmp_path):
    for name, precision in (("a", "bf16"), ("b", "bf16"), ("fp32", "fp32")):
        assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(tmp_path / name),
                     "--epochs", "2", "--precision", precision, *FAST]) == 0
    metrics = {name: (tmp_path / name / "metrics.json").read_text() for name in ("a", "b", "fp32")}
    assert metrics["a"] == metrics["b"]
    bf16, fp32 = json.loads(metrics["a"]), json.loads(metrics["fp32"])
    assert (bf16["training_precision"], fp32["training_precision"]) == ("bf16", "fp32")
    assert bf16["reconstruction_error"] != fp32["reconstruction_error"]  # bf16 did train differently


def test_resume_keeps_the_precision_auto_chose_where_the_run_started(tiny_mnist, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out),
                 "--epochs", "1", *FAST]) == 0
    assert capsys.readouterr().out.startswith("precision: bf16 (auto: this CPU has amx_bf16); hardware: ")
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "bf16"  # what auto chose, as the checkpoint and metrics.json
    config["epochs"] = 2
    (out / "config.json").write_text(json.dumps(config))
    (out / "metrics.json").unlink()
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))  # resumed on another machine
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "precision: bf16 (kept from the run's checkpoint)" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["training_precision"] == "bf16"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old")

    def crash_half_way(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        runs.atomic_write(path, crash_half_way)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]


class _Payload:
    """Pickles to a call that creates a file: loading it must not run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out),
                 "--epochs", "1", *FAST]) == 0
    marker = tmp_path / "code-ran"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imae: error:") and "checkpoint.pt" in err and "\n" not in err
    assert not marker.exists()


def test_nan_stops_the_run_naming_step_and_term_and_keeps_the_last_checkpoint(tiny_mnist, tmp_path, capsys,
                                                                                  monkeypatch):
    real = training.build_objective

    def objective_that_breaks(cfg):
        objective = real(cfg)

        def call(fp):
            terms = objective(fp)
            if fp.step == 6:  # epoch 2, step 3 (4 steps per epoch)
                terms["total_correlation"] = terms["total_correlation"] * float("nan")
            return terms
        return call

    monkeypatch.setattr(training, "build_objective", objective_that_breaks)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out),
                 "--epochs", "3", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "'total_correlation'" in err and "epoch 2, step 3" in err and "\n" not in err
    assert runs.load_checkpoint(out)["epoch"] == 1
    assert not (out / "metrics.json").exists()


def test_images_that_do_not_fit_the_network(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out),
                 "--epochs", "1", *FAST]) == 0
    small = tmp_path / "small"
    small.mkdir()
    images, labels = blob_images(32, 4, __import__("numpy").random.default_rng(0), side=20)
    write_idx(small / "t10k-images-idx3-ubyte", images)
    write_idx(small / "t10k-labels-idx1-ubyte", labels)
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data-dir", str(small)]) == 2
    err = capsys.readouterr().err.strip()
    assert "do not fit the network" in err and "1x28x28" in err and "\n" not in err
    assert (out / "metrics.json").read_bytes() == before


@pytest.mark.parametrize("option", [["--dataset", "cifar"], ["--architecture", "conv"]])
def test_unknown_or_unfit_choices_leave_nothing(tiny_mnist, tmp_path, capsys, option):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(out), *FAST,
                 *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imae: error:") and "\n" not in err
    assert not out.exists()


def test_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "vqvae"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vqvae'" in capsys.readouterr().err
