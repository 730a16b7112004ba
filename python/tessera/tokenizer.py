"""The model's tokenizer, with Hugging Face's method names."""
from __future__ import annotations

from collections.abc import Sequence

from . import _core


class Tokenizer:
    """Encodes and decodes text as the loaded model does (`LLM.get_tokenizer()`)."""

    def __init__(self, core: _core.LLMCore) -> None:
        self._core = core

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; special-token text (e.g. "<|im_start|>") maps to its id.

        add_special_tokens: add BOS/EOS where the model's metadata asks for them.
        """
        return self._core.encode(text, add_special_tokens)

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """The text of `token_ids` (control tokens left out when skip_special_tokens)."""
        return self._core.decode(list(token_ids), skip_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    @property
    def bos_token_id(self) -> int | None:
        return self._core.bos_token_id

    @property
    def eos_token_id(self) -> int | None:
        return self._core.eos_token_id

    def __len__(self) -> int:
        return self.vocab_size
