"""A real ``handoff watch`` process for tests: started with Popen, its JSONL stdout read by a thread."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, **(extra or {}))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class WatchProc:
    def __init__(self, repo_path: Path, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "handoff", "watch", *args, "-o", "jsonl"],
                                     cwd=repo_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=cli_env(env), text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def take(self, n: int, timeout: float = 60.0) -> list[dict]:
        """The next ``n`` notifications (fails if they do not come within ``timeout``)."""
        out = []
        end = time.monotonic() + timeout
        while len(out) < n:
            try:
                item = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"got {len(out)} of {n} notifications; stderr: {self.stderr}") from None
            if item is None:
                raise AssertionError(f"watcher exited after {len(out)} of {n}: rc={self.proc.poll()} "
                                     f"stderr: {self.stderr}")
            out.append(item)
        self.seen += out
        return out

    def quiet(self, seconds: float = 1.0) -> list[dict]:
        """Whatever arrives within ``seconds`` (used to check nothing extra is reported)."""
        out = []
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                break
            out.append(item)
        self.seen += out
        return out

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(signal.SIGKILL)
