"""Transformers models in process: found, loaded once per process, encoded and run in batches.

Everything that touches ``torch`` or ``transformers`` lives here and imports
them lazily, so the ``local`` provider registers (and says what to install)
on a machine without the ``referee[local]`` extra.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from judges.errors import JudgeConfigError, ModelUnavailableError
from judges.prompts import as_messages, render_text
from judges.types import Text

if TYPE_CHECKING:
    import torch

ModelKind = Literal["reward", "generative"]
CHOICE_TOKENS = ("1", "2")
# Tokenizers that declare no real limit report a huge sentinel instead.
_NO_LIMIT = 10_000_000
_TRUNCATION_ROUNDS = 4
PADDING_SLACK = 1.25
GROUP_MIN_TOKENS = 1024
T = TypeVar("T")


class ContextOverflowError(JudgeConfigError):
    """An input does not fit the model's context even with its prompt cut away."""

    error_class = "context_overflow"


@dataclass(frozen=True, slots=True)
class Encoded:
    """Token ids for one sequence, and how many prompt tokens were cut to fit."""

    ids: list[int]
    truncated: int


def require_transformers() -> None:
    """Fail with the install hint when the ``local`` extra is missing."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise JudgeConfigError(
            f"local judges need transformers and torch ({exc.name} is missing): "
            "pip install 'referee[local]' (install the torch build for your machine first), "
            "or set ANTHROPIC_API_KEY or OPENAI_API_KEY and name a judge"
        ) from None


def unavailable(model_id: str, reason: str) -> ModelUnavailableError:
    """The error for a model that is neither a folder here nor downloadable, with the ways out."""
    ways = [
        "set ANTHROPIC_API_KEY or OPENAI_API_KEY and name a judge "
        "(--judge anthropic:claude-sonnet-4-5, or REFEREE_DEFAULT_JUDGE)",
        "point local: at a folder holding the model (local:/models/my-reward-model)",
    ]
    if not _looks_like_path(model_id):
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        ways.append(
            f"download it once where there is internet (`hf download {model_id}`) "
            "and bring the Hugging Face cache (HF_HOME) here"
        )
        ways.append(
            "unset HF_HUB_OFFLINE, which is set, so nothing is downloaded"
            if offline
            else "check the id and that this machine reaches huggingface.co (or set HF_ENDPOINT)"
        )
    return ModelUnavailableError(
        f"cannot load the local model {model_id!r}: {reason.rstrip('. ')}. "
        f"Ways out: {'; '.join(ways)}."
    )


def inspect_model(model_id: str) -> ModelKind:
    """Read the model's config (downloading only that file) and tell its kind.

    One logit over a sequence is a reward model; a causal LM is a generative
    judge. Anything else is refused with what was found.
    """
    require_transformers()
    from transformers import AutoConfig

    if _looks_like_path(model_id) and not Path(model_id).expanduser().is_dir():
        raise unavailable(model_id, "there is no such folder")
    try:
        config = AutoConfig.from_pretrained(str(Path(model_id).expanduser()))
    except (OSError, ValueError) as exc:
        raise unavailable(model_id, _first_line(exc)) from None
    architectures = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        if config.num_labels != 1:
            raise JudgeConfigError(
                f"local model {model_id!r} classifies into {config.num_labels} labels; "
                "a reward model has one output (its score)"
            )
        return "reward"
    if any(a.endswith("ForCausalLM") for a in architectures):
        return "generative"
    raise JudgeConfigError(
        f"local model {model_id!r} is a {', '.join(architectures) or 'model of unknown type'}; "
        "local judges take a reward model (…ForSequenceClassification with one label) "
        "or a causal LM with a chat template (…ForCausalLM)"
    )


def pick_device(requested: str | None) -> str:
    """The device asked for (checked to exist here), else CUDA, then Apple's MPS, then the CPU."""
    import torch

    if requested and requested != "auto":
        try:
            kind = torch.device(requested).type
        except RuntimeError:
            raise JudgeConfigError(
                f"unknown device {requested!r} (cuda, cuda:N, mps, cpu or auto)"
            ) from None
        present = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
        if not present.get(kind, True):
            raise JudgeConfigError(f"device {requested!r} is not available on this machine")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _torch_dtype(name: str | None, device: str) -> torch.dtype | str:
    import torch

    if name in (None, "auto"):
        # Half precision on a CPU is slow and gains nothing; elsewhere the
        # checkpoint's own dtype (bf16 for most recent models) is the right one.
        return torch.float32 if device == "cpu" else "auto"
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class LocalModel:
    """One loaded model and its tokenizer; forward passes are serialised by a lock."""

    def __init__(self, model_id: str, kind: ModelKind, device: str, dtype: str | None) -> None:
        from transformers import (
            AutoModelForCausalLM,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        self.kind = kind
        self.device = device
        source = str(Path(model_id).expanduser())
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(source)
            loader: Any = (
                AutoModelForSequenceClassification if kind == "reward" else AutoModelForCausalLM
            )
            model = loader.from_pretrained(source, dtype=_torch_dtype(dtype, device))
        except (OSError, ValueError) as exc:
            raise unavailable(model_id, _first_line(exc)) from None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Sequence classifiers find each row's last real token through the pad id.
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model: Any = model.to(device).eval()
        self.context = _context_length(model.config, self.tokenizer)
        self.choice_ids = _choice_token_ids(self.tokenizer) if kind == "generative" else ()
        self._lock = threading.Lock()
        # Fast tokenizers may reconfigure themselves per call: one caller at a time.
        self._tokenizing = threading.Lock()

    def limit(self, max_length: int | None) -> int:
        """Tokens an input may have: the model's context, or less if configured."""
        return min(self.context, max_length) if max_length else self.context

    def encode_reward(self, prompt: Text, response: Text, limit: int) -> Encoded:
        """Prompt and response as the reward model reads them, the prompt cut on the left.

        The template's lead-in (a BOS token, the first turn's header) stays:
        only the prompt's own tokens give way, from its start.
        """
        with self._tokenizing:
            prefix, full, bare = self._reward_texts(prompt, response)
            head = self._ids(prefix)
            tail = self._ids(full[len(prefix) :])
            keep = _common_prefix(head, self._ids(bare)) if bare is not None else 0
        body, room = len(head) - keep, limit - keep - len(tail)
        if room < min(1, body):  # some of the prompt must stay, if it has any
            raise ContextOverflowError(
                f"the response alone is {len(tail)} tokens; the model reads at most {limit}"
            )
        cut = max(0, body - room)
        return Encoded(head[:keep] + head[keep + cut :] + tail, cut)

    def encode_choice(
        self, render: Callable[[Text], tuple[str, str]], prompt: Text, limit: int
    ) -> Encoded:
        """The judge prompt with a chat template; the pair's prompt is cut on the left to fit.

        The instructions and both responses are kept whole: only the text
        under judgement's own prompt gives way, token by token from its start.
        """
        with self._tokenizing:
            prompt_ids = self.tokenizer(render_text(prompt), add_special_tokens=False)["input_ids"]
            cut = 0
            for _ in range(_TRUNCATION_ROUNDS):
                shown = prompt if cut == 0 else "…" + self.tokenizer.decode(prompt_ids[cut:])
                ids = self._chat_ids(*render(shown))
                if len(ids) <= limit:
                    return Encoded(ids, cut)
                # Re-tokenising the cut text can shift a token or two, hence the rounds.
                cut += len(ids) - limit
                if cut >= len(prompt_ids):
                    break
        raise ContextOverflowError(
            f"the judge prompt does not fit in {limit} tokens even without the pair's prompt"
        )

    def rewards(self, sequences: list[list[int]]) -> list[float]:
        """Each sequence's score, in forward passes over sequences of similar length."""
        return _in_groups(sequences, self._rewards)

    def choice_logprobs(self, sequences: list[list[int]]) -> list[tuple[float, ...]]:
        """The next-token log-probability of each choice token, per sequence."""
        return _in_groups(sequences, self._choice_logprobs)

    def _rewards(self, sequences: list[list[int]]) -> list[float]:
        import torch

        # Right padding: each row's positions are what they would be unbatched.
        ids, mask = self._padded(sequences, left=False)
        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        return [float(v) for v in logits[:, 0].float().cpu()]

    def _choice_logprobs(self, sequences: list[list[int]]) -> list[tuple[float, ...]]:
        import torch

        # Left padding puts every row's next token at the last position; explicit
        # position ids keep each row's positions what they would be unpadded.
        ids, mask = self._padded(sequences, left=True)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with self._lock, torch.inference_mode():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1
            )
        logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
        return [tuple(float(row[i]) for i in self.choice_ids) for row in logprobs]

    def _padded(
        self, sequences: list[list[int]], *, left: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(s) for s in sequences)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            span = slice(width - len(sequence), width) if left else slice(0, len(sequence))
            ids[row, span] = torch.tensor(sequence, dtype=torch.long)
            mask[row, span] = 1
        return ids.to(self.device), mask.to(self.device)

    def _reward_texts(self, prompt: Text, response: Text) -> tuple[str, str, str | None]:
        """(prompt part, whole text, prompt part with the first turn empty).

        The prompt part is what may be cut; where it and the third agree is
        the template's lead-in, which stays.
        """
        turns = [{"role": m.role, "content": m.content} for m in as_messages(prompt)]
        answer = {"role": "assistant", "content": render_text(response)}
        if self.tokenizer.chat_template:
            from jinja2 import TemplateError

            full = self.tokenizer.apply_chat_template([*turns, answer], tokenize=False)
            prefix = self._reward_prefix(turns)
            if not full.startswith(prefix):
                # A template that rewrites earlier turns (some drop reasoning) has no
                # clean split: nothing is cut rather than a guess, so an input that is
                # too long fails as context_overflow.
                return "", full, None
            try:
                bare = self._reward_prefix([{**turns[0], "content": ""}, *turns[1:]])
            except TemplateError:  # a template refusing an empty turn: keep no lead-in
                bare = None
            return prefix, full, bare
        bos = self.tokenizer.bos_token or ""
        prefix = f"{bos}{render_text(prompt)}\n\n"
        return prefix, prefix + render_text(response), f"{bos}\n\n"

    def _reward_prefix(self, turns: list[dict[str, str]]) -> str:
        text: str = self.tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=True
        )
        return text

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _chat_ids(self, system: str, user: str) -> list[int]:
        if not self.tokenizer.chat_template:
            raise JudgeConfigError(
                "a generative local judge needs a tokenizer with a chat template"
            )
        from jinja2 import TemplateError

        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            text = self._chat_text(messages)
        except TemplateError:  # templates without a system role (Gemma's) refuse one
            text = self._chat_text([{"role": "user", "content": f"{system}\n\n{user}"}])
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _chat_text(self, messages: list[dict[str, str]]) -> str:
        # enable_thinking=False: templates with a reasoning mode (Qwen3) open the
        # answer directly; others ignore the variable.
        text: str = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        return text


