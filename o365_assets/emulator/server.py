"""Running the emulator: in a background thread, in a child process, or in the foreground."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from o365_assets.emulator.app import build_app
from o365_assets.emulator.state import EmulatorConfig, EmulatorState, build_state, write_info

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so a port of 0 yields a known free port."""
    if host not in LOOPBACK:
        raise ValueError(f"the emulator binds to loopback only, not {host!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # With the protocol named, asyncio turns Nagle off on accepted connections; without it
    # every small reply waits on the delayed ACK (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def prepare(
    config: EmulatorConfig, loop: str = "auto"
) -> tuple[EmulatorState, socket.socket, uvicorn.Server]:
    state = build_state(config)
    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    state.base_url = f"https://127.0.0.1:{port}"
    state.issuer.issuer = f"{state.base_url}/{config.tenant_id}/v2.0"

    app = build_app(state)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            ssl_certfile=str(state.tls.cert_path),
            ssl_keyfile=str(state.tls.key_path),
            log_level="warning",
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            loop=loop,
        )
    )
    return state, sock, server


class ThreadedEmulator:
    """The emulator in a daemon thread of this process: quick to start, for tests.

    Use as a context manager; `info` holds what `emulator.json` holds.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        # The standard event loop: it closes the connections it still holds at shutdown
        # without complaint, where uvloop warns of each one.
        self.state, self._sock, self._server = prepare(config, loop="asyncio")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def info(self) -> dict[str, Any]:
        return self.state.info()

    def start(self) -> "ThreadedEmulator":
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.02)
        write_info(self.state)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> "ThreadedEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorProcess:
    """The emulator in a child process, as a user runs it: for the demo, benchmarks, and tests
    that must not share a process (or a GIL) with it."""

    def __init__(self, config: EmulatorConfig, *, detach: bool = False) -> None:
        self.config = config
        self.detach = detach
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60) -> "EmulatorProcess":
        info_path = self.config.state_dir / "emulator.json"
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        info_path.unlink(missing_ok=True)
        log_file = (self.config.state_dir / "emulator.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "o365_assets.emulator",
                "--config-json",
                self.config.model_dump_json(),
                "--quiet",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=self.detach,
        )
        log_file.close()

        deadline = time.monotonic() + timeout
        while not info_path.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the emulator exited with {self.process.returncode}; "
                    f"see {self.config.state_dir / 'emulator.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not start in time")
            time.sleep(0.05)
        self.info = json.loads(info_path.read_text())
        self.info["pid"] = self.process.pid
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    config: EmulatorConfig, on_ready: Callable[[EmulatorState], None] | None = None
) -> EmulatorState:
    """Run in the foreground until interrupted; `emulator.json` is written once it listens."""
    state, sock, server = prepare(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        path = write_info(state)
        log.info("emulator listening at %s (details in %s)", state.base_url, path)
        if on_ready is not None:
            on_ready(state)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        (config.state_dir / "emulator.json").unlink(missing_ok=True)
    return state


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_info(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "emulator.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None
