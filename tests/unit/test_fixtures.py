"""The synthetic fixtures: real hub schemas, correct offsets and labels, determinism, learnability."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import pytest

from xtrc import tasks
from xtrc_runtime import fixtures
from xtrc_runtime.fixtures import Sizes, generate

LANGS: tuple[str, ...] = ("en", "de", "es", "ru", "zh")
SIZES = Sizes(train=200, dev=20, test=60)
NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")

# Every column of each hub task's rows: the registry's `source.fields` plus the hub's other columns.
EXPECTED_COLUMNS: dict[str, set[str]] = {
    "anli": {"uid", "premise", "hypothesis", "label", "reason"},
    "mnli": {"premise", "hypothesis", "label", "idx"},
    "qqp": {"question1", "question2", "label", "idx"},
    "squad": {"id", "title", "context", "question", "answers"},
    "squad_v2": {"id", "title", "context", "question", "answers"},
    "hellaswag": {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id", "split",
                  "split_type", "label"},
    "commonsenseqa": {"id", "question", "question_concept", "choices", "answerKey"},
    "cosmosqa": {"id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label"},
    "siqa": {"context", "question", "answerA", "answerB", "answerC", "label"},
    "copa": {"premise", "choice1", "choice2", "question", "idx", "label"},
    "xnli": {"language", "sentence1", "sentence2", "gold_label"},
    "pawsx": {"sentence1", "sentence2", "label"},
    "udpos": {"tokens", "pos_tags"},
    "panx": {"tokens", "ner_tags", "langs"},
    "xquad": {"id", "context", "question", "answers"},
    "mlqa": {"id", "title", "context", "question", "answers"},
    "tydiqa": {"id", "title", "context", "question", "answers"},
    "bucc": {"source_sentence", "target_sentence", "source_lang", "target_lang"},
    "tatoeba": {"source_sentence", "target_sentence", "source_lang", "target_lang"},
    "xcopa": {"premise", "choice1", "choice2", "question", "label", "idx", "changed"},
}
NO_HUB_SOURCE: set[str] = {"ccg", "mewslix", "lareqa"}

STR_LIST = ("list", str)
INT_LIST = ("list", int)
ANSWERS = {"text": STR_LIST, "answer_start": INT_LIST}
# Value types, per task and column; `("list", t)` is a list of t, a dict is a nested record.
TYPES: dict[str, dict[str, Any]] = {
    "anli": {"uid": str, "premise": str, "hypothesis": str, "label": int, "reason": str},
    "mnli": {"premise": str, "hypothesis": str, "label": int, "idx": int},
    "qqp": {"question1": str, "question2": str, "label": int, "idx": int},
    "squad": {"id": str, "title": str, "context": str, "question": str, "answers": ANSWERS},
    "hellaswag": {"ind": int, "activity_label": str, "ctx_a": str, "ctx_b": str, "ctx": str,
                  "endings": STR_LIST, "source_id": str, "split": str, "split_type": str, "label": str},
    "commonsenseqa": {"id": str, "question": str, "question_concept": str,
                      "choices": {"label": STR_LIST, "text": STR_LIST}, "answerKey": str},
    "cosmosqa": {"id": str, "context": str, "question": str, "answer0": str, "answer1": str,
                 "answer2": str, "answer3": str, "label": int},
    "siqa": {"context": str, "question": str, "answerA": str, "answerB": str, "answerC": str,
             "label": str},
    "copa": {"premise": str, "choice1": str, "choice2": str, "question": str, "idx": int, "label": int},
    "xnli": {"language": str, "sentence1": str, "sentence2": str, "gold_label": str},
    "pawsx": {"sentence1": str, "sentence2": str, "label": str},
    "udpos": {"tokens": STR_LIST, "pos_tags": INT_LIST},
    "panx": {"tokens": STR_LIST, "ner_tags": INT_LIST, "langs": STR_LIST},
    "xquad": {"id": str, "context": str, "question": str, "answers": ANSWERS},
    "bucc": {"source_sentence": str, "target_sentence": str, "source_lang": str, "target_lang": str},
    "xcopa": {"premise": str, "choice1": str, "choice2": str, "question": str, "label": int,
              "idx": int, "changed": bool},
}
TYPES["squad_v2"] = TYPES["mlqa"] = TYPES["tydiqa"] = TYPES["squad"]
TYPES["tatoeba"] = TYPES["bucc"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fixtures")
    generate(str(path), languages=LANGS, sizes=SIZES, seed=0)
    return path


def rows(root: Path, rel: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / rel).read_text(encoding="utf-8").splitlines()]


def task_files(root: Path, task: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(language, split) → rows, for every data file of a task with the split layout."""
    out = {}
    for path in sorted((root / "data" / task).glob("*/*.jsonl")):
        out[(path.parent.name, path.stem)] = rows(root, str(path.relative_to(root)))
    return out


