"""The device this machine trains and embeds on: `RECOMMENDATIONS["DEVICE"]`, or a command's
`--device`.

`manage.py check` refuses a name of the wrong form on every machine (`learning.config`);
whether this machine has the device is known only here, where training and embedding run (web
machines share the settings of GPU workers). Both are a `DeviceError`, which every command
that trains or embeds reports in one line.
"""

from __future__ import annotations

import torch

from recommendations.conf import rec_settings
from recommendations.learning.config import device_error
from recommendations.learning.two_tower import resolve_device

USE_ANOTHER = "set RECOMMENDATIONS['DEVICE'] (or the command's --device) to 'auto' or 'cpu'"


class DeviceError(ValueError):
    """The device asked for cannot be used on this machine; the message says what to set. A
    `ValueError`, as the commands report a bad value: one line, no traceback."""


def configured_device(requested: str | None = None) -> str:
    """The device name to train and embed on: `requested`, else `RECOMMENDATIONS["DEVICE"]`,
    resolved by the learning core ("auto" is CUDA when present, else CPU). Checked here, so a
    typo or a missing GPU is a message that says what to set rather than an error from torch."""
    device = requested or rec_settings.DEVICE or "auto"
    error = device_error(device)
    if error:
        raise DeviceError(error)
    if device.startswith("cuda"):
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not gpus:
            raise DeviceError(
                f"The device is {device!r} but torch sees no CUDA GPU on this machine: install a CUDA build "
                f"of torch (see the README), or {USE_ANOTHER}."
            )
        if int(device.partition(":")[2] or 0) >= gpus:
            raise DeviceError(
                f"The device is {device!r} but torch sees {gpus} GPU(s) on this machine (cuda:0 to "
                f"cuda:{gpus - 1}): name one of them, or {USE_ANOTHER}."
            )
    return str(resolve_device(device))
