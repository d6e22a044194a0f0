"""The two-tower model's options (`TrainConfig`), the device and the number of processes it
trains on, and what each may be: plain Python, no torch, so that `manage.py check` (which
every management command runs) validates a configuration without loading torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

# The devices the engine trains and embeds on: "auto" (CUDA when torch sees a GPU, else the
# CPU), "cpu", "cuda" or "cuda:N" (one GPU, by number).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICES = "'auto', 'cpu', 'cuda' or 'cuda:N' (a GPU's number)"
# pgvector's HNSW and IVFFlat indexes take vectors of at most 2,000 dimensions, and products'
# score index holds each vector with its bias appended (dim + 1): a wider model would train for
# hours, then fail when its first index is built.
MAX_DIM = 1999


@dataclass
class TrainConfig:
    """All hyper-parameters of the two-tower model and its training loop."""

    # architecture
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 1
    ffn_dim: int = 256
    max_len: int = 50
    dropout: float = 0.3
    id_dropout: float = 0.2
    use_item_features: bool = True
    use_user_features: bool = True
    # optimisation
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float | None = 5.0
    # "constant", or "linear"/"cosine" decay to 0 at the end of training, which is `epochs` or
    # `max_seconds`, whichever comes first (a time budget is then used to the full).
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    loss: str = "auto"  # "full", "sampled" or "auto" (full up to full_softmax_max_items)
    full_softmax_max_items: int = 50_000
    n_negatives: int = 4096
    softmax_chunk: int = 256
    # early stopping and budget
    metric_k: int = 10
    eval_every: int = 1
    patience: int = 5
    min_epochs: int = 1
    max_seconds: float | None = None
    validation_users: int | None = None
    # runtime
    seed: int = 42
    device: str | None = None  # None: cuda if available, else cpu
    num_threads: int | None = None  # CPU threads; None: all cores (shared by the ranks on CPU)
    # Data-parallel training: None joins torchrun's process group (WORLD_SIZE > 1) or one set
    # up by the caller; False trains alone even then; True requires one. `batch_size` is per
    # process, so the batch of one step is batch_size x processes.
    distributed: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def problems(self) -> list[str]:
        """What is wrong with these values, one line each (empty when nothing is): checked
        before a version is created, so a typo never trains, fails late or serves."""
        found = [
            f"{name} must be {want}, not {getattr(self, name)!r}"
            for name, (check, want) in CONFIG_CHECKS.items()
            if not check(getattr(self, name))
        ]
        if not found and self.dim % self.n_heads:
            found.append(f"dim ({self.dim}) must be a multiple of n_heads ({self.n_heads})")
        return found


def _whole(low: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(low: float, high: float = math.inf, *, high_included: bool = True) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            return False
        return low <= value and (value <= high if high_included else value < high)

    return check


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _device(value: Any) -> bool:
    return value is None or (isinstance(value, str) and DEVICE_PATTERN.fullmatch(value) is not None)


# TrainConfig's fields and what each must be, as a test and in words.
POSITIVE_WHOLE = (
    "n_layers", "n_heads", "ffn_dim", "max_len", "epochs", "batch_size", "full_softmax_max_items",
    "n_negatives", "softmax_chunk", "metric_k", "eval_every", "min_epochs",
)  # fmt: skip
FRACTION = (_number(0, 1, high_included=False), "a number from 0 up to (not including) 1")
CONFIG_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{name: (_whole(1), "a whole number >= 1") for name in POSITIVE_WHOLE},
    "dim": (
        lambda value: _whole(1)(value) and value <= MAX_DIM,
        f"a whole number from 1 to {MAX_DIM} (pgvector indexes vectors of at most 2,000 dimensions, "
        "and products' score vectors add the bias to them: choose a smaller dim)",
    ),
    **{name: (_whole(0), "a whole number >= 0") for name in ("warmup_steps", "patience", "seed")},
    "dropout": FRACTION,
    "id_dropout": FRACTION,
    "lr": (_number(1e-12), "a number > 0"),
    "weight_decay": (_number(0), "a number >= 0"),
    "grad_clip": (_optional(_number(1e-12)), "null or a number > 0"),
    "max_seconds": (_optional(_number(1e-3)), "null or a number of seconds > 0"),
    "validation_users": (_optional(_whole(1)), "null or a whole number >= 1"),
    "num_threads": (_optional(_whole(1)), "null or a whole number >= 1"),
    "lr_schedule": (
        lambda value: value in ("constant", "linear", "cosine"),
        'one of "constant", "linear", "cosine"',
    ),
    "loss": (lambda value: value in ("auto", "full", "sampled"), '"auto", "full" or "sampled"'),
    "use_item_features": (_boolean, "true or false"),
    "use_user_features": (_boolean, "true or false"),
    "distributed": (_optional(_boolean), "null, true or false"),
    "device": (_device, f"null, {DEVICES}"),
}


def device_error(device: Any) -> str | None:
    """What is wrong with a device name, in words; None when nothing is (None means "auto")."""
    return None if _device(device) else f"The device is {device!r}: use {DEVICES}."


def processes_error(processes: Any) -> str | None:
    """What is wrong with a number of training processes ("auto": one per GPU), in words; None
    when nothing is."""
    if processes == "auto" or _whole(1)(processes):
        return None
    return f'{processes!r} is not a number of processes; use "auto" (one per GPU) or a whole number >= 1.'


def option_errors(options: Any) -> list[str]:
    """What is wrong with two-tower options (`TrainConfig` field names and values), one phrase
    each, as `TrainConfig.problems()` words them; empty when nothing is."""
    if not isinstance(options, dict):
        return [f'the options must be a dict, e.g. {{"epochs": 50}}, not {options!r}']
    known = [f.name for f in fields(TrainConfig)]
    errors = [
        f"{name!r} is not a training option (use one of {', '.join(sorted(known))})"
        for name in options
        if name not in known
    ]
    return errors + TrainConfig.from_dict(options).problems()
