"""llm stage: the only code that talks to models (client, SQLite cache/log, prices, bundled local server).

The face: the client and its request/result types, the bundled local server, the batched-call helpers the
text-writing stages share, the parsers that repair and read what a model wrote, the in-process
transformers backend (`hf`: first-token option distributions, optionally with a LoRA adapter), and the engines
past one process: the Batch API client (backend openai-batch) and the Ray Data client (elicit --engine ray).
"""

from personagen.llm.batch import client_stats, model_name, open_client, prompt, request, seed_of, texts
from personagen.llm.batch_api import BatchClient, BatchOptions
from personagen.llm.client import BudgetExceeded, ChatRequest, ChatResult, LLMClient, chat_body
from personagen.llm.constrain import (
    CONSTRAINTS,
    PROBE_MESSAGES,
    Capability,
    constraint_body,
    detect,
    unwrap_answer,
)
from personagen.llm.hf import (
    HFScorer,
    HFServer,
    ModelRef,
    hf_identity,
    load_causal_lm,
    local_model_reason,
    option_distributions,
    option_logits,
    resolve_model,
    train_available,
)
from personagen.llm.local import LOCAL_ALIAS, LocalServer, local_available, model_identity
from personagen.llm.multi import singles
from personagen.llm.parsing import clean_text, parse_json, parse_list, parse_number, strip_fences
from personagen.llm.prices import PriceTable
from personagen.llm.progress import progress_bar
from personagen.llm.ray_engine import RayClient, RayOptions
from personagen.llm.redaction import redact, register_secret

__all__ = [
    "LLMClient", "ChatRequest", "ChatResult", "BudgetExceeded", "PriceTable",
    "LOCAL_ALIAS", "LocalServer", "local_available", "model_identity",
    "client_stats", "model_name", "open_client", "prompt", "request", "seed_of", "texts",
    "clean_text", "parse_json", "parse_list", "parse_number", "strip_fences",
    "HFScorer", "HFServer", "ModelRef", "hf_identity", "load_causal_lm", "local_model_reason",
    "option_distributions", "option_logits", "resolve_model", "train_available",
    "BatchClient", "BatchOptions", "RayClient", "RayOptions",
    "redact", "register_secret", "singles", "progress_bar",
    "CONSTRAINTS", "PROBE_MESSAGES", "Capability", "chat_body", "constraint_body", "detect", "unwrap_answer",
]
