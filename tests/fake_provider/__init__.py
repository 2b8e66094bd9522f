"""A fake Anthropic/OpenAI LLM provider for Referee's tests and benchmarks.

`FakeProvider` runs it in-process (background thread); `FakeProvider.spawn()`
or `python -m tests.fake_provider --port P` runs it in its own process.
Behaviour (verdict policy, latency, faults, rate limits) is set through the
HTTP control API under /_control/, wrapped by `configure()`/`reset()`.
"""

from .policies import LABELS, POLICIES, Verdict, decide, extract_responses
from .runner import ControlClient, FakeProvider, SpawnedProvider, main
from .server import MALFORMED_TEXT, REFUSAL_TEXT, FakeProviderApp, create_app
from .state import FAULTS, Settings

__all__ = [
    "FAULTS",
    "LABELS",
    "MALFORMED_TEXT",
    "POLICIES",
    "REFUSAL_TEXT",
    "ControlClient",
    "FakeProvider",
    "FakeProviderApp",
    "Settings",
    "SpawnedProvider",
    "Verdict",
    "create_app",
    "decide",
    "extract_responses",
    "main",
]