def length_groups(
    lengths: list[int], slack: float = PADDING_SLACK, min_tokens: int = GROUP_MIN_TOKENS
) -> list[list[int]]:
    """Indices grouped by length, so that padding adds at most ``slack - 1`` to a group's tokens.

    Padding a batch to its longest sequence costs compute on every padded
    position, but every forward pass has a fixed cost too: a group under
    ``min_tokens`` real tokens takes the next sequence whatever it pads.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    real = 0
    for index in order:
        length = lengths[index]
        # Sorted ascending, so the newcomer sets the group's padded width.
        if groups and (
            real < min_tokens or (len(groups[-1]) + 1) * length <= slack * (real + length)
        ):
            groups[-1].append(index)
            real += length
        else:
            groups.append([index])
            real = length
    return groups


def _in_groups(sequences: list[list[int]], run: Callable[[list[list[int]]], list[T]]) -> list[T]:
    """``run`` over length groups of ``sequences``; the results in the sequences' order."""
    results: dict[int, T] = {}
    for group in length_groups([len(s) for s in sequences]):
        results.update(zip(group, run([sequences[i] for i in group]), strict=True))
    return [results[i] for i in range(len(sequences))]


def _common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _context_length(config: Any, tokenizer: Any) -> int:
    limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length]
    usable = [int(n) for n in limits if isinstance(n, int) and 0 < n < _NO_LIMIT]
    if not usable:
        raise JudgeConfigError("the model declares no context length: set the max_length option")
    return min(usable)


def _choice_token_ids(tokenizer: Any) -> tuple[int, ...]:
    ids = []
    for choice in CHOICE_TOKENS:
        encoded = tokenizer(choice, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1:
            raise JudgeConfigError(
                f"the tokenizer splits the choice {choice!r} into {len(encoded)} tokens; "
                "a generative local judge reads the choice from one next token"
            )
        ids.append(int(encoded[0]))
    return tuple(ids)


def _looks_like_path(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


_MODELS: dict[tuple[str, str, str], LocalModel] = {}
# One lock per model, so a model being downloaded (minutes) holds up only
# the threads that wait for that model, not every batch of the loaded ones.
_LOADING: dict[tuple[str, str, str], threading.Lock] = {}
_LOADING_GUARD = threading.Lock()


def shared_model(model_id: str, kind: ModelKind, device: str, dtype: str | None) -> LocalModel:
    """The process's one instance of a model on a device in a dtype, loaded on first use."""
    key = (model_id, device, dtype or "auto")
    with _LOADING_GUARD:
        loading = _LOADING.setdefault(key, threading.Lock())
    with loading:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = LocalModel(model_id, kind, device, dtype)
    return model
