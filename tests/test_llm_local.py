"""The bundled local model (real llama.cpp server, SmolLM2): OpenAI protocol, logprobs, estimates, errors."""

from __future__ import annotations

import pytest

from personagen.errors import BadInput
from personagen.llm import ChatRequest, LLMClient

pytestmark = pytest.mark.llm


def _reqs(n: int, persona: str = "You are a 52-year-old nurse from Burlington, Vermont.") -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "system", "content": persona},
                                  {"role": "user", "content": f"Question {i}: Do you agree that item {i * 7} matters?"
                                                              "\nA. Agree\nB. Disagree\nAnswer with the letter only."}],
                        max_tokens=1, logprobs=True, top_logprobs=20) for i in range(n)]


def test_openai_backend_against_local_server(local_llm_url, tmp_path):
    c = LLMClient.create(backend="openai", base_url=local_llm_url, model="smollm2",
                         cache_path=tmp_path / "llm.sqlite", progress=False)
    with c:
        res = c.run(_reqs(3))
        again = c.run(_reqs(3))
    assert c.model_name == "smollm2"
    for r in res:
        assert r.error is None and r.text and not r.cached
        assert r.top_logprobs and len(r.top_logprobs[0]) >= 15
        assert r.input_tokens > 20 and r.output_tokens == 1
    assert all(r.cached for r in again) and c.stats["requests_sent"] == 3
    # sampled answers with seeds are deterministic per seed
    s = [ChatRequest(messages=_reqs(1)[0].messages, temperature=1.0, max_tokens=8, seed=k) for k in (1, 1)]
    with LLMClient.create(backend="openai", base_url=local_llm_url, model="smollm2", progress=False,
                          fresh=True) as c2:
        a, b = c2.run(s)
    assert a.text == b.text and c2.stats["requests_sent"] == 1  # identical requests sent once


def test_wrong_model_name_is_clear(local_llm_url):
    with LLMClient.create(backend="openai", base_url=local_llm_url, model="gpt-99", progress=False) as c:
        with pytest.raises(BadInput, match="gpt-99.*not served"):
            c.run(_reqs(1))
    with pytest.raises(BadInput, match="only"):
        LLMClient.create(backend="local", model="llama-70b")


def test_local_backend_estimate_within_10pct(tmp_path):
    from personagen.llm import local_available

    if local_available():
        pytest.skip(local_available())
    c = LLMClient.create(backend="local", cache_path=tmp_path / "llm.sqlite", progress=False)
    reqs = _reqs(3) + _reqs(2, persona="You are a retired 80-year-old farmer who loves long walks. " * 3)
    with c:
        est = c.estimate(reqs)
        c.run(reqs)
        assert est["requests"] == 5 and est["output_tokens"] == 5
        actual = c.stats["input_tokens"]
        assert abs(est["input_tokens"] - actual) <= 0.10 * actual, (est, actual)
        # large batches are estimated from a tokenized sample scaled by characters: still within 10%
        many = [r for k in range(20) for r in _reqs(4, persona=f"You are persona number {k}, aged {20 + k}. " * (1 + k % 4))]
        est_many = c.estimate(many)["input_tokens"]
        exact = sum(sum(c._count_input_tokens(many[i:i + 40])) for i in range(0, len(many), 40))
        assert abs(est_many - exact) <= 0.10 * exact, (est_many, exact)
        assert c.estimate(reqs)["requests"] == 0  # all cached now
    assert c.model_name.startswith("local:")


def test_serve_local_cli_prints_url_and_stops(tmp_path):
    import signal
    import subprocess
    import sys
    import urllib.request

    from personagen.llm import local_available

    if local_available():
        pytest.skip(local_available())
    proc = subprocess.Popen([sys.executable, "-m", "personagen.cli", "serve-local", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with urllib.request.urlopen(url + "/models", timeout=30) as fh:
            assert b"smollm2" in fh.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
