"""The hf backend through LLMClient: an in-process transformers model behind a loopback OpenAI endpoint,
batched first-token logprobs, and the same SQLite cache semantics as the other backends."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from personagen.errors import BadInput  # noqa: E402
from personagen.llm import ChatRequest, LLMClient, hf_identity, local_model_reason, resolve_model  # noqa: E402


def _requests() -> list[ChatRequest]:
    q = "Question: Is the sky blue?\nA. Yes\nB. No\nAnswer with the letter of one option only."
    return [ChatRequest(messages=[{"role": "user", "content": q + s}], max_tokens=1, logprobs=True, top_logprobs=20)
            for s in ("", " ")]


@pytest.mark.slow
@pytest.mark.llm
def test_hf_backend_answers_first_token_logprobs_and_caches(tmp_path: Path) -> None:
    if local_model_reason():
        pytest.skip(local_model_reason())
    db = tmp_path / "llm.sqlite"
    with LLMClient.create(backend="hf", cache_path=db, concurrency=2, progress=False) as c:
        first = c.run(_requests())
        assert c.stats["requests_sent"] == 2 and c.model_name.startswith("hf:")
    assert all(r.error is None and r.top_logprobs and len(r.top_logprobs[0]) == 20 for r in first)
    assert all(max(r.top_logprobs[0].values()) <= 0.0 for r in first)
    with LLMClient.create(backend="hf", cache_path=db, progress=False) as c:
        again = c.run(_requests())
        assert c.stats["requests_sent"] == 0 and c.stats["cache_hits"] == 2
    assert [r.top_logprobs for r in again] == [r.top_logprobs for r in first]


def test_adapter_needs_the_hf_backend(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="--adapter needs --backend hf"):
        LLMClient.create(backend="openai", model="m", base_url="http://127.0.0.1:1/v1", adapter=str(tmp_path))


def test_identity_names_the_adapter_by_content(tmp_path: Path) -> None:
    if local_model_reason():
        pytest.skip(local_model_reason())
    ref = resolve_model(None)
    a, b = tmp_path / "a", tmp_path / "b"
    for d, w in ((a, b"1"), (b, b"2")):
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
        (d / "adapter_model.safetensors").write_bytes(w)
    base, ia, ib = hf_identity(ref), hf_identity(ref, a), hf_identity(ref, b)
    names = {i.split("@")[0] for i in (base, ia, ib)}
    assert len(names) == 3 and base.startswith("hf:SmolLM2") and "+lora@sha256:" in ia
    (b / "adapter_model.safetensors").write_bytes(b"1")  # same content as a -> same identity
    assert hf_identity(ref, b) == ia
