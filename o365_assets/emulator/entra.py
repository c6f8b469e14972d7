"""Entra ID v2.0 endpoints."""

from starlette.routing import BaseRoute

from o365_assets.emulator.state import EmulatorState


def routes(state: EmulatorState) -> list[BaseRoute]:
    return []
