"""The `o365-assets` command: emulator, login, doctor, run."""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="o365-assets",
        description="Attachments from a shared Office 365 mailbox, staged in DuckDB by Dagster.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser(
        "emulator", help="serve a local Graph + Entra emulator with a demo mailbox"
    )
    emulator.add_argument("--port", type=int, default=0, help="0 picks a free port")
    emulator.add_argument("--state-dir", type=Path, default=None)
    emulator.add_argument("--messages", type=int, default=None, help="generated messages")
    emulator.add_argument("--days", type=int, default=None, help="days the mail spreads over")
    emulator.add_argument("--seed", type=int, default=None)
    emulator.add_argument("--eml-dir", type=Path, default=None, help="seed from .eml files")
    emulator.add_argument("--latency-ms", type=float, default=None)
    emulator.add_argument("--error-rate", type=float, default=None)
    emulator.set_defaults(handler=_emulator)

    login = commands.add_parser("login", help="one-time delegated sign-in; runs refresh silently")
    login.add_argument("--device-code", action="store_true", help="for a machine without browser")
    login.add_argument(
        "--no-browser", action="store_true", help="print the sign-in address instead of opening it"
    )
    login.set_defaults(handler=_login)

    doctor = commands.add_parser("doctor", help="check configuration, credential and mailbox")
    doctor.set_defaults(handler=_doctor)

    run = commands.add_parser("run", help="materialise the whole pipeline headless")
    run.set_defaults(handler=_run)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))


def _data_dir() -> Path:
    return Path(os.environ.get("O365_DATA_DIR") or "data")


def _emulator(args: argparse.Namespace) -> int:
    from o365_assets.emulator import EmulatorConfig, pipeline_env, serve_forever
    from o365_assets.emulator.state import EmulatorState

    mail: dict[str, object] = {}
    for field, value in (
        ("messages", args.messages),
        ("days", args.days),
        ("seed", args.seed),
        ("eml_dir", args.eml_dir),
    ):
        if value is not None:
            mail[field] = value
    faults: dict[str, object] = {}
    if args.latency_ms is not None:
        faults["latency_ms"] = args.latency_ms
    if args.error_rate is not None:
        faults["error_rate"] = args.error_rate
    config = EmulatorConfig(
        state_dir=args.state_dir or _data_dir() / "emulator",
        port=args.port,
        mail=mail,
        faults=faults,
    )
    logging.getLogger("o365_assets.emulator").setLevel(logging.INFO)

    def announce(state: EmulatorState) -> None:
        print(f"# Emulator serving {state.base_url} (loopback only). Point the pipeline at it:")
        for name, value in pipeline_env(state.info()).items():
            print(f"{name}={value}")
        print("# Stop with Ctrl-C.", flush=True)

    serve_forever(config, on_ready=announce)
    return 0


def _login(args: argparse.Namespace) -> int:
    from o365_assets.doctor import settings_from_environment
    from o365_assets.graph import AuthError, ConfigurationError, login

    if not os.environ.get("O365_TENANT_ID"):
        # Demo mode: sign in to the emulator's demo tenant, as a real tenant would ask.
        os.environ.setdefault("O365_AUTH_MODE", "delegated")
    try:
        settings, _ = settings_from_environment(_data_dir())
        facts = login(
            settings,
            device_code=args.device_code,
            open_browser=not args.no_browser,
            show=lambda text: print(text, flush=True),
        )
    except (AuthError, ConfigurationError) as exc:
        print(f"Sign-in failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"Signed in as {facts.user}. The token cache is {facts.token_cache}; "
        "runs now refresh the token silently."
    )
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from o365_assets.demo import emulator_scope
    from o365_assets.doctor import run_checks

    ok = True
    with emulator_scope(_data_dir()):
        for check in run_checks(_data_dir()):
            mark = "ok " if check.ok else "FAIL"
            print(f"[{mark}] {check.name}: {check.detail}", flush=True)
            ok = ok and check.ok
    return 0 if ok else 1


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)

    from o365_assets.headless import run_everything

    summary = run_everything()
    print(summary.render())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
