"""The benchmark runner rewrites only its own marked blocks of docs/benchmarks.md."""

import socket

import pytest

from benchmarks import run_all
from benchmarks.run_all import BENCHMARKS, SECTION, main, replace_block

DOC = "# Benchmarks\n\n## Quality\nAnalysis written by hand.\n"


def test_a_new_block_goes_into_the_latest_run_section_and_prose_stays():
    text = replace_block(DOC, "ingest", "### Ingestion\n```\n20,000 ev/s\n```\n")
    assert text.startswith(DOC.rstrip("\n"))
    assert (
        text.index(SECTION) < text.index("<!-- run_all:ingest -->") < text.index("<!-- /run_all:ingest -->")
    )
    text = replace_block(text, "vectors", "### Vectors\n")
    assert text.index("<!-- /run_all:ingest -->") < text.index("<!-- run_all:vectors -->")
    assert text.count(SECTION) == 1


def test_a_rerun_replaces_its_block_only():
    text = replace_block(DOC, "ingest", "old figures\n")
    text = replace_block(text, "vectors", "vector figures\n")
    text += "\n## Analysis after the run\nkept\n"
    again = replace_block(text, "ingest", "new figures\n")
    assert "old figures" not in again and "new figures" in again
    assert "vector figures" in again and "Analysis written by hand." in again and "kept" in again
    assert again.count("<!-- run_all:ingest -->") == 1


def test_new_blocks_stay_inside_the_section_when_another_follows():
    text = replace_block(DOC, "ingest", "figures\n") + "\n## Scaling\nprose\n"
    text = replace_block(text, "load", "load figures\n")
    assert text.index("load figures") < text.index("## Scaling")


def test_blocks_follow_the_order_of_the_benchmarks():
    text = replace_block(DOC, "load", "load figures\n")
    text = replace_block(text, "quality", "quality figures\n")
    text = replace_block(text, "ingest", "ingest figures\n")
    assert text.index("quality figures") < text.index("ingest figures") < text.index("load figures")


def test_unknown_names_are_refused(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--only", "ingest,nope"])
    assert exit.value.code == 2
    assert "unknown benchmark(s): nope" in capsys.readouterr().err
    assert {"quality", "gpu", "ingest", "vectors", "retrain", "load"} <= {b.name for b in BENCHMARKS}


def test_a_benchmark_that_the_machine_cannot_run_is_skipped_and_its_figures_kept(
    tmp_path, monkeypatch, capsys
):
    """No Redis where the shared-cache benchmark looks for one: it says so, runs nothing and
    leaves the earlier block in place."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
    monkeypatch.setattr(run_all, "SHARED_CACHE_URL", f"redis://127.0.0.1:{closed.getsockname()[1]}/0")
    docs = tmp_path / "benchmarks.md"
    docs.write_text(replace_block(DOC, "serving_shared_cache", "earlier figures\n"))
    monkeypatch.setattr(run_all, "run", lambda *args: pytest.fail("the benchmark ran"))
    try:
        assert main(["--only", "serving_shared_cache", "--docs", str(docs)]) == 0
    finally:
        closed.close()
    assert "Skipped: no Redis at redis://127.0.0.1:" in capsys.readouterr().out
    assert "earlier figures" in docs.read_text()
