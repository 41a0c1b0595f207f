"""One shared encoder with one head per task: classification, multiple choice, tagging, span QA,
and a dual-encoder retrieval head (Mewsli-X, LAReQA).

Saved as a directory: the encoder in Hugging Face format (``config.json``, ``model.safetensors``),
the tokenizer files, and the heads in ``heads.safetensors`` with their specs in ``heads.json``.
Downstream stages load the encoder and tokenizer; heads are task-specific and start fresh.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

HEADS_JSON = "heads.json"
HEADS_WEIGHTS = "heads.safetensors"


@dataclass(frozen=True)
class HeadSpec:
    type: str  # classification | multiple_choice | tagging | qa | retrieval
    labels: tuple[str, ...] = ()

    @property
    def outputs(self) -> int:
        return {"multiple_choice": 1, "qa": 2}.get(self.type, len(self.labels))


RETRIEVAL_LOGIT_SCALE = 100.0
"""XTREME's ``BertForRetrieval`` multiplies cosine similarities by a learned scale initialised to 100."""


class Head(nn.Module):
    def __init__(self, spec: HeadSpec, hidden: int, dropout: float):
        super().__init__()
        self.spec = spec
        self.dropout = nn.Dropout(dropout)
        # Sentence-level heads get XLM-R's classification head shape (dense + tanh + out); the
        # retrieval head is BERT's pooler (dense + tanh on the first token) and a logit scale.
        self.dense = nn.Linear(hidden, hidden) if spec.type in ("classification", "multiple_choice", "retrieval") else None
        if spec.type == "retrieval":
            self.out = None
            self.scale = nn.Parameter(torch.tensor(RETRIEVAL_LOGIT_SCALE))
        else:
            self.out = nn.Linear(hidden, spec.outputs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.out is None:  # retrieval: the pooled sentence vector (not normalised)
            return torch.tanh(self.dense(hidden[:, 0]))
        if self.dense is not None:
            x = self.dropout(hidden[:, 0])
            x = torch.tanh(self.dense(x))
            return self.out(self.dropout(x))
        return self.out(self.dropout(hidden))


class TaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, heads: dict[str, HeadSpec]):
        super().__init__()
        require_sdpa(encoder)
        self.encoder = encoder
        config = encoder.config
        self.heads = nn.ModuleDict({
            name: Head(spec, config.hidden_size, config.hidden_dropout_prob) for name, spec in heads.items()
        })

    def forward(self, head: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        spec = self.heads[head].spec
        if spec.type in ("multiple_choice", "retrieval"):
            # [batch, n, length]: choices to score, or (query, candidate) pairs to embed
            batch, n, length = input_ids.shape
            hidden = self.encoder(input_ids=input_ids.view(-1, length),
                                  attention_mask=attention_mask.view(-1, length)).last_hidden_state
            out = self.heads[head](hidden)
            return out.view(batch, n) if spec.type == "multiple_choice" else out.view(batch, n, -1)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads[head](hidden)

    def encode(self, head: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors from a retrieval head (one tower: queries and candidates alike)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads[head](hidden)

    @torch.no_grad()
    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int,
              pooling: str = "mean") -> torch.Tensor:
        """hidden_states[layer] pooled: the mean over the attention mask (special tokens included,
        as XTREME does) or the first token (``cls``)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        states = out.hidden_states[min(layer, len(out.hidden_states) - 1)]
        if pooling == "cls":
            return states[:, 0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1)


def require_sdpa(encoder: nn.Module) -> None:
    """The encoder must run PyTorch's fused attention (SDPA: flash or memory-efficient kernels on a
    GPU); the eager path materialises every attention matrix and is several times slower."""
    implementation = getattr(encoder.config, "_attn_implementation", None)
    if implementation != "sdpa":
        raise RuntimeError(f"the encoder loaded with attn_implementation={implementation!r}, not 'sdpa': "
                           "use a transformers version whose model class supports SDPA")


def save(model: TaskModel, tokenizer: Any, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
    specs = {name: asdict(head.spec) for name, head in model.heads.items()}
    (directory / HEADS_JSON).write_text(json.dumps(specs, sort_keys=True, indent=1))
    weights = {f"{name}.{k}": v.contiguous() for name, head in model.heads.items() for k, v in head.state_dict().items()}
    save_file(weights, str(directory / HEADS_WEIGHTS))


def load_encoder(directory_or_id: str, revision: str | None = None):  # -> (encoder, tokenizer)
    """A pretrained encoder and its tokenizer from a directory, or from a hub id at ``revision``
    (the commit sha the planner pinned; None: the hub's main branch)."""
    from transformers import AutoModel, AutoTokenizer

    encoder = AutoModel.from_pretrained(directory_or_id, attn_implementation="sdpa", add_pooling_layer=False,
                                        revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(directory_or_id, revision=revision)
    return encoder, tokenizer


def load_heads(model: TaskModel, directory: Path) -> None:
    """Load saved heads whose name and spec match heads of ``model`` (for evaluation of a saved model)."""
    from safetensors.torch import load_file

    path = directory / HEADS_WEIGHTS
    if not path.exists():
        return
    specs = json.loads((directory / HEADS_JSON).read_text())
    weights = load_file(str(path))
    for name, head in model.heads.items():
        if name in specs and HeadSpec(specs[name]["type"], tuple(specs[name]["labels"])) == head.spec:
            head.load_state_dict({k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(name + ".")})
