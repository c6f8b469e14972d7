"""How the Graph client does against the emulator (in a child process) with Graph-like latency
and Outlook's limit of 4 concurrent requests per mailbox.

Prints three figures, each beside its goal:
- Graph requests per 1,000 messages indexed by a full delta sync (goal: 5 or fewer);
- wall time to fetch the metadata and bytes of N attachments, as a ratio to the lower bound
  `requests / 4 x latency` measured from the same run's request count (goal: 1.3 or less);
- peak RSS growth of a client process while it downloads one large attachment
  (goal: under 64 MiB for 1 GiB).

Requests are counted on the client (every attempt put on the wire) and cross-checked with the
emulator's own counters.

    .venv/bin/python benchmarks/bench_graph.py [--messages 3000] [--attachments 2000]
        [--latency-ms 30] [--large-mib 1024]
"""

import argparse
import hashlib
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil
import requests

from o365_assets.emulator import (
    EmulatorConfig,
    EmulatorProcess,
    FaultSettings,
    MailboxSettings,
    pipeline_env,
)
from o365_assets.emulator.control import EmulatorControl
from o365_assets.graph import FileAttachment, GraphClient, GraphSettings

MIB = 1024 * 1024


def environment(info: dict[str, Any], data_dir: Path) -> dict[str, str]:
    """The `O365_*` variables a user would set for this emulator."""
    return {**pipeline_env(info), "O365_DATA_DIR": str(data_dir)}


def graph_requests_seen(control: EmulatorControl, client_id: str) -> int:
    return int(control.stats()["apps"].get(client_id, {}).get("requests", 0))


def bench_index(settings: GraphSettings, control: EmulatorControl) -> dict[str, Any]:
    """A first full delta sync of the inbox: every message indexed, pages as large as Graph
    allows."""
    control.reset_stats()
    with GraphClient(settings) as graph:
        started = time.perf_counter()
        inbox = graph.resolve_folder(None, "inbox")
        indexed = sum(len(page.messages) for page in graph.iter_delta(None, inbox.id))
        seconds = time.perf_counter() - started
        ours = graph.transport.sent["graph"]
    return {
        "messages": indexed,
        "requests": ours,
        "emulator_requests": graph_requests_seen(control, settings.client_id),
        "per_1000": ours / indexed * 1000,
        "seconds": seconds,
    }


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def bench_attachments(
    settings: GraphSettings, control: EmulatorControl, wanted: int, latency_s: float
) -> dict[str, Any]:
    """Metadata (one listing with attachments expanded) and the bytes of `wanted` attachments,
    downloaded by as many threads as the mailbox allows."""
    expected = {r["attachment_id"]: r["sha256"] for r in control.records(settings.mailbox)}
    with GraphClient(settings) as graph:
        inbox = graph.resolve_folder(None, "inbox")
        graph.credential.acquire_token()
        before = graph.transport.sent["graph"]
        control.reset_stats()

        started = time.perf_counter()
        jobs: list[tuple[str, FileAttachment]] = []
        for message in graph.list_messages(
            None, inbox.id, with_attachments_only=True, expand_attachments=True
        ):
            jobs.extend(
                (message.id, a) for a in message.attachments or [] if isinstance(a, FileAttachment)
            )
        listing_requests = graph.transport.sent["graph"] - before
        jobs = jobs[:wanted]
        if len(jobs) < wanted:
            raise SystemExit(f"the mailbox holds only {len(jobs)} file attachments; add --messages")

        with ThreadPoolExecutor(max_workers=settings.max_concurrency) as pool:
            digests = list(
                pool.map(
                    lambda job: graph.download_attachment(None, job[0], job[1], sha256_of), jobs
                )
            )
        seconds = time.perf_counter() - started
        requests = graph.transport.sent["graph"] - before
        seen = graph_requests_seen(control, settings.client_id)
        throttled = control.stats()["totals"]["throttled"]

        wrong = sum(1 for (_, a), d in zip(jobs, digests, strict=True) if expected[a.id] != d)
        message_ids = list(dict.fromkeys(message_id for message_id, _ in jobs))
        batch_before = graph.transport.sent["graph"]
        graph.list_attachments(None, message_ids)
        batch_requests = graph.transport.sent["graph"] - batch_before

        baseline = plain_requests_baseline(settings, control, graph, jobs)

    lower_bound = requests / settings.max_concurrency * latency_s
    return {
        "attachments": len(jobs),
        "messages": len(message_ids),
        "listing_requests": listing_requests,
        "batch_requests": batch_requests,
        "requests": requests,
        "emulator_requests": seen,
        "throttled": throttled,
        "seconds": seconds,
        "lower_bound": lower_bound,
        "ratio": seconds / lower_bound,
        "baseline_ratio": baseline / (len(jobs) / settings.max_concurrency * latency_s),
        "wrong": wrong,
    }


