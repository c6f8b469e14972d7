"""Fixtures shared by the whole suite: emulators over real HTTPS on loopback."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from o365_assets.emulator import EmulatorConfig, ThreadedEmulator

CORPUS_EML = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "eml"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedEmulator]:
    """One emulator with the default demo mailbox for tests that only read from it.

    Tests that add mail, change fault knobs or need another mailbox use `make_emulator`.
    """
    config = EmulatorConfig(state_dir=tmp_path_factory.mktemp("emulator"))
    with ThreadedEmulator(config) as emu:
        yield emu


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[Callable[..., ThreadedEmulator]]:
    """Start a private emulator: `make_emulator(mail={...}, faults={...})`, stopped at teardown."""
    started: list[ThreadedEmulator] = []

    def start(**overrides: Any) -> ThreadedEmulator:
        state_dir = tmp_path / f"emulator-{len(started)}"
        config = EmulatorConfig.model_validate({"state_dir": state_dir, **overrides})
        emu = ThreadedEmulator(config).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture(scope="session")
def corpus_eml() -> Path:
    """The shared folder of real-world .eml test messages (read-only)."""
    if not CORPUS_EML.is_dir():
        raise RuntimeError(f"the shared corpus is missing at {CORPUS_EML}")
    return CORPUS_EML
