"""Results of `LLM.generate`, `LLM.chat` and `LLM.stream`, shaped as vLLM's."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Logprob:
    """One token's log-probability under the model (before penalties and temperature).

    `rank` is 1 for the most likely token; `decoded_token` is the token's text (U+FFFD
    where the token holds part of a UTF-8 character).
    """

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    """One generated choice of a prompt (`n` choices make `outputs[0..n-1]`).

    `finish_reason` is "stop" (an end-of-generation token, a stop string or a stop token
    id), "length" (max_tokens or the context's end), "abort", or None while streaming.
    End-of-generation and stop tokens are not in `token_ids`; a stop string ends `text`
    before it. `logprobs` (when SamplingParams.logprobs is set) holds one dict per
    generated token: token id -> Logprob, for the chosen token and the top `logprobs`.
    """

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: list[dict[int, Logprob]] | None = None
    finish_reason: str | None = None

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    """A prompt and its choices.

    From `LLM.stream`, each RequestOutput is a delta: `outputs` holds the choices that
    moved, each with only its new text, token ids and logprobs (`cumulative_logprob` is
    still the running total); `finished` turns True with the prompt's last delta.
    """

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = False
    num_cached_tokens: int | None = None
    prompt_logprobs: None = None


@dataclass
class EmbeddingOutput:
    """One input's embedding (`len(embedding)` dimensions)."""

    embedding: list[float]


@dataclass
class EmbeddingRequestOutput:
    """An input of `LLM.embed` and its embedding, shaped as vLLM's."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: EmbeddingOutput
    finished: bool = True


def logprob_dicts(entries: list | None) -> list[dict[int, Logprob]] | None:
    """The engine's per-token (id, logprob, rank, text) lists, chosen token first."""
    if entries is None:
        return None
    out = []
    for per_token in entries:
        d: dict[int, Logprob] = {}
        for tid, lp, rank, text in per_token:
            d.setdefault(tid, Logprob(lp, rank, text))
        out.append(d)
    return out


def chosen_logprob_sum(entries: list | None) -> float:
    return sum(per_token[0][1] for per_token in entries) if entries else 0.0