def hub_tasks() -> list[str]:
    return [name for name, info in tasks.TASKS.items() if info.source is not None]


def check_type(value: Any, spec: Any, where: str) -> None:
    if isinstance(spec, dict):
        assert isinstance(value, dict) and set(value) == set(spec), where
        for key, sub in spec.items():
            check_type(value[key], sub, f"{where}.{key}")
    elif isinstance(spec, tuple):
        assert isinstance(value, list), where
        for item in value:
            check_type(item, spec[1], where)
    else:
        # bool is an int subclass: an int column must not hold booleans
        assert type(value) is spec, f"{where}: {type(value).__name__} is not {spec.__name__}"


# --- coverage and layout ---------------------------------------------------------------------

def test_every_registered_task_gets_files(root: Path) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    paths = [f["path"] for f in manifest["files"]]
    for name in tasks.TASKS:
        assert any(p.startswith(f"data/{name}/") for p in paths), name
    assert set(EXPECTED_COLUMNS) | NO_HUB_SOURCE == set(tasks.TASKS)
    assert set(hub_tasks()) == set(EXPECTED_COLUMNS)


@pytest.mark.parametrize("task", hub_tasks())
def test_files_follow_the_registry_splits_and_languages(root: Path, task: str) -> None:
    info = tasks.TASKS[task]
    assert info.source is not None
    expected = set()
    for split in ("train", "dev", "test"):
        if split not in info.source.splits:
            continue
        if split == "train":
            expected.add(("en", split))
        else:
            expected.update((lang, split) for lang in LANGS if lang in info.languages)
    found = task_files(root, task)
    assert set(found) == expected
    for (lang, split), data in found.items():
        assert len(data) == SIZES.of(split), (lang, split)


def test_manifest_lists_every_file_with_its_row_count(root: Path) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["format"] == fixtures.FORMAT
    listed = {f["path"]: f["rows"] for f in manifest["files"]}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk
    for rel, count in listed.items():
        assert len((root / rel).read_text(encoding="utf-8").splitlines()) == count, rel


# --- schemas and values ----------------------------------------------------------------------

@pytest.mark.parametrize("task", hub_tasks())
def test_rows_have_exactly_the_hub_columns_and_types(root: Path, task: str) -> None:
    info = tasks.TASKS[task]
    assert info.source is not None
    assert set(info.source.fields) <= EXPECTED_COLUMNS[task]
    for (lang, split), data in task_files(root, task).items():
        for i, row in enumerate(data):
            assert set(row) == EXPECTED_COLUMNS[task], (lang, split, i)
            check_type(row, TYPES[task], f"{task}/{lang}/{split}[{i}]")


