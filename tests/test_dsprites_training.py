"""`imae train --dataset dsprites` end to end, on a small stand-in for the factor grid."""

import json

import pytest

from imae.cli import main
from imae.data import dsprites


@pytest.fixture
def small_grid(monkeypatch):
    """Two shapes, two scales, two orientations, all 32 x 32 positions: 8,192 images. The tests ask for DCI by
    the random forest: disentanglement_lib's gradient boosting takes minutes on 32-class factors."""
    monkeypatch.setattr(dsprites, "FACTOR_SIZES", (2, 2, 2, 32, 32))
    monkeypatch.setattr(dsprites, "NUM_IMAGES", 8192)


def test_dsprites_run_writes_every_disentanglement_metric(small_grid, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "dsprites", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                 "--architecture", "mlp", "--train-subset", "512", "--epochs", "1", "--batch-size", "64",
                 "--no-progress", "--dci-estimator", "forest"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["categories"] == 3 and config["dataset"] == "dsprites" and config["dci_estimator"] == "forest"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mig", "mig_with_y", "mig_histogram", "factor_vae_score", "dci_disentanglement",
                "dci_completeness", "dci_informativeness", "sap", "sap_continuous", "total_correlation",
                "total_correlation_null", "accuracy"):
        assert isinstance(metrics[key], float), key
    assert 0.0 <= metrics["mig"] <= 1.0 and 0.0 <= metrics["mig_with_y"] <= 1.0
    assert len(metrics["per_dimension"]["mutual_info_xz"]) == 10
    (out / "metrics.json").unlink()
    assert main(["evaluate", str(out)]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["mig"] == pytest.approx(metrics["mig"], abs=1e-6)


def test_dsprites_run_with_one_continuous_dimension_reports_undefined_metrics_as_null(small_grid, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "dsprites", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                 "--architecture", "mlp", "--continuous-dim", "1", "--train-subset", "256", "--epochs", "1",
                 "--batch-size", "64", "--no-progress", "--dci-estimator", "forest"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    undefined = {"mig", "mig_histogram", "sap", "sap_continuous", "dci_completeness"}
    assert set(metrics["undefined"]) == undefined
    assert all(metrics[key] is None and metrics["undefined"][key] for key in undefined)
    for key in ("mig_with_y", "factor_vae_score", "dci_disentanglement", "dci_informativeness", "total_correlation"):
        assert isinstance(metrics[key], float), key
    assert len(metrics["per_dimension"]["mutual_info_xz"]) == 1



def test_monitor_mig_records_each_epochs_mig_and_the_last_is_the_final_one(small_grid, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "dsprites", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                 "--architecture", "mlp", "--train-subset", "512", "--epochs", "2", "--batch-size", "64",
                 "--no-progress", "--dci-estimator", "forest", "--monitor-mig"]) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2]
    for row in history:
        assert 0.0 <= row["test"]["mig"] <= 1.0 and 0.0 <= row["test"]["mig_with_y"] <= 1.0
    # The 8,192 images are fewer than the monitor's 10,000: the last epoch's monitor saw what metrics.json saw.
    metrics = json.loads((out / "metrics.json").read_text())
    assert history[-1]["test"]["mig"] == pytest.approx(metrics["mig"], abs=1e-6)
    assert history[-1]["test"]["mig_with_y"] == pytest.approx(metrics["mig_with_y"], abs=1e-6)
    epoch_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all(" mig=" in line and " mig_with_y=" in line for line in epoch_lines)


def test_monitor_mig_without_factors_is_a_one_line_error(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", "--no-progress",
                 "--monitor-mig"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "option monitor_mig" in err and "no known generative factors" in err
    assert not out.exists()
