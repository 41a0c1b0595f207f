"""Golden tests of the benchmark protocol: each value computed by hand or from the reference
formula in google-research/xtreme (scripts/*.sh, third_party/*), jiant or CoSDA-ML."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from xtrc import protocol, tasks
from xtrc.loader import load, load_text
from xtrc.plan import build

SPECS_DIR = Path(__file__).resolve().parents[2] / "specs"


# --- the protocol table and the stage graph ------------------------------------------------


def test_every_benchmark_target_has_a_protocol_and_every_xtreme_r_target_trains() -> None:
    for benchmark, table in protocol.PROTOCOLS.items():
        targets = {t for t, info in tasks.TASKS.items() if "target" in info.roles}
        assert set(table) == targets, benchmark
    xtreme_r = protocol.PROTOCOLS["xtreme-r"]
    # all ten XTREME-R targets train in every arm: directly, or (Tatoeba) through the SQuAD model
    for task in tasks.GROUPS["xtreme-r"]:
        rule = xtreme_r[task]
        assert rule.stage == "target" or rule.init == "squad", task
    assert xtreme_r["mewslix"].objective == xtreme_r["lareqa"].objective == "dual_encoder"
    assert xtreme_r["mewslix"].train_on == ("mewslix",) and xtreme_r["lareqa"].train_on == ("squad",)
    # XTREME and X-STILTs score Tatoeba and BUCC from the pretrained or intermediate checkpoint
    assert protocol.PROTOCOLS["xtreme"]["tatoeba"].init == protocol.PROTOCOLS["xtreme"]["bucc"].init == "arm"


def test_selection_defaults_follow_xtreme() -> None:
    rules = protocol.PROTOCOLS["xtreme-r"]
    assert {t: rules[t].selection for t in ("xquad", "mlqa", "tydiqa", "mewslix", "lareqa")} == dict.fromkeys(
        ("xquad", "mlqa", "tydiqa", "mewslix", "lareqa"), "last")
    assert {t: rules[t].selection for t in ("xnli", "pawsx", "udpos", "panx", "xcopa")} == dict.fromkeys(
        ("xnli", "pawsx", "udpos", "panx", "xcopa"), "dev")
    # the English dev set of the TARGET task, where it has one; XCOPA has no English: COPA's
    assert protocol.selection_task(["xnli"], "mnli", last_phase=True) == "xnli"
    assert protocol.selection_task(["panx"], "panx", last_phase=True) == "panx"
    assert protocol.selection_task(["xcopa"], "copa", last_phase=True) == "copa"
    assert protocol.selection_task(["xcopa"], "siqa", last_phase=False) == "siqa"


def test_selection_is_resolved_per_task_and_configurable() -> None:
    plan = build(load(SPECS_DIR / "combined.yaml"))
    by_task = {ev.task: s for s in plan.stages.values() if s.kind == "target" and not s.init_from
               and s.augmentation is None for ev in s.eval_tasks}
    assert by_task["xquad"].hparams.selection == "last" and by_task["xnli"].hparams.selection == "dev"
    spec = (SPECS_DIR / "smoke.yaml").read_text()
    assert "\n  tasks:\n" in spec  # smoke.yaml has a training.tasks block (XNLI's epochs): add XQuAD to it
    overridden = build(load_text(spec.replace("\n  tasks:\n", "\n  tasks:\n    xquad: {selection: dev}\n", 1)))
    xquad = {s.hparams.selection for s in overridden.stages.values() for ev in s.eval_tasks if ev.task == "xquad"}
    assert xquad == {"dev"}


def test_combined_yaml_stage_graph() -> None:
    """The stages of one arm and seed of specs/combined.yaml, written out by hand."""
    plan = build(load(SPECS_DIR / "combined.yaml"))
    arm, seed = "phang9+codeswitch", 1
    cells = {task: plan.stages[plan.cells[(arm, seed, task)]] for task in tasks.GROUPS["xtreme-r"]}
    [intermediate] = {c.init_from for t, c in cells.items() if t != "tatoeba"}
    assert plan.stages[intermediate].kind == "intermediate"
    assert plan.stages[intermediate].train_tasks == tuple(tasks.GROUPS["phang2020"])
    assert plan.stages[intermediate].augmentation is None  # the level applies to targets only

    def row(task: str) -> tuple:
        s = cells[task]
        aug = s.augmentation
        methods = () if aug is None else tuple(m for m in ("code_switch", "translate_train") if getattr(aug, m))
        dual = s.kind == "target" and protocol.dual_encoder([e.task for e in s.eval_tasks])
        return (s.kind, s.train_tasks, tuple(e.task for e in s.eval_tasks), dual, methods, s.hparams.selection,
                s.save_model)

    assert {t: row(t) for t in cells} == {
        "xnli": ("target", ("mnli",), ("xnli",), False, ("code_switch",), "dev", False),
        "xcopa": ("target", ("siqa", "copa"), ("xcopa",), False, ("code_switch",), "dev", False),
        "udpos": ("target", ("udpos",), ("udpos",), False, ("code_switch",), "dev", False),
        "panx": ("target", ("panx",), ("panx",), False, ("code_switch",), "dev", False),
        "xquad": ("target", ("squad",), ("xquad", "mlqa"), False, ("code_switch",), "last", True),
        "mlqa": ("target", ("squad",), ("xquad", "mlqa"), False, ("code_switch",), "last", True),
        "tydiqa": ("target", ("tydiqa",), ("tydiqa",), False, ("code_switch",), "last", False),
        "mewslix": ("target", ("mewslix",), ("mewslix",), True, ("code_switch",), "last", False),
        "lareqa": ("target", ("squad",), ("lareqa",), True, ("code_switch",), "last", False),
        "tatoeba": ("retrieval", (), ("tatoeba",), False, (), "dev", False),
    }
    # Tatoeba is scored from this arm's (augmented, intermediate-started) SQuAD model
    assert cells["tatoeba"].init_from == cells["xquad"].key
    assert cells["lareqa"].key != cells["xquad"].key
    # combined.yaml uses CoSDA-ML's per-word rule
    assert cells["xnli"].augmentation.code_switch.per == "word"
    # recipes: train_xcopa.sh, train_mewslix.sh, train_lareqa.sh, train_qa.sh
    hp = {t: cells[t].hparams for t in cells}
    assert (hp["xcopa"].learning_rate, hp["xcopa"].epochs, hp["xcopa"].batch_size, hp["xcopa"].grad_accum,
            hp["xcopa"].max_seq_length) == (3e-5, 5, 16, 2, 128)
    assert (hp["mewslix"].learning_rate, hp["mewslix"].epochs, hp["mewslix"].max_seq_length,
            hp["mewslix"].batch_size, hp["mewslix"].grad_accum, hp["mewslix"].warmup_ratio) == (2e-5, 2, 64, 64, 4, 0.0)
    assert (hp["lareqa"].learning_rate, hp["lareqa"].max_query_length, hp["lareqa"].max_seq_length) == (5e-5, 96, 256)
    assert (hp["xquad"].max_query_length, hp["xquad"].doc_stride) == (64, 128)


def test_multitask_hyperparameters_use_the_single_task_rule() -> None:
    """phang9: every member resolves as a single task would (4 x 8, no weight decay), and the
    settings they disagree on combine conservatively: the smallest lr and epochs, the longest
    sequence."""
    plan = build(load(SPECS_DIR / "combined.yaml"))
    [stage] = [s for s in plan.stages.values() if s.kind == "intermediate" and s.seed == 1]
    hp = stage.hparams
    assert (hp.batch_size, hp.grad_accum, hp.weight_decay) == (4, 8, 0.0)
    assert (hp.learning_rate, hp.epochs, hp.max_seq_length, hp.doc_stride, hp.warmup_ratio) == (1e-5, 2, 384, 128, 0.1)
    single = [s for s in build(load_text((SPECS_DIR / "smoke.yaml").read_text())).stages.values()
              if s.kind == "intermediate"]
    assert single  # smoke's single-task level resolves through the same function


def test_xcopa_prompt_is_run_xcopa_py() -> None:
    from xtrc_runtime.data import normalize

    row = {"premise": "The man broke his toe.", "choice1": "He dropped a hammer.", "choice2": "He sang.",
           "question": "cause", "label": 0, "idx": 1}
    assert normalize("copa", "en", row, 0).context == "The man broke his toe. What was the cause?"
    assert normalize("xcopa", "it", {**row, "question": "effect"}, 0).context == \
        "The man broke his toe. What was the effect?"


# --- Mewsli-X query text -----------------------------------------------------------------------


def test_mewslix_query_is_preprocess_mention() -> None:
    from xtrc_runtime.dual import entity_text, mention_query

    context = "He met Smith.\nThe verdict came back for Smith, who stepped down as AG of {Fictitious} County."
    start = context.index("Smith, who")
    row = {"context": context, "mention_start": start, "mention_end": start + 5,
           "sentence_spans": [{"start": 0, "end": 13}, {"start": 14, "end": len(context)}]}
    # f"{mention}: {left} {{ {mention} }} {right}", markers in the text escaped to (…), one
    # sentence of context (truncate(window_size=0)), newlines joined, one pass of "  " → " "
    assert mention_query(row) == ("Smith: The verdict came back for { Smith } , who stepped down as AG of "
                                  "(Fictitious) County.")
    whole = {k: v for k, v in row.items() if k != "sentence_spans"}
    assert mention_query(whole) == ("Smith: He met Smith. The verdict came back for { Smith } , who stepped "
                                    "down as AG of (Fictitious) County.")
    first = {**whole, "mention_start": 7, "mention_end": 12}
    assert mention_query(first) != mention_query(whole), "mentions sharing a context rank differently"
    assert entity_text({"title": "Smith", "description": "An attorney\nof  Fictitious County."}) == \
        "An attorney of Fictitious County."


# --- QA windows ----------------------------------------------------------------------------


def _word_tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *dict.fromkeys(words)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>")


def test_qa_window_starts_for_a_600_token_context() -> None:
    pytest.importorskip("transformers")
    from xtrc_runtime.data import QAExample
    from xtrc_runtime.features import encode, qa_windows

    # XTREME (processors/squad.py): window i starts at i * doc_stride; each holds
    # max_seq_length - len(question) - 4 (XLM-R's <s> q </s></s> doc </s>) = 384 - 10 - 4 = 370
    # tokens; the first window that reaches token 600 is the last.
    assert qa_windows(600, 370, 128) == [(0, 370), (128, 498), (256, 600)]
    context_words = [f"c{i}" for i in range(600)]
    question_words = [f"q{i}" for i in range(10)]
    tok = _word_tokenizer(context_words + question_words + [f"q{i}" for i in range(10, 200)])
    context = " ".join(context_words)
    answer = "c450 c451"
    example = QAExample("x", " ".join(question_words), context, [(answer, context.index(answer))])
    features = encode([example], tok, 384, doc_stride=128, max_query_len=64)

    def first_word(f) -> int:
        start = next(o for o in f.offsets if o is not None)[0]
        return int(context[start:].split()[0][1:])

    assert [first_word(f) for f in features] == [0, 128, 256]
    assert [sum(o is not None for o in f.offsets) for f in features] == [370, 370, 344]
    assert all(len(f.input_ids) <= 384 for f in features)
    # the answer (tokens 450-451) lies in windows 2 and 3 only; window 1 points at <s>. The context
    # starts after <s>, 10 question tokens and </s></s>: at position 13.
    assert features[0].label == (0, 0)
    assert features[1].label == (13 + 450 - 128, 13 + 451 - 128)
    assert features[2].label == (13 + 450 - 256, 13 + 451 - 256)

    # a 200-token question is truncated to max_query_length 64 instead of crashing the stage
    long = QAExample("y", " ".join(f"q{i}" for i in range(200)), context, [(answer, context.index(answer))])
    windows = encode([long], tok, 384, doc_stride=128, max_query_len=64)
    assert windows[0].input_ids[:66] == [0, *tok(" ".join(f"q{i}" for i in range(64)),
                                              add_special_tokens=False)["input_ids"], 2]
    budget = 384 - 64 - 4
    assert [sum(o is not None for o in f.offsets) for f in windows] == [budget, budget, budget, 600 - 384]


# --- retrieval layers and BUCC --------------------------------------------------------------


def test_retrieval_layer_for_12_and_24_layers() -> None:
    pytest.importorskip("torch")
    from xtrc_runtime.retrieval import bucc_layer, retrieval_layer

    # hidden_states[-L:][specific_layer] = hidden_states[specific_layer + 1]:
    # mBERT (12 layers) specific_layer 7 -> 8; XLM-R large (24) 13 -> 14
    assert retrieval_layer(12) == 8
    assert retrieval_layer(24) == 14
    assert retrieval_layer(2) == 2  # the tiny model: capped at its last layer
    # run_bucc2018.sh: --specific_layer 7 for every model -> hidden_states[8]
    assert bucc_layer(12) == bucc_layer(24) == 8


def test_bucc_mining_is_one_to_one_max_and_the_threshold_bucc_optimize() -> None:
    torch = pytest.importorskip("torch")
    from xtrc_runtime.retrieval import _best_threshold, mine

    # Sources 0 and 1 both lie nearest to target 0; "max" mining keeps only the better pair and
    # leaves source 1 to its next-best target.
    src = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    tgt = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05, 0.0], [0.6, 0.8, 0.0], [0.0, 0.1, 1.0]]), dim=-1)
    pairs = mine(src, tgt, k=2)
    assert len({i for _, i, _ in pairs}) == len(pairs) == len({j for _, _, j in pairs})
    assert {(i, j) for _, i, j in pairs} == {(0, 0), (1, 1), (2, 2)}
    assert [s for s, _, _ in pairs] == sorted((s for s, _, _ in pairs), reverse=True)
    # the F1 peaks after the 2nd candidate: threshold midway between the 2nd and 3rd scores
    assert _best_threshold([(3.0, 0, 0), (2.0, 1, 1), (1.0, 2, 0)], {(0, 0), (1, 1)}) == 1.5


def test_bucc_without_dev_gold_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import json

    from xtrc_runtime.data import DataError, DataLocation
    from xtrc_runtime.model import TaskModel
    from xtrc_runtime.retrieval import run
    from xtrc_runtime.tiny import build_encoder

    (tmp_path / "bucc" / "de").mkdir(parents=True)
    row = {"source_sentence": "Hund\n", "target_sentence": "dog\n", "source_lang": "de-1", "target_lang": "en-1"}
    (tmp_path / "bucc" / "de" / "test.jsonl").write_text(json.dumps(row) + "\n")
    import torch

    with pytest.raises(DataError, match="dev"):
        run("bucc", "de", DataLocation(str(tmp_path)), TaskModel(build_encoder(16), {}), None, max_len=16,
            batch_size=2, device=torch.device("cpu"), limit=None, languages=["de"])


def test_ccg_is_scored_on_token_accuracy() -> None:
    torch = pytest.importorskip("torch")
    from xtrc_runtime.data import TaggingExample
    from xtrc_runtime.evaluate import _tagging, headline
    from xtrc_runtime.features import Feature

    labels = ("N", "NP", "S[dcl]")
    example = TaggingExample("1", ["dogs", "bark", "loudly"], ["N", "S[dcl]", "NP"])
    feature = Feature([0, 5, 6, 7, 2], [], 0, word_ids=[None, 0, 1, 2, None])
    logits = torch.zeros(5, 3)
    logits[1, 0] = logits[2, 2] = logits[3, 0] = 1.0  # N, S[dcl], N: two of three words right
    result = _tagging([example], [feature], [logits], labels, token_accuracy=True)
    assert result.metrics == {"accuracy": pytest.approx(200 / 3)}
    assert headline("ccg", result.metrics) == pytest.approx(200 / 3)


# --- CoSDA-ML ------------------------------------------------------------------------------


def test_code_switch_per_word_rate_is_cosda_mls_rule() -> None:
    from xtrc.spec import CodeSwitch
    from xtrc_runtime.augment import CodeSwitcher
    from xtrc_runtime.data import SentenceExample

    # cross(): a chosen word draws a language uniformly over ALL dictionaries and is replaced
    # only if that dictionary has it. dog is in 1 of 3 dictionaries, cat in 2, sun in 3, so with
    # word_prob 0.6 they switch at 0.6/3 = 0.2, 0.4 and 0.6.
    dictionaries = {"de": {"dog": ("hund",), "cat": ("katze",), "sun": ("sonne",)},
                    "es": {"cat": ("gato",), "sun": ("sol",)},
                    "zh": {"sun": ("taiyang",)}}
    cfg = CodeSwitch(languages=["de", "es", "zh"], dictionaries="unused", ratio=1.0, word_prob=0.6, per="word")
    n = 3000
    examples = [SentenceExample(str(i), "dog cat sun", None, "x") for i in range(n)]
    out, stats = CodeSwitcher(cfg, dictionaries).switch(examples, seed=random.Random(0).randrange(100), epoch=0)
    rates = [sum(e.text_a.split()[k] != word for e in out) / n for k, word in enumerate(("dog", "cat", "sun"))]
    expected = (0.6 / 3, 0.6 * 2 / 3, 0.6)
    for rate, want in zip(rates, expected):
        assert abs(rate - want) < 0.035, (rates, expected)  # 4 binomial standard deviations at n = 3000
    assert stats["words_switched"] == sum(round(r * n) for r in rates)


# --- `xtrc tasks` --------------------------------------------------------------------------


def test_xtrc_tasks_prints_the_protocol_and_its_deviations() -> None:
    import os
    import shutil
    import subprocess
    import sys

    xtrc = shutil.which("xtrc", path=str(Path(sys.executable).parent)) or shutil.which("xtrc")
    assert xtrc, "the xtrc console script is installed"
    env = {**os.environ, "COLUMNS": "160"}
    out = subprocess.run([xtrc, "tasks"], capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert "xtreme-r protocol" in out and "deviations from the reference:" in out
    # the protocol table comes after the registry table: its rows win
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "dual_encoder" in lines["mewslix"] and "dual_encoder" in lines["lareqa"]
    assert "arm's SQuAD model" in lines["tatoeba"]
    flat = " ".join(out.split())  # long lines are wrapped to the terminal
    for rule in protocol.PROTOCOLS["xtreme-r"].values():
        for deviation in rule.deviations:
            assert " ".join(f"{rule.task}: {deviation}".split()) in flat
    xtreme = subprocess.run([xtrc, "tasks", "--benchmark", "xtreme"], capture_output=True, text=True, env=env,
                            timeout=60, check=True).stdout
    tatoeba = [line for line in xtreme.splitlines() if line.startswith("│ tatoeba")][-1]  # the protocol table
    assert "base/intermediate" in tatoeba


# --- training: the dual-encoder loss and fp16 -----------------------------------------------


def test_dual_encoder_loss_is_in_batch_cross_entropy_of_scaled_cosines() -> None:
    torch = pytest.importorskip("torch")
    from xtrc_runtime.features import collate
    from xtrc_runtime.data import DualExample
    from xtrc_runtime.model import HeadSpec, TaskModel
    from xtrc_runtime.tiny import build_encoder
    from xtrc_runtime.train import loss_for
    from xtrc_runtime.features import Feature

    model = TaskModel(build_encoder(40), {"target": HeadSpec("retrieval")}).eval()
    features = [Feature([[0, 5 + i, 2], [0, 20 + i, 21, 2]], 0, i) for i in range(4)]
    batch = collate(features, pad_id=1)
    assert batch["input_ids"].shape == (4, 2, 4)
    with torch.no_grad():
        loss = loss_for(model, "target", batch)
        q = torch.nn.functional.normalize(model.encode("target", batch["input_ids"][:, 0], batch["attention_mask"][:, 0]), dim=-1)
        c = torch.nn.functional.normalize(model.encode("target", batch["input_ids"][:, 1], batch["attention_mask"][:, 1]), dim=-1)
        # BertForRetrieval: logits = cos(q_i, c_j) * logit_scale (initialised to 100), labels = arange
        want = torch.nn.functional.cross_entropy(q @ c.T * 100.0, torch.arange(4))
    assert float(loss) == pytest.approx(float(want), rel=1e-4)
    assert DualExample("x", "q", "c").context is None


def test_fp16_trains_with_a_grad_scaler() -> None:
    torch = pytest.importorskip("torch")
    from xtrc.stage import Hyperparameters
    from xtrc_runtime.features import Feature
    from xtrc_runtime.model import HeadSpec, TaskModel
    from xtrc_runtime.tiny import build_encoder
    from xtrc_runtime.train import Trainer, TrainTask

    for precision in ("fp16", "bf16", "fp32"):  # no autocast on the CPU: no scaling either
        cpu = Trainer(TaskModel(build_encoder(40), {}), Hyperparameters(precision=precision), seed=0,
                      device=torch.device("cpu"), pad_id=1)
        assert not cpu.scaler.is_enabled()
    if not torch.cuda.is_available():
        pytest.skip("fp16 autocast needs a CUDA GPU")
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = TaskModel(build_encoder(40), {"t": HeadSpec("classification", ("a", "b"))}).to(device)
    hp = Hyperparameters(precision="fp16", batch_size=8, epochs=4, learning_rate=1e-3, warmup_ratio=0.0)
    features = [Feature([0, 5 + i % 2, 6, 2], i % 2, i) for i in range(64)]
    trainer = Trainer(model, hp, seed=0, device=device, pad_id=1)
    assert trainer.scaler.is_enabled() and trainer.autocast_dtype == torch.float16
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer.train([[TrainTask("t", "t", features)]])
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], v) for k, v in after.items()), "fp16 steps updated the weights"
    assert trainer.scaler.get_scale() > 0


def test_tatoeba_without_a_qa_target_gets_a_squad_stage_of_its_own() -> None:
    spec = (SPECS_DIR / "smoke.yaml").read_text()
    only = load_text(spec.replace("targets: [xnli, panx, xquad, tatoeba]", "targets: [tatoeba]"))
    plan = build(only)
    assert plan.count_by_kind() == {"intermediate": 2, "target": 8, "retrieval": 8}
    for (arm, seed, task), key in plan.cells.items():
        squad = plan.stages[plan.stages[key].init_from]
        assert (squad.kind, squad.train_tasks, squad.eval_tasks, squad.save_model) == ("target", ("squad",), (), True)
        assert squad.seed == seed and squad.hparams.selection == "last"
        assert protocol.dual_encoder([]) is False  # it trains its QA head
        # the arm's code-switching reaches Tatoeba through it
        assert (squad.augmentation is not None) == arm.endswith("+cs")
