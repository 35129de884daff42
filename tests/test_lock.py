"""The study directory's lock: a second sweep is refused naming the holder; a lock left by a killed
sweep is stale and taken over (this host: its pid is gone; another host: its heartbeat stopped);
the lock goes at the end, on an error and on Ctrl-C; of sweeps starting at once exactly one gets it."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import write_mnist_like

from imae import lock
from imae import sweep as sweep_module
from imae.cli import main
from imae.errors import ImaeError
from imae.lock import LOCK, study_lock

ROOT = Path(__file__).resolve().parents[1]


def _study(tmp_path) -> str:
    data = write_mnist_like(tmp_path / "data")
    path = tmp_path / "study.toml"
    path.write_text(f'[settings]\ndata_dir = "{data}"\ntrain_subset = 64\nepochs = 1\n[grid]\nseed = [0, 1]\n')
    return str(path)


def _write_lock(out: Path, **holder) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2001-02-03 04:05:06 +0000",
              "heartbeat": time.time(), "token": "earlier", **holder}
    (out / LOCK).write_text(json.dumps(record))
    return out / LOCK


def test_a_second_sweep_is_refused_naming_the_holder_and_the_lock_goes_at_the_end(tmp_path, capsys):
    study, out = _study(tmp_path), tmp_path / "out"
    out.mkdir()
    with study_lock(out) as holder:
        assert json.loads((out / LOCK).read_text()) == holder
        assert main(["sweep", study, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"imae: error: {out}: another sweep is running")
        assert f"(host {socket.gethostname()}, pid {os.getpid()}, started {holder['started']})" in err
        assert str(out / LOCK) in err and list(out.iterdir()) == [out / LOCK]  # it touched nothing
    assert list(out.iterdir()) == []


def test_a_lock_left_by_a_killed_process_on_this_host_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys, time; from imae.lock import study_lock\n"
            "with study_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ImaeError, match=f"pid {holder.pid}, started"):
            with study_lock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((out / LOCK).read_text())["pid"] == holder.pid  # left behind
    with study_lock(out) as taken:
        assert json.loads((out / LOCK).read_text()) == taken and taken["pid"] == os.getpid()
    assert not (out / LOCK).exists()


@pytest.mark.parametrize("holder, heartbeat_age, stale", [
    ({"host": "elsewhere", "pid": 1}, 10, False),  # another host, heartbeat recent: it runs
    ({"host": "elsewhere", "pid": 1}, lock.STALE_AFTER_SECONDS + 10, True),  # heartbeat stopped
    ({}, lock.STALE_AFTER_SECONDS + 10, False),  # this host, pid running (this process): it runs
])
def test_a_lock_from_another_host_is_stale_once_its_heartbeat_stops(tmp_path, holder, heartbeat_age, stale):
    out = tmp_path / "out"
    _write_lock(out, heartbeat=time.time() - heartbeat_age, **holder)
    if stale:
        with study_lock(out) as taken:
            assert json.loads((out / LOCK).read_text())["token"] == taken["token"]
    else:
        name = holder.get("host", socket.gethostname())
        with pytest.raises(ImaeError, match=f"host {name}, pid {holder.get('pid', os.getpid())}, started 2001"):
            with study_lock(out):
                pass
        assert json.loads((out / LOCK).read_text())["token"] == "earlier"


@pytest.mark.parametrize("age, stale", [(1, False), (lock.STALE_AFTER_SECONDS + 10, True)])
def test_an_unreadable_lock_is_judged_by_its_age(tmp_path, age, stale):
    """A writer killed between creating the file and writing it leaves it empty."""
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text("")
    os.utime(out / LOCK, (time.time() - age,) * 2)
    if stale:
        with study_lock(out):
            assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    else:
        with pytest.raises(ImaeError, match="holder unknown"):
            with study_lock(out):
                pass


def test_the_lock_goes_on_an_error_and_on_ctrl_c(tmp_path, capsys, monkeypatch):
    study, out = _study(tmp_path), tmp_path / "out"
    changed = out / "mnist/imae/beta5-seed0"
    changed.mkdir(parents=True)
    (changed / "config.json").write_text("{}")
    assert main(["sweep", study, "--out", str(out), "--no-progress"]) == 2  # the study changed: CheckpointError
    assert "differs from the study's config" in capsys.readouterr().err and not (out / LOCK).exists()

    other = tmp_path / "other"

    def interrupted(tasks, workers):
        assert (other / LOCK).exists()
        raise KeyboardInterrupt
        yield
    monkeypatch.setattr(sweep_module, "run_local", interrupted)
    assert main(["sweep", study, "--out", str(other), "--no-progress"]) == 130
    assert not (other / LOCK).exists()


def test_the_heartbeat_is_rewritten_until_another_sweep_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "HEARTBEAT_SECONDS", 0.05)
    out = tmp_path / "out"
    out.mkdir()
    with study_lock(out) as holder:
        first = holder["heartbeat"]
        time.sleep(0.5)
        assert json.loads((out / LOCK).read_text())["heartbeat"] > first
        _write_lock(out, host="elsewhere", token="other")  # taken over while this sweep was stalled
        time.sleep(0.5)
    assert json.loads((out / LOCK).read_text())["token"] == "other"  # neither refreshed nor removed


def test_taking_over_leaves_a_lock_created_since_the_stale_one_was_read(tmp_path):
    out = tmp_path / "out"
    path = _write_lock(out, token="new")
    lock._take_over(path, json.dumps({"token": "the stale one"}))
    assert json.loads(path.read_text())["token"] == "new"
    lock._take_over(path, path.read_text())
    assert list(out.iterdir()) == []


def test_of_sweeps_starting_at_once_exactly_one_gets_the_lock(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    start, outcomes = threading.Barrier(8), []

    def take() -> None:
        start.wait()
        try:
            outcomes.append(lock._acquire(out / LOCK)["token"])
        except ImaeError as exc:
            outcomes.append(str(exc))
    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tokens = [o for o in outcomes if "another sweep is running" not in o]
    assert len(outcomes) == 8 and tokens == [json.loads((out / LOCK).read_text())["token"]]
