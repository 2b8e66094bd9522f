"""Exported DPO/KTO/SFT sets load with `datasets` and train a step in TRL on a tiny random model.

Opt-in: needs trl (with transformers, datasets, torch). Nothing is downloaded:
the model and tokenizer are built in ``tests.tiny_models`` and the hub is
switched off before the Hugging Face libraries are imported.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
pytest.importorskip("trl")

import torch
from datasets import DatasetDict, load_dataset, load_from_disk
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)
from trl.data_utils import (
    is_conversational,
    maybe_apply_chat_template,
    maybe_extract_prompt,
    unpair_preference_dataset,
)
from trl.trainer.dpo_config import DPOConfig
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.kto_config import KTOConfig
from trl.trainer.kto_trainer import KTOTrainer
from trl.trainer.sft_config import SFTConfig
from trl.trainer.sft_trainer import SFTTrainer
from typer.testing import CliRunner

from app.cli import cli
from app.settings import Settings
from app.store import migrate
from judges import JudgeRegistry, Position, Rubric, ShownPair
from judges.prompts import render_text
from judges.testing import Script, ScriptedJudge
from judges.types import Text
from tests.conftest import serve_app
from tests.tiny_models import build_causal_lm, build_reward_model

# Tiny models gain nothing from threads; on a busy CI machine they cost.
torch.set_num_threads(1)

pytestmark = [
    pytest.mark.trl,
    # trl 1.16 still calls transformers' renamed `is_gradient_checkpointing`.
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

FORMATS = ["jsonl", "parquet", "hf"]
SHAPES = ["conversational", "text"]

# (question, right answer, wrong answer); the scripted judge prefers the right one.
QUESTIONS = [
    ("What is the capital of France?", "Paris.", "Lyon."),
    ("How many legs has a spider?", "Eight.", "Six."),
    ("What colour is a clear sky?", "Blue.", "Green."),
    ("What is two plus two?", "Four.", "Five."),
    ("Which planet is the largest?", "Jupiter.", "Mars."),
    ("What do bees make?", "Honey.", "Milk."),
]
RIGHT = {right for _, right, _ in QUESTIONS}


def _prefer_right(shown: ShownPair) -> Position:
    return Position.FIRST if render_text(shown.first) in RIGHT else Position.SECOND


def _rate_right(_prompt: Text, response: Text, _rubric: Rubric) -> int:
    return 9 if render_text(response) in RIGHT else 2


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database filled the way users fill one: verdicts, ratings and feedback over HTTP."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'referee.db'}"
    migrate.upgrade(url)
    registry = JudgeRegistry.from_entry_points()
    script = Script(policy=_prefer_right, rater=_rate_right)
    registry.register("scripted", lambda config: ScriptedJudge(config, script))
    with serve_app(Settings(database_url=url, judges_file=None), registry) as api:
        for n, (question, right, wrong) in enumerate(QUESTIONS):
            # The right answer on alternating sides: chosen must follow the verdict, not "a".
            a, b = (right, wrong) if n % 2 else (wrong, right)
            pair = {"prompt": question, "response_a": a, "response_b": b, "judge": "scripted:x"}
            assert api.post("/v1/comparisons", json=pair).status_code == 201
            for answer in (right, wrong):
                rating = {"prompt": question, "response": answer, "judge": "scripted:x"}
                assert api.post("/v1/ratings", json=rating).status_code == 201
        thumbs = [
            {"prompt": q, "completion": answer, "label": label, "source": "chat"}
            for q, right, wrong in QUESTIONS[:2]
            for answer, label in ((right, "up"), (wrong, "down"))
        ]
        assert api.post("/v1/feedback", json=thumbs).json()["accepted"] == len(thumbs)
    return url


def _export(
    database_url: str,
    kind: str,
    out_dir: Path,
    fmt: str,
    *,
    shape: str = "conversational",
    test_split: bool = False,
) -> Path:
    """`referee export KIND --out DIR --format FMT --shape SHAPE`, as a user runs it."""
    args = ["export", kind, "--out", str(out_dir), "--format", fmt, "--shape", shape]
    if test_split:
        args += ["--test-size", "0.5", "--split-by", "prompt"]
    result = CliRunner().invoke(cli, args, env={"REFEREE_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    return out_dir


def _load(out_dir: Path, fmt: str, cache: Path) -> Any:
    """The export as a DatasetDict, read the way a TRL user would read that format."""
    if fmt == "hf":
        loaded = load_from_disk(str(out_dir))
    else:
        files = {p.stem: str(p) for p in sorted(out_dir.glob(f"*.{fmt}"))}
        builder = "json" if fmt == "jsonl" else fmt
        loaded = load_dataset(builder, data_files=files, cache_dir=str(cache))
    assert isinstance(loaded, DatasetDict)
    return loaded


def _exported(
    database_url: str, tmp_path: Path, kind: str, fmt: str = "jsonl", shape: str = "conversational"
) -> Any:
    out_dir = _export(database_url, kind, tmp_path / f"{kind}-{fmt}-{shape}", fmt, shape=shape)
    return _load(out_dir, fmt, tmp_path / "hf-cache")["train"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama and its tokenizer on disk, shared by the module."""
    return str(build_causal_lm(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="module")
def tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    loaded: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_path)
    return loaded


