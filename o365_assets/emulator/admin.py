"""Admin endpoints for tests and demos: add mail while running, change fault knobs."""

from starlette.applications import Starlette

from o365_assets.emulator.state import EmulatorState


def build_app(state: EmulatorState) -> Starlette:
    return Starlette()
