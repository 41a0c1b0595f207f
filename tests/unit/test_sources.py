"""Registry facts about where every (task, language, split) of XTREME and XTREME-R comes from."""

from __future__ import annotations

import pytest

from xtrc import tasks
from xtrc_runtime.data import normalize, to_registry_schema

SCRIPT_ONLY = {"allenai/social_i_qa", "allenai/cosmos_qa", "facebook/mlqa",
               "universal-dependencies/universal_dependencies"}
"""Repositories whose main branch holds a loading script (datasets >= 4 refuses it)."""


def _needed(benchmark: tasks.Benchmark) -> list[tuple[str, str, str]]:
    """(task, language, role) every target of ``benchmark`` reads: English train/dev of what it
    trains on, and each evaluation language's test split."""
    out: list[tuple[str, str, str]] = []
    for name in tasks.GROUPS[benchmark]:
        info = tasks.TASKS[name]
        for lang in info.languages_for(benchmark):
            out.append((name, lang, "test"))
        if info.trains:
            for train in info.training_tasks:
                out.append((train, "en", "train"))
    return out


@pytest.mark.parametrize("benchmark", ["xtreme", "xtreme-r"])
def test_every_task_language_split_has_a_source_or_a_reason(benchmark: tasks.Benchmark) -> None:
    for task, lang, role in _needed(benchmark):
        info = tasks.TASKS[task]
        source = info.source_for(lang)
        if source is None:
            assert info.needs_data_path and info.notes, (task, lang)
            continue
        assert role in source.splits, (task, lang, role, source.dataset)
        assert source.cite, (task, lang, source.dataset)  # each fact says where it was checked
        if source.dataset in SCRIPT_ONLY:
            assert source.revision, (task, lang, source.dataset)  # main cannot load: a pinned Parquet revision


def test_xtreme_r_additions_are_not_read_from_google_xtreme() -> None:
    for name in ("udpos", "panx", "xquad", "tatoeba"):
        info = tasks.TASKS[name]
        for lang in info.xtreme_r_added:
            source = info.source_for(lang)
            assert source is not None and source.dataset != "google/xtreme", (name, lang)
        for lang in info.languages_for("xtreme"):
            assert info.source_for(lang) is info.source, (name, lang)


def test_the_additions_sources() -> None:
    panx = tasks.TASKS["panx"].source_for("qu")
    assert panx is not None and (panx.dataset, panx.config_for("qu")) == ("unimelb-nlp/wikiann", "qu")
    xquad = tasks.TASKS["xquad"].source_for("ro")
    assert xquad is not None and (xquad.dataset, xquad.config_for("ro"), xquad.splits["test"]) == (
        "google/xquad", "xquad.ro", "validation")
    ud = tasks.TASKS["udpos"].source_for("pl")
    assert ud is not None and ud.revision == "refs/convert/parquet"
    assert ud.data_dirs_for("pl") == ("pl_lfg", "pl_pdb", "pl_pud")  # every Polish treebank, as XTREME does
    assert ud.data_dirs_for("wo") == ("wo_wtb",)
    tatoeba = tasks.TASKS["tatoeba"].source_for("az")
    assert tatoeba is not None and (tatoeba.dataset, tatoeba.config_for("az")) == (
        "mteb/tatoeba-bitext-mining", "aze-eng")
    assert tasks.TASKS["tatoeba"].source_for("de") is tasks.TASKS["tatoeba"].source  # XTREME's own


def test_intermediate_and_source_tasks_load_without_scripts() -> None:
    siqa = tasks.TASKS["siqa"].source
    assert siqa is not None and siqa.dataset == "lighteval/siqa" and siqa.revision is None
    cosmos = tasks.TASKS["cosmosqa"].source
    assert cosmos is not None and cosmos.dataset == "allenai/cosmos_qa" and cosmos.revision == "refs/pr/6"
    for name in tasks.GROUPS["phang2020"]:
        source = tasks.TASKS[name].source
        assert source is None or source.dataset not in SCRIPT_ONLY or source.revision, name


def test_mlqa_translate_train_fields_have_no_title() -> None:
    for name in ("xquad", "mlqa"):
        translations = tasks.TASKS[name].translations
        assert translations is not None and translations.source is not None
        assert "title" not in translations.source.fields
        assert translations.source.revision == "refs/pr/5"


def test_describe_names_the_revision_and_folders() -> None:
    ud = tasks.TASKS["udpos"].source_for("lt")
    assert ud is not None
    assert ud.describe("lt", "test") == (
        "universal-dependencies/universal_dependencies@refs/convert/parquet lt_alksnis+lt_hse [test]")


def test_ud_rows_become_registry_rows() -> None:
    ud = tasks.TASKS["udpos"].source_for("pl")
    assert ud is not None
    order = ud.label_names
    # a sentence with a multiword-token range (UPOS "_"), as the UD script stores it
    row = {"idx": "s1", "tokens": ["Poszedłem", "Poszedł", "em", "do", "domu", "."],
           "upos": [order.index("_"), order.index("VERB"), order.index("AUX"), order.index("ADP"),
                    order.index("NOUN"), order.index("PUNCT")]}
    converted = to_registry_schema(ud, row)
    assert converted["tokens"] == ["Poszedł", "em", "do", "domu", "."]
    assert converted["pos_tags"] == ["VERB", "AUX", "ADP", "NOUN", "PUNCT"]
    example = normalize("udpos", "pl", converted, 0)
    assert example is not None and example.tags == ["VERB", "AUX", "ADP", "NOUN", "PUNCT"]  # type: ignore[union-attr]


def test_tatoeba_mirror_rows_become_registry_rows() -> None:
    src = tasks.TASKS["tatoeba"].source_for("uk")
    assert src is not None
    row = to_registry_schema(src, {"sentence1": "Я тут.\n", "sentence2": "I am here.\n"})
    example = normalize("tatoeba", "uk", row, 3)
    assert example is not None
    assert (example.source, example.target) == ("Я тут.", "I am here.")  # type: ignore[union-attr]
