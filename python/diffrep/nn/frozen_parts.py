"""Whether a model's frozen pre-trained part holds trained weights: EncDiff's and DisDiff's VQ first stage
(DyGA Table 7, the LDM setting), DisDiff's pre-trained noise predictor (DisDiff §3). Such a part is built
randomly initialised and never trained by the model's own loss, so a model whose part was never loaded
would train and encode on noise without a word (docs/architecture.md#frozen-parts).

Each tracked part has a persistent int8 buffer ``<part>_source`` (saved with the weights, restored by
``from_pretrained`` and a resume) with one of :data:`UNTRAINED` (as constructed), :data:`LOADED` (copied
from a trained model, or trained by the model itself, as DisDiff's pre-training stage does) or
:data:`CHOSEN` (left untrained on purpose: tests and smoke runs). A host copy of the buffer is what
:func:`require` reads, so the check costs no host read of a device tensor per training step; it is read again
after the buffer changes (a load, a move to another device, a write by hand: :mod:`diffrep.nn.derived`).

A state dict saved before the buffer existed (2026-12-08) that carries the part's weights loads as
:data:`LOADED`: the recipes that wrote those files loaded the part (or were told to run without it).
"""

from __future__ import annotations

import torch
from torch import nn

from .derived import DerivedValue

__all__ = ["UNTRAINED", "LOADED", "CHOSEN", "track", "mark", "state", "require", "choose_untrained"]

UNTRAINED, LOADED, CHOSEN = 0, 1, 2
_STATES = (UNTRAINED, LOADED, CHOSEN)


def _buffer(part: str) -> str:
    return f"{part}_source"


def track(model: nn.Module, part: str) -> None:
    """Register ``part``'s state on ``model`` (UNTRAINED); a state dict loaded into ``model`` has its value checked
    (one saved before the buffer existed gets LOADED), and :func:`state` follows the buffer the load writes."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"track: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(part, str) or not part.isidentifier():
        raise ValueError(f"track: part must be an attribute name, got {part!r}")
    model.register_buffer(_buffer(part), torch.zeros((), dtype=torch.int8))
    if not hasattr(model, "_frozen_parts"):
        model._frozen_parts = {}
    model._frozen_parts[part] = DerivedValue()
    model._frozen_parts[part].put((getattr(model, _buffer(part)),), UNTRAINED)

    def before_load(module, state_dict, prefix, *args):
        key = prefix + _buffer(part)
        if key not in state_dict:
            if not any(k.startswith(f"{prefix}{part}.") for k in state_dict):
                return          # a partial state dict without the part: its state stays
            # saved before the buffer existed: the part was loaded (or knowingly left untrained) by the run
            state_dict[key] = torch.tensor(LOADED, dtype=torch.int8)
        _checked(f"{prefix}{_buffer(part)}", int(state_dict[key]))   # read once per load, not per step

    model.register_load_state_dict_pre_hook(before_load)


def _checked(name: str, value: int) -> int:
    if value not in _STATES:
        raise ValueError(f"{name} = {value}: not a frozen-part state (0 untrained, 1 loaded, 2 untrained on "
                         "purpose); the weights file is corrupted or not diffrep's")
    return value


def mark(model: nn.Module, part: str, value: int) -> None:
    """Record that ``part`` now holds trained weights (LOADED) or is untrained on purpose (CHOSEN)."""
    if value not in (LOADED, CHOSEN):
        raise ValueError(f"mark: value must be LOADED ({LOADED}) or CHOSEN ({CHOSEN}), got {value!r}")
    state(model, part)
    buf = getattr(model, _buffer(part))
    buf.fill_(value)
    model._frozen_parts[part].put((buf,), value)   # known: no read at the next check


def state(model: nn.Module, part: str) -> int:
    """``part``'s state (UNTRAINED, LOADED or CHOSEN) on ``model``: its buffer, through the host copy."""
    parts = getattr(model, "_frozen_parts", {})
    if part not in parts:
        raise ValueError(f"{type(model).__name__} tracks no frozen part {part!r}")
    name = _buffer(part)
    buf = getattr(model, name)
    return parts[part].get((buf,), lambda: _checked(name, int(buf)))


def choose_untrained(model: nn.Module) -> None:
    """Mark every tracked part still UNTRAINED as CHOSEN (a loaded part stays LOADED); no tracked part: nothing."""
    for part in list(getattr(model, "_frozen_parts", {})):
        if state(model, part) == UNTRAINED:
            mark(model, part, CHOSEN)


def require(model: nn.Module, part: str, message: str) -> None:
    """ValueError ``message`` when ``part`` was never loaded nor left untrained on purpose."""
    if state(model, part) == UNTRAINED:
        raise ValueError(message)
