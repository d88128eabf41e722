"""Worker processes beside the process that serves the pages: a task's decoding and features run
there (core.song.workers, core.face.workers).

In the Streamlit server every session runs in one Python process, so its threads share one GIL:
decoding and the log-mel features of one person's song held up the other sessions' page runs, and
theirs held up the features. In worker processes the decoding and musicnn's log-mel run on their
own; the server's threads only send the bytes and wait for the (p, 187, 96) patches back, then run
musicnn on them in TensorFlow, which releases the GIL while it computes (and keeps the workers
free of TensorFlow: light, and quick to replace). Measured with
`bench/load.py --sessions 1,8 --tasks song` on 2 CPUs (README: load blocks).

A worker that dies on a file (a decoder crash) does not take the server with it: that file gets a
message, and a new worker takes the dead one's place.

Pictures are decoded in workers of their own (`PictureWorkers`), each with a time limit and a cap
on the memory it may add: a picture made to stall or swell a decoder costs its own worker, which
is stopped or fails, and no one else's time or memory in the server.

Each worker is `python -m core.workers`, talking pickles over its stdin and stdout. Not
multiprocessing: it starts a child by importing the parent's `__main__` again, and in the server
that is whichever page script Streamlit is running at that moment.
"""

from __future__ import annotations

import os
import pickle
import queue
import resource
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import importlib
from core import patches
from core.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
_LENGTH = struct.Struct("<Q")  # each message: its length in bytes, then a pickle
# The longest a worker may take over one file before it is stopped: a decoder that loops for ever
# on a hostile file must not hold a worker, and its person's wait, for as long as the server runs.
# Many times what the longest song allowed takes in a worker (docs/performance.md), for a loaded machine.
ANSWER_TIMEOUT_S = 60.0


# Each worker computes on one thread: the workers side by side are the parallelism. OpenBLAS's
# threads (the log-mel's one matrix product) spin while they wait for work, costing a worker several
# times its work in CPU time (docs/performance.md). Read as the libraries load, so given in the
# worker's environment.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class WorkerDied(InputError):
    """The worker process analysing a file ended before it answered."""


class WorkersFailed(RuntimeError):
    """The worker processes could not be started."""


class _NoAnswer(Exception):
    """A worker did not answer in time."""


