"""``local:<causal LM>`` policies: sampled in this process by transformers, in batches.

Concurrent requests are gathered by a :class:`MicroBatcher` into one
``generate`` call per batch (left-padded), each request asking for its
``n`` samples through ``num_return_sequences``. The prompt is rendered with
the tokenizer's chat template where it has one, else as plain text.

Seeds: a batch shares one torch generator, seeded with the smallest seed
of its requests; each sample stores that seed (:attr:`Draw.seed`). At
``batch_size`` 1 a sample is reproducible from its seed alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from judges.backends._batching import MicroBatcher
from judges.backends._local_models import LocalModel, inspect_model, pick_device, shared_model
from judges.errors import JudgeConfigError, JudgeError, TransientJudgeError
from judges.policies.base import Choice, Draw, Policy, PolicyConfig, SamplingParams
from judges.prompts import as_messages, render_text
from judges.tracing import OPERATION, TEXT_COMPLETION
from judges.types import Text, Usage

MAX_N = 64


@dataclass(frozen=True, slots=True)
class _Request:
    prompt: Text
    n: int
    params: SamplingParams
    seed: int | None


class LocalPolicy(Policy):
    """A causal LM (…ForCausalLM) by Hub id or path; ``device``, ``dtype``, ``batch_size``."""

    provider = "local"
    native_n = True
    max_n = MAX_N

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        if inspect_model(config.model) != "generative":
            raise JudgeConfigError(
                f"local policy {config.model!r} is a reward model; a policy is a causal LM"
            )
        self.device = pick_device(config.device)
        self._batcher: MicroBatcher[_Request, Draw] = MicroBatcher(self._run, config.batch_size)
        self._generating = threading.Lock()
        self._chat: bool | None = None
        """Whether the tokenizer has a chat template; known once the model is loaded."""

    @property
    def operation(self) -> str:
        return TEXT_COMPLETION if self._chat is False else OPERATION

    async def draw(self, prompt: Text, n: int, params: SamplingParams, seed: int | None) -> Draw:
        return await self._batcher.submit(_Request(prompt, n, params, seed))

    async def aclose(self) -> None:
        await self._batcher.aclose()

    def _run(self, requests: list[_Request]) -> Sequence[Draw | BaseException]:
        """One batch, in a worker thread: one ``generate`` per group of equal parameters."""
        try:
            model = shared_model(self.config.model, "generative", self.device, self.config.dtype)
        except RuntimeError as exc:
            raise JudgeConfigError(f"cannot load {self.config.model!r}: {exc}") from exc
        self._chat = bool(getattr(model.tokenizer, "chat_template", None))
        results: dict[int, Draw | BaseException] = {}
        order = sorted(range(len(requests)), key=lambda i: _group_key(requests[i]))
        for _, members in groupby(order, key=lambda i: _group_key(requests[i])):
            indexes = list(members)
            try:
                draws = self._generate(model, [requests[i] for i in indexes])
            except JudgeError as exc:
                draws = [exc] * len(indexes)
            results.update(zip(indexes, draws, strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate(self, model: LocalModel, requests: list[_Request]) -> list[Draw | BaseException]:
        params, n = requests[0].params, requests[0].n
        budget = model.context - params.max_tokens
        encoded = [_encode(model.tokenizer, r.prompt) for r in requests]
        fits = [0 < len(ids) <= budget for ids in encoded]
        ready = [ids for ids, ok in zip(encoded, fits, strict=True) if ok]
        seeds = [r.seed for r, ok in zip(requests, fits, strict=True) if ok and r.seed is not None]
        seed = min(seeds, default=None)
        outputs = iter(self._sample(model, ready, n, params, seed) if ready else [])
        results: list[Draw | BaseException] = []
        for ids, ok in zip(encoded, fits, strict=True):
            if not ok:
                results.append(
                    JudgeConfigError(
                        f"the prompt is {len(ids)} tokens; with max_tokens {params.max_tokens} "
                        f"it does not fit the model's context of {model.context}"
                    )
                )
                continue
            choices, out_tokens = next(outputs)
            usage = Usage(input_tokens=len(ids), output_tokens=out_tokens)
            results.append(Draw(tuple(choices), usage, self.config.model, seed))
        return results

    def _sample(
        self,
        model: LocalModel,
        sequences: list[list[int]],
        n: int,
        params: SamplingParams,
        seed: int | None,
    ) -> list[tuple[list[Choice], int]]:
        import torch

        tokenizer = model.tokenizer
        width = max(len(s) for s in sequences)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
        options: dict[str, Any] = {"max_new_tokens": params.max_tokens, "num_return_sequences": n}
        sampling = params.temperature is None or params.temperature > 0
        options["do_sample"] = sampling
        if sampling:
            options["temperature"] = params.temperature if params.temperature is not None else 1.0
            options["top_p"] = params.top_p if params.top_p is not None else 1.0
        try:
            with self._generating, torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                out = model.model.generate(
                    input_ids=input_ids.to(model.device),
                    attention_mask=mask.to(model.device),
                    pad_token_id=pad,
                    **options,
                )
        except torch.OutOfMemoryError as exc:
            raise TransientJudgeError(
                f"out of memory on {self.device}: lower the batch_size option"
            ) from exc
        except RuntimeError as exc:  # a failed generate is a failed request, stored as such
            raise JudgeError(f"the local model failed: {exc}") from exc
        completions = out[:, width:].tolist()
        eos = tokenizer.eos_token_id
        drawn = []
        for row in range(len(sequences)):
            choices, tokens = [], 0
            for ids in completions[row * n : (row + 1) * n]:
                stop = ids.index(eos) if eos in ids else None
                kept = ids[:stop] if stop is not None else [t for t in ids if t != pad]
                tokens += len(kept) + (stop is not None)
                text = tokenizer.decode(kept, skip_special_tokens=True)
                choices.append(Choice(text, "stop" if stop is not None else "length"))
            drawn.append((choices, tokens))
        return drawn


def _group_key(request: _Request) -> tuple[Any, ...]:
    p = request.params
    return (request.n, p.temperature is None, p.temperature or 0.0, p.top_p or 0.0, p.max_tokens)


def _encode(tokenizer: Any, prompt: Text) -> list[int]:
    """The prompt's token ids: through the chat template where the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": m.role, "content": m.content} for m in as_messages(prompt)]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(render_text(prompt))["input_ids"])
