"""In-process Hugging Face backend: a causal LM (a checkpoint folder, or a GGUF file that transformers
dequantises to float) with an optional LoRA adapter, answering with first-token option-letter logprobs.

SubPOP (paper 003, sec. 3.1 and appendix D) reads a model's answer distribution p_θ(A_q | q, g) from the
probabilities of the first generated token over the option letters A, B, C, ...; `option_logits` computes
exactly those logits, batched, with gradients when training. `HFScorer` serves completion prompts through
the same SQLite cache as every other backend (the key holds the model's and the adapter's sha256), and
`HFServer` exposes the model as an OpenAI-compatible chat server on a loopback port so `LLMClient`
(backend "hf") can use it for elicit/calibrate with unchanged cache and retry semantics.

torch, transformers and peft (the `[train]` extra) are imported inside the functions that use them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from personagen.errors import BadInput, PersonagenError
from personagen.llm.cache import Cache, canonical_json, request_key
from personagen.store import staged_dir

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GGUF_COPY_ENV = "PERSONAGEN_GGUF_COPY_MB"
TRAIN_HINT = "the hf backend and fine-tuning need the train extra: pip install 'personagen[train]'"


def train_available() -> str | None:
    """None when torch, transformers and peft import, else the reason they do not."""
    import importlib.util

    for mod in ("torch", "transformers", "peft"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed; {TRAIN_HINT}"
    return None


def local_model_reason() -> str | None:
    """None when the train extra and the bundled GGUF are both present, else why not (for tests/benchmarks)."""
    reason = train_available()
    if reason:
        return reason
    from personagen.llm.local import gguf_path

    try:
        gguf_path()
    except BadInput as e:
        return str(e)
    return None


@dataclass(frozen=True)
class ModelRef:
    """Where a model lives: a folder for `from_pretrained`, and the GGUF file name inside it (or None)."""

    folder: Path
    gguf_file: str | None

    @property
    def label(self) -> str:
        return str(self.folder / self.gguf_file) if self.gguf_file else str(self.folder)


def resolve_model(model: str | os.PathLike | None) -> ModelRef:
    """None -> the bundled SmolLM2 GGUF; a .gguf file; a folder with config.json, or with exactly one .gguf."""
    if model is None:
        from personagen.llm.local import gguf_path

        p = gguf_path()
        return ModelRef(p.parent, p.name)
    p = Path(model)
    if p.is_file() and p.suffix == ".gguf":
        return ModelRef(p.parent, p.name)
    if p.is_dir():
        if (p / "config.json").is_file():
            return ModelRef(p, None)
        ggufs = sorted(x.name for x in p.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelRef(p, ggufs[0])
        raise BadInput(f"--model {p}: folder has no config.json and {len(ggufs)} .gguf files (need one)")
    raise BadInput(f"--model {p}: not a model folder or a .gguf file")


def _tree_digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(paths):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _digest_cached(stamp: str) -> str:
    return _tree_digest([Path(p) for p, _m, _s in json.loads(stamp)])


def content_hash(path: Path) -> str:
    """sha256 (16 hex) over a model/adapter's files: a .gguf file, or a folder's top-level files."""
    files = [path] if path.is_file() else [f for f in path.iterdir() if f.is_file() and not f.name.startswith(".")]
    stamp = json.dumps(sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))
    return _digest_cached(stamp)[:16]


def hf_identity(ref: ModelRef, adapter: str | os.PathLike | None = None) -> str:
    """Cache identity `hf:<name>[+lora-<8 hex>]@sha256:<model>[+lora@sha256:<adapter>]` (content hashes, not
    paths). The part before "@" is the model name recorded with answers, so a base model and each adapter
    keep separate answers in responses.parquet."""
    base = ref.folder / ref.gguf_file if ref.gguf_file else ref.folder
    name = f"hf:{base.stem if ref.gguf_file else base.name}"
    digest = f"@sha256:{content_hash(base)}"
    if adapter is not None:
        ad = content_hash(Path(adapter))
        name += f"+lora-{ad[:8]}"
        digest += f"+lora@sha256:{ad}"
    return name + digest


def float_copy_dir(ref: ModelRef) -> Path | None:
    """Where the float32 copy of a GGUF model is kept (the personagen cache, `models/`, keyed by the GGUF's sha256
    and the transformers version), or None: not a GGUF, or $PERSONAGEN_GGUF_COPY_MB (default 2048; 0 turns the
    copy off) is below the file's size × 4 (Q4 → float32 grows a file ~7×, so only small models are copied).

    Why: transformers reads a GGUF in ~30 s even for SmolLM2-135M (it parses the 49k-token vocabulary three times
    and de-quantises every tensor); from the safetensors copy the same weights load in under a second, which a
    fine-tune's resume and each scorer pay again."""
    if not ref.gguf_file:
        return None
    try:
        limit_mb = float(os.environ.get(GGUF_COPY_ENV) or 2048)
    except ValueError:
        limit_mb = math.nan
    if math.isnan(limit_mb):
        raise BadInput(f"${GGUF_COPY_ENV}: not a number of megabytes")
    gguf = ref.folder / ref.gguf_file
    if limit_mb <= 0 or 4 * gguf.stat().st_size > limit_mb * 2**20:
        return None
    import transformers

    from personagen.resources import cache_root

    tag = "".join(c if c.isalnum() or c in ".-" else "_" for c in transformers.__version__)
    return cache_root() / "models" / f"gguf-{content_hash(gguf)}-transformers-{tag}"


