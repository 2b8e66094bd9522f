"""Tiny random-weight models and a byte-level tokenizer, built offline, for tests.

Nothing here downloads anything: the tokenizer is a byte-level BPE with no merges
(every UTF-8 byte is a token, so any text round-trips and a prompt's tokens are
always a prefix of prompt+completion tokens), and the models are Llama-shaped
with a few thousand random, seeded weights. Everything is written with
``save_pretrained`` so it loads by path through the ``Auto*`` classes, as a
real checkpoint would.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (BOS, EOS, PAD, UNK, *ROLE_TOKENS)

# Each turn is `<|role|>\n{content}</s>`; the generation prompt is the assistant header,
# so a prompt rendered with `add_generation_prompt` is a prefix of prompt+completion.
# The `{% generation %}` span covers the assistant's content and its `</s>`, so SFT's
# `assistant_only_loss` trains the model to stop.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

SEED = 0
MAX_POSITIONS = 512


def build_tokenizer(folder: Path, max_positions: int = MAX_POSITIONS) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with bos/eos/pad/unk, role tokens and a chat template, saved."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *alphabet])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    # Plain-text rows (not chat-templated) get a leading <s>, as Llama tokenizers do.
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=list(ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_positions,
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def _config(tokenizer: PreTrainedTokenizerFast, max_positions: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def build_causal_lm(folder: Path, max_positions: int = MAX_POSITIONS) -> Path:
    """A tiny random Llama causal LM with its tokenizer, saved to folder, which is returned.

    ``max_positions`` is the model's context, in tokens (one per byte of text).
    """
    tokenizer = build_tokenizer(folder, max_positions)
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(_config(tokenizer, max_positions))
    model.save_pretrained(folder)
    return folder


def build_reward_model(folder: Path, max_positions: int = MAX_POSITIONS) -> Path:
    """A tiny random Llama scoring head (one logit) with its tokenizer, saved to folder."""
    tokenizer = build_tokenizer(folder, max_positions)
    torch.manual_seed(SEED)
    config = _config(tokenizer, max_positions)
    config.num_labels = 1
    model = LlamaForSequenceClassification(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(folder)
    return folder
