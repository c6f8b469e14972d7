"""Fixtures for the Graph client tests: settings that point at an emulator, and a scripted
browser for its sign-in pages."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from o365_assets.emulator import pipeline_env
from o365_assets.graph import GraphClient, GraphSettings
from o365_assets_tests.graph.support import SettingsFor


@pytest.fixture
def settings_for(tmp_path: Path) -> SettingsFor:
    """`settings_for(emu.info, mode="client_secret", **overrides)`: settings read from the
    `O365_*` variables the emulator prints, as a user would set them, with data in tmp_path."""

    def build(info: dict[str, Any], mode: str = "client_secret", **overrides: Any) -> GraphSettings:
        env = pipeline_env(info, mode)
        env["O365_DATA_DIR"] = str(tmp_path / "data")
        return GraphSettings.from_env(env, **overrides)

    return build


@pytest.fixture
def app_settings(emulator: Any, settings_for: SettingsFor) -> GraphSettings:
    return settings_for(emulator.info)


@pytest.fixture
def client(app_settings: GraphSettings) -> Iterator[GraphClient]:
    with GraphClient(app_settings) as graph:
        yield graph