def _load_float_copy(copy: Path | None, ref: ModelRef) -> tuple[Any, Any] | None:
    """(tokenizer, model) from a complete float copy, named as the GGUF load names them; None when there is none
    (no copy kept, absent or unreadable: the caller reads the model itself)."""
    if copy is None or not (copy / "model.safetensors").is_file():
        return None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(copy)
        model = AutoModelForCausalLM.from_pretrained(copy, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError):
        return None
    with torch.no_grad():  # off the file mapping into aligned memory: safetensors' tensors sit 40 bytes past a
        for p in model.parameters():  # 64-byte boundary, where BLAS rounds LoRA training differently (7th digit)
            p.data = p.data.clone()
    model.name_or_path = model.config._name_or_path = tok.name_or_path = str(ref.folder)
    return tok, model


def _plain_float(model: Any) -> None:
    """Drop transformers' GGUF quantizer mark from a de-quantised model (its weights are plain float32 tensors).

    Why: marked, it cannot be saved, and PEFT takes its quantized path (no `enable_input_require_grads`), which its
    float copy does not; unmarked, both go through the same code (and, with the copy's memory aligned by
    `_load_float_copy`, train bit-identically: the same adapter bytes after two steps)."""
    model.hf_quantizer = model.is_quantized = model.quantization_method = None  # as a float checkpoint loads
    for name in ("quantization_config", "_is_quantized"):
        if name in vars(model.config):
            delattr(model.config, name)


def _keep_float_copy(copy: Path, model: Any, tok: Any) -> None:
    """Save model and tokenizer to `copy` through `staged_dir` (a temp folder renamed into place: a reader never
    sees half a copy, two writers do not collide, a killed writer's folder is removed by the next). Best effort: a
    full disk or a read-only cache only costs the next load its ~30 s."""
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        with staged_dir(copy) as tmp:
            model.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
    except (PersonagenError, OSError, RuntimeError, ValueError):
        pass


