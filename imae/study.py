"""A study: a grid of training runs declared in a TOML file, expanded into one validated
TrainConfig per run, each with a readable directory name.

    description = "free text"          # optional
    [settings]                         # any TrainConfig field, shared by every run
    epochs = 5
    data_dir = "/data/mnist"
    [model.joint-vae]                  # per-model settings (over [settings])
    capacity_iterations = 1100
    [recipe.tuned]                     # per-recipe settings (over [settings]): e.g. a recipe's values
    vat_weight = 10.0                  #   as they were when a study's runs were made
    [[grid]]                           # one or more grids; the study is the union of their products
    dataset = ["mnist"]
    model = ["imae", "beta-vae", "info-vae", "joint-vae"]
    beta = [1, 5, 9]
    seed = [0, 1]
    vat = [true]
    [[grid]]                           # e.g. the VAT ablation
    model = ["imae"]
    beta = [1, 5, 9]
    seed = [0, 1]
    vat = [false]

A single `[grid]` table works as well as `[[grid]]` tables. Each grid key is a TrainConfig field
(except data_dir) with a list of values; a single value is a one-value list, i.e. a setting of that
grid only. Grid values win over [model.X], [recipe.X] and [settings]; a model's own defaults (imsat's
recipe) win over [recipe.X], as over the recipe itself; a [model.X] or [recipe.X]
table may not set a key the grid varies, nor may the two set the same key. `gamma` may replace `beta` as an axis (the dSprites protocol, METHOD.md section 6):
a value g gives IMAE gamma = g, beta = g / 2 and every other model beta = g, as in the paper's
figures "against beta (gamma for IMAE)". With a beta axis IMAE keeps gamma = 2 beta.

Run directories are DATASET/MODEL/beta5-seed0 (gamma10-seed0 for IMAE on a gamma axis), plus
"-novat" when VAT is off and "-KEY=VALUE" for every other grid key that takes several values among
the runs of that data set and model, its value as validated (recipe and data-set defaults filled). A
run that two grids both produce is run once, also when one grid leaves a setting to its default and
another gives that default.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import MODEL_DEFAULTS, MODELS, RECIPES, TrainConfig
from .errors import ConfigError

SECTIONS = ("description", "settings", "model", "recipe", "grid")
FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
PRESETS = resources.files("imae") / "presets"
NAMED_AXES = ("dataset", "model", "beta", "gamma", "seed", "vat")  # already in the directory name


@dataclass(frozen=True)
class StudyRun:
    name: str  # the run directory, relative to the study directory
    config: TrainConfig


def presets() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in PRESETS.iterdir()
                  if p.name.endswith(".toml"))


def resolve(spec: str) -> Path:
    """A study file's path, or the packaged file of a preset name (paper-small, paper)."""
    path = Path(spec)
    if path.is_file():
        return path
    if spec in presets():
        return Path(str(PRESETS / f"{spec}.toml"))
    raise ConfigError(f"{spec}: no such study file, and not a preset ({', '.join(presets())})")


def load_study(spec: str, axes: dict[str, list] | None = None, settings: dict | None = None) -> list[StudyRun]:
    """Read, expand and validate a study. `axes` replace those axes in every grid (command-line
    --seeds, --betas, --models); `settings` override every run's settings (--epochs, --data-dir)."""
    path = resolve(spec)
    try:
        study = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return expand(study, str(path), axes or {}, settings or {})


def expand(study: dict, source: str, axes: dict[str, list], settings: dict) -> list[StudyRun]:
    unknown = sorted(set(study) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}")
    if not isinstance(study.get("description", ""), str):
        raise ConfigError(f"{source}: description must be a string")
    shared = _settings(study.get("settings", {}), f"{source} [settings]")
    per_model = _sections(study, "model", MODELS, source)
    per_recipe = _sections(study, "recipe", tuple(RECIPES), source)
    grids = study.get("grid")
    grids = [grids] if isinstance(grids, dict) else grids
    if not grids or not isinstance(grids, list):
        raise ConfigError(f"{source}: expected a [grid] table or [[grid]] tables")
    points = []
    for number, grid in enumerate(grids, 1):
        where = f"{source} grid {number}"
        grid = _grid(grid, where)
        if "beta" in axes:  # --betas replaces a gamma axis too
            grid.pop("gamma", None)
        points += _grid_points({**grid, **axes}, shared, per_model, per_recipe, settings, where)
    return _name_and_validate(points, source)


def _sections(study: dict, kind: str, names: tuple[str, ...], source: str) -> dict[str, dict]:
    """The [KIND.NAME] tables of a study (per-model or per-recipe settings), checked."""
    tables = study.get(kind, {})
    if not isinstance(tables, dict) or set(tables) - set(names):
        raise ConfigError(f"{source}: expected [{kind}.NAME] tables with NAME one of {', '.join(names)}")
    return {name: _settings(values, f"{source} [{kind}.{name}]") for name, values in tables.items()}