@pytest.mark.parametrize("task", ["squad", "squad_v2", "xquad", "mlqa", "tydiqa"])
def test_qa_answer_offsets_are_exact(root: Path, task: str) -> None:
    empty = 0
    for (lang, split), data in task_files(root, task).items():
        for row in data:
            answers = row["answers"]
            assert len(answers["text"]) == len(answers["answer_start"])
            empty += not answers["text"]
            for text, start in zip(answers["text"], answers["answer_start"]):
                assert text and text == text.strip()
                assert row["context"][start:start + len(text)] == text, (lang, split, row["id"])
            assert row["context"] == row["context"].strip()
    if task == "squad_v2":
        assert empty > 0  # unanswerable questions exist
    else:
        assert empty == 0
    ids = [row["id"] for data in task_files(root, task).values() for row in data]
    assert all(ids)


def test_squad_dev_has_several_answers_and_tydiqa_ids_name_the_language(root: Path) -> None:
    assert all(len(r["answers"]["text"]) == 3 for r in rows(root, "data/squad/en/dev.jsonl"))
    assert all(len(r["answers"]["text"]) == 1 for r in rows(root, "data/squad/en/train.jsonl"))
    names = {"en": "english-", "ru": "russian-"}
    for (lang, _), data in task_files(root, "tydiqa").items():
        assert all(r["id"].startswith(names[lang]) for r in data)
    # parallel test sets share their ids across languages, as XQuAD's do
    assert [r["id"] for r in rows(root, "data/xquad/en/test.jsonl")] == \
        [r["id"] for r in rows(root, "data/xquad/zh/test.jsonl")]


@pytest.mark.parametrize("task", ["udpos", "panx", "ccg"])
def test_tag_sequences_match_tokens(root: Path, task: str) -> None:
    key = {"udpos": "pos_tags", "panx": "ner_tags", "ccg": "tags"}[task]
    labels = tasks.TASKS[task].labels
    seen: set[Any] = set()
    for (lang, _), data in task_files(root, task).items():
        for row in data:
            assert row["tokens"] and all(t and " " not in t for t in row["tokens"])
            assert len(row[key]) == len(row["tokens"])
            seen.update(row[key])
            if labels:
                assert all(0 <= t < len(labels) for t in row[key])
            if task == "panx":
                assert row["langs"] == [lang] * len(row["tokens"])
            if task == "ccg":
                assert all(isinstance(t, str) and t for t in row[key])
    if task == "udpos":
        assert seen == set(range(len(labels)))  # every UPOS tag occurs
    if task == "panx":
        assert seen == set(range(len(labels)))


def test_panx_tags_are_well_formed_bio(root: Path) -> None:
    labels = tasks.TASKS["panx"].labels
    for data in task_files(root, "panx").values():
        for row in data:
            tags = [labels[t] for t in row["ner_tags"]]
            for prev, tag in zip(["O"] + tags, tags):
                if tag.startswith("I-"):
                    assert prev[2:] == tag[2:], tags


def test_labels_lie_within_the_task_labels_and_choices(root: Path) -> None:
    checks: dict[str, Callable[[dict[str, Any]], bool]] = {
        "anli": lambda r: r["label"] in (0, 1, 2),
        "mnli": lambda r: r["label"] in (0, 1, 2),
        "xnli": lambda r: r["gold_label"] in tasks.TASKS["xnli"].labels,
        "qqp": lambda r: r["label"] in (0, 1),
        "pawsx": lambda r: r["label"] in tasks.TASKS["pawsx"].labels,
        "hellaswag": lambda r: len(r["endings"]) == 4 and r["label"] in ("0", "1", "2", "3")
        and r["ctx"] == f"{r['ctx_a']} {r['ctx_b']}",
        "commonsenseqa": lambda r: r["choices"]["label"] == list("ABCDE") and len(r["choices"]["text"]) == 5
        and r["answerKey"] in r["choices"]["label"],
        "cosmosqa": lambda r: r["label"] in (0, 1, 2, 3),
        "siqa": lambda r: r["label"] in ("1", "2", "3"),
        "copa": lambda r: r["label"] in (0, 1) and r["question"] in ("cause", "effect"),
        "xcopa": lambda r: r["label"] in (0, 1) and r["question"] in ("cause", "effect") and r["changed"] is False,
    }
    for task, check in checks.items():
        num_choices = tasks.TASKS[task].num_choices
        if num_choices is not None and task in ("cosmosqa", "copa", "xcopa"):
            assert max(r["label"] for d in task_files(root, task).values() for r in d) < num_choices
        for (lang, split), data in task_files(root, task).items():
            assert all(check(r) for r in data), (task, lang, split)
            if task == "xnli":
                assert {r["language"] for r in data} == {lang}
    labels = Counter(r["gold_label"] for r in rows(root, "data/xnli/en/test.jsonl"))
    assert set(labels) == set(NLI_LABELS)


