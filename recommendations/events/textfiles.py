"""Import files as text: opened (gzipped or not), counted, told apart by kind, read as JSON
lines or as CSV in batches of rows, and their problems put in words (the import commands
turn them into command errors: `management.errors`).

Both importers read CSV through `csv_batches`: chunks without a quote are split by `str.split`
straight into columns, a fraction of the `csv` module's cost per row, which matters for
files of hundreds of thousands of events.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import methodcaller
from pathlib import Path
from typing import Any

import orjson

# A failed import lists this many bad rows, then how many more there are.
MAX_REPORTED_ERRORS = 20
# JSON lines are parsed by orjson (3x faster than json) unless they hold a run of 19 digits:
# orjson turns integers beyond 64 bits into floats, where json keeps them exact.
_LONG_DIGITS = re.compile(r"\d{19}")


# What can go wrong reading an import file, beyond its rows' contents (zlib.error: a gzip file's
# compressed data is damaged mid-file).
READ_ERRORS = (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError)


class CutMidLine(EOFError):
    """The file's last line, `line`, ends without a line break: the file was most likely cut
    short in that line, and its last value with it (a timestamp 881250949 read as 88).
    `override`, when the caller has one, is how to import the file as it is (a command's
    option): the message offers it."""

    def __init__(self, line: int, text: str) -> None:
        super().__init__(line, text)
        self.line = line
        self.text = text
        self.override = ""


class EmptyFile(EOFError):
    """A file known to end with a line break (`open_text`'s `whole_lines`) has no line at all,
    not even a header: a download or copy that stopped before its first byte."""


class UnreadableFile(Exception):
    """A file that could not be read as text (`cause`, one of `READ_ERRORS`); the message
    names the file, what is wrong and what to do, then `outcome`: what the import had stored
    by then. Nothing, unless the reader says otherwise (the event importer stores batch by
    batch and says how far it came)."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(path, cause)
        self.path = path
        self.cause = cause
        self.outcome = "Nothing was imported."

    def __str__(self) -> str:
        return f"{unreadable(self.path, self.cause)} {self.outcome}"


@contextmanager
def open_text(path: Path, *, whole_lines: bool = False) -> Iterator[Iterator[str]]:
    """Open a UTF-8 text file, gzip-compressed when it ends in .gz; a leading BOM is dropped.

    A problem opening or reading it (but a missing file) is raised as `UnreadableFile`, which
    names this file: a dataset's folder holds several, and the command only knows the folder.
    With `whole_lines` (a file known to end with a line break, as the public datasets' do), a
    last line without one is such a problem (`CutMidLine`): a file cut short mid-line would
    otherwise be read with its last value cut; so is a file without any line (`EmptyFile`),
    which would otherwise import nothing without a word.
    """
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8-sig", newline="")
            if path.suffix == ".gz"
            else path.open(encoding="utf-8-sig", newline="")
        ) as handle:
            yield _whole_lines(handle) if whole_lines else handle
    except FileNotFoundError:  # the commands say "does not exist"
        raise
    except READ_ERRORS as exc:
        raise UnreadableFile(path, exc) from exc


def _whole_lines(lines: Iterable[str]) -> Iterator[str]:
    """`lines`, each ending with its line break; `CutMidLine` for one without (the last),
    `EmptyFile` when there is none."""
    number = 0
    for number, text in enumerate(lines, start=1):
        if not text.endswith(("\n", "\r")):
            raise CutMidLine(number, text)
        yield text
    if not number:
        raise EmptyFile


def unreadable(path: Path, exc: BaseException) -> str:
    """What went wrong reading `path` (one of `READ_ERRORS`) and what to do."""
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a folder: give a file, or --dataset NAME with the dataset's folder."
    if isinstance(exc, gzip.BadGzipFile):
        return f"{path} ends in .gz but is not gzip-compressed: compress it, or rename it without .gz."
    if isinstance(exc, CutMidLine):
        override = f" or import it with {exc.override}" if exc.override else ""
        return (
            f"{path} is cut short mid-line: its last line, line {exc.line} ({exc.text!r}), ends without a "
            "line break, so its last value may be cut. Copy or download it again (or, if that line is "
            f"whole, end it with a line break{override})."
        )
    if isinstance(exc, EmptyFile):
        return f"{path} is empty, without even a header: copy or download it again."
    if isinstance(exc, EOFError):
        return f"{path} is cut short: the compressed data ends early. Copy or download it again."
    if isinstance(exc, zlib.error):
        return f"{path} is corrupt: its compressed data is damaged ({exc}). Copy or download it again."
    if isinstance(exc, UnicodeDecodeError):
        return f"{path} is not UTF-8 text ({exc.reason}): save it as UTF-8."
    if isinstance(exc, csv.Error) and "field limit" in str(exc):
        return f"{path} has a CSV cell over {csv.field_size_limit():,} characters: use JSONL for long texts."
    return f"Could not read {path}: {exc}."