def _settings(values, where: str) -> dict:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of settings")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    return values


def _grid(grid, where: str) -> dict[str, list]:
    """A grid table as {key: non-empty list of plain values}."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}: expected a table of axes, e.g. beta = [1, 5, 9]")
    _settings(grid, where)
    if "data_dir" in grid:
        raise ConfigError(f"{where}: data_dir is a setting, not an axis")
    if "beta" in grid and "gamma" in grid:
        raise ConfigError(f"{where}: give beta or gamma as an axis, not both (gamma sets IMAE's beta to gamma / 2)")
    grid = {key: values if isinstance(values, list) else [values] for key, values in grid.items()}
    for key, values in grid.items():
        if not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise ConfigError(f"{where}: axis {key}: expected a non-empty list of values, got {values!r}")
    if any(isinstance(g, bool) for g in grid.get("gamma", [])):
        raise ConfigError(f"{where}: axis gamma: expected numbers, got {grid['gamma']!r}")
    return grid


def _grid_points(grid: dict, shared: dict, per_model: dict, per_recipe: dict, settings: dict,
                 where: str) -> list[tuple]:
    """(settings of one run, whether its beta came from a gamma axis, the grid's axes) per grid point."""
    varied = set(grid) | ({"beta"} if "gamma" in grid else set())
    points = []
    for combination in itertools.product(*grid.values()):
        point = dict(zip(grid, combination))
        model = point.get("model", shared.get("model", TrainConfig.model))
        overrides = {}
        for kind, tables in (("model", per_model), ("recipe", per_recipe)):
            name = point.get(kind, shared.get(kind, getattr(TrainConfig, kind)))
            table = tables.get(name, {}) if isinstance(name, str) else {}
            if kind == "recipe":  # a model's own defaults win over its recipe's, as in TrainConfig (imsat's)
                table = {key: value for key, value in table.items() if key not in MODEL_DEFAULTS.get(model, {})}
            clash = sorted((varied | set(overrides)) & set(table))
            if clash:
                raise ConfigError(f"{where}: [{kind}.{name}] sets {', '.join(clash)}, which the grid varies"
                                  + (f" or [model.{model}] sets" if kind == "recipe" else ""))
            overrides.update(table)
        by_gamma = "gamma" in point
        if by_gamma and not isinstance(point["gamma"], str):
            gamma = point.pop("gamma")
            point.update({"beta": gamma / 2, "gamma": gamma} if model == "imae" else {"beta": gamma})
        points.append(({**shared, **overrides, **point, **settings}, by_gamma, set(grid)))
    return points


def _name_and_validate(points: list, source: str) -> list[StudyRun]:
    """Validate every run, then name it from its validated config, so that a setting left to its
    default in one grid and given as that default in another names (and is) the same run."""
    defaults = TrainConfig().to_dict()
    configs = [_validated(values, f"{source} run {_run_name({**defaults, **values}, by_gamma, [])}")
               for values, by_gamma, _ in points]
    full = [config.to_dict() for config in configs]
    groups: dict[tuple, list[int]] = {}
    for i, values in enumerate(full):
        groups.setdefault((values["dataset"], values["model"]), []).append(i)
    names = [""] * len(points)
    for members in groups.values():
        axes = set().union(*(points[i][2] for i in members)) - set(NAMED_AXES)
        extra = sorted(key for key in axes if len({repr(full[i][key]) for i in members}) > 1)
        for i in members:
            names[i] = _run_name(full[i], points[i][1], extra)
    runs: dict[str, StudyRun] = {}
    for i, name in enumerate(names):  # in the order the grids are written: a study grows in that order
        if name in runs and runs[name].config != configs[i]:
            raise ConfigError(f"{source}: two different runs would share the directory {name}")
        runs.setdefault(name, StudyRun(name, configs[i]))
    return list(runs.values())


def _validated(values: dict, where: str) -> TrainConfig:
    """TrainConfig's own validation, its message prefixed with the study file and the run."""
    try:
        return TrainConfig.from_dict(values, source=where)
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None


def _run_name(values: dict, by_gamma: bool, extra: list[str]) -> str:
    imae_gamma = by_gamma and values["model"] == "imae"
    weight = f"gamma{_text(values['gamma'])}" if imae_gamma else f"beta{_text(values['beta'])}"
    parts = [weight, f"seed{_text(values['seed'])}"]
    if values["vat"] is False:
        parts.append("novat")
    parts += [f"{key}={_text(values[key])}" for key in extra]
    return f"{values['dataset']}/{values['model']}/{'-'.join(parts)}"


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
