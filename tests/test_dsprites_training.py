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
                "dci_completeness", "dci_informativeness", "sap", "sap_continuous", "total_correlation", "accuracy"):
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

