"""The hf backend through LLMClient: an in-process transformers model behind a loopback OpenAI endpoint,
batched first-token logprobs, and the same SQLite cache semantics as the other backends."""

from __future__ import annotations

import json
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


@pytest.mark.slow
@pytest.mark.llm
def test_gguf_float_copy_loads_the_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first load of a GGUF keeps a float32 copy in the cache; the next load reads it: the same weights bit for
    bit, the same logits, and the model named as the GGUF load names it (adapters record that name)."""
    if local_model_reason():
        pytest.skip(local_model_reason())
    import torch
    import transformers

    from personagen.llm import load_causal_lm
    from personagen.llm.hf import _load_float_copy, content_hash, float_copy_dir

    monkeypatch.setenv("PERSONAGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PERSONAGEN_GGUF_COPY_MB", raising=False)
    ref = resolve_model(None)
    gguf = ref.folder / ref.gguf_file
    copy = float_copy_dir(ref)
    assert copy == tmp_path / "cache" / "models" / f"gguf-{content_hash(gguf)}-transformers-{transformers.__version__}"
    model, tok = load_causal_lm(ref, threads=1)  # from the GGUF: ~30 s
    assert {p.name for p in copy.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    assert "quantization_config" not in (copy / "config.json").read_text()
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".tmp-")]
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "probe_read_from_copy": True}))
    again, tok2 = load_causal_lm(ref, threads=1)  # from the copy (the probe says so)
    assert again.config.probe_read_from_copy is True
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert again.name_or_path == model.name_or_path == str(ref.folder) and tok2.name_or_path == tok.name_or_path
    assert not getattr(again, "is_quantized", None) and not getattr(model, "is_quantized", None)  # plain float32
    enc = tok(["Question: Is the sky blue?\nA. Yes\nB. No\nAnswer:", "Hi"], return_tensors="pt", padding=True)
    assert enc["input_ids"].tolist() == tok2(["Question: Is the sky blue?\nA. Yes\nB. No\nAnswer:", "Hi"],
                                             return_tensors="pt", padding=True)["input_ids"].tolist()
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, again(**enc).logits)
    assert all(p.data_ptr() % 64 == 0 for p in again.parameters())  # off the file mapping (see _load_float_copy)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a safetensors file")
    assert _load_float_copy(tmp_path / "broken", ref) is None  # unreadable: the caller reads the GGUF instead


def test_gguf_float_copy_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from personagen.llm.hf import ModelRef, float_copy_dir

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"\0" * (2**20 // 4))  # 0.25 MB: its float copy counts as 4 × that, 1 MB
    ref = ModelRef(tmp_path, "m.gguf")
    monkeypatch.setenv("PERSONAGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PERSONAGEN_GGUF_COPY_MB", "1")
    assert float_copy_dir(ref) is not None
    monkeypatch.setenv("PERSONAGEN_GGUF_COPY_MB", "0.99")
    assert float_copy_dir(ref) is None
    monkeypatch.setenv("PERSONAGEN_GGUF_COPY_MB", "0")
    assert float_copy_dir(ref) is None
    monkeypatch.delenv("PERSONAGEN_GGUF_COPY_MB")
    assert float_copy_dir(ref).parent == tmp_path / "cache" / "models"  # default 2048 MB
    assert float_copy_dir(ModelRef(tmp_path, None)) is None  # a float checkpoint folder: nothing to copy
    monkeypatch.setenv("PERSONAGEN_GGUF_COPY_MB", "lots")
    with pytest.raises(BadInput, match="PERSONAGEN_GGUF_COPY_MB"):
        float_copy_dir(ref)
