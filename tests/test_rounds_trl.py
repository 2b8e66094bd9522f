"""TRL trains one DPO step on a round's export (``referee export dpo --round``).

Opt-in as tests/test_trl.py is: needs trl; the model is a tiny random Llama
built on disk, nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
pytest.importorskip("trl")

import torch
from datasets import load_from_disk
from transformers import AutoTokenizer
from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer

from app.store.migrate import upgrade
from tests.fake_provider import FakeProvider
from tests.test_rounds import prompts_file, referee, round_args
from tests.test_trl import _assert_one_step, _run_args
from tests.tiny_models import build_causal_lm

torch.set_num_threads(1)

pytestmark = [
    pytest.mark.trl,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]


def test_dpo_step_on_a_rounds_export(provider: FakeProvider, tmp_path: Path) -> None:
    """r1, then r2 with r1 as parent; r2's export (hf folder) trains one DPOTrainer step."""
    provider.configure(policy="longer")
    url = f"sqlite:///{tmp_path / 'referee.db'}"
    upgrade(url)
    source = prompts_file(tmp_path / "prompts.jsonl")
    assert referee(url, *round_args("r1", source)).exit_code == 0
    assert referee(url, *round_args("r2", source, "--parent", "r1", seed=8)).exit_code == 0
    out = tmp_path / "r2"
    result = referee(url, "export", "dpo", "--round", "r2", "--out", str(out), "--format", "hf")
    assert result.exit_code == 0, result.output
    dataset = load_from_disk(str(out))["train"]
    assert dataset.num_rows >= 2
    model_path = str(build_causal_lm(tmp_path / "tiny-llama"))
    trainer = DPOTrainer(
        model=model_path,
        args=DPOConfig(**_run_args(tmp_path), beta=0.1),
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_path),
    )
    _assert_one_step(trainer, model_path)
