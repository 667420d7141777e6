"""The one device resolver: every method, encoder and LLM backend picks its torch device here."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``None`` / "auto" / "": the GPU when there is one, else the CPU; anything else as torch reads it."""
    if device is None or str(device) in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
