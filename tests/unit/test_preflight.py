"""Preflight: every split a stage reads is read and validated before training, with FILE:LINE errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xtrc.datacheck import Need, stage_needs
from xtrc.stage import EvalTask, StageConfig
from xtrc_runtime.data import DataError, DataLocation, is_rust_panic, load, read_table
from xtrc_runtime.preflight import check_need, preflight


def write(path: Path, rows: list[Any], *, bom: bool = False, raw: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = raw if raw is not None else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def panx_root(root: Path, *, test_de: list[Any] | None = None) -> Path:
    good = [{"tokens": ["Anna", "lives", "in", "Berlin"], "ner_tags": [1, 0, 0, 5]},
            {"tokens": ["Acme", "Bank"], "ner_tags": [3, 4]}]
    write(root / "panx" / "en" / "train.jsonl", good)
    write(root / "panx" / "en" / "dev.jsonl", good)
    write(root / "panx" / "en" / "test.jsonl", good)
    write(root / "panx" / "de" / "test.jsonl", good if test_de is None else test_de)
    return root


def panx_stage(root: Path) -> StageConfig:
    return StageConfig(kind="target", model="builtin:tiny-xlmr", train_tasks=("panx",),
                       eval_tasks=(EvalTask(task="panx", languages=("en", "de")),), data_root=str(root))


def run_preflight(root: Path) -> dict[str, Any]:
    config = panx_stage(root)
    return preflight(config, DataLocation(config.data_root))


def test_needs_name_every_split_a_stage_reads() -> None:
    config = StageConfig(kind="target", model="m", train_tasks=("siqa", "copa"),
                         eval_tasks=(EvalTask(task="xcopa", languages=("et", "ht")),))
    assert stage_needs(config) == [
        Need("siqa", "en", "train"), Need("siqa", "en", "dev", optional=True),
        Need("copa", "en", "train"), Need("copa", "en", "dev", optional=True),
        Need("xcopa", "et", "test"), Need("xcopa", "ht", "test"),
    ]
    lareqa = StageConfig(kind="retrieval", model="m", eval_tasks=(EvalTask(task="lareqa", languages=("de",)),))
    assert stage_needs(lareqa) == [Need("lareqa", "de", "test", "questions"), Need("lareqa", "de", "test", "candidates")]


def test_a_valid_root_passes_and_the_test_split_is_read_before_training(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    config = panx_stage(root)
    where = DataLocation(config.data_root)
    summary = preflight(config, where)
    assert summary["panx de test"]["rows"] == 2
    assert ("panx", "de", "test") in where.tables  # read now; evaluation reuses it
    (root / "panx" / "de" / "test.jsonl").unlink()
    assert len(load("panx", "de", "test", where)) == 2  # from what the preflight read


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    write(root / "panx" / "de" / "test.jsonl", [{"tokens": ["Oslo"], "ner_tags": [5]}], bom=True)
    assert run_preflight(root)["panx de test"]["rows"] == 1


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    bad = write(root / "panx" / "de" / "test.jsonl", [],
                raw='{"tokens": ["a"], "ner_tags": [0]}\n\n{"tokens": ["b"], "ner_tags": [0\n')
    with pytest.raises(DataError, match=rf"{bad}:3:\d+: not valid JSON"):
        run_preflight(root)


def test_tags_not_one_per_token_name_the_row(tmp_path: Path) -> None:
    root = panx_root(tmp_path, test_de=[{"tokens": ["a", "b"], "ner_tags": [0, 0]},
                                        {"tokens": ["a", "b", "c"], "ner_tags": [0, 0]},
                                        {"tokens": ["a"], "ner_tags": [0, 0]}])
    with pytest.raises(DataError) as info:
        run_preflight(root)
    text = str(info.value)
    path = root / "panx" / "de" / "test.jsonl"
    assert f"{path}:2: ner_tags: 2 tags for 3 tokens; give exactly one tag per token" in text
    assert f"{path}:3: ner_tags: 2 tags for 1 tokens" in text


def test_labels_outside_the_label_set(tmp_path: Path) -> None:
    root = panx_root(tmp_path, test_de=[{"tokens": ["a", "b"], "ner_tags": [0, 9]},
                                        {"tokens": ["a"], "ner_tags": ["B-MISC"]}])
    with pytest.raises(DataError) as info:
        run_preflight(root)
    assert "test.jsonl:1: ner_tags[1]: 9 is not a label of panx" in str(info.value)
    assert "test.jsonl:2: ner_tags[0]: 'B-MISC' is not a label of panx" in str(info.value)


def test_the_first_problems_and_a_count_of_all(tmp_path: Path) -> None:
    root = panx_root(tmp_path, test_de=[{"tokens": ["a"], "ner_tags": [7]}] * 12)
    with pytest.raises(DataError, match=r"test.jsonl:5: .*; and 7 more"):
        run_preflight(root)


def test_empty_sentences_are_skipped_and_counted(tmp_path: Path) -> None:
    root = panx_root(tmp_path, test_de=[{"tokens": [], "ner_tags": []}, {"tokens": ["Oslo"], "ner_tags": [5]}])
    summary = run_preflight(root)
    assert summary["panx de test"] == {"rows": 2, "skipped": {"empty sentence": 1}}
    assert len(load("panx", "de", "test", DataLocation(str(root)))) == 1


def test_an_unrelated_bad_file_is_not_read(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    write(root / "panx" / "fr" / "test.jsonl", [], raw="not json at all\n")  # a language this stage skips
    write(root / "xnli" / "de" / "test.jsonl", [], raw="\x00\x01")
    assert run_preflight(root)["panx de test"]["rows"] == 2


def test_a_missing_test_split_fails_before_training(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    (root / "panx" / "de" / "test.jsonl").unlink()
    with pytest.raises(DataError, match=r"panx de test: missing: no test data for language 'de'"):
        run_preflight(root)


def test_a_missing_dev_split_is_not_a_gap(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    (root / "panx" / "en" / "dev.jsonl").unlink()
    assert "panx en dev" not in run_preflight(root)


def qa_check(tmp_path: Path, row: dict[str, Any]) -> list[str]:
    write(tmp_path / "xquad" / "de" / "test.jsonl", [row])
    return check_need(Need("xquad", "de", "test"), DataLocation(str(tmp_path))).problems


def test_qa_answers_must_sit_inside_their_context(tmp_path: Path) -> None:
    good = {"id": "q1", "context": "Der Hund bellt laut.", "question": "Wer bellt?",
            "answers": {"text": ["Der Hund"], "answer_start": [0]}}
    assert qa_check(tmp_path, good) == []
    moved = dict(good, answers={"text": ["Hund"], "answer_start": [0]})
    (problem,) = qa_check(tmp_path, moved)
    assert problem.endswith("test.jsonl:1: answers.answer_start[0]: context[0:4] is not 'Hund' "
                            "(the text occurs at 4); fix answer_start")
    absent = dict(good, answers={"text": ["Katze"], "answer_start": [3]})
    assert "the text is not in the context" in qa_check(tmp_path, absent)[0]


def test_parquet_rows_are_validated_too(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "xnli" / "de" / "test.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"language": "de", "sentence1": "a", "sentence2": "b", "gold_label": "maybe"},
                                         {"language": "fr", "sentence1": "a", "sentence2": "b", "gold_label": "x"}]),
                   path)
    check = check_need(Need("xnli", "de", "test"), DataLocation(str(tmp_path)))
    assert check.problems == [f"{path}:row 1: gold_label: 'maybe' is not a label of this task; use one of "
                              "entailment, neutral, contradiction"]
    assert check.skipped == {"another language": 1}


def test_read_table_reads_a_file_once(tmp_path: Path) -> None:
    root = panx_root(tmp_path)
    where = DataLocation(str(root))
    first = read_table("panx", "de", "test", where)
    assert read_table("panx", "de", "test", where) is first
    assert first.where(1) == f"{root / 'panx' / 'de' / 'test.jsonl'}:2"


def test_a_rust_panic_from_tokenizers_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    monkeypatch.setenv("RUST_BACKTRACE", "0")
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_truncation(max_length=4, stride=4)  # the stride the long question produced
    with pytest.raises(BaseException) as info:
        tok.encode("a " * 20)
    assert type(info.value).__name__ == "PanicException"
    assert not isinstance(info.value, Exception)  # so `except Exception` lets it through
    assert is_rust_panic(info.value)
    assert not is_rust_panic(ValueError("stride"))


def test_tokenization_errors_are_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    from xtrc_runtime.stage import ConfigError, _tokenized

    monkeypatch.setenv("RUST_BACKTRACE", "0")
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_truncation(max_length=4, stride=4)
    with pytest.raises(ConfigError, match="tokenizing squad: the tokenizer panicked"):
        _tokenized("squad", lambda: tok.encode("a " * 20))  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="tokenizing squad: ValueError"):
        _tokenized("squad", lambda: tok.enable_truncation(max_length=2, stride=4))  # type: ignore[arg-type,return-value]