def count_lines(path: Path) -> int:
    with open_text(path) as handle:
        return sum(1 for _ in handle)


def file_kind(path: Path) -> str:
    """ ".csv" or ".jsonl" (also for .ndjson), from the name's last suffix other than .gz;
    `ValueError` saying which files are read for any other name."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".csv":
        return kind
    if kind in (".jsonl", ".ndjson"):
        return ".jsonl"
    raise ValueError(f"{path.name}: use a .csv or .jsonl file (optionally gzipped).")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, object) for each non-blank line of a .jsonl file (optionally .gz); in
    place of the object, a string says what is wrong with the line (reported with the others)."""
    loads = orjson.loads
    with open_text(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text) if _LONG_DIGITS.search(text) else loads(text)
            except orjson.JSONDecodeError:
                # json may take what orjson refuses (NaN, lone surrogates); its message is the one reported.
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line, f"not valid JSON ({exc.msg})"
                    continue
            yield line, raw if isinstance(raw, dict) else "each line must be a JSON object"


def error_lines(errors: Sequence[str], total: int | None = None) -> str:
    """The first `MAX_REPORTED_ERRORS` errors, each on an indented line of its own, then how
    many more of the `total` (default: all given): a file with thousands of bad rows still
    gives a message one can read."""
    shown = "".join(f"\n  {error}" for error in errors[:MAX_REPORTED_ERRORS])
    more = (len(errors) if total is None else total) - min(len(errors), MAX_REPORTED_ERRORS)
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


@dataclass
class CsvBatch:
    """Rows of a CSV file as read: the header, the line each row ended on, and the cells, by
    row, or by column when the quote-free reader found every row as wide as the header."""

    header: list[str]
    lines: Sequence[int]
    rows: list[Sequence[str]] = field(default_factory=list)
    columns: list[Sequence[str]] | None = None

    def __len__(self) -> int:
        return len(self.lines)

    def by_row(self) -> list[Sequence[str]]:
        return self.rows if self.columns is None else list(zip(*self.columns, strict=True))

    def by_column(self) -> list[Sequence[str]] | None:
        """Each column's cells; None when a row has more or fewer cells than the header."""
        if self.columns is not None:
            return self.columns
        if set(map(len, self.rows)) != {len(self.header)}:
            return None
        return list(zip(*self.rows, strict=True))


def csv_batches(
    path: Path, size: int, *, blank_rows: bool = False, whole_lines: bool = False
) -> Iterator[CsvBatch]:
    """The rows of a .csv file (optionally .gz) in batches of up to `size` (`whole_lines`: as
    `open_text`).

    Blank lines are skipped, as `csv.DictReader` skips them, or kept as rows without cells
    (`blank_rows`), as `csv.reader` reads them. Chunks of `size` lines without a quote
    character are split with `str.split`, as the `csv` module would split them, and a chunk
    whose lines all hold the header's number of cells straight into columns (`_split_chunk`).
    From the first chunk with a quote on (a quoted cell may span lines), the `csv` module
    reads the rest of the file.
    """
    with open_text(path, whole_lines=whole_lines) as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        line = reader.line_num
        while chunk := list(islice(handle, size)):
            text = "".join(chunk)
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            if '"' in text or "\r" in text or "\0" in text:
                yield from _csv_module_batches(header, chain(chunk, handle), line, size, blank_rows)
                return
            batch = _split_chunk(header, text, line, blank_rows)
            line += len(chunk)
            if batch:
                yield batch


def _split_chunk(header: list[str], text: str, line: int, blank_rows: bool) -> CsvBatch:
    """Quote-free CSV text (lines ending in \\n) after line `line`, split as `csv.reader` would."""
    texts = text.split("\n")
    if texts[-1] == "":  # the chunk's last line ended with its newline
        texts.pop()
    first = line + 1
    commas = len(header) - 1
    if "" not in texts and set(map(methodcaller("count", ","), texts)) == {commas}:
        cells = ",".join(texts).split(",")
        width = commas + 1
        columns: list[Sequence[str]] = [cells[i::width] for i in range(width)]
        return CsvBatch(header, range(first, first + len(texts)), columns=columns)
    numbered = [(n, t) for n, t in enumerate(texts, start=first) if t or blank_rows]
    return CsvBatch(header, [n for n, _ in numbered], rows=[t.split(",") if t else [] for _, t in numbered])


def _csv_module_batches(
    header: list[str], lines: Iterable[str], line: int, size: int, blank_rows: bool
) -> Iterator[CsvBatch]:
    """Batches read by the `csv` module from `lines`, which follow line `line` of the file."""
    reader = csv.reader(lines)
    numbers: list[int] = []
    rows: list[Sequence[str]] = []
    for cells in reader:
        if cells or blank_rows:
            numbers.append(line + reader.line_num)
            rows.append(cells)
            if len(rows) >= size:
                yield CsvBatch(header, numbers, rows)
                numbers, rows = [], []
    if rows:
        yield CsvBatch(header, numbers, rows)
