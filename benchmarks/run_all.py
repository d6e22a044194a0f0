"""Run every benchmark and write what each printed into docs/benchmarks.md.

    python benchmarks/run_all.py                       # everything (hours on a 2-core machine)
    python benchmarks/run_all.py --only ingest,serving # some of them
    python benchmarks/run_all.py --quick               # smoke sizes, to check the wiring (no docs)

Each benchmark runs in its own process (so memory figures are its own) and prints its
figures beside a baseline measured in the same run. The output of each goes, with the
command, the date, the duration and the machine's load, between the markers
`<!-- run_all:NAME -->` and `<!-- /run_all:NAME -->` of the "Latest run" section of
docs/benchmarks.md; everything outside the markers (the analysis) is left as it is. A
benchmark that fails keeps its previous block and the runner exits with status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Latest run"
SERVING_SIZES = (10_000, 100_000, 1_000_000)
# The Redis that the shared-cache serving benchmark uses as Django's cache (emptied first).
SHARED_CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/3")


@functools.cache
def no_gpu() -> str | None:
    """Why the GPU benchmark cannot run here, if it cannot (torch is asked in a child process:
    this one never imports it)."""
    command = [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    gpus = int(result.stdout.strip() or 0) if result.returncode == 0 else 0
    return None if gpus else "no CUDA GPU on this machine"


def no_redis() -> str | None:
    """Why the shared-cache benchmark cannot run here, if it cannot."""
    url = urllib.parse.urlsplit(SHARED_CACHE_URL)
    try:
        socket.create_connection((url.hostname, url.port or 6379), timeout=1).close()
    except OSError as error:
        return f"no Redis at {SHARED_CACHE_URL} ({error}; set BENCH_CACHE_URL)"
    return None


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    # The run is skipped (its earlier figures kept) when this names what the machine lacks;
    # a --quick run too unless `quick_runs_without` (the GPU benchmark's runs on the CPU).
    missing: Callable[[], str | None] | None = None
    quick_runs_without: bool = False


BENCHMARKS = (
    Benchmark(
        "quality", "Recommendation quality and CPU training time", ("quality.py",), ("quality.py", "--quick")
    ),
    Benchmark(
        "gpu",
        "Training on a CUDA GPU (bf16) against the CPU",
        ("gpu.py",),
        ("gpu.py", "--quick"),
        missing=no_gpu,
        quick_runs_without=True,
    ),
    Benchmark(
        "ingest",
        "Ingestion",
        ("ingest.py",),
        ("ingest.py", "--rest-events", "2000", "--import-rows", "20000"),
    ),
    Benchmark(
        "vectors",
        "Vector writes and index builds",
        ("vectors.py",),
        ("vectors.py", "--rows", "20000", "--sizes", "20000"),
    ),
    Benchmark(
        "index_kinds",
        "HNSW against IVFFlat on trained vectors",
        ("index_kinds.py",),
        ("index_kinds.py", "--max-seconds", "10", "--users", "50"),
    ),
    Benchmark(
        "retrain",
        "End-to-end retrain through a Celery worker",
        ("retrain.py",),
        ("retrain.py", "--max-seconds", "30"),
    ),
    *(
        Benchmark(
            f"serving_{size}",
            f"Serving at {size:,} products",
            ("serving.py", "--products", str(size)),
            ("serving.py", "--quick"),
        )
        for size in SERVING_SIZES
    ),
    Benchmark(
        "serving_shared_cache",
        "Serving at 100,000 products with Redis as Django's cache",
        ("serving.py", "--products", "100000", "--cache-url", SHARED_CACHE_URL),
        ("serving.py", "--quick", "--cache-url", SHARED_CACHE_URL),
        missing=no_redis,
    ),
    Benchmark(
        "requests",
        "One serving request at a time",
        ("serving_requests.py",),
        ("serving_requests.py", "--quick"),
    ),
    Benchmark(
        "serving_cpu",
        "CPU per request in the web worker and PostgreSQL",
        ("serving_cpu.py",),
        ("serving_cpu.py", "--products", "5000", "--requests", "10"),
    ),
    Benchmark("load", "Mixed load", ("load.py",), ("load.py", "--seconds", "10")),
)


def run(benchmark: Benchmark, quick: bool) -> tuple[int, str, float]:
    """Run one benchmark; its exit status, what it printed (stdout) and the seconds taken.

    Progress bars and logs (stderr) go to the terminal as they come."""
    args = benchmark.quick_args if quick else benchmark.args
    command = [sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.monotonic() - started
    sys.stdout.write(result.stdout)
    return result.returncode, result.stdout, seconds


def block(benchmark: Benchmark, args: tuple[str, ...], output: str, seconds: float) -> str:
    load = os.getloadavg()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"### {benchmark.title}\n"
        f"`python benchmarks/{' '.join(args)}`, {when}, {seconds / 60:.1f} min, {os.cpu_count()} CPUs, "
        f"load average at the end {load[0]:.1f}\n\n```\n{output.strip()}\n```\n"
    )


def replace_block(text: str, name: str, content: str) -> str:
    """`text` with the marked block `name` set to `content` (added to the section if new)."""
    start, end = f"<!-- run_all:{name} -->", f"<!-- /run_all:{name} -->"
    marked = f"{start}\n{content}{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: marked, text)
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\nWritten by `python benchmarks/run_all.py`.\n"
    # A new block goes before the block of the next benchmark in BENCHMARKS order, if any ...
    names = [b.name for b in BENCHMARKS]
    for later in names[names.index(name) + 1 :] if name in names else []:
        position = text.find(f"<!-- run_all:{later} -->")
        if position != -1:
            return f"{text[:position]}{marked}\n\n{text[position:]}"
    head, _, tail = text.partition(SECTION)
    # ... otherwise at the end of the section, before the next "## " heading.
    section_end = re.search(r"^## ", tail[1:], re.MULTILINE)
    cut = section_end.start() + 1 if section_end else len(tail)
    return f"{head}{SECTION}{tail[:cut].rstrip()}\n\n{marked}\n\n{tail[cut:].lstrip()}".rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [b.name for b in BENCHMARKS]
    parser.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="smoke sizes (figures are not meaningful)")
    parser.add_argument(
        "--docs", type=Path, default=None, help=f"the file to write (default {DOCS}; with --quick, none)"
    )
    args = parser.parse_args(argv)
    wanted = [n for n in args.only.split(",") if n] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(names)}")
    docs = args.docs or (None if args.quick else DOCS)
    failed = []
    for benchmark in (b for b in BENCHMARKS if b.name in wanted):
        print(f"\n=== {benchmark.title} ===", flush=True)
        checked = benchmark.missing and not (args.quick and benchmark.quick_runs_without)
        lacking = benchmark.missing() if checked else None
        if lacking:
            print(f"Skipped: {lacking}; the earlier {benchmark.name} figures are kept.")
            continue
        status, output, seconds = run(benchmark, args.quick)
        if status != 0:
            print(f"{benchmark.name} failed (exit status {status}); its previous figures are kept.")
            failed.append(benchmark.name)
            continue
        print(f"{benchmark.name}: {seconds / 60:.1f} min")
        if docs is not None:
            used = benchmark.quick_args if args.quick else benchmark.args
            text = docs.read_text() if docs.exists() else "# Benchmarks\n"
            docs.write_text(replace_block(text, benchmark.name, block(benchmark, used, output, seconds)))
            print(f"written to {docs}")
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
