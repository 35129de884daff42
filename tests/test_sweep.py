"""Studies: parsing and expansion, the sweep's reliability (failures, resuming, refusing a changed
study), the results table, and the Ray backend on a local instance."""

import csv
import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import write_mnist_like

from imae.cli import main
from imae.config import MODEL_DEFAULTS, RECIPES, TrainConfig
from imae.errors import CheckpointError, ConfigError, ImaeError
from imae.precision import choose_precision
from imae.results import results_table
from imae.study import load_study
from imae.sweep import Task, format_summary, plan, run_local, run_one, started_until, sweep

TINY = "train_subset = 64\nbatch_size = 32\nepochs = 1\neval_batch_size = 128\ncontinuous_dim = 2\ncategories = 4\n"


def _study(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_grid_expands_to_the_product_with_readable_names(tmp_path):
    path = _study(tmp_path, """
[settings]
epochs = 3
[model.joint-vae]
capacity_iterations = 100
[grid]
dataset = ["mnist", "fashion-mnist"]
model = ["imae", "joint-vae"]
beta = [1, 5.5]
seed = [0, 1, 2]
vat = [true, false]
""")
    runs = load_study(path)
    expected = {f"{d}/{m}/beta{b}-seed{s}{'' if v else '-novat'}"
                for d, m, b, s, v in itertools.product(["mnist", "fashion-mnist"], ["imae", "joint-vae"],
                                                       ["1", "5.5"], [0, 1, 2], [True, False])}
    assert {run.name for run in runs} == expected and len(runs) == 48
    by_name = {run.name: run.config for run in runs}
    assert by_name["fashion-mnist/joint-vae/beta5.5-seed2-novat"].beta == 5.5
    assert by_name["fashion-mnist/joint-vae/beta5.5-seed2-novat"].vat is False
    assert all(cfg.epochs == 3 for cfg in by_name.values())
    assert {cfg.capacity_iterations for cfg in by_name.values() if cfg.model == "joint-vae"} == {100}
    assert {cfg.capacity_iterations for cfg in by_name.values() if cfg.model == "imae"} == {None}


def test_gamma_axis_follows_each_models_rule(tmp_path):
    path = _study(tmp_path, '[grid]\nmodel = ["imae", "beta-vae"]\ngamma = [2, 7]\nseed = 0\n')
    by_name = {run.name: run.config for run in load_study(path)}
    assert set(by_name) == {"mnist/imae/gamma2-seed0", "mnist/imae/gamma7-seed0",
                            "mnist/beta-vae/beta2-seed0", "mnist/beta-vae/beta7-seed0"}
    assert (by_name["mnist/imae/gamma7-seed0"].gamma, by_name["mnist/imae/gamma7-seed0"].beta) == (7, 3.5)
    assert (by_name["mnist/beta-vae/beta7-seed0"].gamma, by_name["mnist/beta-vae/beta7-seed0"].beta) == (None, 7)


def test_several_grids_name_what_varies_and_run_a_shared_point_once(tmp_path):
    path = _study(tmp_path, """
[settings]
epochs = 2
[[grid]]
model = ["imae", "info-vae"]
beta = [1, 5]
[[grid]]
model = "imae"
beta = [5]
epochs = [4]
[[grid]]
model = "info-vae"
beta = [5]
""")
    names = sorted(run.name for run in load_study(path))
    # epochs varies among the IMAE runs only; the third grid repeats a point of the first.
    assert names == ["mnist/imae/beta1-seed0-epochs=2", "mnist/imae/beta5-seed0-epochs=2",
                     "mnist/imae/beta5-seed0-epochs=4", "mnist/info-vae/beta1-seed0", "mnist/info-vae/beta5-seed0"]


def test_runs_come_in_the_order_their_grids_are_written(tmp_path):
    study = _study(tmp_path, '[[grid]]\nmodel = "beta-vae"\nbeta = 1\n[[grid]]\nmodel = "imae"\nbeta = 1\n'
                             '[[grid]]\nmodel = "beta-vae"\nbeta = 3\n')
    assert [run.name for run in load_study(study)] == ["mnist/beta-vae/beta1-seed0", "mnist/imae/beta1-seed0",
                                                       "mnist/beta-vae/beta3-seed0"]


def test_command_line_axes_and_settings_replace_the_files(tmp_path):
    path = _study(tmp_path, '[grid]\nmodel = ["imae", "beta-vae"]\ngamma = [2, 4]\nseed = [0, 1]\n')
    runs = load_study(path, axes={"seed": [7], "beta": [3.0], "model": ["info-vae"]}, settings={"epochs": 9})
    assert [run.name for run in runs] == ["mnist/info-vae/beta3-seed7"]
    assert runs[0].config.epochs == 9


def test_recipe_tables_set_each_recipes_runs_without_renaming_them(tmp_path):
    plain = '[grid]\nrecipe = ["tuned", "paper"]\nseed = [0]\n'
    pinned = '[recipe.tuned]\nvat_weight = 7.0\n[recipe.paper]\nlr = 0.05\n' + plain
    before, after = (load_study(_study(tmp_path, text, name)) for text, name in ((plain, "a.toml"), (pinned, "b.toml")))
    assert [run.name for run in after] == [run.name for run in before]
    settings = {run.config.recipe: (run.config.vat_weight, run.config.lr) for run in after}
    assert settings == {"tuned": (7.0, RECIPES["tuned"]["lr"]), "paper": (RECIPES["paper"]["vat_weight"], 0.05)}


def test_a_recipe_table_leaves_a_models_own_defaults_alone(tmp_path):
    text = ('[recipe.tuned]\nepochs = 3\nvat_weight = 7.0\nbatch_size = 64\n'
            '[[grid]]\nmodel = ["imae"]\n[[grid]]\nmodel = ["imsat"]\nepochs = 2\n')
    runs = {run.config.model: run.config for run in load_study(_study(tmp_path, text))}
    assert (runs["imae"].epochs, runs["imae"].vat_weight, runs["imae"].batch_size) == (3, 7.0, 64)
    imsat = MODEL_DEFAULTS["imsat"]  # its recipe is its own: neither the tuned recipe nor the table changes it
    assert (runs["imsat"].epochs, runs["imsat"].vat_weight, runs["imsat"].batch_size) == (2, imsat["vat_weight"],
                                                                                           imsat["batch_size"])


def test_only_picks_runs_by_their_unchanged_names(tmp_path, capsys):
    path = _study(tmp_path, '[grid]\nmodel = ["imae", "beta-vae"]\nbeta = [2, 4]\nseed = [0, 1]\n')
    assert main(["sweep", path, "--out", str(tmp_path / "out"), "--dry-run", "--only", "*seed1", "mnist/imae/beta2*"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["run"] for row in printed[:-1]] == ["mnist/imae/beta2-seed0", "mnist/imae/beta2-seed1",
                                                     "mnist/imae/beta4-seed1", "mnist/beta-vae/beta2-seed1",
                                                     "mnist/beta-vae/beta4-seed1"]
    assert main(["sweep", path, "--out", str(tmp_path / "out"), "--only", "fashion*"]) == 2
    assert "option --only: no run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_presets_hold_the_protocols():
    small = load_study("paper-small")
    assert len(small) == 4 * 3 * 2 + 3 * 2
    assert {(r.config.model, r.config.vat) for r in small if not r.config.vat} == {("imae", False)}
    assert {r.config.recipe for r in small} == {"tuned"}
    paper = load_study("paper")
    digits = [r for r in paper if r.config.dataset != "dsprites"]
    cells = {(r.config.dataset, r.config.model, r.config.beta, r.config.vat, r.config.capacity_y, r.config.capacity_z)
             for r in digits}
    assert len(cells) == 2 * 4 * 10 + 4 * 10 + 3 * 10  # Fig. 3, the VAT ablation, Fig. 8's other targets
    assert {r.config.seed for r in digits} == set(range(10)) and len(digits) == 10 * len(cells)
    sprites = [r for r in paper if r.config.dataset == "dsprites"]
    assert len(sprites) == 4 * 10 * 8 and {r.config.seed for r in sprites} == set(range(8))
    assert {r.config.gamma_value for r in sprites if r.config.model == "imae"} == set(range(1, 11))
    assert len(paper) == 1820 and {r.config.recipe for r in paper} == {"paper"}


def _dry_run(capsys, *args) -> tuple[list[dict], dict]:
    """The lines `imae sweep ... --dry-run` prints: one per run, then the count."""
    assert main(["sweep", *args, "--dry-run"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return lines[:-1], lines[-1]


def test_dry_run_of_paper_shows_the_papers_recipe_and_fig_8_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "X"
    lines, count = _dry_run(capsys, "paper", "--out", str(out))
    assert not out.exists()
    assert count == {"runs": len(lines)} and len(lines) == len(load_study("paper"))
    configs = [line["config"] for line in lines]
    for config in configs:  # eq (10)-(11) with unit weights; Appendix G's optimisers
        assert (config["reconstruction_weight"], config["marginal_entropy_weight"], config["vat_weight"]) == (1, 1, 1)
        assert config["recipe"] == "paper" and config["lr"] == 1e-3
        sgd = config["dataset"] in ("mnist", "fashion-mnist")
        assert (config["optimizer"], config["lr_decay"]) == (("sgd", 0.98) if sgd else ("adam", 1.0)), config
    assert {c["dataset"] for c in configs} == {"mnist", "fashion-mnist", "dsprites"}
    # Fig. 8: JointVAE on MNIST with VAT at four capacity targets, each at beta 1..10 with 10 seeds.
    fig8 = [c for c in configs if (c["dataset"], c["model"], c["vat"]) == ("mnist", "joint-vae", True)]
    targets = {(c["capacity_y"], c["capacity_z"]) for c in fig8}
    assert targets == {(5, 5), (2, 5), (5, 2), (5, 10)}
    for target in targets:
        assert sorted((c["beta"], c["seed"]) for c in fig8 if (c["capacity_y"], c["capacity_z"]) == target) == \
            [(b, s) for b in range(1, 11) for s in range(10)]


def test_dry_run_prints_what_config_json_would_hold(tmp_path, capsys):
    from imae import runs
    lines, count = _dry_run(capsys, "paper-small", "--out", str(tmp_path / "X"), "--epochs", "2",
                            "--data-dir", "/data/mnist")
    assert count == {"runs": 30} and not (tmp_path / "X").exists()
    study = {run.name: run.config for run in load_study("paper-small", settings={"epochs": 2, "data_dir": "/data/mnist"})}
    assert [line["run"] for line in lines] == list(study)
    for line in lines[:3]:  # the config.json that the sweep writes for the run
        runs.prepare(tmp_path / line["run"], study[line["run"]])
        assert json.loads((tmp_path / line["run"] / "config.json").read_text()) == line["config"]
        assert line["config"]["epochs"] == 2 and line["config"]["data_dir"] == "/data/mnist"


RECIPE_FILLED = {"recipe", *RECIPES["paper"], *RECIPES["tuned"]}


def test_tuned_preset_is_the_paper_preset_under_the_tuned_recipe():
    paper = {run.name: run.config.to_dict() for run in load_study("paper")}
    tuned = {run.name: run.config.to_dict() for run in load_study("tuned")}
    assert list(paper) == list(tuned)
    differing = {key for name in paper for key in paper[name] if paper[name][key] != tuned[name][key]}
    assert differing and differing <= RECIPE_FILLED
    assert {config["recipe"] for config in tuned.values()} == {"tuned"}
    assert {config["optimizer"] for config in tuned.values()} == {"adam"}


# Dupont's published schedules (github.com/Schlumberger/joint-vae, trained_models/*/specs.json and main.py):
# iterations to the target, and the steps of his runs (epochs x batches of 64, the last one kept).
DUPONT = {"mnist": (25_000, 100 * math.ceil(60_000 / 64)), "fashion-mnist": (50_000, 100 * math.ceil(60_000 / 64)),
          "dsprites": (300_000, 30 * math.ceil(737_280 / 64))}
TRAINING_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, "dsprites": 737_280}


@pytest.mark.parametrize("preset", ["paper", "tuned"])
def test_jointvae_schedule_is_duponts_scaled_to_the_runs_steps(preset):
    """C reaches its target at the same fraction of the run as in Dupont's, counted in this run's steps."""
    joint = [run.config for run in load_study(preset) if run.config.model == "joint-vae"]
    assert {c.dataset for c in joint} == set(DUPONT)
    for c in joint:
        steps = c.epochs * ((TRAINING_IMAGES[c.dataset] - c.validation_size) // c.batch_size)
        iterations, published_steps = DUPONT[c.dataset]
        assert c.capacity_iterations == round(steps * iterations / published_steps), c
        assert c.capacity_iterations < steps


def test_a_setting_given_as_its_default_is_the_same_run(tmp_path):
    path = _study(tmp_path, '[[grid]]\nmodel = "joint-vae"\nseed = [0, 1]\n'
                            '[[grid]]\nmodel = "joint-vae"\nseed = 0\ncapacity_y = [5.0, 2.0]\n')
    names = sorted(run.name for run in load_study(path))
    assert names == ["mnist/joint-vae/beta5-seed0-capacity_y=2", "mnist/joint-vae/beta5-seed0-capacity_y=5",
                     "mnist/joint-vae/beta5-seed1-capacity_y=5"]


@pytest.mark.parametrize("text, fragment", [
    ("[grid]\nbeta = [1\n", "not valid TOML"),
    ("[grids]\nbeta = [1]\n", "unknown section(s) grids"),
    ("[settings]\nbetta = 1\n[grid]\nbeta = [1]\n", "[settings]: unknown setting(s) betta"),
    ("[grid]\nbeta = [1]\nsed = [0]\n", "grid 1: unknown setting(s) sed"),
    ("[grid]\nbeta = [1, -2]\n", "run mnist/imae/beta-2-seed0: option beta"),
    ("[grid]\nmodel = ['imae', 'vae']\n", "option model"),
    ("[grid]\nbeta = []\n", "axis beta: expected a non-empty list"),
    ("[grid]\nbeta = [1]\ngamma = [2]\n", "not both"),
    ("[model.vae]\nbeta = 1\n[grid]\nbeta = [1]\n", "[model.NAME]"),
    ("[model.imae]\nbeta = 2\n[grid]\nbeta = [1]\n", "[model.imae] sets beta, which the grid varies"),
    ("[recipe.mine]\nbeta = 1\n[grid]\nbeta = [1]\n", "[recipe.NAME] tables with NAME one of paper, tuned"),
    ("[recipe.tuned]\nlr = 0.1\n[grid]\nlr = [0.2]\n", "[recipe.tuned] sets lr, which the grid varies"),
    ("[model.imae]\nlr = 0.1\n[recipe.tuned]\nlr = 0.2\n[grid]\nseed = [0]\n", "[recipe.tuned] sets lr, which "
     "the grid varies or [model.imae] sets"),
    ("[settings]\nepochs = 1\n", "expected a [grid] table"),
])
def test_bad_study_is_one_line_and_exit_2_before_anything_starts(tmp_path, capsys, text, fragment):
    out = tmp_path / "out"
    assert main(["sweep", _study(tmp_path, text), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imae: error:") and "\n" not in err and fragment in err
    assert not out.exists()


def test_unknown_study_names_the_presets(tmp_path, capsys):
    with pytest.raises(ConfigError, match="paper-small"):
        load_study(str(tmp_path / "nothing.toml"))


def _tiny_study(tmp_path, data, broken):
    """Two IMAE runs on good data, one beta-VAE run on a truncated IDX file (fails at train time)."""
    return _study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[model.beta-vae]\ndata_dir = "{broken}"\n'
                            '[[grid]]\nmodel = "imae"\nseed = [0, 1]\n[[grid]]\nmodel = "beta-vae"\n')


def _break(directory):
    target = directory / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:300])
    return target


def _sweep(study, out, *extra):
    return main(["sweep", study, "--out", str(out), "--no-progress", *extra])


def test_a_failed_run_is_recorded_the_others_finish_and_rerunning_retries_only_it(tmp_path, capsys):
    data = write_mnist_like(tmp_path / "data")
    broken = write_mnist_like(tmp_path / "broken")
    target = _break(broken)
    study, out = _tiny_study(tmp_path, data, broken), tmp_path / "out"
    assert _sweep(study, out, "--workers", "2") == 1
    printed = capsys.readouterr().out
    assert "| 2 | 1 | 0 |" in printed and str(out / "results.csv") in printed

    error = json.loads((out / "mnist/beta-vae/beta5-seed0/error.json").read_text())
    assert "train-images-idx3-ubyte.gz" in error["error"] and "\n" not in error["error"]
    assert "Traceback" in error["traceback"] and "DataError" in error["traceback"]
    finished = [out / "mnist/imae/beta5-seed0", out / "mnist/imae/beta5-seed1"]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for d in finished for p in (d / "metrics.json", d / "train.log")}

    with open(out / "results.csv", newline="") as f:
        rows = {row["run"]: row for row in csv.DictReader(f)}
    assert {name: row["status"] for name, row in rows.items()} == {
        "mnist/beta-vae/beta5-seed0": "failed", "mnist/imae/beta5-seed0": "finished", "mnist/imae/beta5-seed1": "finished"}
    metrics = json.loads((finished[1] / "metrics.json").read_text())
    assert float(rows["mnist/imae/beta5-seed1"]["accuracy"]) == pytest.approx(metrics["accuracy"])
    assert rows["mnist/imae/beta5-seed1"]["seed"] == "1" and rows["mnist/imae/beta5-seed1"]["train_subset"] == "64"
    assert "train-images" in rows["mnist/beta-vae/beta5-seed0"]["error"]
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(row["run"] for row in lines) == sorted(rows)

    # Repair the data, and make a finished run incomplete (killed after its last checkpoint, before
    # metrics.json): the rerun retries the failed run from scratch, resumes the incomplete one, and
    # leaves the finished one alone.
    shutil.copy(data / target.name, target)
    (finished[0] / "metrics.json").unlink()
    assert _sweep(study, out) == 0
    assert "| 2 | 0 | 1 |" in capsys.readouterr().out
    assert (out / "mnist/beta-vae/beta5-seed0/metrics.json").is_file()
    assert not (out / "mnist/beta-vae/beta5-seed0/error.json").exists()
    assert "resuming" in (finished[0] / "train.log").read_text()
    assert (finished[0] / "metrics.json").read_bytes() == before[finished[0] / "metrics.json"][1]
    untouched = [finished[1] / "metrics.json", finished[1] / "train.log"]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in untouched} == {p: before[p] for p in untouched}
    statuses = [json.loads(line)["status"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert statuses == ["finished"] * 3


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with the sweep on Linux")
def test_a_killed_sweep_takes_its_worker_with_it(tmp_path):
    """A sweep killed by SIGTERM (a scheduler, `kill`) must not leave its worker training: the next sweep
    would resume the same run while the orphan still writes it."""
    data = write_mnist_like(tmp_path / "data")
    study = _study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[[grid]]\nepochs = 100000\n')
    out, run_dir = tmp_path / "out", tmp_path / "out/mnist/imae/beta5-seed0"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    sweep = subprocess.Popen([sys.executable, "-m", "imae", "sweep", study, "--out", str(out), "--no-progress",
                              "--workers", "1", "--threads", "1"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "history.jsonl").exists() and time.monotonic() < deadline:
            assert sweep.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        worker = json.loads((run_dir / "attempt.json").read_text())["pid"]
        assert worker != sweep.pid and _alive(worker)
        sweep.terminate()
        sweep.wait(30)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the worker of the killed sweep is still training"
    finally:
        sweep.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_run_directory_from_another_study_is_refused(tmp_path, capsys):
    data = write_mnist_like(tmp_path / "data")
    study, out = _study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[grid]\nseed = [0, 1]\n'), tmp_path / "out"
    changed = _study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[grid]\nseed = [0, 1]\nlr = 0.01\n', "b.toml")
    run_dir = out / "mnist/imae/beta5-seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(load_study(changed)[1].config.to_dict()))
    assert _sweep(study, out) == 2
    err = capsys.readouterr().err
    assert str(run_dir) in err and "lr" in err
    assert not (out / "mnist/imae/beta5-seed0").exists()


def test_a_setting_added_after_a_run_was_made_counts_as_its_default(tmp_path):
    data = write_mnist_like(tmp_path / "data")
    study = load_study(_study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[grid]\nseed = [0]\n'))
    old = study[0].config.to_dict()
    del old["validation_size"]  # a config.json written before the option existed
    run_dir = tmp_path / "out" / study[0].name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(old))
    (run_dir / "metrics.json").write_text("{}")
    assert plan(study, tmp_path / "out") == ([], [study[0].name])
    old["validation_size"] = 10  # but a different value is a different run
    (run_dir / "config.json").write_text(json.dumps(old))
    with pytest.raises(CheckpointError, match="validation_size"):
        plan(study, tmp_path / "out")


@pytest.mark.parametrize("model, belongs", [("imae", True), ("info-vae", False)])
def test_infovae_divergence_decides_only_infovae_runs(tmp_path, model, belongs):
    data = write_mnist_like(tmp_path / "data")
    study = load_study(_study(tmp_path, f'[settings]\ndata_dir = "{data}"\nrecipe = "paper"\nmodel = "{model}"\n'
                                        f'{TINY}[grid]\nseed = [0]\n'))
    assert study[0].config.infovae_divergence == "kl"
    run_dir = tmp_path / "out" / study[0].name  # made when the paper recipe's divergence was mmd-rbf
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({**study[0].config.to_dict(), "infovae_divergence": "mmd-rbf"}))
    (run_dir / "metrics.json").write_text("{}")
    if belongs:
        assert plan(study, tmp_path / "out") == ([], [study[0].name])
    else:
        with pytest.raises(CheckpointError, match="infovae_divergence"):
            plan(study, tmp_path / "out")


def test_a_run_recorded_its_threads_and_resolved_precision_and_still_belongs_to_its_study(tmp_path):
    data = write_mnist_like(tmp_path / "data")
    study = load_study(_study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[grid]\nseed = [0]\n'))
    assert study[0].config.precision == "auto"
    assert _sweep(str(tmp_path / "study.toml"), tmp_path / "out", "--threads", "1") == 0
    saved = json.loads((tmp_path / "out" / study[0].name / "config.json").read_text())
    assert (saved["threads"], saved["precision"]) == (1, choose_precision("auto", torch.device("cpu"))[0])
    assert plan(study, tmp_path / "out") == ([], [study[0].name])  # other threads, auto: the same run
    other = "fp32" if saved["precision"] == "bf16" else "bf16"  # the one auto did not take on this machine
    asked = [replace(run, config=replace(run.config, precision=other)) for run in study]
    with pytest.raises(CheckpointError, match="precision"):  # a precision asked for must match
        plan(asked, tmp_path / "out")


def test_a_config_json_from_before_the_neighbour_radius_had_a_default_keeps_its_fixed_radius(tmp_path):
    data = write_mnist_like(tmp_path / "data")
    # The study writes out the fixed radius (0), as results/protocol's files do for runs made before the tuned
    # recipe took IMSAT's neighbour radius (10)
    study = load_study(_study(tmp_path, f'[settings]\ndata_dir = "{data}"\nvat_eps_neighbours = 0\n{TINY}'
                                        '[grid]\nseed = [0]\n'))
    assert study[0].config.vat_eps_neighbours == 0 and TrainConfig().validate().vat_eps_neighbours == 10
    old = {**study[0].config.to_dict(), "vat_eps_neighbours": None}  # what such a run's config.json holds
    run_dir = tmp_path / "out" / study[0].name
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(old))
    (run_dir / "metrics.json").write_text("{}")
    assert plan(study, tmp_path / "out") == ([], [study[0].name])
    assert TrainConfig.load(run_dir / "config.json").vat_eps_neighbours == 0  # not a recipe's default


def test_an_attempt_of_the_same_sweep_continues_the_run_and_another_sweeps_starts_it_again(tmp_path):
    """Ray runs a task again when its node dies: that attempt resumes from the run's checkpoint (or
    leaves a run it finished alone); a failed run of an earlier sweep starts again from scratch."""
    data = write_mnist_like(tmp_path / "data")
    [run] = load_study(_study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[grid]\nseed = [0]\n'))
    run_dir = tmp_path / "out" / run.name
    threads = torch.get_num_threads()
    try:
        assert run_one(Task(run.name, str(run_dir), run.config.to_dict(), "start", sweep="first")) is None
        metrics = (run_dir / "metrics.json").read_bytes()
        assert json.loads((run_dir / "attempt.json").read_text()) == {
            "host": socket.gethostname(), "ray_node": None, "pid": os.getpid(), "sweep": "first"}
        # The same task again: the run is finished, nothing is rewritten.
        before = (run_dir / "metrics.json").stat().st_mtime_ns
        assert run_one(Task(run.name, str(run_dir), run.config.to_dict(), "start", sweep="first")) is None
        assert (run_dir / "metrics.json").stat().st_mtime_ns == before
        # Killed after its last checkpoint, before metrics.json: the next attempt resumes.
        (run_dir / "metrics.json").unlink()
        assert run_one(Task(run.name, str(run_dir), run.config.to_dict(), "start", sweep="first")) is None
        log = (run_dir / "train.log").read_text()
        assert log.count("attempt on host") == 2 and "resuming" in log
        assert (run_dir / "metrics.json").read_bytes() == metrics
        # A later sweep retrying the run (recorded as failed) empties its directory first.
        (run_dir / "error.json").write_text('{"error": "x", "traceback": ""}')
        assert run_one(Task(run.name, str(run_dir), run.config.to_dict(), "restart", sweep="second")) is None
        log = (run_dir / "train.log").read_text()
        assert log.count("attempt on host") == 1 and "resuming" not in log and not (run_dir / "error.json").exists()
        assert (run_dir / "metrics.json").read_bytes() == metrics
    finally:
        torch.set_num_threads(threads)
    [row] = results_table(tmp_path / "out")
    assert (row["host"], row["ray_node"]) == (socket.gethostname(), None)


@pytest.mark.ray
def test_ray_backend_on_a_local_instance(tmp_path, capsys):
    pytest.importorskip("ray")
    data = write_mnist_like(tmp_path / "data")
    study = _study(tmp_path, f'[settings]\ndata_dir = "{data}"\n{TINY}[grid]\nmodel = ["imae", "joint-vae"]\n')
    out = tmp_path / "out"
    assert _sweep(study, out, "--backend", "ray", "--workers", "2") == 0
    assert "| 2 | 0 | 0 |" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((row["model"], row["status"]) for row in rows) == [("imae", "finished"), ("joint-vae", "finished")]
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)


def start_slowly(task: Task) -> None:
    """A stand-in run for run_local's workers (module level: spawned processes import it): leaves a mark."""
    Path(task.run_dir).mkdir()
    time.sleep(0.3)


def test_an_interrupted_local_sweep_starts_no_further_run(tmp_path):
    """Closing run_local after the first run ends (as Ctrl-C does) starts none of the others: the pool is fed
    one run per free worker, never a queued extra that cancel_futures could not stop."""
    tasks = [Task(f"r{i}", str(tmp_path / f"r{i}"), {}, "start") for i in range(4)]
    outcomes = run_local(tasks, 1, start_slowly)
    assert next(outcomes) == (tasks[0], None)
    outcomes.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r0"]
    assert [task.name for task, _ in run_local(tasks[1:], 2, start_slowly)] and len(list(tmp_path.iterdir())) == 4


def test_a_local_sweep_past_its_time_to_start_runs_starts_no_further_run(tmp_path):
    """started_until feeds the pool while time.monotonic() is before the deadline: the first run starts at
    once, the next is due when it ends (0.3 s), past the deadline, so it never starts."""
    tasks = [Task(f"r{i}", str(tmp_path / f"r{i}"), {}, "start") for i in range(3)]
    ended = [task.name for task, _ in run_local(started_until(tasks, time.monotonic() + 0.15), 1, start_slowly)]
    assert ended == ["r0"] and sorted(p.name for p in tmp_path.iterdir()) == ["r0"]
    assert list(started_until(tasks, None)) == tasks


def test_start_within_leaves_the_runs_it_did_not_start_for_the_next_sweep(tmp_path, capsys):
    study = load_study(_study(tmp_path, '[grid]\ndataset = "mnist"\nmodel = "imae"\nbeta = [1, 2]\n'))
    summary = sweep(study, tmp_path / "out", workers=1, progress=False, start_within=1e-12)
    assert summary.not_started == [run.name for run in study] and summary.exit_code == 0
    assert "not started: 2 runs" in format_summary(summary, tmp_path / "out")
    with pytest.raises(ImaeError, match="--start-within: only with the local backend"):
        sweep(study, tmp_path / "out", backend="ray", start_within=1.0)
    assert main(["sweep", "paper-small", "--out", str(tmp_path / "x"), "--start-within", "0"]) == 2
    assert "option --start-within: expected a number of hours > 0, got 0" in capsys.readouterr().err
