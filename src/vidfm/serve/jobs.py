"""Long work as jobs: kept in SQLite (so a restart loses none) and run by a bounded pool of
worker threads, never inside a request. A job interrupted by a crash is queued again at
the next start until it has used its attempts, then reported failed, never dropped."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable

from vidfm.errors import VidfmError

log = logging.getLogger("vidfm.serve")
ACTIVE = ("queued", "running")


class JobCancelled(Exception):
    pass


class QueueFull(Exception):
    pass


class JobStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an accepted job survives a power cut
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,"
            " progress REAL DEFAULT 0, result TEXT, error TEXT, attempts INTEGER DEFAULT 0, cancel INTEGER DEFAULT 0,"
            " owner TEXT, created REAL, started REAL, finished REAL, note TEXT)"
        )
        self.lock = threading.Lock()

    def _rows(self, sql: str, args=()) -> list[dict]:
        with self.lock:
            cur = self.db.execute(sql, args)
            rows = cur.fetchall()
            names = [c[0] for c in cur.description] if cur.description else []
        return [dict(zip(names, row)) for row in rows]

    def _one(self, sql: str, args=()) -> dict | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    @staticmethod
    def _decoded(row: dict) -> dict:
        row["params"] = json.loads(row["params"])
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return row

    def submit(self, kind: str, params: dict, owner: str, limit: int) -> dict:
        job_id = uuid.uuid4().hex
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                active = self.db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued','running')").fetchone()[0]
                if active >= limit:
                    raise QueueFull(f"the job queue is full ({active} jobs waiting or running); try again later")
                self.db.execute("INSERT INTO jobs(id, kind, params, status, owner, created) VALUES (?,?,?,?,?,?)",
                                (job_id, kind, json.dumps(params), "queued", owner, time.time()))  # fmt: skip
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._decoded(row) if row else None

    def list(self, limit: int = 50) -> list[dict]:
        return [self._decoded(r) for r in self._rows("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,))]

    def depth(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'")["n"]

    def claim(self) -> dict | None:
        """The oldest queued job, atomically marked running (one worker gets it)."""
        with self.lock:
            row = self.db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1").fetchone()
            if not row:
                return None
            changed = self.db.execute("UPDATE jobs SET status='running', started=?, attempts=attempts+1, progress=0 WHERE id=? AND status='queued'",
                                      (time.time(), row[0])).rowcount  # fmt: skip
        return self.get(row[0]) if changed else None

    def progress(self, job_id: str, fraction: float) -> bool:
        """Record progress; True when the job has been asked to stop."""
        with self.lock:
            self.db.execute("UPDATE jobs SET progress=? WHERE id=?", (round(fraction, 4), job_id))
            return bool(self.db.execute("SELECT cancel FROM jobs WHERE id=?", (job_id,)).fetchone()[0])

    def finish(self, job_id: str, status: str, result: dict | None = None, error: str | None = None) -> None:
        with self.lock:
            self.db.execute("UPDATE jobs SET status=?, result=?, error=?, finished=?, progress=CASE WHEN ?='done' THEN 1 ELSE progress END WHERE id=?",
                            (status, json.dumps(result) if result is not None else None, error, time.time(), status, job_id))  # fmt: skip

    def cancel(self, job_id: str) -> dict | None:
        """Queued jobs stop at once; running ones at their next progress report."""
        with self.lock:
            self.db.execute("UPDATE jobs SET status='cancelled', cancel=1, finished=? WHERE id=? AND status='queued'", (time.time(), job_id))
            self.db.execute("UPDATE jobs SET cancel=1 WHERE id=? AND status='running'", (job_id,))
        return self.get(job_id)

    def recover(self, attempts: int) -> dict:
        """At start: jobs a crash left 'running' are queued again, or failed once out of attempts."""
        with self.lock:
            failed = self.db.execute("UPDATE jobs SET status='failed', finished=?, error=? WHERE status='running' AND (attempts>=? OR cancel=1)",
                                     (time.time(), f"interrupted by a server restart {attempts} time(s); not retried again", attempts)).rowcount  # fmt: skip
            requeued = self.db.execute("UPDATE jobs SET status='queued', note='retried after a server restart' WHERE status='running'").rowcount
        return {"requeued": requeued, "failed": failed}


class JobWorkers:
    """``workers`` threads running ``handlers[kind](job, report)``; ``report(fraction)``
    records progress and raises ``JobCancelled`` when the job was cancelled."""

    def __init__(self, store: JobStore, handlers: dict[str, Callable], workers: int = 1, on_finish: Callable | None = None):
        self.store, self.handlers, self.on_finish = store, handlers, on_finish
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.threads = [threading.Thread(target=self._loop, name=f"vidfm-job-{i}", daemon=True) for i in range(workers)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wake.set()
        for t in self.threads:
            t.join(timeout)

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            job = self.store.claim()
            if job is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            self._run(job)

    def _run(self, job: dict) -> None:
        start = time.monotonic()

        def report(fraction: float) -> None:
            if self.store.progress(job["id"], fraction):
                raise JobCancelled
            if self.stopping.is_set():
                raise JobCancelled

        try:
            result = self.handlers[job["kind"]](job, report)
            status, error = "done", None
        except JobCancelled:
            if self.stopping.is_set() and not self.store.get(job["id"])["cancel"]:
                return  # shutting down: leave it 'running' so the next start retries it
            status, result, error = "cancelled", None, None
        except VidfmError as e:
            status, result, error = "failed", None, str(e)
        except Exception as e:  # a bug: keep the worker alive, log the traceback, report the job failed
            log.error("job %s failed:\n%s", job["id"], traceback.format_exc())
            status, result, error = "failed", None, f"internal error ({type(e).__name__})"
        self.store.finish(job["id"], status, result, error)
        if self.on_finish:
            self.on_finish(job["kind"], status, time.monotonic() - start)
