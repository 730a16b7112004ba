"""Tessera's inference engine in-process, with vLLM's offline API.

    from tessera import LLM, SamplingParams

    llm = LLM("models/SmolLM2-135M-Instruct-Q4_1.gguf", kv_cache_memory="1GiB")
    for out in llm.generate(["The capital of France is"], SamplingParams(temperature=0)):
        print(out.outputs[0].text)

`LLM` loads a GGUF file or a Hugging Face model directory and runs Tessera's
continuous-batching engine in this process; `generate`, `chat` and `stream` return
vLLM-shaped `RequestOutput` objects. Embedding models (BERT-family encoders, or any
decoder with task="embed") answer `embed`.
"""
from ._core import engine_options
from .llm import LLM
from .outputs import (CompletionOutput, EmbeddingOutput, EmbeddingRequestOutput, Logprob,
                      RequestOutput)
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "SamplingParams",
    "RequestOutput",
    "CompletionOutput",
    "Logprob",
    "EmbeddingOutput",
    "EmbeddingRequestOutput",
    "Tokenizer",
    "engine_options",
    "__version__",
]