def test_retrieval_pairs(root: Path) -> None:
    codes = tasks.TASKS["tatoeba"].source.config_by_language  # type: ignore[union-attr]
    for (lang, split), data in task_files(root, "tatoeba").items():
        assert split == "test" and lang != "en"
        for row in data:
            assert row["source_sentence"].endswith("\n") and row["target_sentence"].endswith("\n")
            assert row["source_lang"] == codes[lang] and row["target_lang"] == "eng"
        assert len({r["target_sentence"] for r in data}) == len(data)
    for (lang, _), data in task_files(root, "bucc").items():
        for row in data:
            assert row["source_lang"].startswith(f"{lang}-") and row["target_lang"].startswith("en-")
            assert not row["source_sentence"].endswith("\n")


def test_mewslix_schema(root: Path) -> None:
    entities = rows(root, "data/mewslix/entities.jsonl")
    assert all(set(e) == {"entity_id", "title", "description"} for e in entities)
    known = {e["entity_id"] for e in entities}
    files = task_files(root, "mewslix")
    assert ("en", "train") in files
    langs = {lang for lang, _ in files}
    assert langs == {lang for lang in LANGS if lang in tasks.TASKS["mewslix"].languages}
    for (lang, split), data in files.items():
        assert split != "train" or lang == "en"
        for m in data:
            assert set(m) == {"id", "context", "mention_start", "mention_end", "entity_id"}
            assert m["entity_id"] in known
            assert 0 <= m["mention_start"] < m["mention_end"] <= len(m["context"])
            mention = m["context"][m["mention_start"]:m["mention_end"]]
            assert mention == mention.strip() and mention
        assert len({m["id"] for m in data}) == len(data)


def test_lareqa_pool_has_one_answer_per_language(root: Path) -> None:
    langs = [lang for lang in LANGS if lang in tasks.TASKS["lareqa"].languages]
    pool: dict[str, str] = {}
    for lang in langs:
        for c in rows(root, f"data/lareqa/{lang}/candidates.jsonl"):
            assert set(c) == {"id", "sentence", "context"} and c["id"] not in pool
            assert c["sentence"] in c["context"]
            pool[c["id"]] = lang
    for lang in langs:
        questions = rows(root, f"data/lareqa/{lang}/questions.jsonl")
        assert len(questions) == SIZES.test
        for q in questions:
            assert set(q) == {"id", "question", "answer_ids"}
            assert sorted(pool[a] for a in q["answer_ids"]) == sorted(langs)


# --- dictionaries ----------------------------------------------------------------------------

def read_dictionary(root: Path, lang: str) -> list[tuple[str, str]]:
    out = []
    for line in (root / f"dictionaries/en-{lang}.txt").read_text(encoding="utf-8").splitlines():
        source, target = line.split(" ", 1)
        out.append((source, target))
    return out


