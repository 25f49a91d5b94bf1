"""Fixtures: in-thread servers, real ``vgps-policy-server`` processes, valid observations."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from vgps_policy_server.server import PolicyServer

READY = re.compile(r"^vgps-policy-server: serving (\S+) on (ws://\S+)$")


def server_command() -> list[str]:
    """The installed console script next to this Python (else on PATH, else ``-m``)."""
    here = Path(sys.executable).parent / "vgps-policy-server"
    if here.exists():
        return [str(here)]
    found = shutil.which("vgps-policy-server")
    return [found] if found else [sys.executable, "-m", "vgps_policy_server.cli"]


class ServerProcess:
    """A running ``vgps-policy-server``; ``url``, ``port`` and ``line`` once it serves."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 timeout_s: float = 20.0):
        self.proc = subprocess.Popen([*server_command(), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.line = read_line(self.proc, timeout_s)
        match = READY.match(self.line.strip())
        if not match:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"server did not start: {self.line!r}; stderr: {err[-2000:]}")
        self.url = match.group(2)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


def read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """The first stdout line of ``proc``, or "" when it exits or times out first."""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return ""
    return ""


@pytest.fixture
def serve() -> Iterator[Callable[..., PolicyServer]]:
    """``serve(policy, **kwargs)`` -> a started in-thread server on a free port."""
    servers: list[PolicyServer] = []

    def start(policy, **kwargs) -> PolicyServer:
        server = PolicyServer(policy, "127.0.0.1", 0, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """``server_process(*args, env=None)`` -> a real ``vgps-policy-server`` that serves."""
    processes: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(list(args), env=env)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(*args, env=None)`` -> the finished ``vgps-policy-server`` run (60 s at most)."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*server_command(), *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **(env or {})})

    return run


@pytest.fixture
def observation() -> Callable[..., dict]:
    """``observation(size=256, **state)`` -> a valid observation with one image 'primary'."""
    rng = np.random.default_rng(0)

    def make(size: int = 256, **state: np.ndarray) -> dict:
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        return {"images": {"primary": image}, "state": dict(state)}

    return make
