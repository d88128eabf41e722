"""One training at a time per server: a queue of designed variants, each trained by a worker
process (`python -m core.variants.design_worker`, started by module name: the server never imports
training code), with a wall-clock limit, a memory limit, cancel, and each epoch's losses as they come.

Plain Python (no Streamlit): webapp/design_panel.py holds one TrainingQueue per server process and
the page reads its jobs. Cancelling kills the worker's whole process group at once (SIGKILL).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.variants import design_store

WORKER = "core.variants.design_worker"
MEMORY_MB = 3000         # the worker's address space may grow by this much past its loaded data
POLL_S = 0.05
ROOT = Path(__file__).resolve().parent.parent.parent
# One CPU thread for TensorFlow in the worker (it also sets this itself): the other cores stay with the pages.
THREAD_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass
class Job:
    id: str
    task: str
    name: str
    config: dict
    owner: str
    status: str = QUEUED
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    folds: int | None = None
    epochs: int | None = None
    curves: dict = field(default_factory=dict)   # {fold ("0".., "final"): {"loss": [], "val_loss": []}}
    arrived: list = field(default_factory=list)  # (fold, epoch, the worker's time, the time read here)
    fold_metrics: dict = field(default_factory=dict)
    message: str = ""
    path: str | None = None

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)


class TrainingQueue:
    """Designed variants trained one at a time, first come first served.

    data_dir / cache_dir: the songs (annotations.csv) and their cached embeddings; out_dir: where
    finished variants go (design_store.variants_dir). training: the zoo default's recipe (its card's
    "training"). max_epochs caps the recipe's epochs (tests); limit_s is each training's wall-clock limit."""

    def __init__(self, data_dir: Path, cache_dir: Path, out_dir: Path, training: dict, limit_s: float,
                 memory_mb: int = MEMORY_MB, max_epochs: int | None = None, command: list[str] | None = None):
        self.data_dir, self.cache_dir, self.out_dir = Path(data_dir), Path(cache_dir), Path(out_dir)
        self.training, self.limit_s, self.memory_mb, self.max_epochs = dict(training), limit_s, memory_mb, max_epochs
        # what starts a worker (the job file's path is appended); tests give a stand-in
        self.command = command or [sys.executable, "-m", WORKER]
        self._jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._process: subprocess.Popen | None = None
        self._closed = False
        self._runner = threading.Thread(target=self._run, name="moodlens-design-queue", daemon=True)
        self._runner.start()

    # --- what a page calls ---------------------------------------------------------------------

    def submit(self, task: str, name: str, config: dict, owner: str) -> Job:
        """Queue a design (its config already checked by core.variants.design.validate)."""
        if task != "song":
            raise ValueError("the panel trains song designs only")
        with self._lock:
            taken = {j.name for j in self._jobs if j.active} | set(design_store.designed_cards(task))
            if name in taken:
                raise ValueError(f"the name {name!r} is taken: choose another")
            job = Job(f"job{next(self._ids)}", task, name, dict(config), owner)
            self._jobs.append(job)
            self._lock.notify_all()
        return job

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def position(self, job_id: str) -> int | None:
        """0: training now; 1, 2, ...: its place in the line; None: not waiting or running."""
        with self._lock:
            line = [j for j in self._jobs if j.active]
            line.sort(key=lambda j: (j.status != RUNNING, j.submitted))
            return next((i for i, j in enumerate(line) if j.id == job_id), None)

    def cancel(self, job_id: str) -> bool:
        """Take a waiting job out of the line, or kill a running one's worker at once."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id), None)
            if job is None or not job.active:
                return False
            was_running = job.status == RUNNING
            job.status, job.finished, job.message = CANCELLED, time.time(), "cancelled"
            process = self._process if was_running else None
            self._lock.notify_all()
        if process is not None:
            _kill(process)
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process = self._process
            self._lock.notify_all()
        if process is not None:
            _kill(process)

    # --- the runner thread ----------------------------------------------------------------------

    def _next(self) -> Job | None:
        with self._lock:
            while not self._closed:
                job = next((j for j in self._jobs if j.status == QUEUED), None)
                if job is not None:
                    job.status, job.started = RUNNING, time.time()
                    return job
                self._lock.wait()
        return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._train(job)
            except Exception as e:  # noqa: BLE001 - one failed job must not stop the queue
                self._finish(job, FAILED, f"{type(e).__name__}: {e}")

    def _finish(self, job: Job, status: str, message: str = "", path: str | None = None) -> None:
        with self._lock:
            if job.status == RUNNING:
                job.status, job.message, job.path, job.finished = status, message, path, time.time()

    def _train(self, job: Job) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        spec = {"task": job.task, "name": job.name, "config": job.config, "training": self.training,
                "data_dir": str(self.data_dir), "cache_dir": str(self.cache_dir), "out_dir": str(self.out_dir),
                "max_epochs": self.max_epochs, "memory_mb": self.memory_mb, "limit_s": self.limit_s}
        with tempfile.TemporaryDirectory(prefix="moodlens-design-") as folder:
            job_file = Path(folder) / "job.json"
            job_file.write_text(json.dumps(spec))
            log = open(Path(folder) / "worker.log", "w+b")
            env = {**os.environ, **THREAD_ENV, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            process = subprocess.Popen([*self.command, str(job_file)], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=log, start_new_session=True)
            with self._lock:
                if job.status != RUNNING:  # cancelled while it started
                    _kill(process)
                    return
                self._process = process
            reader = threading.Thread(target=self._read, args=(job, process), daemon=True)
            reader.start()
            deadline = job.started + self.limit_s
            while process.poll() is None:
                if time.time() > deadline:
                    _kill(process)
                    self._finish(job, FAILED, f"stopped at the panel's time limit ({self.limit_s:.0f} s)")
                time.sleep(POLL_S)
            reader.join(timeout=5)
            with self._lock:
                self._process = None
            log.seek(0)
            tail = log.read()[-1500:].decode(errors="replace").strip()
            log.close()
            if job.status == RUNNING:  # no "done" or "error" event: the worker died
                self._finish(job, FAILED, f"the worker exited with {process.returncode}" + (f": {tail}" if tail else ""))

    def _read(self, job: Job, process: subprocess.Popen) -> None:
        for line in process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            now = time.time()
            with self._lock:
                kind = event.get("event")
                if kind == "started":
                    job.folds, job.epochs = event["folds"], event["epochs"]
                elif kind == "epoch":
                    curve = job.curves.setdefault(str(event["fold"]), {"loss": [], "val_loss": []})
                    curve["loss"].append(event["loss"])
                    if event.get("val_loss") is not None:
                        curve["val_loss"].append(event["val_loss"])
                    job.arrived.append((str(event["fold"]), event["epoch"], event["t"], now))
                elif kind == "fold":
                    job.fold_metrics[str(event["fold"])] = event["metrics"]
            if kind == "done":
                self._finish(job, DONE, "done", event["path"])
            elif kind == "error":
                self._finish(job, FAILED, event["message"])
        process.stdout.close()


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL the worker's process group (it started its own session) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
