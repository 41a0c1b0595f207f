"""Labels, metrics, columns and recipes that English training tasks and targets share."""

from __future__ import annotations

from xtrc.tasks.info import Recipe

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
BINARY_LABELS: tuple[str, ...] = ("0", "1")
CLASSIFICATION_METRICS: tuple[str, ...] = ("f1", "accuracy")
MC_METRICS: tuple[str, ...] = ("accuracy",)
QA_METRICS: tuple[str, ...] = ("f1", "exact_match")

QA_FIELDS: tuple[str, ...] = ("id", "title", "context", "question", "answers")
COPA_FIELDS: tuple[str, ...] = ("premise", "choice1", "choice2", "question", "label")
# scripts/train_xcopa.sh: XLM-R large, lr 3e-5, 5 epochs for each of SIQA and COPA, 2 x 16, 128.
COPA_RECIPE = Recipe(
    learning_rate=3e-5, epochs=5, batch_size=16, grad_accum=2, max_seq_length=128,
)
COPA_PROMPT = "{premise} What was the {question}?"
"""XTREME's ``run_xcopa.py``: the premise, then "What was the cause?" or "What was the effect?"."""

UNVERIFIED_ID = "[unverified id]"