def test_dictionaries_are_muse_style_and_cover_the_language_specific_words(root: Path) -> None:
    assert not (root / "dictionaries/en-en.txt").exists()
    english: set[str] = set()
    for path in (root / "data").glob("*/en/*.jsonl"):
        english.update(path.read_text(encoding="utf-8").lower().replace('"', " ").split())
    for lang in LANGS[1:]:
        entries = read_dictionary(root, lang)
        assert entries and all(s and t and s == s.strip() and t == t.strip() for s, t in entries)
        assert any(" " in t for _, t in entries), "multi-word translations"
        assert any(s != s.lower() or t != t.lower() for s, t in entries), "mixed casing"
        targets = {w.lower() for _, t in entries for w in t.split()}
        words = {w.lower() for task in ("udpos", "panx") for split in ("dev", "test")
                 for row in rows(root, f"data/{task}/{lang}/{split}.jsonl") for w in row["tokens"]}
        specific = {w for w in words if w not in english and any(ch.isalpha() for ch in w)}
        assert len(specific) > 50
        assert len(specific & targets) / len(specific) >= 0.5, lang


# --- determinism and the entry points --------------------------------------------------------

def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    small = Sizes(train=20, dev=5, test=10)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    first = generate(str(a), sizes=small, seed=7)
    generate(str(b), sizes=small, seed=7)
    generate(str(c), sizes=small, seed=8)
    assert snapshot(a) == snapshot(b)
    other = snapshot(c)
    changed = [rel for rel, data in snapshot(a).items() if rel.startswith("data/") and other.get(rel) != data]
    assert len(changed) == len([f for f in first.files if f.path.startswith("data/")])
    assert first.rows("xnli") == (small.dev + small.test) * len(fixtures.DEFAULT_LANGUAGES)


GENERATED_BYTES = {
    # FIXTURES_GENERATOR -> sha256 over (path, sha256) of every file generate() writes for the
    # arguments below. Changing what the generator writes without bumping FIXTURES_GENERATOR would
    # keep the stage keys of builtin:fixtures data while the rows change under them.
    "xtrc-fixtures/2": "a609a8be57759d17f82e299f2fee2f7f1cdfb2fb565acc3549c85b12912e4cb6",
    # 3: PAN-X sentence length independent of the entity types too
    "xtrc-fixtures/3": "23fd68bbb78d6069eeb8bc149c253fb63781da4c51b62f90b0ff2ad79116d97b",
    # 4: UD-POS (and CCG) sentence length independent of the tag mix; PAN-X's rows unchanged
    "xtrc-fixtures/4": "ad164ebe23eec1644efe7192301488dae13e5478a9c8fba7e588093623914de3",
}


def test_the_generator_version_pins_the_bytes_it_writes(tmp_path: Path) -> None:
    manifest = generate(str(tmp_path), sizes=Sizes(train=20, dev=5, test=10), seed=7)
    written = hashlib.sha256(json.dumps([[f.path, f.sha256] for f in manifest.files]).encode()).hexdigest()
    assert fixtures.FORMAT in GENERATED_BYTES, f"add {fixtures.FORMAT!r}: {written!r} to GENERATED_BYTES"
    assert written == GENERATED_BYTES[fixtures.FORMAT], (
        "the fixtures generator writes other bytes than its version did: bump FIXTURES_GENERATOR "
        f"(xtrc/fingerprint.py) and pin the new version's bytes here ({written!r})")


def test_data_cached_by_another_generator_version_is_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRC_CACHE", str(tmp_path / "cache"))
    uri = "builtin:fixtures?train=20&dev=5&test=10&seed=7"
    made = Path(fixtures.resolve_builtin(uri))
    fresh = snapshot(made)
    # What an older generator left in the cache under the same folder: its rows, its version.
    manifest = json.loads((made / "manifest.json").read_text())
    (made / "manifest.json").write_text(json.dumps({**manifest, "format": "xtrc-fixtures/1"}))
    (made / "data/panx/en/train.jsonl").write_text('{"tokens": ["old"], "ner_tags": [0]}\n')
    assert Path(fixtures.resolve_builtin(uri)) == made
    assert snapshot(made) == fresh
    # A folder without a manifest (a generation cut short) is made again too.
    (made / "manifest.json").unlink()
    assert snapshot(Path(fixtures.resolve_builtin(uri))) == fresh