def load_causal_lm(ref: ModelRef, adapter: str | os.PathLike | None = None, *, trainable: bool = False,
                   threads: int | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on CPU (or CUDA when present); the adapter, if given, is attached.

    `trainable=True` returns the adapter with gradients on (for resuming a fine-tune)."""
    reason = train_available()
    if reason:
        raise BadInput(reason)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(int(threads))
    kw = {"gguf_file": ref.gguf_file} if ref.gguf_file else {}
    copy = float_copy_dir(ref)
    loaded = _load_float_copy(copy, ref)
    if loaded is not None:
        tok, model = loaded
    else:
        try:
            tok = AutoTokenizer.from_pretrained(ref.folder, **kw)
            model = AutoModelForCausalLM.from_pretrained(ref.folder, dtype=torch.float32, **kw)
        except (OSError, ValueError) as e:
            raise BadInput(f"--model {ref.label}: transformers cannot load it ({str(e).splitlines()[0][:160]})") from None
        if ref.gguf_file:
            _plain_float(model)
        if copy is not None:
            _keep_float_copy(copy, model, tok)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise BadInput(f"--adapter {adapter}: no adapter_config.json (not a LoRA adapter folder)")
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    if torch.cuda.is_available():
        model = model.to("cuda")
    if not trainable:
        model.eval()
    return model, tok


def letter_token_ids(tok: Any, n: int) -> list[int]:
    """Token ids of the first n option letters as the next token after "Answer:" (i.e. " A", " B", ...)."""
    ids = []
    for letter in LETTERS[:n]:
        enc = tok(" " + letter, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            enc = tok(letter, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise BadInput(f"the tokenizer splits option letter {letter!r} into {len(enc)} tokens")
        ids.append(enc[0])
    return ids


def option_logits(model: Any, tok: Any, prompts: Sequence[str], n_options: Sequence[int], *,
                  max_length: int = 1024) -> Any:
    """Next-token logits of the option letters after each prompt: a (B, K_max) torch tensor, -inf padded.

    Softmax over a row gives p_θ(A_q | q, g) (SubPOP sec. 3.1: the first-token distribution over the option
    letters, renormalised over the question's options). Prompts are left-padded and truncated from the left
    (the answer cue at the end is kept). Gradients flow when the caller has them enabled."""
    import torch

    k_max = max(n_options)
    ids = torch.tensor(letter_token_ids(tok, k_max))
    tok.truncation_side = "left"
    enc = tok(list(prompts), return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    dev = next(model.parameters()).device
    out = model(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev),
                logits_to_keep=1)  # the lm head only at the last position (saves a vocab-sized matmul per token)
    last = out.logits[:, -1, :]
    logits = last[:, ids.to(dev)]
    mask = torch.arange(k_max, device=dev)[None, :] < torch.tensor(list(n_options), device=dev)[:, None]
    return logits.masked_fill(~mask, float("-inf"))


def option_distributions(model: Any, tok: Any, prompts: Sequence[str], n_options: Sequence[int], *,
                         batch_size: int = 16, max_length: int = 1024) -> list[list[float]]:
    """p_θ over each prompt's options (no gradients), in batches of `batch_size`."""
    import torch

    out: list[list[float]] = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            lg = option_logits(model, tok, prompts[i:i + batch_size], n_options[i:i + batch_size],
                               max_length=max_length)
            pr = torch.softmax(lg.float(), dim=-1).cpu().numpy()
            out.extend([list(map(float, row[:k])) for row, k in zip(pr, n_options[i:i + batch_size])])
    return out


class HFScorer:
    """First-token option distributions for completion prompts, through the SQLite cache (LIB/llm.sqlite or
    any path): each (model+adapter identity, prompt, number of options) is computed once, ever."""

    def __init__(self, model: str | os.PathLike | None = None, adapter: str | os.PathLike | None = None, *,
                 cache_path: str | os.PathLike | None = None, batch_size: int = 16, threads: int | None = None):
        self.ref = resolve_model(model)
        self.adapter = Path(adapter) if adapter is not None else None
        if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
            raise BadInput(f"--adapter {self.adapter}: no adapter_config.json (not a LoRA adapter folder)")
        self.identity = hf_identity(self.ref, self.adapter)
        self.cache_path = Path(cache_path) if cache_path else None
        self.batch_size = batch_size
        self.threads = threads
        self._loaded: tuple[Any, Any] | None = None
        self.stats = {"computed": 0, "cache_hits": 0}

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_causal_lm(self.ref, self.adapter, threads=self.threads)
        return self._loaded

    def unload(self) -> None:
        """Drop the loaded model (it is reloaded on the next uncached call)."""
        self._loaded = None

    def _cached(self, payloads: list[dict], compute: Any, output_tokens: int) -> list[Any]:
        """One answer per payload: read from the cache, else `compute(indices) -> answers` in batches of
        `batch_size` (one computation per distinct payload), stored as {"value": answer}."""
        keys = [request_key(pl) for pl in payloads]
        cache = Cache(self.cache_path) if self.cache_path else None
        try:
            hits = cache.get_many(keys) if cache else {}
            values: dict[str, Any] = {k: json.loads(v[0])["value"] for k, v in hits.items()}
            todo = list({k: i for i, k in enumerate(keys) if k not in values}.values())
            for s in range(0, len(todo), self.batch_size):
                chunk = todo[s:s + self.batch_size]
                t0 = time.perf_counter()
                answers = compute(chunk)
                lat = (time.perf_counter() - t0) / max(len(chunk), 1)
                for i, v in zip(chunk, answers):
                    values[keys[i]] = v
                    if cache:
                        cache.put(keys[i], self.identity, canonical_json(payloads[i]), json.dumps({"value": v}),
                                  input_tokens=0, output_tokens=output_tokens, cost_usd=0.0, latency_s=lat,
                                  attempts=1, run_id="hf")
            self.stats["computed"] += len(todo)
            self.stats["cache_hits"] += sum(1 for k in keys if k in hits)
            return [values[k] for k in keys]
        finally:
            if cache:
                cache.close()

    def distributions(self, prompts: Sequence[str], n_options: Sequence[int]) -> list[list[float]]:
        """p_θ over each prompt's options (first-token option letters); cached per (identity, prompt, n)."""
        payloads = [{"model": self.identity, "prompt": p, "kind": "first_token_options", "n": int(k)}
                    for p, k in zip(prompts, n_options)]
        return self._cached(payloads, lambda idx: option_distributions(
            *self._model(), [prompts[i] for i in idx], [int(n_options[i]) for i in idx],
            batch_size=self.batch_size), output_tokens=1)

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 64) -> list[str]:
        """Greedy continuations (the few-shot baseline's verbalised JSON), cached like `distributions`."""
        payloads = [{"model": self.identity, "prompt": p, "kind": "greedy", "max_new_tokens": int(max_new_tokens)}
                    for p in prompts]
        return self._cached(payloads, lambda idx: _greedy(*self._model(), [prompts[i] for i in idx],
                                                          max_new_tokens), output_tokens=max_new_tokens)


def _greedy(model: Any, tok: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True)
    dev = next(model.parameters()).device
    with torch.no_grad():
        out = model.generate(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

# ---- OpenAI-compatible chat server (LLMClient backend "hf") ---------------------------------------------
def _chat_prompt(tok: Any, messages: list[dict]) -> str:
    """The chat template's generation prompt when the tokenizer has one, else the contents joined."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(str(m.get("content") or "") for m in messages)


def _top_logprobs(model: Any, tok: Any, prompts: list[str], k: int) -> list[dict[str, float]]:
    """Top-k next-token log-probabilities per prompt (one batched forward pass)."""
    import torch

    with torch.no_grad():
        enc = tok(prompts, return_tensors="pt", padding=True)
        dev = next(model.parameters()).device
        out = model(input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev),
                    logits_to_keep=1)
        lp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        vals, idx = lp.topk(k, dim=-1)
    res = []
    for v_row, i_row in zip(vals.cpu().tolist(), idx.cpu().tolist()):
        d: dict[str, float] = {}
        for v, i in zip(v_row, i_row):
            t = tok.decode([i])
            d[t] = max(v, d.get(t, float("-inf")))
        res.append(d)
    return res


class HFServer:
    """The hf model behind a loopback OpenAI chat-completions endpoint. Concurrent requests are gathered by
    one worker into batches of up to `batch_size` and answered with one token and its top logprobs
    (max_tokens > 1 is refused: this backend is for first-token distributions). Same interface as the
    bundled LocalServer: `start()` -> base URL, `stop()`."""

    def __init__(self, model: str | os.PathLike | None = None, adapter: str | os.PathLike | None = None, *,
                 alias: str = "hf", batch_size: int = 16, threads: int | None = None):
        self.ref = resolve_model(model)
        self.adapter = adapter
        self.alias = alias
        self.batch_size = batch_size
        self.threads = threads
        self.root_url: str | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._loaded: tuple[Any, Any] | None = None

    @property
    def base_url(self) -> str:
        if self.root_url is None:
            raise RuntimeError("hf server is not started")
        return self.root_url + "/v1"

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._jobs.get(timeout=0.02)
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                batch.append(nxt)
            self._answer(batch)

    def _answer(self, batch: list[dict]) -> None:
        try:
            if self._loaded is None:
                self._loaded = load_causal_lm(self.ref, self.adapter, threads=self.threads)
            model, tok = self._loaded
            prompts = [_chat_prompt(tok, j["messages"]) for j in batch]
            k = max(int(j.get("top_logprobs") or 1) for j in batch)
            tops = _top_logprobs(model, tok, prompts, max(k, 1))
            for j, p, top in zip(batch, prompts, tops):
                j["result"] = (p, top)
        except Exception as e:  # noqa: BLE001 - reported to each waiting request as HTTP 500
            for j in batch:
                j["result"] = e
        for j in batch:
            j["done"].set()

    def _complete(self, req: dict) -> tuple[int, dict]:
        if req.get("model") != self.alias:
            return 404, {"error": {"message": f"The model `{req.get('model')}` does not exist"}}
        if int(req.get("max_tokens") or 1) > 1:
            return 400, {"error": {"message": "the hf backend answers one token (max_tokens 1, logprobs)"}}
        job = {"messages": req.get("messages") or [], "top_logprobs": req.get("top_logprobs"),
               "done": threading.Event()}
        self._jobs.put(job)
        job["done"].wait()
        if isinstance(job["result"], Exception):
            return 500, {"error": {"message": f"{type(job['result']).__name__}: {job['result']}"}}
        prompt, top = job["result"]
        best = max(top, key=top.get)
        tl = [{"token": t, "logprob": v} for t, v in top.items()]
        return 200, {"object": "chat.completion", "model": self.alias, "choices": [{
            "index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": best},
            "logprobs": {"content": [{"token": best, "logprob": top[best], "top_logprobs": tl}]}}],
            "usage": {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": 1}}

    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": outer.alias, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._send(*outer._complete(json.loads(raw or b"{}")))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self._worker = threading.Thread(target=self._work, daemon=True, name="personagen-hf")
        self._worker.start()
        self.root_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
            self._jobs.put(None)
            self.root_url = None
