"""`imae train --dataset dsprites` end to end, on a small stand-in for the factor grid."""

import json

import pytest

from imae.cli import main
from imae.data import dsprites


@pytest.fixture
def small_grid(monkeypatch):
    """Two shapes, two scales, two orientations, all 32 x 32 positions: 8,192 images."""
    monkeypatch.setattr(dsprites, "FACTOR_SIZES", (2, 2, 2, 32, 32))
    monkeypatch.setattr(dsprites, "NUM_IMAGES", 8192)


def test_dsprites_run_writes_every_disentanglement_metric(small_grid, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "dsprites", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                 "--architecture", "mlp", "--train-subset", "512", "--epochs", "1", "--batch-size", "64",
                 "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["categories"] == 3 and config["dataset"] == "dsprites"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mig", "mig_with_y", "mig_histogram", "factor_vae_score", "dci_disentanglement",
                "dci_completeness", "dci_informativeness", "sap", "total_correlation", "accuracy"):
        assert isinstance(metrics[key], float), key
    assert 0.0 <= metrics["mig"] <= 1.0 and 0.0 <= metrics["mig_with_y"] <= 1.0
    assert len(metrics["per_dimension"]["mutual_info_xz"]) == 10
    (out / "metrics.json").unlink()
    assert main(["evaluate", str(out)]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["mig"] == pytest.approx(metrics["mig"], abs=1e-6)
