"""Settings of the user + item bias model."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BiasConfig:
    item_reg: float = field(default=10.0, metadata={"help": "shrinkage of item biases (pseudo-ratings at zero bias)"})
    user_reg: float = field(default=5.0, metadata={"help": "shrinkage of user biases (pseudo-ratings at zero bias)"})
    iterations: int = field(default=10, metadata={"help": "alternating least-squares rounds for the item biases"})

    def __post_init__(self) -> None:
        if self.item_reg < 0 or self.user_reg < 0:
            raise ValueError(f"BiasConfig.item_reg and user_reg must be >= 0, got {self.item_reg}, {self.user_reg}")
        if self.iterations < 1:
            raise ValueError(f"BiasConfig.iterations must be >= 1, got {self.iterations}")
