"""Run a study: every run directory below one study directory, several at once, resumable.

Before anything starts, each run directory that exists is checked against the study: its
config.json must be the study's config for it (data_dir aside: where the data are found does not
change a run), else the study changed and the sweep refuses rather than mix two studies. Then
finished runs (metrics.json) are skipped and never written again; incomplete ones resume from
their checkpoint; failed ones (error.json) start again from an empty directory; missing ones start.
A run that raises records error.json {"error": one line, "traceback": text} and the others go on.
Each run logs to RUN_DIR/train.log. At the end every run below the study directory is gathered
into results.csv and results.jsonl (imae.results.results_table).

Backends: a local process pool ('spawn': torch and fork do not mix), or Ray tasks on a cluster,
where the study directory must be on storage every node sees at the same path (NFS or similar) and
imae must be installed on every node. Ray runs a task again (up to RAY_RETRIES times) when the node
or worker process running it dies; an attempt that finds the run already started by this sweep
resumes it from its checkpoint, so the run ends as if never interrupted. Each attempt records
where it ran in RUN_DIR/attempt.json (host, Ray node id, pid, sweep), shown in the results table.

One sweep at a time holds the study directory (imae.lock): a second is refused, naming the first.
A sweep given a time to start runs in (start_within, local backend) starts none after it and ends when
the runs in flight do: on a machine held for a fixed time, no run is begun that would be cut off.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from itertools import islice, takewhile
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from . import runs
from .config import TrainConfig, upgraded
from .errors import CheckpointError, ImaeError
from .lock import study_lock
from .results import ATTEMPT, ERROR, results_table, run_status
from .study import StudyRun

RESULTS_CSV = "results.csv"
RESULTS_JSONL = "results.jsonl"
LOG = "train.log"
# Where the data are found and how many threads ran a run do not make it another run.
IGNORED_IN_COMPARISON = ("data_dir", "threads")
# Settings that act in one model only: another model's run is the same run whatever they hold (the paper
# recipe's InfoVAE divergence changed from mmd-rbf to kl in stop 28, with no effect on the other models' runs).
ONE_MODEL_SETTINGS = {"infovae_divergence": "info-vae"}
RAY_RETRIES = 3  # attempts after the first when a task's node or worker process dies


@dataclass(frozen=True)
class Task:
    """One run to (re)start, as it travels to a worker process."""

    name: str
    run_dir: str
    config: dict
    action: str  # "start", "resume" (incomplete: continue from its checkpoint) or "restart" (failed)
    threads: int = 1
    sweep: str = ""  # the sweep's id (its lock token): tells a retried attempt from an earlier sweep's


@dataclass
class Summary:
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> one-line error
    skipped: list[str] = field(default_factory=list)  # already finished before this sweep
    not_started: list[str] = field(default_factory=list)  # left when the time to start runs had passed
    tables: tuple[Path, Path] | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def plan(study: list[StudyRun], out: Path) -> tuple[list[Task], list[str]]:
    """The runs still to do and the names of those already finished; refuses a study directory
    whose runs were made by another study."""
    tasks, done = [], []
    for run in study:
        run_dir = Path(out) / run.name
        status = _check_existing(run_dir, run.config.to_dict())
        if status == "finished":
            done.append(run.name)
        else:
            action = {"missing": "start", "incomplete": "resume", "failed": "restart"}[status]
            tasks.append(Task(run.name, str(run_dir), run.config.to_dict(), action))
    return tasks, done


def _check_existing(run_dir: Path, config: dict) -> str:
    if not (run_dir / runs.CONFIG).is_file():
        return "missing"
    saved = runs.read_json(run_dir / runs.CONFIG)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{run_dir / runs.CONFIG}: expected a JSON object of settings")
    saved = upgraded(saved)
    # A setting absent from a run's config.json was added to imae after the run: it ran with its default.
    defaults = TrainConfig().to_dict()
    ignored = (IGNORED_IN_COMPARISON + (("precision",) if config.get("precision") == "auto" else ())
               + tuple(name for name, model in ONE_MODEL_SETTINGS.items() if config.get("model") != model))
    keys = sorted(k for k in set(saved) | set(config) if k not in ignored
                  and saved.get(k, defaults.get(k, "absent")) != config.get(k, defaults.get(k, "absent")))
    if keys:
        raise CheckpointError(f"{run_dir}: its config.json differs from the study's config for this run "
                              f"({', '.join(keys)}); the study changed: restore it or use another --out")
    return run_status(run_dir)


def run_one(task: Task) -> str | None:
    """Train one run in a worker process; returns None, or the one-line error also written to
    error.json. Uses task.threads torch threads: several processes each using every core would
    slow each other down several times over."""
    from .training import train

    run_dir = Path(task.run_dir)
    config = replace(TrainConfig.from_dict(task.config), threads=task.threads)  # train() sets them
    retried = _attempted_in(run_dir, task.sweep)
    if retried and run_status(run_dir) == "finished":  # its last attempt died after metrics.json
        return None
    if task.action != "resume" and not retried:  # a new or failed run starts from an empty directory
        shutil.rmtree(run_dir, ignore_errors=True)
        runs.prepare(run_dir, config)  # config.json first: the run is in the results table from now on
    attempt = {"host": socket.gethostname(), "ray_node": _ray_node(), "pid": os.getpid(), "sweep": task.sweep}
    runs.write_json(run_dir / ATTEMPT, attempt)
    with open(run_dir / LOG, "a") as log_file:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()
        log(f"attempt on host {attempt['host']}, Ray node {attempt['ray_node']}, pid {attempt['pid']}")
        try:
            # resume=True also starts a prepared directory without a checkpoint from scratch
            train(config, run_dir, resume=True, progress=False, log=log)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure of one run is recorded, the others go on
            trace = traceback.format_exc()
            log(trace)
            return record_failure(run_dir, exc, trace)


def die_with_parent(parent: int | None = None) -> None:
    """Linux: SIGKILL this process when the one that started it dies (`parent`; None: whichever it is).
    A worker orphaned by a killed sweep or a lost Ray node would otherwise go on writing its run
    directory while the next attempt resumes the same run; killed, the run resumes from its last checkpoint."""
    if sys.platform != "linux":
        return
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if (os.getppid() == 1) if parent is None else (os.getppid() != parent):  # it died before the call
        os._exit(1)


def run_on_ray_worker(task: Task) -> str | None:
    """run_one in a Ray worker, which dies with its raylet."""
    die_with_parent()
    return run_one(task)


def _attempted_in(run_dir: Path, sweep: str) -> bool:
    """Whether an earlier attempt of this same sweep started the run: Ray ran the task again after
    its node died, and the run continues from that attempt's checkpoint."""
    path = run_dir / ATTEMPT
    return bool(sweep) and path.is_file() and runs.read_json(path).get("sweep") == sweep


