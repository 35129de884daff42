"""The study directory's lock: one sweep at a time on a study directory, from any host that sees it.

OUT/sweep.lock holds the holder {"host", "pid", "started", "heartbeat", "token"}. It is created
with O_CREAT|O_EXCL, so of two sweeps starting at once exactly one gets it; the holder rewrites
"heartbeat" every HEARTBEAT_SECONDS and removes the file when it ends, also on an error or Ctrl-C.
A lock left by a killed sweep is stale and taken over: on the holder's own host when its pid no
longer runs; seen from another host, where that pid means nothing, when its heartbeat is older
than STALE_AFTER_SECONDS (so the hosts' clocks must agree to well within that).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import runs
from .errors import ImaeError

LOCK = "sweep.lock"
HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 300.0  # ten heartbeats: also covers NFS clients that cache a file for a minute


@contextmanager
def study_lock(out: Path) -> Iterator[dict]:
    """Hold OUT/sweep.lock while the body runs; yields the holder record (its "token" names this sweep)."""
    path = Path(out) / LOCK
    holder = _acquire(path)
    stop = threading.Event()
    beat = threading.Thread(target=_keep_alive, args=(path, holder, stop), name="sweep-lock", daemon=True)
    beat.start()
    try:
        yield holder
    finally:
        stop.set()
        beat.join()
        if _token(_read(path)[0]) == holder["token"]:
            path.unlink(missing_ok=True)


def _acquire(path: Path, attempts: int = 5) -> dict:
    for _ in range(attempts):
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "heartbeat": time.time()}
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            text, mtime = _read(path)
            if text is None:  # removed since: try again
                continue
            if not _is_stale(text, mtime):
                raise ImaeError(f"{path.parent}: another sweep is running on this study directory "
                                f"({_describe(text)}); wait for it to end, or if it is dead delete {path}") from None
            _take_over(path, text)
            continue
        except OSError as exc:  # a read-only or missing study directory
            raise ImaeError(f"{path}: cannot create the study directory's lock ({exc.strerror})") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(holder, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return holder
    raise ImaeError(f"{path}: could not take the study directory's lock ({attempts} tries); try again")


def _read(path: Path) -> tuple[str | None, float]:
    """The lock file's text and modification time; (None, 0) if there is none."""
    try:
        return path.read_text(), path.stat().st_mtime
    except FileNotFoundError:
        return None, 0.0


def _parse(text: str | None) -> dict:
    """The holder record; {} for a file cut short (its writer was killed between creating and writing it)."""
    try:
        holder = json.loads(text or "")
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _token(text: str | None) -> str | None:
    return _parse(text).get("token")


def _describe(text: str) -> str:
    holder = _parse(text)
    if not holder:
        return "holder unknown: the lock file is empty or unreadable"
    return f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"


def _is_stale(text: str, mtime: float) -> bool:
    holder = _parse(text)
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _pid_running(holder["pid"])
    heartbeat = holder.get("heartbeat")
    return time.time() - (heartbeat if isinstance(heartbeat, (int, float)) else mtime) > STALE_AFTER_SECONDS


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _take_over(path: Path, stale_text: str) -> None:
    """Remove the stale lock, unless another sweep has replaced it since it was read: the file is
    first renamed aside (atomic), and if it is not the one judged stale it is linked back
    (os.link never overwrites a lock created meanwhile)."""
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if aside.read_text() != stale_text:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink()


def _keep_alive(path: Path, holder: dict, stop: threading.Event) -> None:
    """Rewrite the heartbeat until told to stop; stop early if the lock is no longer this sweep's."""
    while not stop.wait(HEARTBEAT_SECONDS):
        if _token(_read(path)[0]) != holder["token"]:
            return
        holder["heartbeat"] = time.time()
        text = json.dumps(holder, sort_keys=True) + "\n"
        try:
            runs.atomic_write(path, lambda f: f.write(text.encode()))
        except OSError:  # storage briefly unavailable: the next heartbeat tries again
            pass
