"""Microsoft Graph v1.0 mail endpoints."""

from starlette.applications import Starlette

from o365_assets.emulator.state import EmulatorState


def build_app(state: EmulatorState) -> Starlette:
    return Starlette()
