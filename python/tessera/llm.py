"""LLM: a model and Tessera's continuous-batching engine in this process."""
from __future__ import annotations

import errno
import itertools
import operator
import os
from collections.abc import Iterator, Sequence
from typing import Any, Union

from . import _core
from .outputs import (CompletionOutput, EmbeddingOutput, EmbeddingRequestOutput,
                      RequestOutput, chosen_logprob_sum, logprob_dicts)
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer

# A prompt: text, token ids, or vLLM's {"prompt": text} / {"prompt_token_ids": ids}.
PromptType = Union[str, Sequence[int], dict]
Message = dict  # {"role": ..., "content": ...}

_POLL_SECONDS = 0.1


def _options_doc() -> str:
    rows = [f"    {name} ({type_}): {help_}" for name, (type_, help_) in _core.engine_options().items()]
    return "\n".join(rows)


class LLM:
    __doc__ = f"""A loaded model and its engine, ready to generate.

    LLM(model, **engine_options)

    model: a GGUF file or a Hugging Face model directory (config.json, safetensors,
        tokenizer files). A missing path raises FileNotFoundError; a file that does not
        load raises ValueError with the reason.

    Engine options (an unknown keyword raises TypeError; a bad value ValueError naming
    it; None keeps the default); `tessera.engine_options()` lists them too:
{_options_doc()}

    The engine runs on a thread of its own; generate/chat/stream release the GIL while it
    works, and Ctrl-C stops their requests and raises KeyboardInterrupt. An LLM may be
    used from several Python threads at once: their requests share the engine's batches.
    """

    def __init__(self, model: str | os.PathLike, **engine_options: Any) -> None:
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "model not found", path)
        self._core = _core.LLMCore(path, engine_options)
        self._tokenizer = Tokenizer(self._core)
        self._request_ids = itertools.count()

    # -- model facts ---------------------------------------------------------------------

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def get_tokenizer(self) -> Tokenizer:
        """The model's tokenizer (as vLLM's LLM.get_tokenizer)."""
        return self._tokenizer

    @property
    def max_model_len(self) -> int:
        """Prompt + completion tokens one sequence may hold."""
        return self._core.max_model_len

    def stats(self) -> dict[str, int]:
        """The engine's counters and gauges (running and waiting requests, KV blocks,
        prefix-cache hits, token totals), as `tessera serve` reports them on /metrics."""
        return self._core.metrics()

    # -- generation ----------------------------------------------------------------------

    def generate(self, prompts: PromptType | Sequence[PromptType],
                 sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
                 use_tqdm: bool = False) -> list[RequestOutput]:
        """Generates continuations of every prompt, batched by the engine.

        prompts: a string, a list of token ids, a {"prompt": ...} or
            {"prompt_token_ids": ...} dict, or a list of any of these.
        sampling_params: one SamplingParams for every prompt, or one per prompt
            (default: SamplingParams()).
        use_tqdm: accepted for vLLM compatibility; no progress bar is drawn.

        Returns one finished RequestOutput per prompt, in prompt order.
        """
        texts, ids = self._prompts(prompts)
        job, params = self._start(texts, ids, sampling_params)
        results = job.wait()
        return [self._output(job, i, texts[i], choices, finished=True)
                for i, choices in enumerate(results)]

    def chat(self, messages: Sequence[Message] | Sequence[Sequence[Message]],
             sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
             chat_template: str | None = None, add_generation_prompt: bool = True,
             use_tqdm: bool = False, tools: list[dict] | None = None,
             chat_template_kwargs: dict[str, Any] | None = None) -> list[RequestOutput]:
        """Answers a conversation (a list of {"role", "content"} messages) or a list of
        conversations, rendered with the model's chat template (or `chat_template`, a Jinja
        template) as `tessera serve`'s /v1/chat/completions renders them.

        tools: OpenAI-style tool definitions, given to the template (the answer stays raw
            text, as vLLM's LLM.chat returns it).
        chat_template_kwargs: more template variables (e.g. {"enable_thinking": False}).

        Returns one RequestOutput per conversation; its `prompt` is the rendered text.
        """
        batch = (isinstance(messages, (list, tuple)) and len(messages) > 0
                 and all(isinstance(m, (list, tuple)) for m in messages))
        conversations = list(messages) if batch else [messages]
        texts, ids = [], []
        for i, conv in enumerate(conversations):
            try:
                fields: dict[str, Any] = {"messages": conv,
                                          "add_generation_prompt": add_generation_prompt}
                if tools is not None:
                    fields["tools"] = tools
                if chat_template_kwargs is not None:
                    fields["chat_template_kwargs"] = chat_template_kwargs
                text, tids = self._core.chat_prompt(fields, chat_template or "")
            except ValueError as e:
                if batch:
                    raise ValueError(f"conversation {i}: {e}") from None
                raise
            texts.append(text)
            ids.append(tids)
        job, _ = self._start(texts, ids, sampling_params)
        results = job.wait()
        return [self._output(job, i, texts[i], choices, finished=True)
                for i, choices in enumerate(results)]

    def stream(self, prompts: PromptType | Sequence[PromptType],
               sampling_params: SamplingParams | Sequence[SamplingParams] | None = None
               ) -> Iterator[RequestOutput]:
        """Generates as `generate` does, yielding deltas as the engine produces tokens.

        Each yielded RequestOutput carries, for the prompt it names (`request_id`,
        `prompt`), the choices that moved and only their new text, token ids and logprobs;
        its `finished` is True on the prompt's last delta. The requests start at once;
        closing the iterator early (break, an exception, garbage collection) stops those
        still running.
        """
        texts, ids = self._prompts(prompts)
        job, params = self._start(texts, ids, sampling_params)  # bad input raises here
        return self._deltas(job, texts, ids, params)

    def _deltas(self, job: Any, texts: list[str | None], ids: list[list[int]],
                params: list[SamplingParams]) -> Iterator[RequestOutput]:
        request_ids = [str(next(self._request_ids)) for _ in texts]
        n_left = [p.n for p in params]
        cumulative: dict[tuple[int, int], float] = {}
        try:
            while not job.finished:
                by_prompt: dict[int, list[CompletionOutput]] = {}
                for p, j, text, tids, finish, lp in job.poll(_POLL_SECONDS):
                    cum = None
                    if lp is not None:
                        cum = cumulative.get((p, j), 0.0) + chosen_logprob_sum(lp)
                        cumulative[(p, j)] = cum
                    by_prompt.setdefault(p, []).append(CompletionOutput(
                        index=j, text=text, token_ids=tids, cumulative_logprob=cum,
                        logprobs=logprob_dicts(lp), finish_reason=finish))
                    if finish is not None:
                        n_left[p] -= 1
                for p, outs in by_prompt.items():
                    yield RequestOutput(
                        request_id=request_ids[p], prompt=texts[p],
                        prompt_token_ids=ids[p], outputs=outs, finished=n_left[p] == 0,
                        num_cached_tokens=job.num_cached_tokens(p))
        finally:
            job.abort()

    def embed(self, prompts: PromptType | Sequence[PromptType], *, truncate: bool = False,
              dimensions: int | None = None,
              use_tqdm: bool = False) -> list[EmbeddingRequestOutput]:
        """Embeddings of the prompts, for an embedding model: an encoder (BERT family,
        sentence-transformers directories) or a decoder loaded with task="embed".

        Texts are tokenized as `tessera serve`'s /v1/embeddings does ([CLS] text [SEP] for
        BERT); a text longer than the model's longest input raises ValueError unless
        `truncate`. `dimensions` keeps the first N values (Matryoshka) before the
        normalization the model's files ask for. All inputs are packed into forward passes
        by the embedding batcher; the GIL is released while it works.
        """
        texts, ids = self._prompts(prompts, tokenize=False)
        results = self._core.embed([t or "" for t in texts], [int(t is not None) for t in texts],
                                   ids, truncate, dimensions or 0)
        return [EmbeddingRequestOutput(request_id=str(next(self._request_ids)), prompt=text,
                                       prompt_token_ids=tids,
                                       outputs=EmbeddingOutput(embedding=vec))
                for text, (tids, vec) in zip(texts, results)]

    @property
    def task(self) -> str:
        """"generate" or "embed": what the model was loaded for (the `task` option)."""
        return self._core.task

    # -- internals -----------------------------------------------------------------------

    def _prompts(self, prompts: Any,
                 tokenize: bool = True) -> tuple[list[str | None], list[list[int]]]:
        """(text or None, token ids) per prompt; a text's ids are [] unless `tokenize`."""
        if isinstance(prompts, (str, dict)) or _is_token_list(prompts):
            prompts = [prompts]
        elif not isinstance(prompts, (list, tuple)):
            raise TypeError("prompts must be a string, a list of token ids, a prompt dict, "
                            f"or a list of these; got {type(prompts).__name__}")
        texts: list[str | None] = []
        ids: list[list[int]] = []
        for i, p in enumerate(prompts):
            if isinstance(p, dict):
                if "prompt_token_ids" in p:
                    p = p["prompt_token_ids"]
                elif "prompt" in p:
                    p = p["prompt"]
                else:
                    raise ValueError(f"prompt {i}: a prompt dict needs 'prompt' or "
                                     "'prompt_token_ids'")
            if isinstance(p, (list, tuple)) and len(p) == 0:
                raise ValueError(f"prompt {i}: the prompt is empty")
            if isinstance(p, str):
                try:
                    ids.append(self._core.prompt_tokens(p) if tokenize else [])
                except ValueError as e:
                    raise ValueError(f"prompt {i}: {e}") from None
                texts.append(p)
            elif _is_token_list(p):
                ids.append(_token_ids(p, i))
                texts.append(None)
            else:
                raise TypeError(f"prompt {i} must be a string or a list of token ids, "
                                f"not {type(p).__name__}")
        return texts, ids

    def _start(self, texts: list[str | None], ids: list[list[int]],
               sampling_params: Any) -> tuple[Any, list[SamplingParams]]:
        if sampling_params is None:
            sampling_params = SamplingParams()
        if isinstance(sampling_params, SamplingParams):
            params = [sampling_params] * len(ids)
        elif isinstance(sampling_params, (list, tuple)):
            params = list(sampling_params)
            if len(params) != len(ids):
                raise ValueError(f"sampling_params has {len(params)} entries for "
                                 f"{len(ids)} prompts")
            for p in params:
                if not isinstance(p, SamplingParams):
                    raise TypeError("sampling_params must hold SamplingParams, not "
                                    f"{type(p).__name__}")
        else:
            raise TypeError("sampling_params must be a SamplingParams or a list of them, not "
                            f"{type(sampling_params).__name__}")
        fields_of: dict[int, dict] = {}
        fields = [fields_of.setdefault(id(p), p._fields()) for p in params]
        return self._core.start(ids, fields), params

    def _output(self, job: Any, i: int, text: str | None, choices: list,
                finished: bool) -> RequestOutput:
        outs = []
        for index, ctext, tids, finish, lp in choices:
            outs.append(CompletionOutput(
                index=index, text=ctext, token_ids=tids,
                cumulative_logprob=chosen_logprob_sum(lp) if lp is not None else None,
                logprobs=logprob_dicts(lp), finish_reason=finish))
        return RequestOutput(request_id=str(next(self._request_ids)), prompt=text,
                             prompt_token_ids=job.prompt_token_ids(i), outputs=outs,
                             finished=finished, num_cached_tokens=job.num_cached_tokens(i))


def _is_token_list(p: Any) -> bool:
    if isinstance(p, (str, bytes, dict)) or not isinstance(p, Sequence):
        return False
    return len(p) > 0 and all(not isinstance(t, (str, bytes, Sequence)) for t in p) \
        and hasattr(p[0], "__index__")


def _token_ids(p: Sequence[Any], i: int) -> list[int]:
    out = []
    for t in p:
        if isinstance(t, bool):
            raise ValueError(f"prompt {i}: token ids must be integers, not bool")
        try:
            out.append(operator.index(t))
        except TypeError:
            raise ValueError(f"prompt {i}: token ids must be integers, not "
                             f"{type(t).__name__}") from None
        if not 0 <= out[-1] < 2**31:
            raise ValueError(f"prompt {i}: token id {out[-1]} is outside the vocabulary")
    return out
