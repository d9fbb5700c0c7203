"""Exponential moving average of a model's parameters (never of its buffers).

The shadow copy is kept in float32. Buffers (BatchNorm statistics, non-persistent tables) are not
averaged: whenever EMA weights are put into a model or saved, the model's current buffers are used.
Update: shadow <- d * shadow + (1 - d) * param, with d = min(decay, (1 + n)/(10 + n)) after n updates
when ``warmup`` (LDM ``LitEma``), else d = decay. Before ``update_after_step`` the shadow is a copy.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .._checks import finite_float, flag, non_negative_int

__all__ = ["EMA"]


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.9999, *, warmup: bool = True, update_after_step: int = 0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"EMA: model must be an nn.Module, got {type(model).__name__}")
        if not 0 <= finite_float(decay, "EMA: decay") < 1:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = float(decay), flag(warmup, "EMA: warmup")
        self.update_after_step = non_negative_int(update_after_step, "EMA: update_after_step")
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters()}
        self.num_updates = 0

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    def _params(self, model: nn.Module) -> list[torch.Tensor]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"EMA: model must be an nn.Module, got {type(model).__name__}")
        params = dict(model.named_parameters())
        if params.keys() != self.shadow.keys():
            raise ValueError("EMA: the model's parameter names differ from those the EMA was created with")
        return [params[n] for n in self.shadow]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold the model's parameters in after optimiser step ``step`` (1-based)."""
        step = non_negative_int(step, "step")  # a str failed in the comparison below with a TypeError about '<='
        params = [p.detach().float() for p in self._params(model)]
        shadow = list(self.shadow.values())
        if step <= self.update_after_step:
            torch._foreach_copy_(shadow, params)
            return
        torch._foreach_lerp_(shadow, params, 1.0 - self.current_decay())
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for p, s in zip(self._params(model), self.shadow.values()):
            p.copy_(s.to(p.dtype))

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's ``state_dict`` with EMA parameters in place of the live ones (buffers as they are)."""
        state = dict(model.state_dict())
        for n, s in self.shadow.items():
            if n in state:
                state[n] = s.to(state[n].dtype)
        return state

    @contextlib.contextmanager
    def swapped(self, model: nn.Module):
        """Temporarily load the EMA weights into ``model`` (for sampling/evaluation)."""
        backup = [p.detach().clone() for p in self._params(model)]
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, b in zip(self._params(model), backup):
                    p.copy_(b)

    def state_dict(self) -> dict:
        return {"num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("shadow"), dict) or "num_updates" not in state:
            raise ValueError(f"EMA: state must be a dict from EMA.state_dict() (shadow, num_updates), got "
                             f"{type(state).__name__}{' with keys ' + str(sorted(state)) if isinstance(state, dict) else ''}")
        shadow = state["shadow"]
        if shadow.keys() != self.shadow.keys():
            missing = sorted(set(self.shadow) - set(shadow))[:5]
            extra = sorted(set(shadow) - set(self.shadow))[:5]
            raise ValueError(f"EMA state does not match the model: missing {missing}, unexpected {extra}")
        for n, v in shadow.items():
            self.shadow[n].copy_(v)
        self.num_updates = int(state["num_updates"])
