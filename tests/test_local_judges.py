"""Local judges (``local:<path>``): tiny reward and causal models built here, loaded by path.

Nothing is downloaded: the models are written by ``tests.tiny_models`` and the
hub is switched off before the Hugging Face libraries are imported. Results
are checked against the same models run directly through transformers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from app.cli import cli  # noqa: E402
from app.keys import label_key  # noqa: E402
from app.settings import KEYLESS_DEFAULT_JUDGE, Settings  # noqa: E402
from judges import (  # noqa: E402
    JudgeConfigError,
    JudgeRegistry,
    ModelUnavailableError,
    Order,
    Pair,
    Rubric,
    config_from_spec,
    judge_pair,
    rate_response,
)
from judges.backends import _local_models  # noqa: E402
from judges.backends._batching import MicroBatcher  # noqa: E402
from judges.backends._local_models import LocalModel, length_groups, shared_model  # noqa: E402
from judges.backends.local import CHOICE_INSTRUCTIONS, LocalJudge, sigmoid  # noqa: E402
from judges.prompts import render_text  # noqa: E402
from judges.templates import PAIRWISE_V1  # noqa: E402
from judges.types import ShownPair  # noqa: E402
from tests.conftest import pair_body, serve_app  # noqa: E402
from tests.fake_provider import FakeProvider  # noqa: E402
from tests.tiny_models import build_causal_lm, build_reward_model  # noqa: E402

# Tiny models gain nothing from threads; on a busy machine they cost.
torch.set_num_threads(1)

PAIRS = [
    Pair(f"Question {i}: {'why ' * i}?", f"An answer{' with detail' * i}.", "No." * (i % 3 + 1))
    for i in range(6)
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("local-judges")
    return {
        "reward": build_reward_model(folder / "rm"),
        # The judge prompt is about 1,100 bytes, one token each: give it room.
        "generative": build_causal_lm(folder / "lm", max_positions=2048),
    }


def local_judge(path: Path, **options: Any) -> LocalJudge:
    return LocalJudge(config_from_spec(f"local:{path}", **options))


def reference_reward(path: Path, prompt: str, response: str) -> float:
    """The reward model's score, computed directly with transformers."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return float(model(input_ids=ids).logits[0, 0])