def _ray_node() -> str | None:
    """The Ray node id when this process is a Ray worker, else None."""
    ray = sys.modules.get("ray")
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None


def record_failure(run_dir: Path, exc: BaseException, trace: str) -> str:
    message = (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0]
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    runs.write_json(Path(run_dir) / ERROR, {"error": message, "traceback": trace})
    return message


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def started_until(tasks: list[Task], deadline: float | None) -> Iterable[Task]:
    """The tasks, for as long as time.monotonic() is before the deadline (None: all of them); a pool fed
    from it starts no run after the deadline."""
    return tasks if deadline is None else takewhile(lambda _: time.monotonic() < deadline, tasks)


def run_local(tasks: Iterable[Task], workers: int, function: Callable[[Task], str | None] = run_one
              ) -> Iterator[tuple[Task, str | None]]:
    """(task, error or None) as runs end, from a pool of `workers` processes that die with this one.
    A run is handed to the pool only when a worker is free: the pool's own queue would start one more
    run after an interrupt (Ctrl-C, or the caller closing this generator), which cancel_futures cannot stop."""
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=die_with_parent,
                               initargs=(os.getpid(),))
    waiting = iter(tasks)
    try:
        running = {pool.submit(function, task): task for task in islice(waiting, workers)}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                yield task, _outcome(task, future.result)
                running.update({pool.submit(function, task): task for task in islice(waiting, 1)})
    finally:  # interrupted: start no further run
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(tasks: list[Task], address: str | None, workers: int) -> Iterator[tuple[Task, str | None]]:
    """The same on Ray: one task per run reserving task.threads CPUs. With no address, a local
    Ray instance with `workers` CPUs."""
    try:
        import ray
    except ImportError:
        raise ImaeError("the ray backend needs Ray: pip install 'imae[cluster]'") from None
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:  # RayError: no token
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "; is RAY_AUTH_TOKEN the cluster's?" if address else ""
        raise ImaeError(f"option --address {address}: cannot start or reach Ray ({reason}){hint}") from None
    try:
        remote = ray.remote(run_on_ray_worker)
        pending = {remote.options(num_cpus=task.threads, max_retries=RAY_RETRIES).remote(task): task
                   for task in tasks}
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ref)
            yield task, _outcome(task, lambda ref=ref: ray.get(ref))
    finally:
        ray.shutdown()