def test_task_selection_languages_and_errors(tmp_path: Path) -> None:
    manifest = generate(str(tmp_path), tasks=["xtreme-r-tagging", "squad1.1"], languages=["de"],
                        sizes=Sizes(train=5, dev=2, test=3))
    assert manifest.tasks == ("squad", "udpos", "panx")
    assert manifest.languages == ("en", "de")
    assert {p.split("/")[1] for p in manifest.paths() if p.startswith("data/")} == {"squad", "udpos", "panx"}
    assert (tmp_path / "dictionaries/en-de.txt").exists()
    with pytest.raises(ValueError, match="did you mean"):
        generate(str(tmp_path), tasks=["xnlii"])
    with pytest.raises(ValueError):
        Sizes(train=0)


def test_fsspec_root() -> None:
    pytest.importorskip("fsspec")
    import fsspec

    manifest = generate("memory://xtrc-fixture-test", tasks=["xnli"], sizes=Sizes(train=3, dev=2, test=2))
    fs = fsspec.filesystem("memory")
    assert fs.exists("/xtrc-fixture-test/manifest.json")
    with fs.open("/xtrc-fixture-test/data/xnli/de/test.jsonl", "rb") as f:
        assert len(f.read().decode().splitlines()) == 2
    assert manifest.rows("xnli") == 2 * 2 * len(fixtures.DEFAULT_LANGUAGES)
    fs.rm("/xtrc-fixture-test", recursive=True)


def test_cli_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = fixtures.main([str(tmp_path), "--tasks", "pawsx", "--languages", "en", "zh",
                          "--train", "4", "--dev", "2", "--test", "3", "--seed", "3"])
    assert code == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1 and "pawsx" not in out and "files" in out
    assert len(rows(tmp_path, "data/pawsx/zh/test.jsonl")) == 3


# --- learnability (no torch): simple rules fitted on English must transfer ---------------------

def test_nli_signal_words_learned_on_english_transfer(root: Path) -> None:
    by_word: dict[str, Counter[int]] = defaultdict(Counter)
    train = rows(root, "data/mnli/en/train.jsonl")
    for r in train:
        for w in set(r["hypothesis"].lower().split()):
            by_word[w][r["label"]] += 1
    signal = {w: c.most_common(1)[0][0] for w, c in by_word.items()
              if sum(c.values()) >= 8 and c.most_common(1)[0][1] >= 0.9 * sum(c.values())}
    plain = Counter(r["label"] for r in train if not signal.keys() & set(r["hypothesis"].lower().split()))
    default = plain.most_common(1)[0][0]

    def accuracy(lang: str) -> float:
        data = rows(root, f"data/xnli/{lang}/test.jsonl")
        hits = 0
        for r in data:
            words = [w for w in r["sentence2"].lower().split() if w in signal]
            hits += NLI_LABELS[signal[words[0]] if words else default] == r["gold_label"]
        return hits / len(data)

    assert accuracy("en") >= 0.8
    assert accuracy("de") > 1 / 3 + 0.1


