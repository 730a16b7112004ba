"""SamplingParams: vLLM's names, the server's rules."""
from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any

from . import _core


@dataclass(kw_only=True)
class SamplingParams:
    """How to sample one prompt's continuations.

    The fields and their defaults are vLLM's; each is checked as `tessera serve` checks the
    field of the same name (a ValueError names the field), at construction and again when
    a model runs it (token ids against its vocabulary).

    n: choices per prompt (1..128); with a seed, choice j samples with seed + j.
    temperature: 0 is greedy (argmax); in [0, 2].
    top_p: in (0, 1]; 1 is off.  top_k: 0 or -1 is off.  min_p: in [0, 1]; 0 is off.
    presence_penalty, frequency_penalty: in [-2, 2].  repetition_penalty: in (0, 10].
    seed: makes sampling reproducible (None: a random seed).
    max_tokens: generated tokens at most (None: up to the end of the context).
    stop: strings that end a choice (not included in its text).
    stop_token_ids: token ids that end a choice, as end-of-generation tokens do.
    ignore_eos: keep generating past end-of-generation tokens.
    logprobs: report the chosen token's log-probability and the top `logprobs` (0..20).
    logit_bias: token id -> bias added to its logit (in [-100, 100]).
    """

    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    max_tokens: int | None = 16
    logprobs: int | None = None
    logit_bias: dict[int, float] | None = None

    def __post_init__(self) -> None:
        _core.check_sampling_params(self._fields())

    def _fields(self) -> dict[str, Any]:
        """The request fields `tessera serve` would take for these parameters."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v
        if self.logit_bias is not None:
            if not isinstance(self.logit_bias, dict):
                raise ValueError("logit_bias must be a dict {token id: bias}")
            bias = {}
            for k, v in self.logit_bias.items():
                if isinstance(k, bool):
                    raise ValueError(f"logit_bias: key {k!r} is not a token id")
                try:
                    bias[str(operator.index(k))] = v
                except TypeError:
                    raise ValueError(f"logit_bias: key {k!r} is not a token id") from None
            out["logit_bias"] = bias
        return out
