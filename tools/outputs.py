"""Where a binary writes: checked before it computes anything.

An output folder that cannot be written (a file in its place, a parent that
is a file, no permission, a read-only disk) used to end predict, evaluate and
lr_find in a traceback after all the work was done, and lost it. Every
binary calls `check_output_dir` right after parsing its flags. Standard
library only, so the check runs before TensorFlow is imported. Nothing is
created: a folder that does not exist yet is made by the binary when it
writes, so a run that stops early leaves no empty folder behind.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from typing import Iterator, Sequence


class OutputError(ValueError):
    """An output path that cannot be written (flag and path in the message)."""


def check_output_dir(path: str, flag: str, files: Sequence[str] = ()) -> None:
    """Fails unless `path` is, or can be created as, a folder this process
    can write, and none of `files` inside it is a folder.

    Args:
      path: the output folder (existing or not).
      flag: the flag it came from, e.g. "--output_dir" (for the message).
      files: names the binary will write inside `path`.
    Raises:
      OutputError: one line naming the flag, the path and the reason.
    """
    if not path:
        raise OutputError(f"{flag} is empty; give a folder")
    target = os.path.abspath(path)
    existing = target
    while not os.path.lexists(existing):  # the nearest part that exists
        existing = os.path.dirname(existing)
    where = f"{flag}={path}"
    if not os.path.isdir(existing):
        what = "a broken link" if os.path.islink(existing) else "a file"
        if existing == target:
            raise OutputError(f"{where} is {what}, not a folder; give a folder")
        raise OutputError(f"{where} cannot be created: {existing} is {what}")
    for name in files:
        inside = os.path.join(existing, name)
        if existing == target and os.path.isdir(inside):
            raise OutputError(f"{where}: {inside} is a folder, but this binary writes a "
                              f"file there; move it away or choose another {flag}")
    try:  # the only sure test (root, ACLs, read-only mounts): write a file
        fd, probe = tempfile.mkstemp(prefix=".write_probe.", dir=existing)
        os.close(fd)
        os.remove(probe)  # our own probe, nothing of the user's
    except OSError as err:
        reason = err.strerror or str(err)
        raise OutputError(f"{where}: cannot write in {existing} ({reason}); choose another "
                          f"{flag}") from None


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM (and SIGHUP) raise SystemExit instead of
    ending the process at once, so `finally`/`except` clauses remove partial
    outputs (an export's temporary folder) as they do for Ctrl-C. Only where
    the signal would kill the process anyway, in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum, frame):  # pylint: disable=unused-argument
        raise SystemExit(128 + signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, unwind)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
