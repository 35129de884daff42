"""The `imae` command: train, sweep, evaluate, reproduce, download, figures, report."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import sys
from pathlib import Path

from .config import (ARCHITECTURES, DATASETS, DCI_ESTIMATORS, DEVICES, INFOVAE_DIVERGENCES, MODELS, OPTIMIZERS,
                     PRECISIONS, RECIPES, TRAIN_SPLITS, TrainConfig, is_data_path)
from .errors import CheckpointError, ConfigError, ImaeError

DEFAULTS = TrainConfig()


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory",
                       description="Train a model on a data set. The run directory receives config.json, "
                                   "checkpoint.pt (every epoch, atomically), history.jsonl, TensorBoard "
                                   "events and metrics.json (test accuracy, I(x;y), reconstruction error).")
    g = p.add_argument_group("data and run")
    g.add_argument("--dataset", default=DEFAULTS.dataset, metavar="NAME_OR_PATH",
                   help=f"{', '.join(DATASETS)} (default {DEFAULTS.dataset}), or your own data: a folder of "
                        "PNG/JPEG images (one subfolder per class gives labels) or a .npy/.npz array")
    g.add_argument("--data-dir", help="directory with the data set's files (then $IMAE_DATA, then standard places)")
    g.add_argument("--image-size", type=int, metavar="S", help="own data: resize images to S x S")
    g.add_argument("--device", choices=DEVICES, default=DEFAULTS.device,
                   help="auto (default): CUDA when available, else CPU; the data is kept on the device")
    g.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                   help="the networks' matmuls: auto (default) is bf16 on a GPU with bf16 or a CPU with AMX or "
                        "AVX512-BF16, else fp32; estimators and final metrics stay fp32; --resume keeps the run's")
    g.add_argument("--dci-estimator", choices=DCI_ESTIMATORS, default=DEFAULTS.dci_estimator,
                   help="data with factors: DCI's classifiers, gbt (default: disentanglement_lib's gradient "
                        "boosting, ~9 min on dSprites) or forest (~12 s, not comparable with published DCI)")
    g.add_argument("--monitor-mig", action="store_true",
                   help="data with factors (dSprites): also MIG and MIG over (y, z) of the monitored images after "
                        "every epoch, in history.jsonl and the log (about a minute per epoch on dSprites)")
    g.add_argument("--out", type=Path, help="run directory (default runs/DATASET-MODEL-beta-B-seed-S)")
    g.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    g.add_argument("--seed", type=int, default=DEFAULTS.seed)
    g.add_argument("--epochs", type=int, help="default: the recipe's (tuned 50, dSprites 20; paper 20; imsat 50)")
    g.add_argument("--train-subset", type=int, metavar="N", help="train on N training images chosen at random (by the seed)")
    g.add_argument("--train-split", choices=TRAIN_SPLITS, default=DEFAULTS.train_split,
                   help="train: the training images (default); all: the test images too, as IMSAT did: the test "
                        "metrics are then not held out (metrics.json: test_images_trained_on). The validation "
                        "split is held out of the training images either way")
    g.add_argument("--validation-size", type=int, default=DEFAULTS.validation_size, metavar="N",
                   help="hold N training images out of training as a validation split (chosen by "
                        "--validation-seed); validation metrics go beside the test metrics. Choose settings "
                        "on it, never on the test split (default 0: none)")
    g.add_argument("--validation-seed", type=int, default=DEFAULTS.validation_seed,
                   help="which images the validation split holds (the same for every run seed)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="torch threads (default: torch's own count); config.json records the count used")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch log line stays)")
    m = p.add_argument_group("model and objective")
    m.add_argument("--recipe", choices=tuple(RECIPES), default=DEFAULTS.recipe,
                   help="paper: eq (10)-(11) with unit weights and Appendix G's optimisers; tuned (default): "
                        "ours, chosen on a validation split (docs/method.md, Recipes). It fills the weights, the "
                        "optimiser, lr and lr decay; an option given explicitly wins, and imsat's own recipe "
                        "wins over both")
    m.add_argument("--model", choices=MODELS, default=DEFAULTS.model,
                   help="imae (default), its baselines beta-vae, info-vae, joint-vae, or imsat: IMSAT (Hu et al. "
                        "2017), p(y|x) alone, no decoder and no z, with its published recipe as its defaults "
                        "(docs/method.md, IMSAT); options given explicitly win")
    m.add_argument("--continuous-dim", type=int, help="K1, Gaussian code dimensions (default 10; imsat: 0, no z)")
    m.add_argument("--categories", type=int, help="K2, categories of y (default 3 on dsprites, else 10)")
    m.add_argument("--architecture", choices=ARCHITECTURES,
                   help="mlp: Appendix G's MNIST network (default); mlp-large: its dSprites network (default on "
                        "dsprites); mlp-imsat: IMSAT's encoder 1200-1200 with batch norm (default for imsat; "
                        "Appendix G's MNIST decoder); conv: JointVAE's 4x4 stride-2 convolutions, for 32x32 and "
                        "64x64 images")
    m.add_argument("--hidden-init-scale", type=float, metavar="S",
                   help="initial weights of the encoder's hidden layers N(0, S^2 / fan_in), biases 0 (chainer's "
                        "wscale is S^2; imsat: sqrt(0.1); default: PyTorch's initialisation)")
    m.add_argument("--output-init-scale", type=float, metavar="S",
                   help="the same for the encoder's output layer; tiny S starts p(y|x) near uniform (imsat: 0.01; "
                        "default: PyTorch's)")
    m.add_argument("--beta", type=float, help="weight of L(y) and L(z), eq (10) (default 5; imsat: 0.1)")
    m.add_argument("--gamma", type=float, help="weight of the total correlation (default 2 * beta)")
    m.add_argument("--reconstruction-weight", type=float,
                   help="weight of the reconstruction term (paper 1, tuned 0.1)")
    m.add_argument("--marginal-entropy-weight", type=float,
                   help="weight of H(y) against H(y|x) inside I(x;y) (paper 1 = eq 7, tuned 4)")
    m.add_argument("--temperature", type=float, default=DEFAULTS.temperature, help="Gumbel-softmax temperature")
    b = p.add_argument_group("baselines")
    b.add_argument("--infovae-divergence", choices=INFOVAE_DIVERGENCES,
                   help="info-vae: divergence of p(z) from N(0, I): kl (both recipes': eq (5)'s KL by the "
                        "minibatch estimator, which in 10 dimensions is dominated by each sample's own term), "
                        "mmd-rbf (InfoVAE's own; it stops acting once the codes spread beyond its kernel) or "
                        "mmd-imq (WAE's kernel)")
    b.add_argument("--capacity-y", type=float, help="joint-vae: target of C_y in nats, capped at log K2 "
                   "(default 5 on MNIST, 10 on Fashion-MNIST)")
    b.add_argument("--capacity-z", type=float, help="joint-vae: target of C_z in nats (default 5)")
    b.add_argument("--capacity-iterations", type=int, help="joint-vae: steps to raise C to its target "
                   "(default 25000 on MNIST, 50000 on Fashion-MNIST)")
    v = p.add_argument_group("virtual adversarial training (every model)")
    v.add_argument("--no-vat", dest="vat", action="store_false", help="switch VAT off")
    v.add_argument("--vat-weight", type=float,
                   help="weight of VAT relative to beta, inside L(y) for IMAE (paper 1, tuned 10)")
    v.add_argument("--vat-eps", type=float, help="adversarial radius (L2, pixels in [0,1]; default 1; imsat: 0.25, "
                                                 "a factor of the neighbour distance)")
    v.add_argument("--vat-eps-neighbours", type=int, metavar="K",
                   help="per-sample radius: vat-eps x the distance to the K-th nearest training image "
                        "(IMSAT: --vat-eps 0.25 --vat-eps-neighbours 10, imsat's default); 0: the fixed vat-eps")
    v.add_argument("--vat-xi", type=float,
                   help="finite-difference step of the power iteration (default 1; imsat: 5, IMSAT's 10 on [-1, 1])")
    v.add_argument("--augment-consistency", type=float, default=DEFAULTS.augment_consistency, metavar="W",
                   help="weight (relative to beta, like --vat-weight) of KL(p(y|x) || p(y|T(x))) for a small random "
                        "affine transform T of each image (default 0: off)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="paper: sgd (adam on dsprites); tuned: adam")
    o.add_argument("--lr", type=float, help="learning rate (both recipes: 1e-3)")
    o.add_argument("--momentum", type=float, default=DEFAULTS.momentum, help="sgd's momentum")
    o.add_argument("--lr-decay", type=float,
                   help="learning-rate factor per epoch (0.98; paper on dsprites: 1, no decay)")
    o.add_argument("--grad-clip", type=float, metavar="NORM",
                   help="clip the gradient's global L2 norm to NORM before every step (default: no clipping)")
    o.add_argument("--batch-size", type=int, help="default 256 (imsat: 250)")
    o.add_argument("--restarts", type=int, default=DEFAULTS.restarts, metavar="N",
                   help="train N initialisations for --restart-epochs epochs each and continue the one of highest "
                        "I(x;y) on the training images (no labels); every candidate's score goes to restarts.json "
                        "and metrics.json (default 1: no restarts)")
    o.add_argument("--restart-epochs", type=int, default=DEFAULTS.restart_epochs, metavar="E",
                   help=f"epochs each restart candidate trains before the choice (default {DEFAULTS.restart_epochs})")


def _config_from(args) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}).validate()


def _default_out(cfg: TrainConfig) -> Path:
    name = Path(cfg.dataset).stem if is_data_path(cfg.dataset) else cfg.dataset
    return Path("runs") / f"{name}-{cfg.model}-beta{cfg.beta:g}-seed{cfg.seed}"


def cmd_train(args) -> int:
    from . import runs
    from .training import train
    if args.resume:
        cfg = runs.load_config(args.resume)
        run_dir = args.resume
    else:
        cfg = _config_from(args)
        run_dir = args.out or _default_out(cfg)
    metrics = train(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"run directory: {run_dir} (metrics.json, checkpoint.pt, config.json, TensorBoard events)")
    return 0


def cmd_reproduce(args) -> int:
    from . import runs
    from .training import resolve_device, train
    cfg = runs.load_config(args.run_dir)
    if not (args.run_dir / runs.METRICS).is_file():
        raise CheckpointError(f"{args.run_dir / runs.METRICS}: missing; the run has not finished")
    if args.data_dir:
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    original = runs.read_json(args.run_dir / runs.METRICS)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        capability = _reproduction_capability(args, original.get("training_hardware"))
        if capability:
            return _reproduce_at(capability, args)
    elif args.cpu_capability:
        raise ConfigError(f"--cpu-capability: {args.run_dir} trains on {device.type}, not the CPU")
    train(cfg, args.out, progress=not args.no_progress)
    again = runs.read_json(args.out / runs.METRICS)
    # A metric that today's code adds (the run predates it) has nothing to be compared with.
    added = sorted(set(again) - set(original))
    if added:
        print(f"metrics added since the run was made, not compared: {', '.join(added)}")
    differ = sorted(k for k in original if k != "training_hardware" and original[k] != again.get(k))
    if differ:
        print(f"{args.out / runs.METRICS} differs from {args.run_dir / runs.METRICS} in: {', '.join(differ)}")
        return 1
    print(f"reproduced: {args.out / runs.METRICS} equals {args.run_dir / runs.METRICS}"
          + (f" in its {len(original)} metrics" if added else ""))
    return 0


def _reproduction_capability(args, made_on: str | None) -> str | None:
    """The CPU kernel width to reproduce at, where it is not this process's (else None). Kernels of different
    widths sum in different orders, so a run reproduces bit for bit only at the width it was trained at:
    --cpu-capability, else the one its training_hardware records."""
    import torch

    from .precision import cpu_maker, hardware, recorded_capability
    here = hardware(torch.device("cpu"))
    wanted = args.cpu_capability or recorded_capability(made_on)
    current = torch.backends.cpu.get_cpu_capability()
    if wanted is None:
        print(f"note: the run did not record its hardware; it is trained again with this CPU's {current} kernels "
              "(--cpu-capability names others; EXPERIMENTS.md, 'Reproducing a run', says which results/paper-cpu used)")
        return None
    if made_on and made_on != here:
        print(f"note: the run was trained on {made_on}, this is {here}")
        made_by, here_by = cpu_maker(made_on), cpu_maker(here)
        if made_by and here_by and made_by != here_by:
            # MKL's kernels differ between makers at every width (EXPERIMENTS.md, 'Reproducing a run').
            print(f"note: MKL sums in another order on a CPU not by {made_by}, at every width: expect the "
                  "metrics to differ, as a new seed's would")
    if wanted == current:
        return None
    if os.environ.get("ATEN_CPU_CAPABILITY", "").upper() == wanted:  # this is the process started for it
        raise ConfigError(f"--cpu-capability {wanted}: this CPU cannot run PyTorch's {wanted} kernels "
                          f"(it runs {current}); reproduce the run on a CPU that can")
    return wanted


def _reproduce_at(capability: str, args) -> int:
    """Run this reproduction again in a new process whose kernels are `capability`'s: ATen, MKL and oneDNN
    fix their width when a process first uses them, so it cannot change within this one."""
    import subprocess

    from .precision import CPU_CAPABILITY_ENV
    print(f"reproducing with {capability} kernels, as the run was trained", flush=True)
    argv = [sys.executable, "-m", "imae", "reproduce", str(args.run_dir), "--out", str(args.out),
            "--cpu-capability", capability]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["--no-progress"] if args.no_progress else []
    return subprocess.run(argv, env={**os.environ, **CPU_CAPABILITY_ENV[capability]}).returncode


def cmd_evaluate(args) -> int:
    from .training import evaluate_run
    metrics = evaluate_run(args.run_dir, args.data_dir, args.device)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"written: {Path(args.run_dir) / 'metrics.json'}")
    return 0


def cmd_download(args) -> int:
    from .data.mnist import download
    dest = download(args.name, args.dir)
    print(f"{args.name}: verified files in {dest}")
    return 0


def _sweep_parser(sub) -> None:
    from .study import __doc__ as study_format
    p = sub.add_parser("sweep", help="run a study (a grid of runs from a TOML file or a preset), resumable",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Run every run of a study below --out, several at once; rerunning skips finished "
                                   "runs, resumes incomplete ones and retries failed ones. Writes OUT/results.csv "
                                   "and OUT/results.jsonl. Exit 0: every run it started finished; 1: some failed "
                                   "(error.json in their directory); 2: bad input.\n\nThe study file:\n" + study_format)
    p.add_argument("study", help="a study TOML file, or a preset name: paper-small, paper, tuned")
    p.add_argument("--out", type=Path, required=True, help="the study directory")
    p.add_argument("--dry-run", action="store_true",
                   help="write nothing (not even --out); print one JSON line per run, {\"run\": its directory "
                        "below --out, \"config\": the config.json it would get}, then {\"runs\": the count}")
    g = p.add_argument_group("overrides of the study file (every grid)")
    g.add_argument("--models", nargs="+", choices=MODELS, help="the model axis")
    g.add_argument("--betas", nargs="+", type=float, help="the beta axis (replaces a gamma axis too)")
    g.add_argument("--seeds", nargs="+", type=int, help="the seed axis")
    g.add_argument("--epochs", type=int, help="epochs of every run")
    g.add_argument("--data-dir", help="directory with the IDX files, for every run")
    g.add_argument("--only", nargs="+", metavar="PATTERN",
                   help="run only the runs whose directory below --out matches one of these shell patterns "
                        "('mnist/*seed0*'; * also matches /): a large study in the order you choose, the names "
                        "unchanged")
    b = p.add_argument_group("execution")
    b.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: a process pool on this machine; ray: Ray tasks (the study directory must be on "
                        "storage every node sees, imae installed on every node)")
    b.add_argument("--address", help="ray: the cluster ('auto', 'ray://HOST:10001'); default: a local Ray instance")
    b.add_argument("--workers", type=int, help="runs at once (default: the cores, at most the runs); "
                                               "ray without --address: the CPUs of the local instance")
    b.add_argument("--threads", type=int, help="torch threads per run (default: cores / workers locally, 1 on Ray, "
                                               "where it is also the CPUs each run reserves)")
    b.add_argument("--start-within", type=float, metavar="HOURS",
                   help="local: start runs for this many hours only; after that none starts and the sweep ends "
                        "when the runs in flight do (a machine held for a fixed time: no run begun that would be "
                        "cut off; the same command later runs the rest)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_sweep(args) -> int:
    from .study import load_study
    for name in ("workers", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ImaeError(f"option --{name}: expected an integer >= 1, got {getattr(args, name)}")
    if args.address and args.backend != "ray":
        raise ImaeError("option --address: only with --backend ray")
    if args.start_within is not None and not args.start_within > 0:
        raise ImaeError(f"option --start-within: expected a number of hours > 0, got {args.start_within:g}")
    axes = {key: values for key, values in (("model", args.models), ("beta", args.betas), ("seed", args.seeds))
            if values}
    settings = {key: value for key, value in (("epochs", args.epochs), ("data_dir", args.data_dir))
                if value is not None}
    study = load_study(args.study, axes, settings)
    if args.only:
        study = [run for run in study if any(fnmatch.fnmatchcase(run.name, pattern) for pattern in args.only)]
        if not study:
            raise ImaeError(f"option --only: no run of {args.study} matches {' '.join(args.only)}")
    if args.dry_run:
        for run in study:
            print(json.dumps({"run": run.name, "config": dict(sorted(run.config.to_dict().items()))}))
        print(json.dumps({"runs": len(study)}))
        return 0
    from .sweep import format_summary, sweep  # imports torch: after the study is known to be valid
    summary = sweep(study, args.out, args.backend, args.workers, args.threads, args.address, not args.no_progress,
                    args.start_within)
    print(format_summary(summary, args.out))
    return summary.exit_code


def cmd_figures(args) -> int:
    from .figures import write_figures
    write_figures(args.study_dir, args.out)
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    print(f"written: {write_report(args.study_dir, args.out)}")
    return 0


def _figures_parser(sub) -> None:
    f = sub.add_parser("figures", help="draw the paper's figures from a study directory",
                       description="Draw Fig. 2-8 of the paper (PNG and PDF) from the runs below STUDY_DIR; "
                                   "a figure whose runs are missing says so on the figure and here. Fig. 2 and 4 "
                                   "decode from a run's checkpoint once and keep the pictures in RUN_DIR/pictures.npz, "
                                   "from which they are redrawn where the checkpoint is gone.")
    f.add_argument("study_dir", type=Path)
    f.add_argument("--out", type=Path, help="output directory (default STUDY_DIR/figures)")
    r = sub.add_parser("report", help="write a static HTML report of a study directory",
                       description="Write a self-contained folder (index.html, figures) with a table of the runs, "
                                   "each run's config and metrics, and failed runs with their error.")
    r.add_argument("study_dir", type=Path)
    r.add_argument("--out", type=Path, help="output directory (default STUDY_DIR/report)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imae", description="Information Maximization Auto-Encoding: learn a "
                                     "categorical code y and a continuous code z from unlabelled images.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _sweep_parser(sub)
    e = sub.add_parser("evaluate", help="recompute a run's metrics from its checkpoint",
                       description="Recompute accuracy (Hungarian matching), I(x;y) over the whole test split "
                                   "and the reconstruction error, and rewrite RUN_DIR/metrics.json.")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--data-dir", help="directory with the data set's files, if not where training found them")
    e.add_argument("--device", choices=DEVICES, default="cpu")
    r = sub.add_parser("reproduce", help="train a run again from its config.json and compare metrics.json",
                       description="Train a new run into OUT with every setting of RUN_DIR/config.json (seed, "
                                   "threads, precision) and compare its metrics.json with RUN_DIR's: exit 0 if "
                                   "they are equal, 1 (naming the keys) if not. Equality needs the same torch "
                                   "version and the same width of CPU kernels (AVX2, AVX512), which it "
                                   "takes from the run's training_hardware.")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--out", type=Path, required=True, help="the new run's directory")
    r.add_argument("--data-dir", help="directory with the data set's files, if not where training found them")
    r.add_argument("--cpu-capability", type=str.upper, choices=("DEFAULT", "AVX2", "AVX512"),
                   help="the width of PyTorch's CPU kernels to train with (default: the one the run's "
                        "training_hardware records, else this CPU's); a width other than this process's "
                        "runs in a new process with ATen, MKL and oneDNN held to it")
    r.add_argument("--no-progress", action="store_true")
    d = sub.add_parser("download", help="fetch MNIST or Fashion-MNIST and verify checksums",
                       description="Download the four IDX files from the official mirrors into DIR, verifying "
                                   "the published MD5 of each .gz and the SHA-256 of its content.")
    d.add_argument("name", choices=("mnist", "fashion-mnist"))
    d.add_argument("dir", type=Path)
    _figures_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"train": cmd_train, "evaluate": cmd_evaluate, "reproduce": cmd_reproduce, "download": cmd_download,
               "sweep": cmd_sweep, "figures": cmd_figures, "report": cmd_report}[args.command]
    try:
        return handler(args)
    except ImaeError as exc:
        print(f"imae: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`imae sweep paper --out X --dry-run | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except KeyboardInterrupt:
        print("imae: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
