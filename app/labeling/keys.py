"""Label keys: the content hash that makes a label reusable and a batch resumable.

The key covers what the judge sees and how it is asked (the judge
fingerprint includes the template version) and the constitution version;
not the caller's id or metadata, which do not change the verdict.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from judges.config import JudgeConfig

KEY_SCHEMA_VERSION = 1


def label_key(
    stored_pair: dict[str, Any], judge: JudgeConfig, constitution: str | None = None
) -> str:
    document = {
        "v": KEY_SCHEMA_VERSION,
        "pair": stored_pair,
        "judge": judge.fingerprint(),
        "constitution": constitution,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