def _outcome(task: Task, result: Callable[[], str | None]) -> str | None:
    """A run's error, also when its worker died before it could record one (killed, out of memory)."""
    try:
        return result()
    except Exception as exc:  # noqa: BLE001 - a worker that died: record it like a failed run
        return record_failure(Path(task.run_dir), exc, traceback.format_exc())


def write_results(out: Path) -> tuple[Path, Path]:
    """results.csv and results.jsonl: one row per run below `out`, every setting and metric."""
    rows = results_table(out)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = (Path(out) / RESULTS_CSV, Path(out) / RESULTS_JSONL)
    runs.atomic_write(paths[0], lambda f: f.write(text.getvalue().encode()))
    lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    runs.atomic_write(paths[1], lambda f: f.write(lines.encode()))
    return paths


def sweep(study: list[StudyRun], out: Path, backend: str = "local", workers: int | None = None,
          threads: int | None = None, address: str | None = None, progress: bool = True,
          start_within: float | None = None) -> Summary:
    """Run every unfinished run of the study below `out`, holding its lock; gather the results table.
    start_within (hours, local backend): start no run after that long; those left are summary.not_started."""
    if start_within is not None and backend != "local":
        raise ImaeError("option --start-within: only with the local backend (Ray queues every run at once)")
    deadline = None if start_within is None else time.monotonic() + 3600 * start_within
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with study_lock(out) as holder:
        tasks, done = plan(study, out)
        summary = Summary(skipped=done)
        if tasks:
            cores = available_cores()
            workers = workers or min(cores, len(tasks))
            threads = threads or (max(1, cores // workers) if backend == "local" else 1)
            tasks = [replace(t, threads=threads, sweep=holder["token"]) for t in tasks]
            outcomes = (run_local(started_until(tasks, deadline), workers) if backend == "local"
                        else run_ray(tasks, address, workers))
            with tqdm(total=len(tasks), desc="runs", unit="run", disable=not progress) as bar:
                for task, error in outcomes:
                    if error is None:
                        summary.finished.append(task.name)
                    else:
                        summary.failed[task.name] = error
                        bar.write(f"failed: {task.name}: {error}")
                    bar.update()
            ended = {*summary.finished, *summary.failed}
            summary.not_started = [task.name for task in tasks if task.name not in ended]
        summary.tables = write_results(out)
    return summary


def format_summary(summary: Summary, out: Path) -> str:
    lines = ["| finished | failed | skipped (already finished) |", "|---|---|---|",
             f"| {len(summary.finished)} | {len(summary.failed)} | {len(summary.skipped)} |"]
    lines += [f"failed: {name}: {error} (see {Path(out) / name / ERROR})" for name, error in summary.failed.items()]
    if summary.not_started:
        lines.append(f"not started: {len(summary.not_started)} runs (--start-within had passed); "
                     f"the same command runs them")
    if summary.tables:
        lines.append(f"results table: {summary.tables[0]} and {summary.tables[1]}")
    return "\n".join(lines)