def plain_requests_baseline(
    settings: GraphSettings,
    control: EmulatorControl,
    graph: GraphClient,
    jobs: list[tuple[str, FileAttachment]],
) -> float:
    """The same downloads by bare requests on 4 threads, with the emulator's concurrency limit
    lifted so that nothing needs retrying: what the emulator itself allows at this latency."""
    token = graph.credential.acquire_token().value
    session = requests.Session()
    session.trust_env = False
    session.verify = str(settings.ca_bundle)
    session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=16))
    headers = {"Authorization": f"Bearer {token}", "Prefer": 'IdType="ImmutableId"'}
    root = f"{settings.graph_base}/users/{settings.mailbox}/messages"

    def fetch(job: tuple[str, FileAttachment]) -> str:
        url = f"{root}/{job[0]}/attachments/{job[1].id}/$value"
        with session.get(url, headers=headers, stream=True, timeout=60) as response:
            response.raise_for_status()
            return sha256_of(response.iter_content(1024 * 1024))

    limit = control.faults()["concurrency_limit"]
    control.set_faults(concurrency_limit=None)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(fetch, jobs))
        return time.perf_counter() - started
    finally:
        control.set_faults(concurrency_limit=limit)
        session.close()


def _download_large(
    env: dict[str, str], message_id: str, attachment_id: str, target: str
) -> dict[str, Any]:
    """In a fresh process: stream one attachment to a file, watching resident memory."""
    settings = GraphSettings.from_env(env)
    process = psutil.Process()
    with GraphClient(settings) as graph:
        graph.credential.acquire_token()
        baseline = process.memory_info().rss
        max_rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = [baseline]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.005):
                peak[0] = max(peak[0], process.memory_info().rss)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def store(chunks: Iterator[bytes]) -> tuple[int, str]:
            digest = hashlib.sha256()
            size = 0
            with open(target, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            return size, digest.hexdigest()

        started = time.perf_counter()
        size, sha = graph.download_attachment(None, message_id, attachment_id, store)
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
    os.unlink(target)
    # The kernel's high-water mark catches what sampling misses, if it rose during the download.
    max_rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if max_rss_after > max_rss_before:
        peak[0] = max(peak[0], max_rss_after)
    return {
        "bytes": size,
        "sha256": sha,
        "seconds": seconds,
        "baseline": baseline,
        "peak": peak[0],
    }


def bench_large(
    env: dict[str, str], settings: GraphSettings, control: EmulatorControl, size: int, work: Path
) -> dict[str, Any]:
    added = control.add_message(
        subject="one large attachment",
        attachments=[EmulatorControl.generated("large", "ledger.csv", size)],
    )
    record = next(r for r in control.records(settings.mailbox) if r["message_id"] == added["id"])
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(
            _download_large,
            (env, added["id"], record["attachment_id"], str(work / "big")),
        )
    result["correct"] = result["sha256"] == record["sha256"] and result["bytes"] == size
    result["growth"] = result["peak"] - result["baseline"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--attachments", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--large-mib", type=int, default=1024)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        work = Path(tmp)
        config = EmulatorConfig(
            state_dir=work / "emulator",
            mail=MailboxSettings(messages=args.messages, large_attachment_bytes=0),
            faults=FaultSettings(latency_ms=args.latency_ms, concurrency_limit=4),
        )
        print(f"starting the emulator: {args.messages} messages, {args.latency_ms:.0f} ms latency")
        with EmulatorProcess(config) as emu, EmulatorControl(emu.info) as control:
            env = environment(emu.info, work / "data")
            settings = GraphSettings.from_env(env)

            index = bench_index(settings, control)
            print(
                f"index:       {index['messages']} messages in {index['requests']} Graph requests "
                f"(emulator saw {index['emulator_requests']}), {index['seconds']:.2f} s\n"
                f"             -> {index['per_1000']:.2f} requests per 1,000 messages "
                f"(goal <= 5; Graph's default page of 10 would need 100)"
            )

            files = bench_attachments(settings, control, args.attachments, args.latency_ms / 1000)
            print(
                f"attachments: {files['attachments']} from {files['messages']} messages, "
                f"{files['requests']} Graph requests (emulator saw {files['emulator_requests']}, "
                f"{files['throttled']} throttled), {files['seconds']:.2f} s, "
                f"{files['wrong']} wrong\n"
                f"             metadata: {files['listing_requests']} requests with $expand on the "
                f"listing vs {files['batch_requests']} with $batch\n"
                f"             -> {files['ratio']:.2f} x the lower bound of "
                f"{files['lower_bound']:.2f} s (requests / 4 x latency; goal <= 1.3)\n"
                f"             bare requests on 4 threads, no limit, same downloads: "
                f"{files['baseline_ratio']:.2f} x their lower bound"
            )

            large = bench_large(env, settings, control, args.large_mib * MIB, work)
            print(
                f"large file:  {large['bytes'] / MIB:.0f} MiB in {large['seconds']:.1f} s "
                f"({large['bytes'] / MIB / large['seconds']:.0f} MiB/s), "
                f"{'correct' if large['correct'] else 'WRONG BYTES'}\n"
                f"             -> peak RSS growth {large['growth'] / MIB:.1f} MiB "
                f"(goal < 64 MiB)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