def _send(stream: BinaryIO, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: BinaryIO):
    """The next message; EOFError when the other side has gone."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError
    size, = _LENGTH.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class _Worker:
    """One worker process: one call at a time."""

    def __init__(self, options: tuple[str, ...] = ()):
        command = [sys.executable, "-m", "core.workers", *options]
        try:
            self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            env={**os.environ, **ONE_THREAD})
        except OSError as e:
            raise WorkersFailed(f"an analysis worker could not be started ({e})") from None
        try:
            _receive(self.process.stdout)  # "ready": imports and warm-up done
        except (EOFError, OSError, pickle.UnpicklingError):
            self.stop()
            raise WorkersFailed(f"an analysis worker ({' '.join(command)}) ended as it started, with exit "
                                f"status {self.process.returncode}; its error is in the server's log") from None

    def call(self, function: Callable, args: tuple, timeout_s: float) -> tuple[bool, object]:
        """(True, result) or (False, the exception it raised); EOFError or OSError if the worker died,
        _NoAnswer if it has not begun to answer within timeout_s."""
        _send(self.process.stdin, (function, args))
        # Each call reads its whole answer, so nothing waits in the reader's buffer: the pipe tells.
        if not select.select([self.process.stdout], [], [], timeout_s)[0]:
            raise _NoAnswer
        return _receive(self.process.stdout)

    def stop(self) -> None:
        try:
            self.process.stdin.close()  # the worker's read gets EOF and it ends
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class WorkerPool:
    """`processes` worker processes, each started as `python -m core.workers *options`: `run(f, *args)`
    runs f in one of them. Safe to call from several threads at once; each call waits for its own
    result (a worker each, or in turn when all are busy).

    Nothing is written to disk: the bytes go to the worker and the results come back through
    pipes."""

    def __init__(self, processes: int, timeout_s: float = ANSWER_TIMEOUT_S, options: tuple[str, ...] = ()):
        self.processes, self.timeout_s, self.options = processes, timeout_s, options
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        failures: list[WorkersFailed] = []

        def start() -> None:
            try:
                self._add_worker()
            except WorkersFailed as e:
                failures.append(e)

        starting = [threading.Thread(target=start) for _ in range(processes)]
        for thread in starting:  # side by side: each takes a second or two to import and warm up
            thread.start()
        for thread in starting:
            thread.join()
        if failures:
            self.close()
            raise failures[0]

    def _add_worker(self) -> None:
        worker = _Worker(self.options)
        with self._lock:
            self._all.append(worker)
        self._idle.put(worker)

    def run(self, function: Callable, *args):
        """`function(*args)` in a worker (function and arguments picklable by reference and value):
        its result, or its exception raised here."""
        worker = self._take()
        try:
            ok, value = worker.call(function, args, self.timeout_s)
        except _NoAnswer:
            worker.process.kill()
            self._replace(worker)
            raise WorkerDied(f"The analysis of this file took over {self.timeout_s:.0f} s and was stopped (the file "
                             "may be damaged or made to hang a decoder). Try another file.") from None
        except (EOFError, OSError):
            self._replace(worker)
            raise WorkerDied("The analysis of this file stopped: the process reading it ended unexpectedly "
                             "(the file may be damaged). Try it again, or another file.") from None
        except BaseException:  # an argument that cannot be pickled, say: the worker is still fine
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        if not ok:
            raise value
        return value

    def _take(self) -> _Worker:
        """An idle worker, waiting for one while all are busy; WorkerDied if none is left."""
        while True:
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    if not self._all:
                        raise WorkerDied("Files cannot be analysed now: the processes that read them ended "
                                         "and could not be started again. The server needs a restart.") from None

    def _replace(self, dead: _Worker) -> None:
        with self._lock:
            self._all.remove(dead)
        dead.stop()
        try:
            self._add_worker()
        except WorkersFailed as e:  # the others carry on; once none is left, callers are told (_take)
            print(f"moodlens: {e}", file=sys.stderr, flush=True)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


def limit_memory(added_mb: int) -> None:
    """From now on this process's address space may grow by at most added_mb: an allocation over it
    fails (MemoryError in Python, a failed decode in OpenCV) instead of swelling the machine."""
    with open("/proc/self/status") as status:
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = (size_kb * 1024) + added_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(options: list[str]) -> None:
    """A worker's life: answer calls from stdin on stdout until stdin closes.

    options: `--prepare=MODULE:FUNCTION` (called once before the first request: the task's imports
    and warm-up), `--keep-freed-memory` (see core.patches.keep_freed_memory), `--memory-mb=N` (see limit_memory)."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a library's print goes to stderr, not into a reply
    requests = sys.stdin.buffer
    for option in options:
        if option.startswith("--prepare="):
            module, _, function = option.removeprefix("--prepare=").partition(":")
            getattr(importlib.import_module(module), function)()
        elif option == "--keep-freed-memory":
            patches.keep_freed_memory()
        elif option.startswith("--memory-mb="):
            limit_memory(int(option.removeprefix("--memory-mb=")))
    _send(replies, "ready")
    while True:
        try:
            function, args = _receive(requests)
        except EOFError:
            return
        try:
            reply = (True, function(*args))
        except Exception as e:  # noqa: BLE001 - handed back to the caller, raised there
            reply = (False, e)
        try:
            _send(replies, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            _send(replies, (False, RuntimeError(f"the worker's answer could not be sent back: {e}")))


if __name__ == "__main__":
    serve(sys.argv[1:])