def _run_args(tmp_path: Path) -> dict[str, Any]:
    """One optimizer step on CPU in fp32, logged, with nothing saved or reported."""
    return {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "max_length": 128,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        # transformers 5 renamed gradient_checkpointing, which TRL configs default to True.
        "activation_checkpointing": False,
        "disable_tqdm": True,
        "seed": 0,
    }


def _chat_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], **kwargs: Any
) -> list[int]:
    encoded: Any = tokenizer.apply_chat_template(messages, return_dict=True, **kwargs)
    return list(encoded["input_ids"])


def _assert_one_step(trainer: Any, model_path: str) -> dict[str, Any]:
    """Train; one step ran, its loss is finite and the weights moved. Returns the step's log."""
    trainer.train()
    assert trainer.state.global_step == 1
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 1
    assert math.isfinite(logged[0]["loss"])
    start = AutoModelForCausalLM.from_pretrained(model_path).state_dict()
    trained = trainer.model.state_dict()
    assert any(not torch.equal(start[name], trained[name].cpu()) for name in start)
    return dict(logged[0])


class TestTinyModels:
    def test_prompt_rendering_is_a_prefix_of_prompt_and_completion(
        self, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        """The generation prompt renders as the start of the full turn, in text and in tokens."""
        prompt = [{"role": "system", "content": "Be brief."}, *_user("Où est Zürich?")]
        full = prompt + _assistant("En Suisse.")
        as_text = maybe_apply_chat_template(
            {"prompt": prompt, "completion": _assistant("En Suisse.")}, tokenizer
        )
        assert as_text["completion"] == f"En Suisse.{tokenizer.eos_token}"
        prompt_ids = _chat_ids(tokenizer, prompt, add_generation_prompt=True)
        full_ids = _chat_ids(tokenizer, full)
        assert full_ids[: len(prompt_ids)] == prompt_ids
        assert tokenizer.decode(full_ids) == f"{as_text['prompt']}En Suisse.</s>"

    def test_causal_lm_loads_by_path(
        self, model_path: str, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        """The Auto classes load the saved model, whose vocabulary matches the tokenizer."""
        model = AutoModelForCausalLM.from_pretrained(model_path)
        assert model.config.vocab_size == len(tokenizer)
        assert model.config.pad_token_id == tokenizer.pad_token_id
        batch = tokenizer(["Hello", "Hi there, world"], padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))

    def test_reward_model_scores_a_padded_batch(self, tmp_path: Path) -> None:
        """The scoring head gives one finite score per sequence, padding included."""
        path = build_reward_model(tmp_path / "rm")
        model = AutoModelForSequenceClassification.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        batch = tokenizer(["Paris.", "Lyon is not it."], padding=True, return_tensors="pt")
        with torch.no_grad():
            scores = model(**batch).logits
        assert scores.shape == (2, 1)
        assert torch.isfinite(scores).all()


@pytest.mark.parametrize("fmt", FORMATS)
class TestExportedFiles:
    def test_dpo_rows_are_explicit_prompt_preferences(
        self, database_url: str, tmp_path: Path, fmt: str
    ) -> None:
        """Rows are conversational with the prompt split out; unpairing them gives KTO rows."""
        train = _exported(database_url, tmp_path, "dpo", fmt)
        assert train.column_names == ["prompt", "chosen", "rejected"]
        assert train.num_rows == len(QUESTIONS)
        assert all(row["chosen"][0]["content"] in RIGHT for row in train)
        assert not any(row["rejected"][0]["content"] in RIGHT for row in train)
        assert all(is_conversational(row) for row in train)
        assert train.map(maybe_extract_prompt).to_list() == train.to_list()
        unpaired = unpair_preference_dataset(train)
        assert sorted(unpaired.column_names) == ["completion", "label", "prompt"]
        assert unpaired.features["label"].dtype == "bool"
        assert sorted(unpaired["label"]) == [False] * len(train) + [True] * len(train)

    def test_kto_rows_carry_both_bool_labels(
        self, database_url: str, tmp_path: Path, fmt: str
    ) -> None:
        """KTO rows are prompt/completion conversations with desirable and undesirable labels."""
        train = _exported(database_url, tmp_path, "kto", fmt)
        assert train.column_names == ["prompt", "completion", "label"]
        assert all((row["completion"][0]["content"] in RIGHT) == row["label"] for row in train)
        # Ratings, feedback and verdicts agree, so de-duplication leaves one row per answer.
        assert train.num_rows == 2 * len(QUESTIONS)
        assert train.features["label"].dtype == "bool"
        assert set(train["label"]) == {True, False}
        assert all(is_conversational(row) for row in train)
        assert all(row["completion"][-1]["role"] == "assistant" for row in train)

    def test_sft_rows_end_on_the_assistant(
        self, database_url: str, tmp_path: Path, fmt: str
    ) -> None:
        """SFT rows are single message lists whose last turn is the assistant's."""
        train = _exported(database_url, tmp_path, "sft", fmt)
        assert train.column_names == ["messages"]
        assert all(is_conversational(row) for row in train)
        assert all(row["messages"][-1]["role"] == "assistant" for row in train)

    def test_text_shape_is_plain_strings(self, database_url: str, tmp_path: Path, fmt: str) -> None:
        """With the text shape, prompts and completions are strings and no template applies."""
        for kind, columns in (
            ("dpo", ["prompt", "chosen", "rejected"]),
            ("kto", ["prompt", "completion"]),
        ):
            train = _exported(database_url, tmp_path, kind, fmt, shape="text")
            assert not any(is_conversational(row) for row in train)
            assert all(isinstance(row[c], str) for row in train for c in columns)
            assert train.map(maybe_extract_prompt).to_list() == train.to_list()

    def test_test_split_and_dataset_card(self, database_url: str, tmp_path: Path, fmt: str) -> None:
        """A requested test split loads as its own split, and README.md opens with a YAML header."""
        out_dir = _export(database_url, "dpo", tmp_path / "out", fmt, test_split=True)
        loaded = _load(out_dir, fmt, tmp_path / "hf-cache")
        assert set(loaded) == {"train", "test"}
        assert loaded["test"].num_rows >= 1
        card = (out_dir / "README.md").read_text(encoding="utf-8")
        assert card.startswith("---\n")
        header = card.split("---\n", 2)[1]
        assert isinstance(yaml.safe_load(header), dict)


class TestTraining:
    @pytest.mark.parametrize("shape", SHAPES)
    def test_dpo_step(
        self,
        database_url: str,
        tmp_path: Path,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        shape: str,
    ) -> None:
        """DPOTrainer takes one step on the DPO export, with a reference copy of the model."""
        args = DPOConfig(**_run_args(tmp_path), beta=0.1)
        trainer = DPOTrainer(
            model=model_path,
            args=args,
            train_dataset=_exported(database_url, tmp_path, "dpo", "hf", shape),
            processing_class=tokenizer,
        )
        assert trainer.ref_model is not None
        _assert_one_step(trainer, model_path)

    @pytest.mark.parametrize("shape", SHAPES)
    def test_kto_step(
        self,
        database_url: str,
        tmp_path: Path,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
        shape: str,
    ) -> None:
        """KTOTrainer takes one step on the KTO export, with both label weights set."""
        args = KTOConfig(**_run_args(tmp_path), desirable_weight=1.25, undesirable_weight=0.8)
        trainer = KTOTrainer(
            model=model_path,
            args=args,
            train_dataset=_exported(database_url, tmp_path, "kto", "jsonl", shape),
            processing_class=tokenizer,
        )
        assert (trainer.desirable_weight, trainer.undesirable_weight) == (1.25, 0.8)
        logged = _assert_one_step(trainer, model_path)
        # KTO samples in file order: the first batch must hold both kinds of label.
        assert {"logps/chosen", "logps/rejected"} <= set(logged)

    def test_kto_step_on_unpaired_dpo_export(
        self,
        database_url: str,
        tmp_path: Path,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
    ) -> None:
        """A DPO export, unpaired by TRL's own helper, trains KTO too."""
        unpaired = unpair_preference_dataset(_exported(database_url, tmp_path, "dpo", "parquet"))
        trainer = KTOTrainer(
            model=model_path,
            args=KTOConfig(**_run_args(tmp_path)),
            train_dataset=unpaired,
            processing_class=tokenizer,
        )
        _assert_one_step(trainer, model_path)

    def test_sft_step_on_assistant_tokens_only(
        self,
        database_url: str,
        tmp_path: Path,
        model_path: str,
        tokenizer: PreTrainedTokenizerBase,
    ) -> None:
        """SFTTrainer takes one step on the SFT export, with the loss on assistant turns only."""
        args = SFTConfig(**_run_args(tmp_path), assistant_only_loss=True)
        trainer = SFTTrainer(
            model=model_path,
            args=args,
            train_dataset=_exported(database_url, tmp_path, "sft", "parquet"),
            processing_class=tokenizer,
        )
        _assert_one_step(trainer, model_path)