def seqeval_f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    def chunks(tags: list[str]) -> set[tuple[str, int, int]]:
        out, kind, start = set(), None, 0
        for i, tag in enumerate(tags + ["O"]):
            if tag == "O" or tag.startswith("B-") or tag[2:] != kind:
                if kind is not None:
                    out.add((kind, start, i))
                kind, start = (None, i) if tag == "O" else (tag[2:], i)
        return out

    tp = fp = fn = 0
    for g, p in zip(gold, pred):
        gc, pc = chunks(g), chunks(p)
        tp, fp, fn = tp + len(gc & pc), fp + len(pc - gc), fn + len(gc - pc)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def test_panx_word_lookup_learned_on_english_beats_all_o_on_german(root: Path) -> None:
    labels = tasks.TASKS["panx"].labels
    by_word: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows(root, "data/panx/en/train.jsonl"):
        for w, t in zip(r["tokens"], r["ner_tags"]):
            by_word[w.lower()][labels[t]] += 1
    lookup = {w: c.most_common(1)[0][0] for w, c in by_word.items()}
    data = rows(root, "data/panx/de/test.jsonl")
    gold = [[labels[t] for t in r["ner_tags"]] for r in data]
    guessed = [[lookup.get(w.lower(), "O") for w in r["tokens"]] for r in data]
    all_o = [["O"] * len(g) for g in gold]
    assert seqeval_f1(gold, guessed) > seqeval_f1(gold, all_o) + 0.1
    english = rows(root, "data/panx/en/test.jsonl")
    english_guess = [[lookup.get(w.lower(), "O") for w in r["tokens"]] for r in english]
    assert seqeval_f1([[labels[t] for t in r["ner_tags"]] for r in english], english_guess) > 0.7


def test_panx_sentence_length_does_not_predict_the_label_mix(tmp_path: Path) -> None:
    # Length grouping batches sentences of similar length; if length predicted the entity density
    # (it did: r = -0.6) or the entity types (location lists were short: r = -0.21 for LOC, +0.16
    # for PER), grouped batches would swing in label mix, which real corpora do not.
    import statistics

    generate(str(tmp_path), tasks=["panx"], languages=("en",), sizes=Sizes(train=2000, dev=2, test=2), seed=0)
    data = rows(tmp_path, "data/panx/en/train.jsonl")
    labels = tasks.TASKS["panx"].labels
    lengths = [len(r["tokens"]) for r in data]
    density = [sum(labels[t] != "O" for t in r["ner_tags"]) / len(r["tokens"]) for r in data]
    assert abs(statistics.correlation(lengths, density)) < 0.15
    for kind in ("PER", "ORG", "LOC"):
        share = [sum(labels[t][2:] == kind for t in r["ner_tags"]) / len(r["tokens"]) for r in data]
        assert abs(statistics.correlation(lengths, share)) < 0.15, kind
    assert statistics.pstdev(lengths) > 3  # lengths still vary (grouping has something to group)
    assert len({tuple(r["tokens"]) for r in data}) > 0.7 * len(data)


def test_udpos_sentence_length_does_not_predict_the_tag_mix(tmp_path: Path) -> None:
    # The generator before xtrc-fixtures/4 tied them: one final mark in every sentence (PUNCT
    # share r = -0.56), conjunctions only in two-clause sentences (CCONJ +0.52, SCONJ +0.39), short
    # question templates (PRON -0.37, VERB -0.40), so length-grouped batches swung in tag mix.
    import statistics

    generate(str(tmp_path), tasks=["udpos"], languages=("en",), sizes=Sizes(train=3000, dev=2, test=2), seed=0)
    data = rows(tmp_path, "data/udpos/en/train.jsonl")
    labels = tasks.TASKS["udpos"].labels
    lengths = [len(r["tokens"]) for r in data]
    for index, tag in enumerate(labels):
        share = [sum(t == index for t in r["pos_tags"]) / len(r["pos_tags"]) for r in data]
        assert abs(statistics.correlation(lengths, share)) < 0.15, tag
    # Still a treebank: every sentence ends in a mark, and long ones hold punctuation inside.
    assert all(labels[r["pos_tags"][-1]] == "PUNCT" for r in data)
    assert max(sum(labels[t] == "PUNCT" for t in r["pos_tags"]) for r in data) >= 3
    assert statistics.pstdev(lengths) > 3  # lengths still vary (grouping has something to group)
    assert len({tuple(r["tokens"]) for r in data}) > 0.9 * len(data)