def reference_choice(path: Path, shown: ShownPair) -> tuple[float, float]:
    """log P("1"), log P("2") as the next token after the judge prompt, computed directly."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    system, user = PAIRWISE_V1.render(shown)
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{user}\n\n{CHOICE_INSTRUCTIONS}"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, -1], dim=-1)
    one, two = (tokenizer.convert_tokens_to_ids(t) for t in ("1", "2"))
    return float(logprobs[one]), float(logprobs[two])


async def judge_all(judge: LocalJudge, pairs: list[Pair]) -> list[Any]:
    try:
        return list(await asyncio.gather(*(judge_pair(judge, pair) for pair in pairs)))
    finally:
        await judge.aclose()


def record_batches(judge: LocalJudge) -> list[int]:
    """Wrap the judge's batch runner to record each batch's size."""
    sizes: list[int] = []
    run = judge._batcher._run

    def recording(items: list[Any]) -> Any:
        sizes.append(len(items))
        return run(items)

    judge._batcher._run = recording
    return sizes


class TestRewardModel:
    async def test_one_pass_and_sigmoid_of_the_score_difference(
        self, models: dict[str, Path]
    ) -> None:
        """One call per pair (order ab); P(a ≻ b) is sigmoid(score_a - score_b) of real scores."""
        judge = local_judge(models["reward"])
        assert judge.kind == "reward"
        assert judge.position_free
        pair = PAIRS[2]
        [outcome] = await judge_all(judge, [pair])
        [call] = outcome.calls
        assert call.order is Order.AB
        prompt, a, b = (render_text(t) for t in (pair.prompt, pair.response_a, pair.response_b))
        score_a = reference_reward(models["reward"], prompt, a)
        score_b = reference_reward(models["reward"], prompt, b)
        assert json.loads(call.raw_output)["scores"] == pytest.approx([score_a, score_b], abs=1e-5)
        verdict = outcome.verdict
        assert verdict.soft_preference == pytest.approx(sigmoid(score_a - score_b), abs=1e-6)
        assert verdict.winner.value == ("a" if score_a > score_b else "b")
        assert verdict.position_consistent is None  # one pass: no second order to agree with
        assert call.usage.input_tokens > 0
        assert call.usage.truncated_tokens == 0

    async def test_batched_scores_equal_one_by_one(self, models: dict[str, Path]) -> None:
        """Concurrent pairs are scored in shared forward passes, with the same scores as alone."""
        batched = local_judge(models["reward"], batch_size=8)
        sizes = record_batches(batched)
        together = await judge_all(batched, PAIRS)
        assert max(sizes) > 1
        assert all(size <= 8 for size in sizes)
        alone = []
        for pair in PAIRS:
            alone += await judge_all(local_judge(models["reward"], batch_size=1), [pair])
        for joint, single in zip(together, alone, strict=True):
            joint_scores = json.loads(joint.calls[0].raw_output)["scores"]
            single_scores = json.loads(single.calls[0].raw_output)["scores"]
            assert joint_scores == pytest.approx(single_scores, abs=1e-5)

    async def test_a_long_prompt_is_cut_on_the_left_and_counted(
        self, models: dict[str, Path]
    ) -> None:
        """Past max_length the prompt loses its start, the response stays whole; usage counts it."""
        judge = local_judge(models["reward"], max_length=64)
        pair = Pair("x" * 500 + " the real question?", "short a", "short b")
        [outcome] = await judge_all(judge, [pair])
        [call] = outcome.calls
        assert outcome.verdict is not None
        assert call.usage.truncated_tokens > 0
        assert call.usage.input_tokens == 2 * 64  # each response's sequence filled to the limit
        assert (
            json.loads(call.raw_output)["truncated_tokens"]
            == [call.usage.truncated_tokens // 2] * 2
        )

    async def test_a_cut_prompt_keeps_the_template_lead_in(self, models: dict[str, Path]) -> None:
        """Only the prompt's own tokens give way: <s> and the user turn's header stay."""
        prompt = "x" * 500 + " the real question?"
        judge = local_judge(models["reward"], max_length=64)
        [outcome] = await judge_all(judge, [Pair(prompt, "short a", "short b")])
        # 64 = <s> <|user|> \n, the prompt's last 50 bytes, </s>, then 10 of the answer turn.
        kept = prompt[-50:]
        expected = [reference_reward(models["reward"], kept, r) for r in ("short a", "short b")]
        assert json.loads(outcome.calls[0].raw_output) == {
            "scores": pytest.approx(expected, abs=1e-5),
            "truncated_tokens": [len(prompt) - 50] * 2,
        }

    async def test_a_response_longer_than_the_context_fails_without_a_label(
        self, models: dict[str, Path]
    ) -> None:
        """Nothing of the prompt left to cut: a stored failure, never a made-up verdict."""
        judge = local_judge(models["reward"], max_length=32)
        [outcome] = await judge_all(judge, [Pair("q", "y" * 100, "n")])
        assert outcome.verdict is None
        assert outcome.error_class == "context_overflow"
        assert "the response alone is" in outcome.error_message

    async def test_a_reward_model_refuses_a_principle_question(
        self, models: dict[str, Path]
    ) -> None:
        """It reads no question, so judging under a principle is a config failure."""
        judge = local_judge(models["reward"])
        outcome = await judge_pair(judge, PAIRS[0], "Which is more honest?")
        await judge.aclose()
        assert outcome.verdict is None
        assert outcome.error_class == "config"


class TestGenerativeJudge:
    async def test_both_orders_averaged_from_the_choice_tokens(
        self, models: dict[str, Path]
    ) -> None:
        """Each order reads log P(1), log P(2) of the next token; the soft label averages them."""
        judge = local_judge(models["generative"])
        assert judge.kind == "generative"
        assert not judge.position_free
        pair = PAIRS[1]
        [outcome] = await judge_all(judge, [pair])
        calls = {call.order: call for call in outcome.calls}
        assert set(calls) == {Order.AB, Order.BA}
        ab = json.loads(calls[Order.AB].raw_output)["logprobs"]
        ba = json.loads(calls[Order.BA].raw_output)["logprobs"]
        expected_ab = reference_choice(
            models["generative"], ShownPair(pair.prompt, pair.response_a, pair.response_b)
        )
        expected_ba = reference_choice(
            models["generative"], ShownPair(pair.prompt, pair.response_b, pair.response_a)
        )
        assert (ab["1"], ab["2"]) == pytest.approx(expected_ab, abs=1e-4)
        assert (ba["1"], ba["2"]) == pytest.approx(expected_ba, abs=1e-4)
        # P(a) is "1" when a is shown first and "2" when it is shown second.
        p_a_ab = sigmoid(ab["1"] - ab["2"])
        p_a_ba = sigmoid(ba["2"] - ba["1"])
        assert outcome.verdict.soft_preference == pytest.approx((p_a_ab + p_a_ba) / 2, abs=1e-6)

    async def test_batched_choices_equal_one_by_one(self, models: dict[str, Path]) -> None:
        """Left-padded batches with their own positions give the unbatched log-probabilities."""
        batched = local_judge(models["generative"], batch_size=4)
        sizes = record_batches(batched)
        together = await judge_all(batched, PAIRS[:4])
        assert max(sizes) > 1
        alone = await judge_all(local_judge(models["generative"], batch_size=1), PAIRS[:4])
        for joint, single in zip(together, alone, strict=True):
            for a, b in zip(joint.calls, single.calls, strict=True):
                assert a.order == b.order
                assert json.loads(a.raw_output)["logprobs"] == pytest.approx(
                    json.loads(b.raw_output)["logprobs"], abs=1e-4
                )

    async def test_past_the_context_the_pairs_prompt_gives_way(
        self, models: dict[str, Path]
    ) -> None:
        """The judge's instructions and both responses stay; the pair's prompt loses its start."""
        judge = local_judge(models["generative"])
        [outcome] = await judge_all(judge, [Pair("z" * 3000 + " Which city?", "Paris", "Rome")])
        assert outcome.verdict is not None
        for call in outcome.calls:
            assert call.usage.truncated_tokens > 0
            assert call.usage.input_tokens <= 2048

    async def test_a_template_without_a_system_role_gets_one_user_turn(
        self, models: dict[str, Path], tmp_path: Path
    ) -> None:
        """A chat template that refuses a system turn reads the instructions in the user turn."""
        folder = tmp_path / "no-system"
        shutil.copytree(models["generative"], folder)
        template = folder / "chat_template.jinja"
        refusal = (
            "{% if messages[0]['role'] == 'system' %}"
            "{{ raise_exception('System role not supported') }}{% endif %}"
        )
        template.write_text(refusal + template.read_text(encoding="utf-8"), encoding="utf-8")
        [outcome] = await judge_all(local_judge(folder), [PAIRS[0]])
        assert outcome.verdict is not None
        assert len(outcome.calls) == 2


class TestLoading:
    def test_an_unknown_model_offline_says_what_to_do(self) -> None:
        """Offline and not cached: the error says so and lists the alternatives."""
        with pytest.raises(ModelUnavailableError) as caught:
            LocalJudge(config_from_spec("local:nobody/no-such-reward-model"))
        message = caught.value.message
        assert "cannot load the local model 'nobody/no-such-reward-model'" in message
        for hint in (
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "local:",
            "HF_HUB_OFFLINE",
            "hf download",
        ):
            assert hint in message

    def test_a_missing_folder_is_named(self, tmp_path: Path) -> None:
        """A path that is not there is reported as such, with the same ways out."""
        with pytest.raises(ModelUnavailableError, match="there is no such folder"):
            LocalJudge(config_from_spec(f"local:{tmp_path / 'absent'}"))

    def test_a_device_that_is_not_here_is_refused(self, models: dict[str, Path]) -> None:
        """Asking for a GPU on a machine without one fails at once, saying so."""
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        with pytest.raises(JudgeConfigError, match="'cuda' is not available"):
            local_judge(models["reward"], device="cuda")
        with pytest.raises(JudgeConfigError, match="unknown device 'gpu0'"):
            local_judge(models["reward"], device="gpu0")

    async def test_a_failed_forward_pass_is_a_stored_failure(
        self, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A runtime error inside the model fails the calls of its batch; no verdict is made."""

        def broken(_self: object, _sequences: object) -> list[float]:
            raise RuntimeError("expected scalar type Float")

        monkeypatch.setattr(LocalModel, "_rewards", broken)
        [outcome] = await judge_all(local_judge(models["reward"]), [PAIRS[0]])
        assert outcome.verdict is None
        assert outcome.error_class == "judge_error"
        assert "expected scalar type Float" in outcome.error_message

    async def test_nan_outputs_are_a_failure_never_a_tie(
        self, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A model overflowing in half precision gives NaN: stored as a failure, not a label."""

        def overflowing(_self: object, sequences: list[list[int]]) -> list[float]:
            return [float("nan")] * len(sequences)

        monkeypatch.setattr(LocalModel, "_rewards", overflowing)
        judge = local_judge(models["reward"])
        [outcome] = await judge_all(judge, [PAIRS[0]])
        assert outcome.verdict is None
        assert outcome.error_class == "judge_error"
        assert "not a number" in outcome.error_message
        assert "dtype" in outcome.error_message
        rubric = Rubric(id="r", text="Is it right?")
        rating = await rate_response(judge, "q", "an answer", rubric)
        await judge.aclose()
        assert rating.rating is None
        assert rating.error_class == "judge_error"

    def test_a_model_loads_once_and_a_slow_load_holds_up_no_other(
        self, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Threads asking at once share one load; a loaded model is handed out during another's."""
        monkeypatch.setattr(_local_models, "_MODELS", {})
        built: list[str] = []
        release = threading.Event()
        original = LocalModel.__init__

        def init(self: LocalModel, model_id: str, *args: Any) -> None:
            built.append(model_id)
            if model_id == "slow":  # a download under way
                release.wait(10)
                raise ModelUnavailableError("cannot load the local model 'slow'")
            original(self, model_id, *args)

        monkeypatch.setattr(LocalModel, "__init__", init)
        path = str(models["reward"])
        with ThreadPoolExecutor(4) as pool:
            loaded = list(pool.map(lambda _: shared_model(path, "reward", "cpu", None), range(4)))
            assert built == [path]
            assert all(model is loaded[0] for model in loaded)
            slow = pool.submit(shared_model, "slow", "reward", "cpu", None)
            while "slow" not in built:
                time.sleep(0.01)
            try:
                assert pool.submit(shared_model, path, "reward", "cpu", None).result(2) is loaded[0]
            finally:
                release.set()
            with pytest.raises(ModelUnavailableError):
                slow.result()

    def test_transport_options_keep_the_label_key(self) -> None:
        """Device and batch size don't change the label; dtype and max_length do."""
        base = config_from_spec("local:/models/rm")
        stored = {"prompt": "q", "response_a": "a", "response_b": "b"}
        same = base.with_options(device="cpu", batch_size=64)
        assert label_key(stored, same) == label_key(stored, base)
        assert label_key(stored, base.with_options(dtype="bfloat16")) != label_key(stored, base)
        assert label_key(stored, base.with_options(max_length=512)) != label_key(stored, base)

    def test_keyless_default_is_the_local_reward_model(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No key and no judge named → the local reward model; a key or a named default wins."""
        for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "REFEREE_DEFAULT_JUDGE"):
            monkeypatch.delenv(name, raising=False)
        assert Settings().resolved_default_judge() == KEYLESS_DEFAULT_JUDGE
        assert Settings(default_judge="openai:gpt-4o-mini").resolved_default_judge() == (
            "openai:gpt-4o-mini"
        )
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        assert Settings().resolved_default_judge() is None

    async def test_closing_the_micro_batcher_cancels_waiting_callers(self) -> None:
        """Running and queued callers are cancelled on close rather than left waiting forever."""
        release = threading.Event()

        def run(items: list[int]) -> list[int]:
            release.wait(5)
            return items

        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_size=1)
        running = asyncio.create_task(batcher.submit(1))
        queued = asyncio.create_task(batcher.submit(2))
        await asyncio.sleep(0.05)
        await batcher.aclose()
        release.set()
        for task in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await task

    def test_length_groups_bound_the_padding(self) -> None:
        """Every index lands in one group; past min_tokens, padding adds at most 25%."""
        lengths = [100, 7, 300, 120, 8, 101, 124, 90, 10, 500, 95, 310]
        groups = length_groups(lengths, min_tokens=0)
        assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
        for group in groups:
            padded = len(group) * max(lengths[i] for i in group)
            assert padded <= 1.25 * sum(lengths[i] for i in group)
        assert len(groups) < len(lengths)
        # Short sequences share one pass: its fixed cost outweighs their padding.
        assert length_groups([7, 30, 12, 50]) == [[0, 2, 1, 3]]

    async def test_the_micro_batcher_fails_only_the_item_that_failed(self) -> None:
        """A per-item error reaches its caller alone; batches never exceed max_size."""
        sizes: list[int] = []

        def run(items: list[int]) -> list[int | BaseException]:
            sizes.append(len(items))
            return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

        batcher: MicroBatcher[int, int] = MicroBatcher(run, max_size=4)
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(10)), return_exceptions=True
        )
        await batcher.aclose()
        assert [r if isinstance(r, int) else str(r) for r in results] == [
            0,
            10,
            20,
            "bad 3",
            40,
            50,
            60,
            70,
            80,
            90,
        ]
        assert sum(sizes) == 10
        assert max(sizes) <= 4
        assert len(sizes) >= 3


@pytest.fixture
def keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")
    for name in (*names, "REFEREE_DEFAULT_JUDGE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app_client(settings: Settings, registry: JudgeRegistry) -> Iterator[TestClient]:
    with serve_app(settings, registry) as client:
        yield client


class TestThroughTheApp:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        """The operator lets clients name in-process judges (REFEREE_ALLOW_ADHOC_LOCAL)."""
        return settings.model_copy(update={"allow_adhoc_local": True})

    def test_reward_verdict_is_stored_like_any_other(
        self, api: TestClient, models: dict[str, Path]
    ) -> None:
        """POST /v1/comparisons with local:<path>: one stored call, a verdict with a soft label."""
        judge = f"local:{models['reward']}"
        response = api.post("/v1/comparisons", json=pair_body(judge=judge))
        assert response.status_code == 201, response.text
        body = response.json()
        [call] = body["calls"]
        assert (call["order"], call["provider"], call["cost_usd"]) == ("ab", "local", None)
        scores = json.loads(call["raw_output"])["scores"]
        verdict = body["verdict"]
        assert verdict["soft_preference"] == pytest.approx(sigmoid(scores[0] - scores[1]))
        assert verdict["winner"] == ("a" if scores[0] > scores[1] else "b")
        again = api.post("/v1/comparisons", json=pair_body(judge=judge))
        assert again.json()["reused"] is True
        exported = api.get("/v1/exports/dpo", params={"shape": "text"})
        assert exported.status_code == 200, exported.text
        rows = [json.loads(line) for line in exported.text.splitlines() if line.strip()]
        assert len(rows) == 1

    def test_generative_verdict_has_both_orders(
        self, api: TestClient, models: dict[str, Path]
    ) -> None:
        """A causal LM judge is asked both orders, each stored with its order."""
        response = api.post(
            "/v1/comparisons", json=pair_body(judge=f"local:{models['generative']}")
        )
        assert response.status_code == 201, response.text
        assert sorted(c["order"] for c in response.json()["calls"]) == ["ab", "ba"]

    def test_reward_model_rating_keeps_the_raw_score(
        self, api: TestClient, models: dict[str, Path]
    ) -> None:
        """POST /v1/ratings: the score is the sigmoid of the reward on the scale; raw score kept."""
        body = {"prompt": "q", "response": "an answer", "judge": f"local:{models['reward']}"}
        response = api.post("/v1/ratings", json=body)
        assert response.status_code == 201, response.text
        rating = response.json()
        reward = json.loads(rating["calls"][0]["raw_output"])["reward"]
        assert reward == pytest.approx(
            reference_reward(models["reward"], "q", "an answer"), abs=1e-5
        )
        assert rating["score"] == 1 + round(sigmoid(reward) * 9)

    def test_keyless_default_offline_says_it_cannot_download(
        self, keyless: None, app_client: TestClient
    ) -> None:
        """No key, no judge named, no network: 503 naming the model and the ways out."""
        response = app_client.post("/v1/comparisons", json=pair_body())
        assert response.status_code == 503, response.text
        message = response.json()["error"]["message"]
        assert KEYLESS_DEFAULT_JUDGE.removeprefix("local:") in message
        assert "ANTHROPIC_API_KEY" in message
        assert "HF_HUB_OFFLINE" in message

    def test_openai_compatible_server_without_a_key(
        self, database_url: str, tmp_path: Path, keyless: None, fake_provider_server: FakeProvider
    ) -> None:
        """A named judge with base_url (a vLLM server, say) works with no OPENAI_API_KEY set."""
        fake_provider_server.reset()
        judges_file = tmp_path / "judges.yaml"
        judges_file.write_text(
            "judges:\n  vllm:\n    spec: openai:Qwen/Qwen2.5-7B-Instruct\n"
            f"    base_url: {fake_provider_server.openai_base_url}\n",
            encoding="utf-8",
        )
        settings = Settings(database_url=database_url, judges_file=judges_file)
        with serve_app(settings) as client:
            response = client.post("/v1/comparisons", json=pair_body(judge="vllm"))
        assert response.status_code == 201, response.text
        assert len(fake_provider_server.requests()) == 2
        assert response.json()["judge"] == "vllm"


def test_referee_label_reports_truncation(
    tmp_path: Path, database_url: str, models: dict[str, Path]
) -> None:
    """`referee label --judge local:<path>` stores verdicts and counts the truncated calls."""
    source = tmp_path / "pairs.jsonl"
    lines = [
        {"prompt": "p" * 600, "response_a": "long answer", "response_b": "no"},
        {"prompt": "short?", "response_a": "yes", "response_b": "a longer answer"},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    args = ["label", str(source), "--judge", f"local:{models['reward']}"]
    result = CliRunner().invoke(cli, args, env={"REFEREE_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    assert "2 labeled" in result.stdout
    assert "1 calls had the start of their prompt cut" in result.stderr


def test_dry_run_counts_one_call_per_pair_for_a_reward_model(
    tmp_path: Path, database_url: str, models: dict[str, Path]
) -> None:
    """A reward model is asked once per pair, and the dry run's call count says so."""
    source = tmp_path / "pairs.jsonl"
    lines = [{"prompt": f"short {i}?", "response_a": "yes", "response_b": "no"} for i in range(3)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    env = {"REFEREE_DATABASE_URL": database_url}
    for spec, calls in ((f"local:{models['reward']}", 3), (f"local:{models['generative']}", 6)):
        args = ["label", str(source), "--judge", spec, "--dry-run"]
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert f"3 pairs, {calls} calls" in result.stdout + result.stderr
