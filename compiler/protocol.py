"""The evaluation protocol of each benchmark, defined once: for every target task, what it trains
on, from which checkpoint, with which augmentation, how its checkpoint is selected and how it is
scored, with every known departure from the reference code.

The planner builds the stage graph from it, the runtime reads the selection and objective rules
from it, and ``xtrc tasks`` prints it.

XTREME-R (``scripts/*.sh`` of google-research/xtreme after the 2021 XTREME-R import):
Mewsli-X and LAReQA fine-tune dual encoders (``train_mewslix.sh`` on English Wikipedia
mention-entity pairs, ``train_lareqa.sh`` on SQuAD v1.1), and ``run_tatoeba.sh`` scores Tatoeba from
the SQuAD-fine-tuned model. So in xtrc every XTREME-R target trains in every arm (Tatoeba through
the arm's SQuAD stage), and both factors can move all ten.

XTREME (Hu et al. 2020) and X-STILTs (Phang et al. 2020): Tatoeba and BUCC are scored from the
pretrained (or intermediate) checkpoint without target-task training.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Mapping, Sequence

from xtrc import tasks

Stage = Literal["target", "retrieval"]
Objective = Literal["task", "dual_encoder", "none"]
Init = Literal["arm", "squad"]
Selection = Literal["last", "dev"]
AugmentMethod = Literal["code_switch", "translate_train"]

SQUAD_TASK = "squad"
"""The English task of the "SQuAD-tuned model" some retrieval targets are scored from."""


@dataclass(frozen=True)
class TargetProtocol:
    task: str
    stage: Stage
    """``target``: fine-tuned, then evaluated; ``retrieval``: embedded and scored, no training."""
    train_on: tuple[str, ...]
    """English training task(s) in order (phases); empty for retrieval stages."""
    objective: Objective
    """``task``: the task's own head; ``dual_encoder``: in-batch-negatives contrastive training of
    one shared tower (XTREME's ``BertForRetrieval``); ``none``: no training."""
    init: Init
    """``arm``: the base model or the arm's intermediate checkpoint; ``squad``: the model of the
    arm's SQuAD target stage (itself started from the arm's checkpoint)."""
    augment: frozenset[AugmentMethod]
    """The arm's augmentation methods this target's training takes (retrieval stages take none
    directly; ``init: squad`` targets inherit the SQuAD stage's)."""
    selection: Selection
    """The default checkpoint selection: ``last`` or ``dev`` (best English dev score)."""
    scoring: str
    reference: str
    deviations: tuple[str, ...] = ()


_QA_DEVIATIONS = (
    "context windows come from the fast tokenizer over the whole context, not XTREME's "
    "whitespace-then-subword tokens (window starts follow XTREME's doc_stride rule)",
)
_DEV_SELECTION = (
    "the dev score is computed every eval_every_steps optimizer steps (XTREME: at each saved "
    "checkpoint)"
)


def _xtreme_r() -> dict[str, TargetProtocol]:
    cls = "accuracy"
    return {
        "xnli": TargetProtocol(
            "xnli", "target", ("mnli",), "task", "arm", frozenset({"code_switch", "translate_train"}), "dev",
            f"{cls} per language; selection on XNLI's English dev", "scripts/train_xnli.sh, run_classify.py",
            (_DEV_SELECTION,)),
        "pawsx": TargetProtocol(
            "pawsx", "target", ("pawsx",), "task", "arm", frozenset({"code_switch", "translate_train"}), "dev",
            f"{cls} per language; selection on PAWS-X's English dev", "scripts/train_pawsx.sh, run_classify.py",
            (_DEV_SELECTION,)),
        "udpos": TargetProtocol(
            "udpos", "target", ("udpos",), "task", "arm", frozenset({"code_switch", "translate_train"}), "dev",
            "seqeval F1 over first-subword predictions; selection on the English dev",
            "scripts/train_udpos.sh, run_tag.py", (_DEV_SELECTION,)),
        "panx": TargetProtocol(
            "panx", "target", ("panx",), "task", "arm", frozenset({"code_switch", "translate_train"}), "dev",
            "seqeval F1 over first-subword predictions; selection on the English dev",
            "scripts/train_panx.sh, run_tag.py", (_DEV_SELECTION,)),
        "xquad": TargetProtocol(
            "xquad", "target", ("squad",), "task", "arm", frozenset({"code_switch", "translate_train"}), "last",
            "SQuAD v1.1 EM/F1; the last checkpoint", "scripts/train_qa.sh, run_squad.py", _QA_DEVIATIONS),
        "mlqa": TargetProtocol(
            "mlqa", "target", ("squad",), "task", "arm", frozenset({"code_switch", "translate_train"}), "last",
            "MLQA EM/F1 with the answer language; the last checkpoint", "scripts/train_qa.sh, run_squad.py",
            _QA_DEVIATIONS),
        "tydiqa": TargetProtocol(
            "tydiqa", "target", ("tydiqa",), "task", "arm", frozenset({"code_switch", "translate_train"}), "last",
            "SQuAD v1.1 EM/F1 on the GoldP dev set; the last checkpoint", "scripts/train_qa.sh, run_squad.py",
            _QA_DEVIATIONS),
        "xcopa": TargetProtocol(
            "xcopa", "target", ("siqa", "copa"), "task", "arm", frozenset({"code_switch", "translate_train"}),
            "dev", "accuracy; each phase selected on its English dev (SIQA, then COPA: XCOPA has no English)",
            "scripts/train_xcopa.sh, run_xcopa.py", (_DEV_SELECTION,)),
        "mewslix": TargetProtocol(
            "mewslix", "target", ("mewslix",), "dual_encoder", "arm", frozenset({"code_switch"}), "last",
            "MRR@20 (reported as map@20); queries = the mention's sentence, the mention marked with { } "
            "and prepended; candidates = entity descriptions; normalised CLS vectors of the dual encoder",
            "scripts/train_mewslix.sh, run_retrieval_el.py, utils_mewslix.py",
            ("the pooler (dense + tanh on CLS) is a fresh head, not the checkpoint's pooler",
             "translate-train does not apply (no translated mention-entity pairs exist)",
             "a mention row without sentence_spans is marked in its whole context (the reference keeps "
             "the mention's sentence)")),
        "lareqa": TargetProtocol(
            "lareqa", "target", ("squad",), "dual_encoder", "arm", frozenset({"code_switch"}), "last",
            "mAP@20 over the multilingual pool; candidates = answer sentences encoded with their context",
            "scripts/train_lareqa.sh, run_retrieval_qa.py, utils_lareqa.py",
            ("SQuAD answer sentences are cut at sentence-final punctuation followed by whitespace, "
             "not XTREME's sentence splitter",
             "translate-train does not apply (the dual encoder trains on English SQuAD only)",
             "the pooler (dense + tanh on CLS) is a fresh head, not the checkpoint's pooler")),
        "tatoeba": TargetProtocol(
            "tatoeba", "retrieval", (), "none", "squad", frozenset(), "last",
            "accuracy; English queries the non-English index; mean pooling of hidden_states[L//2+2]",
            "scripts/run_tatoeba.sh (MODEL=models/squad), evaluate_retrieval.py",
            ("the SQuAD model is the arm's XQuAD/MLQA stage; when no such stage is planned, a SQuAD stage "
             "of its own that takes the arm's code-switching but not translate-train",)),
        "bucc": TargetProtocol(
            "bucc", "retrieval", (), "none", "squad", frozenset(), "last",
            "F1 over mined pairs: CLS of hidden_states[8], ratio margin k=4, one-to-one 'max' mining, "
            "threshold tuned on the dev (sample) gold",
            "scripts/run_bucc2018.sh, utils_retrieve.py",
            ("the hub's bucc18 holds only the gold pairs, so the mining pool is those sentences, not the "
             "full monolingual corpora: not comparable to published numbers",
             "BUCC is not an XTREME-R task; under xtreme-r it is scored like Tatoeba, from the SQuAD model")),
    }


def _xtreme() -> dict[str, TargetProtocol]:
    out = _xtreme_r()
    for task in ("tatoeba", "bucc"):
        p = out[task]
        out[task] = TargetProtocol(
            p.task, "retrieval", (), "none", "arm", frozenset(), "last", p.scoring,
            "XTREME (Hu et al. 2020) and X-STILTs (Phang et al. 2020): scored from the pretrained or "
            "intermediate checkpoint", tuple(d for d in p.deviations if "XTREME-R" not in d))
    return out


PROTOCOLS: Mapping[str, Mapping[str, TargetProtocol]] = MappingProxyType({
    "xtreme-r": MappingProxyType(_xtreme_r()),
    "xtreme": MappingProxyType(_xtreme()),
})
"""Benchmark → target task → its protocol. A spec's ``benchmark`` picks the table."""


def for_target(benchmark: str, task: str) -> TargetProtocol:
    return PROTOCOLS[benchmark][task]


def dual_encoder(eval_tasks: Sequence[str]) -> bool:
    """Whether a target stage evaluating ``eval_tasks`` trains a dual encoder (all are retrieval
    tasks: Mewsli-X, LAReQA); a stage with no evaluation (the SQuAD model) trains its task head."""
    return bool(eval_tasks) and all(tasks.TASKS[t].type == "retrieval" for t in eval_tasks)


def selection_task(eval_tasks: Sequence[str], phase_task: str, last_phase: bool) -> str:
    """Whose English dev set selects a phase's checkpoint: the target's own (XTREME's
    ``run_classify.py``/``run_tag.py``) in the last phase when it has one, else the phase's
    training task (SIQA in XCOPA's first phase; COPA in its second, since XCOPA has no English)."""
    if last_phase:
        for task in eval_tasks:
            info = tasks.TASKS[task]
            has_dev = info.needs_data_path or (info.source is not None and "dev" in info.source.splits)
            if "en" in info.languages and has_dev and info.type != "retrieval":
                return task
    return phase_task
