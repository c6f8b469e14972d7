"""`python -m o365_assets.emulator`: the emulator alone, as the CLI and child processes run it."""

import argparse
import logging
import sys
from pathlib import Path

from o365_assets.emulator import EmulatorConfig, pipeline_env, serve_forever
from o365_assets.emulator.state import EmulatorState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m o365_assets.emulator")
    parser.add_argument("--config-json", help="a whole EmulatorConfig as JSON")
    parser.add_argument("--state-dir", type=Path, default=Path("data/emulator"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    if args.config_json:
        config = EmulatorConfig.model_validate_json(args.config_json)
    else:
        config = EmulatorConfig(state_dir=args.state_dir, port=args.port)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)

    def announce(state: EmulatorState) -> None:
        if args.quiet:
            return
        for name, value in pipeline_env(state.info()).items():
            print(f"{name}={value}", flush=True)

    serve_forever(config, on_ready=announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
