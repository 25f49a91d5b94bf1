"""A ``vgps-policy-server`` process started by ``vgps up --serve-policy NAME``.

The graph's policy node then reaches the policy over the policy-server protocol exactly as it
would reach a generalist running in its own environment on another machine
(docs/policy_protocol.md): ``make demo`` and the graph tests run the simulation policy this way.
The server listens on 127.0.0.1 on a free port; its log goes to ``<out>/logs/policy_server.log``.

Usage::

    with ServedPolicyProcess("sim", ["--horizon", "1"], env, logs_dir) as server:
        server.url                                  # ws://127.0.0.1:PORT
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

EXECUTABLE = "vgps-policy-server"
READY = re.compile(r"serving .* on (ws://\S+)")


def server_executable(env: Mapping[str, str]) -> str:
    """``vgps-policy-server`` next to this Python, else on PATH."""
    here = Path(sys.executable).parent / EXECUTABLE
    if here.exists():
        return str(here)
    found = shutil.which(EXECUTABLE, path=env.get("PATH"))
    if found:
        return found
    raise FileNotFoundError(f"{EXECUTABLE} not found next to {sys.executable} or on PATH: "
                            "pip install -e src/vgps_policy_server")


class ServedPolicyProcess:
    """Starts ``vgps-policy-server --policy NAME`` and waits until it listens.

    Args:
        policy: the server's policy name.
        args: extra server arguments (policy options).
        env: the process environment.
        logs: directory of its log file.
        ready_timeout_s: how long the server may take to load and listen.
    """

    def __init__(self, policy: str, args: Sequence[str], env: Mapping[str, str], logs: Path,
                 ready_timeout_s: float = 120.0):
        self.policy, self.args, self.env = policy, list(args), dict(env)
        self.log_path = Path(logs) / "policy_server.log"
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> ServedPolicyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Starts the server; returns its URL once it listens.

        Raises:
            RuntimeError: it exited or did not listen within ``ready_timeout_s`` (names its log).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [server_executable(self.env), "--policy", self.policy, "--host", "127.0.0.1",
               "--port", "0", *self.args]
        log = self.log_path.open("w")
        # stdout carries the ready line only (kept apart from stderr's log lines), both to the log
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=self.env,
                                     text=True, start_new_session=True)
        found = threading.Event()

        def pump() -> None:  # copies the server's stdout to its log; spots the ready line
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                match = READY.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()
            log.close()
            found.set()  # stdout closed: it exited (url stays "" if it never listened)

        threading.Thread(target=pump, name="policy-server-log", daemon=True).start()
        if not found.wait(self.ready_timeout_s) or not self.url or self.proc.poll() is not None:
            if not self.url:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5.0)
            code = self.proc.poll()
            self.stop()
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
            state = f"exited with code {code}" if code is not None else \
                f"did not listen within {self.ready_timeout_s:g} s"
            raise RuntimeError(f"{' '.join(cmd)} {state}; its log {self.log_path}:\n{tail}")
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT, then SIGKILL after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
