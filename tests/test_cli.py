"""End to end through the command line, on a tiny generated data set."""

import json
import os
import subprocess
import sys

import pytest
import torch

from imae.cli import build_parser, main
from imae.precision import CPU_CAPABILITY_ENV, cpu_maker, hardware

from conftest import write_mnist_like

FAST = ["--epochs", "2", "--batch-size", "64", "--no-progress", "--seed", "0"]


def _train(data_dir, out, *extra):
    return main(["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--out", str(out), *FAST, *extra])


def test_train_writes_run_directory_and_evaluate_recomputes(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_mnist, out) == 0
    for name in ("config.json", "checkpoint.pt", "metrics.json", "history.jsonl"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*")), "TensorBoard events missing"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "mutual_info_xy", "reconstruction_error"} <= set(metrics)
    config = json.loads((out / "config.json").read_text())
    assert config["beta"] == 5.0 and config["gamma"] is None and config["vat"] is True
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2]
    assert "epoch 2/2" in capsys.readouterr().out

    (out / "metrics.json").unlink()
    assert main(["evaluate", str(out)]) == 0
    again = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "mutual_info_xy", "reconstruction_error"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-5)


def test_training_lowers_the_loss(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_mnist, out, "--epochs", "4", "--optimizer", "adam") == 0
    losses = [json.loads(line)["train"]["loss"] for line in (out / "history.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]


def test_same_seed_same_metrics(tiny_mnist, tmp_path):
    assert _train(tiny_mnist, tmp_path / "a") == 0
    assert _train(tiny_mnist, tmp_path / "b") == 0
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()


def test_reproduce_trains_a_run_again_from_its_config_json(tiny_mnist, tmp_path, capsys):
    assert _train(tiny_mnist, tmp_path / "run", "--threads", "1") == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["threads"] == 1
    assert main(["reproduce", str(tmp_path / "run"), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"equals {tmp_path / 'run' / 'metrics.json'}")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["training_hardware"] == hardware(torch.device("cpu"))
    del metrics["total_correlation_null"]  # a run made before a metric existed still reproduces
    width, here = torch.backends.cpu.get_cpu_capability(), hardware(torch.device("cpu"))
    other = "AMD EPYC 7763 64-Core Processor" if cpu_maker(here) == "Intel" else "Intel(R) Xeon(R) Processor"
    metrics["training_hardware"] = f"{other}, {width}"  # named, not compared: it is not a result
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    assert main(["reproduce", str(tmp_path / "run"), "--out", str(tmp_path / "older"), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"note: the run was trained on {other}, {width}, this is {here}"
    # Another maker's MKL sums in another order (EXPERIMENTS.md): said where both makers are known.
    assert (out[1].startswith("note: MKL sums in another order on a CPU not by")) == (cpu_maker(here) is not None)
    assert "metrics added since the run was made, not compared: total_correlation_null" in out
    assert out[-1].startswith("reproduced:")
    metrics["accuracy"] += 0.01  # a run that does not reproduce is named
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    assert main(["reproduce", str(tmp_path / "run"), "--out", str(tmp_path / "third"), "--no-progress"]) == 1
    assert "differs" in capsys.readouterr().out.splitlines()[-1]
    (tmp_path / "run" / "metrics.json").unlink()
    assert main(["reproduce", str(tmp_path / "run"), "--out", str(tmp_path / "fourth")]) == 2
    assert "has not finished" in _error_line(capsys)


def test_cpu_maker_reads_the_model_name():
    assert cpu_maker("AMD EPYC 7763 64-Core Processor, AVX2") == "AMD"
    assert cpu_maker("Intel(R) Xeon(R) Processor, AVX512") == "Intel"
    assert cpu_maker("Apple M2") is None


def test_cpu_capability_choices_are_the_widths_reproduce_can_hold():
    # The parser names them without importing torch; precision.py holds the environment for each.
    reproduce = next(a for a in build_parser()._subparsers._group_actions[0].choices["reproduce"]._actions
                     if a.dest == "cpu_capability")
    assert set(reproduce.choices) == set(CPU_CAPABILITY_ENV)


def test_reproduce_trains_at_the_kernel_width_the_run_was_trained_at(tiny_mnist, tmp_path, capfd, monkeypatch):
    # A run trained with PyTorch's DEFAULT (unvectorised) kernels, which every CPU runs and none picks by itself:
    # reproduce starts a process held to them, as it would for an AVX2 run on an AVX512 CPU.
    train = [sys.executable, "-m", "imae", "train", "--dataset", "mnist", "--data-dir", str(tiny_mnist),
             "--out", str(tmp_path / "run"), "--threads", "1", *FAST]
    subprocess.run(train, check=True, env={**os.environ, **CPU_CAPABILITY_ENV["DEFAULT"]}, capture_output=True)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["training_hardware"].endswith(", DEFAULT")
    assert main(["reproduce", str(tmp_path / "run"), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    out = capfd.readouterr().out
    assert "reproducing with DEFAULT kernels, as the run was trained" in out
    assert out.rstrip().endswith(f"equals {tmp_path / 'run' / 'metrics.json'}")
    # The process started for a width that still runs another: this CPU cannot run it.
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx512" if torch.backends.cpu.get_cpu_capability() != "AVX512"
                       else "avx2")
    wanted = os.environ["ATEN_CPU_CAPABILITY"]
    assert main(["reproduce", str(tmp_path / "run"), "--out", str(tmp_path / "third"), "--cpu-capability", wanted]) == 2
    assert f"this CPU cannot run PyTorch's {wanted.upper()} kernels" in capfd.readouterr().err
    assert not (tmp_path / "third").exists()


def test_resume_finishes_like_an_uninterrupted_run(tiny_mnist, tmp_path):
    assert _train(tiny_mnist, tmp_path / "full", "--epochs", "3") == 0
    assert _train(tiny_mnist, tmp_path / "cut", "--epochs", "3") == 0
    # Rewind the second run to its epoch-1 state by retraining 1 epoch into a copy of its config.
    assert _train(tiny_mnist, tmp_path / "part", "--epochs", "1") == 0
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    config["epochs"] = 3
    (tmp_path / "part" / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(tmp_path / "part"), "--no-progress"]) == 0
    assert (tmp_path / "part" / "metrics.json").read_text() == (tmp_path / "full" / "metrics.json").read_text()


def _error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("imae: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_corrupt_idx_file_gets_one_line_error(tmp_path, capsys):
    data = write_mnist_like(tmp_path / "data")
    target = data / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:200])
    assert _train(data, tmp_path / "run") == 2
    assert "train-images-idx3-ubyte.gz" in _error_line(capsys)


def test_existing_run_directory_is_refused(tiny_mnist, tmp_path, capsys):
    assert _train(tiny_mnist, tmp_path / "run", "--epochs", "1") == 0
    capsys.readouterr()
    assert _train(tiny_mnist, tmp_path / "run", "--epochs", "1", "--beta", "2") == 2
    assert "already holds a run" in _error_line(capsys)


@pytest.mark.parametrize("option", [["--beta", "-1"], ["--gamma", "-2"], ["--categories", "1"],
                                    ["--batch-size", "1"], ["--epochs", "0"], ["--temperature", "0"]])
def test_invalid_settings(tiny_mnist, tmp_path, capsys, option):
    assert _train(tiny_mnist, tmp_path / "run", *option) == 2
    assert option[0].lstrip("-").replace("-", "_") in _error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_evaluate_missing_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "config.json" in _error_line(capsys)


def test_truncated_checkpoint(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_mnist, out, "--epochs", "1") == 0
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 2
    assert "checkpoint.pt" in _error_line(capsys)


def test_resume_before_the_first_checkpoint_starts_over(tiny_mnist, tmp_path):
    assert _train(tiny_mnist, tmp_path / "full") == 0
    assert _train(tiny_mnist, tmp_path / "killed") == 0
    (tmp_path / "killed" / "checkpoint.pt").unlink()  # as if killed during epoch 1
    (tmp_path / "killed" / "metrics.json").unlink()
    assert main(["train", "--resume", str(tmp_path / "killed"), "--no-progress"]) == 0
    assert (tmp_path / "killed" / "metrics.json").read_text() == (tmp_path / "full" / "metrics.json").read_text()
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "killed" / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_per_sample_vat_radius_trains(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_mnist, out, "--vat-eps", "0.25", "--vat-eps-neighbours", "10") == 0
    assert json.loads((out / "config.json").read_text())["vat_eps_neighbours"] == 10


def test_nearest_neighbour_radii_too_costly_for_the_data_are_refused_before_anything_is_written(
        tiny_mnist, tmp_path, capsys, monkeypatch):
    from imae import training
    monkeypatch.setattr(training, "NEIGHBOUR_RADIUS_LIMIT", 1e6)  # the tiny set's N^2 D is above it
    assert _train(tiny_mnist, tmp_path / "run", "--vat-eps-neighbours", "10") == 2
    assert "vat_eps_neighbours 0" in _error_line(capsys)
    assert not (tmp_path / "run").exists()
