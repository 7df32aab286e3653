"""One training at a time per workdir.

Two trainings started on one workdir would both resume from the same step,
overwrite each other's checkpoints (the `best` one logged by the first would
hold the second's weights) and interleave their TensorBoard events. The
first one takes `<workdir>/LOCK`; any other is refused before it writes
anything, with a message naming the holder (host, pid, start time, command).

Standard library only (no TensorFlow): it runs before the model is built.
"""
from __future__ import annotations

import atexit
import datetime
import json
import os
import signal
import socket
import sys
import threading
from typing import Callable, Optional

LOCK_FILE = "LOCK"
_HELD: set = set()  # the locks this process holds, released together on a signal
_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class WorkdirLockError(ValueError):
    """A workdir lock that cannot be taken (the folder is named)."""


class WorkdirLockedError(WorkdirLockError):
    """Another training holds the workdir's lock (host and pid in the message)."""


def lock_workdir(folder: str, log: Callable[[str], None] = print) -> "WorkdirLock":
    """Takes `folder`'s training lock, or refuses at once.

    The lock is the file `folder/LOCK` holding the owner's host, pid and
    start time, kept under an exclusive `flock` for the life of the process
    (the kernel drops a flock when its process dies, even by kill -9). It is
    released (the file removed) by `release()`, at interpreter exit, and on
    SIGTERM/SIGHUP (the handler releases it, then lets the signal end the
    process as before). A lock file left by a process that no longer runs on
    this host is taken over with a warning through `log`; one left by
    another host cannot be checked from here, and is reported instead.
    Multi-worker runs: the chief locks the workdir, each other worker its
    own worker folder.

    Raises:
      WorkdirLockedError: another live process holds it (named: host, pid,
        start time, command).
      WorkdirLockError: the folder cannot be created or written.
    """
    path = os.path.join(folder, LOCK_FILE)
    me = _lock_owner()
    for _ in range(5):  # retried only when the holder released it meanwhile
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise WorkdirLockError(f"workdir {folder} is not writable ({err.strerror or err}); "
                               f"choose another --workdir or --workdir_root") from err
        if not _try_flock(fd):
            holder = _read_owner(fd)
            os.close(fd)
            raise WorkdirLockedError(_locked_message(folder, path, holder, me))
        try:  # a releasing holder unlinks the file: then lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        holder = _read_owner(fd)
        if holder and (holder.get("host"), holder.get("pid")) != (me["host"], me["pid"]):
            if holder.get("host") != me["host"] or _alive(holder):
                # Another host (or a filesystem without flock): its process may run.
                os.close(fd)
                raise WorkdirLockedError(_locked_message(folder, path, holder, me))
            log(f"WARNING: {path}: taking over the lock of pid {holder.get('pid')} "
                f"(started {holder.get('started', '?')}), which no longer runs on "
                f"{me['host']}; its run was interrupted and resumes here")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        os.fsync(fd)
        return WorkdirLock(path, fd)
    raise WorkdirLockedError(f"workdir {folder}: could not take {path} (other trainings "
                             f"keep taking and releasing it)")


class WorkdirLock:
    """A held workdir lock (see `lock_workdir`); a context manager."""

    def __init__(self, path: str, fd: int):
        self.path, self._fd = path, fd
        _HELD.add(self)
        _catch_signals()
        atexit.register(self.release)

    def release(self) -> None:
        """Removes the lock file and drops the flock; idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                os.remove(self.path)  # our own lock file, nothing of the user's
        except OSError:
            pass
        os.close(fd)
        atexit.unregister(self.release)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _catch_signals() -> None:
    """SIGTERM/SIGHUP release every held lock, then end the process as they
    would have. Only where the signal would kill the process anyway: a
    handler the program installed (tools.train's checkpoint-and-exit) keeps
    its meaning, and the lock is then released at exit."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _SIGNALS:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _release_and_die)


def _release_and_die(signum, frame):  # pylint: disable=unused-argument
    for lock in list(_HELD):
        lock.release()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _lock_owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC"),
            "process_start": _process_start(os.getpid()),
            "command": " ".join(sys.argv)[:300]}


def _try_flock(fd: int) -> bool:
    """True when the flock is ours (or the system has none: then the pid
    recorded in the file decides)."""
    try:
        import fcntl  # pylint: disable=import-outside-toplevel
    except ImportError:  # not POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: a filesystem without locks
        return True


def _read_owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}  # being written, or not ours to read: unknown holder


def _process_start(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), which
    tells a reused pid from the one that wrote the lock."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    """Whether the lock's process (on this host) still runs."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it runs
    recorded = owner.get("process_start")
    return recorded is None or _process_start(pid) in (None, recorded)


def _locked_message(folder: str, path: str, holder: dict, me: dict) -> str:
    if not holder:
        who = "another process (it is writing the lock now)"
    else:
        host = holder.get("host", "?")
        who = (f"pid {holder.get('pid', '?')} on {'this host, ' if host == me['host'] else ''}"
               f"{host}, since {holder.get('started', '?')}"
               + (f" ({holder['command']})" if holder.get("command") else ""))
    hint = ("wait for it, stop it, or train elsewhere (--workdir, --experiment_name)")
    if holder and holder.get("host") != me["host"]:
        hint += f"; if that run is over, delete {path}"
    return f"workdir {folder} is in use by another training: {who}; {hint}"
