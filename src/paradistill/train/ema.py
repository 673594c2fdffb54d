"""Exponential moving average of weights, with the usual warm-up of the decay."""

from __future__ import annotations

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: p.detach().clone().float() for k, p in model.named_parameters() if p.requires_grad}
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)

    def weights_for(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Full state dict of `model` with EMA values for trained parameters."""
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        for name, value in self.shadow.items():
            state[name] = value.to(state[name].dtype)
        if getattr(model.cfg, "tie_weights", False):
            state.pop("head.weight", None)
        return state

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange model parameters and EMA values (call twice to restore)."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                tmp = p.detach().clone()
                p.copy_(self.shadow[name].to(p.dtype))
                self.shadow[name].copy_(tmp.float())

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
