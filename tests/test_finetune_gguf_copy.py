"""The float32 copy of a GGUF model (llm/hf.py `float_copy_dir`): the first load keeps it in the personagen cache,
later loads read it, and it is the same model bit for bit.

Named to run before test_finetune_train.py: it writes the copy into the suite's cache (tests/conftest.py), so the
fine-tune's subprocess and every later hf load read it in a second instead of reading the GGUF (~30 s each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from personagen.errors import BadInput  # noqa: E402
from personagen.llm import load_causal_lm, local_model_reason, resolve_model  # noqa: E402
from personagen.llm.hf import (  # noqa: E402
    ModelRef,
    _keep_float_copy,
    _load_float_copy,
    content_hash,
    float_copy_dir,
)


@pytest.mark.slow
@pytest.mark.llm
def test_gguf_float_copy_loads_the_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights equal bit for bit, logits equal, the model named as the GGUF load names it (adapters record that
    name), parameters in aligned memory; a probe key in the copy's config shows the second load read the copy."""
    if local_model_reason():
        pytest.skip(local_model_reason())
    import os

    import torch
    import transformers

    monkeypatch.delenv("PERSONAGEN_GGUF_COPY_MB", raising=False)
    ref = resolve_model(None)
    copy = float_copy_dir(ref)
    cache = Path(os.environ["PERSONAGEN_CACHE"])  # the suite's own (conftest), or the one the caller named
    assert copy == cache / "models" / f"gguf-{content_hash(ref.folder / ref.gguf_file)}-transformers-" \
        f"{transformers.__version__}"
    if copy.exists():  # written earlier (a test run in another order): the GGUF read for comparison is explicit
        monkeypatch.setenv("PERSONAGEN_GGUF_COPY_MB", "0")
    model, tok = load_causal_lm(ref, threads=1)  # from the GGUF (~30 s), keeping the copy
    monkeypatch.delenv("PERSONAGEN_GGUF_COPY_MB", raising=False)
    assert {p.name for p in copy.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    text = (copy / "config.json").read_text()
    assert "quantization_config" not in text
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".")]  # no temp folder or claim left
    (copy / "config.json").write_text(json.dumps({**json.loads(text), "probe_read_from_copy": True}))
    try:
        again, tok2 = load_causal_lm(ref, threads=1)
    finally:
        (copy / "config.json").write_text(text)
    assert again.config.probe_read_from_copy is True
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert again.name_or_path == model.name_or_path == str(ref.folder) and tok2.name_or_path == tok.name_or_path
    assert not getattr(again, "is_quantized", None) and not getattr(model, "is_quantized", None)  # plain float32
    texts = ["Question: Is the sky blue?\nA. Yes\nB. No\nAnswer:", "Hi"]
    enc = tok(texts, return_tensors="pt", padding=True)
    assert enc["input_ids"].tolist() == tok2(texts, return_tensors="pt", padding=True)["input_ids"].tolist()
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, again(**enc).logits)
    assert all(p.data_ptr() % 64 == 0 for p in again.parameters())  # off the file mapping (see _load_float_copy)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a safetensors file")
    assert _load_float_copy(tmp_path / "broken", ref) is None  # unreadable: the caller reads the GGUF instead
    deep = tmp_path / "new" / "cache" / "copy"  # a cache folder that does not exist yet is made
    _keep_float_copy(deep, again, tok2)
    assert (deep / "model.safetensors").is_file() and not [p for p in deep.parent.iterdir() if p.name != "copy"]


def test_gguf_float_copy_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert _load_float_copy(None, ref) is None and _load_float_copy(tmp_path / "absent", ref) is None
    for bad in ("lots", "nan"):
        monkeypatch.setenv("PERSONAGEN_GGUF_COPY_MB", bad)
        with pytest.raises(BadInput, match="PERSONAGEN_GGUF_COPY_MB"):
            float_copy_dir(ref)
