"""A study on a real Ray cluster, the recipe of docs/studies.md, "On a Ray cluster": a head and a second
node started by `ray start` as separate processes on this machine, the sweep connecting with --address
127.0.0.1:PORT. The second node's raylet is killed while it trains a run: Ray runs the task again on the
head, the run resumes from its checkpoint and ends identical to an uninterrupted run. A second sweep on
the same study directory meanwhile is refused, naming the first."""

import csv
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from conftest import write_mnist_like

from imae.cli import main
from imae.config import TrainConfig
from imae.training import train

RAY = Path(sys.executable).with_name("ray")
pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the raylets"),
              pytest.mark.skipif(not RAY.exists(), reason=f"no {RAY}: Ray is not installed beside this Python")]
ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 6
RUNS = 12  # the second node starts its first run seconds after the head: enough that it gets a second
STUDY = """[settings]
data_dir = "{data}"
train_subset = 64
batch_size = 32
epochs = {epochs}
eval_batch_size = 128
continuous_dim = 2
categories = 4
[grid]
seed = {seeds}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_groups(groups: list[int], seconds: float = 10.0) -> None:
    """SIGKILL the process groups this test started, waiting (bounded) until none of them is left."""
    deadline = time.monotonic() + seconds
    while groups and time.monotonic() < deadline:
        for pgid in list(groups):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                groups.remove(pgid)
        time.sleep(0.1)


def _start_node(args: list[str], temp_dir: Path, env: dict, groups: list[int]) -> None:
    """`ray start` in a session of its own: every process of the node stays in its process group,
    which _stop_groups ends; nothing else on the machine is touched."""
    command = [str(RAY), "start", *args, "--num-cpus", "1", "--temp-dir", str(temp_dir), "--disable-usage-stats",
               "--dashboard-agent-listen-port", str(_free_port())]
    proc = subprocess.Popen(command, start_new_session=True, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    groups.append(proc.pid)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{output[-3000:]}"


def _raylet(pgid: int) -> tuple[int, str]:
    """(pid, Ray node id) of the raylet in a node's process group."""
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or os.getpgid(int(proc.name)) != pgid:
                continue
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ProcessLookupError):
            continue
        if args[0].endswith(b"/raylet"):
            node = next(a for a in args if a.startswith(b"--node_id="))
            return int(proc.name), node.split(b"=", 1)[1].decode()
    raise AssertionError(f"no raylet in process group {pgid}")


@contextmanager
def local_cluster():
    """A head node and a worker node with one CPU each, their processes importing this checkout's
    imae; yields (address, head's process group, worker's process group, environment). A short
    temporary directory: Ray's socket paths must fit in 107 bytes."""
    temp = Path(tempfile.mkdtemp(prefix="imae-ray-", dir="/tmp"))
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(path),
               # the recipe's token authentication, with a token of its own (not the user's ~/.ray)
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port, groups = _free_port(), []
    try:
        _start_node(["--head", "--port", str(port), "--include-dashboard", "false", "--dashboard-port",
                     str(_free_port()), "--ray-client-server-port", str(_free_port())], temp / "head", env, groups)
        _start_node(["--address", f"127.0.0.1:{port}"], temp / "worker", env, groups)
        yield f"127.0.0.1:{port}", groups[0], groups[1], env
    finally:
        _stop_groups(groups)
        shutil.rmtree(temp, ignore_errors=True)


def _lock_written(out: Path) -> bool:
    """Whether the sweep's lock holds its holder (it is created empty, then written)."""
    try:
        return bool((out / "sweep.lock").read_text())
    except FileNotFoundError:
        return False


def _runs_on(out: Path, node: str) -> tuple[list[Path], list[Path]]:
    """The run directories whose latest attempt is on `node`: finished, and training after a checkpoint
    with epochs still to go (time enough to kill it before it ends)."""
    finished, training = [], []
    for attempt in out.glob("*/*/*/attempt.json"):
        try:
            if json.loads(attempt.read_text())["ray_node"] != node:
                continue
        except (OSError, ValueError):  # being replaced right now
            continue
        run_dir = attempt.parent
        if (run_dir / "metrics.json").exists():
            finished.append(run_dir)
        elif (run_dir / "checkpoint.pt").exists():
            if len((run_dir / "history.jsonl").read_text().splitlines()) < EPOCHS - 2:
                training.append(run_dir)
    return finished, training


def test_a_study_on_two_nodes_survives_losing_one(tmp_path, capsys):
    data = write_mnist_like(tmp_path / "data")
    study, out = tmp_path / "study.toml", tmp_path / "out"
    study.write_text(STUDY.format(data=data, epochs=EPOCHS, seeds=list(range(RUNS))))
    with local_cluster() as (address, head_group, worker_group, env):
        head, worker = _raylet(head_group)[1], _raylet(worker_group)
        command = [sys.executable, "-m", "imae", "sweep", str(study), "--out", str(out), "--backend", "ray",
                   "--address", address, "--no-progress"]
        driver = subprocess.Popen(command, start_new_session=True, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not _lock_written(out) and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _lock_written(out):
                pytest.fail(f"the sweep never took its lock:\n{driver.communicate(timeout=30)[0][-3000:]}")
            # A second sweep on the same directory, on another backend, is refused naming the first.
            assert main(["sweep", str(study), "--out", str(out), "--no-progress"]) == 2
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and f"host {socket.gethostname()}, pid {driver.pid}, started" in err, err

            killed = None
            while killed is None and driver.poll() is None and time.monotonic() < deadline:
                finished, training = _runs_on(out, worker[1])
                if finished and training:
                    os.kill(worker[0], signal.SIGKILL)
                    killed = training[0]
                time.sleep(0.02)
            output, _ = driver.communicate(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            _stop_groups([driver.pid])
    assert killed is not None, f"the worker node never had a finished run and one in training:\n{output[-3000:]}"
    assert driver.returncode == 0, output[-3000:]
    assert f"| {RUNS} | 0 | 0 |" in output and not (out / "sweep.lock").exists()

    with open(out / "results.csv", newline="") as f:
        rows = {row["run"]: row for row in csv.DictReader(f)}
    assert len(rows) == RUNS and {row["status"] for row in rows.values()} == {"finished"}
    assert {row["ray_node"] for row in rows.values()} == {head, worker[1]}
    assert rows[str(killed.relative_to(out))]["ray_node"] == head

    # The killed run: an attempt on each node, the second resuming from the first's checkpoint, and
    # the same metrics.json, byte for byte, as the run trained without interruption.
    log = (killed / "train.log").read_text()
    attempts = re.findall(r"attempt on host \S+, Ray node (\w+)", log)
    assert attempts == [worker[1], head] and re.search(r"resuming .* after epoch [1-7]\b", log), log
    reference, threads = tmp_path / "reference", torch.get_num_threads()
    torch.set_num_threads(1)  # as on Ray (--threads 1)
    try:
        train(TrainConfig.load(killed / "config.json"), reference, progress=False, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    assert (killed / "metrics.json").read_bytes() == (reference / "metrics.json").read_bytes()
