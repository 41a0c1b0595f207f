from __future__ import annotations

import pytest

from xtrc import protocol, tasks

TRAINING_ROLES: frozenset[str] = frozenset({"intermediate", "source"})

def _union(group: str, benchmark: tasks.Benchmark) -> set[str]:
    out: set[str] = set()
    for name in tasks.GROUPS[group]:
        out.update(tasks.TASKS[name].languages_for(benchmark))
    return out


def test_every_group_member_resolves() -> None:
    for group, members in tasks.GROUPS.items():
        assert members, group
        assert len(set(members)) == len(members), group
        for member in members:
            assert tasks.resolve(member) == member


def test_every_alias_points_to_a_task() -> None:
    for alias, canonical in tasks.ALIASES.items():
        assert alias == alias.lower()
        assert canonical in tasks.TASKS
        assert tasks.resolve(alias) == canonical


def test_registry_keys_match_names() -> None:
    assert len(tasks.TASKS) == 23
    for name, info in tasks.TASKS.items():
        assert name == info.name == name.lower()


def test_benchmark_sizes() -> None:
    assert len(tasks.GROUPS["xtreme-r"]) == 10
    assert len(tasks.GROUPS["xtreme"]) == 9
    assert len(tasks.GROUPS["phang2020"]) == 9
    for name in tasks.GROUPS["xtreme-r"]:
        assert "xtreme-r" in tasks.TASKS[name].benchmarks
    for name in tasks.GROUPS["xtreme"]:
        assert "xtreme" in tasks.TASKS[name].benchmarks
    for name in tasks.GROUPS["phang2020"]:
        assert "intermediate" in tasks.TASKS[name].roles


def test_benchmark_field_matches_groups() -> None:
    for name, info in tasks.TASKS.items():
        assert ("xtreme-r" in info.benchmarks) == (name in tasks.GROUPS["xtreme-r"])
        assert ("xtreme" in info.benchmarks) == (name in tasks.GROUPS["xtreme"])


def test_xtreme_r_subgroups_partition_the_benchmark() -> None:
    parts = [
        tasks.GROUPS["xtreme-r-classification"],
        tasks.GROUPS["xtreme-r-tagging"],
        tasks.GROUPS["xtreme-r-qa"],
        tasks.GROUPS["xtreme-r-retrieval"],
    ]
    flat = [name for part in parts for name in part]
    assert sorted(flat) == sorted(tasks.GROUPS["xtreme-r"])


def test_xtreme_r_has_50_languages() -> None:
    assert len(_union("xtreme-r", "xtreme-r")) == 50


def test_xtreme_has_40_languages() -> None:
    for name in ("udpos", "panx", "xquad", "tatoeba"):
        info = tasks.TASKS[name]
        assert info.xtreme_r_added and set(info.xtreme_r_added) <= set(info.languages), name
    assert len(_union("xtreme", "xtreme")) == 40


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("xnli", 15),
        ("udpos", 38),
        ("panx", 48),
        ("tatoeba", 41),
        ("xquad", 12),
        ("xcopa", 11),
        ("mlqa", 7),
        ("tydiqa", 9),
        ("pawsx", 7),
        ("bucc", 4),
        ("mewslix", 11),
        ("lareqa", 11),
    ],
)
def test_language_counts(name: str, count: int) -> None:
    languages = tasks.TASKS[name].languages
    assert len(languages) == count
    assert len(set(languages)) == count


def test_exact_language_lists() -> None:
    assert tasks.TASKS["xnli"].languages == (
        "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
    )
    assert tasks.TASKS["xquad"].languages == (
        "en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi", "ro",
    )
    assert tasks.TASKS["xcopa"].languages == (
        "et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh",
    )
    assert tasks.TASKS["udpos"].languages[-5:] == ("lt", "pl", "uk", "wo", "ro")
    assert tasks.TASKS["panx"].languages[-8:] == ("qu", "pl", "uk", "az", "lt", "pa", "gu", "ro")
    assert tasks.TASKS["tatoeba"].languages[-5:] == ("az", "lt", "pl", "uk", "ro")
    assert "en" not in tasks.TASKS["tatoeba"].languages


def test_intermediate_and_source_tasks_are_english() -> None:
    for info in tasks.TASKS.values():
        if "target" not in info.roles:
            assert info.languages == ("en",), info.name


def test_train_on_names_exist() -> None:
    for info in tasks.TASKS.values():
        for name in info.train_on:
            assert name in tasks.TASKS, (info.name, name)
            assert "source" in tasks.TASKS[name].roles, (info.name, name)
    assert tasks.TASKS["xnli"].train_on == ("mnli",)
    assert tasks.TASKS["xquad"].train_on == ("squad",)
    assert tasks.TASKS["mlqa"].train_on == ("squad",)
    assert tasks.TASKS["xcopa"].train_on == ("siqa", "copa")


def test_training_tasks_have_a_source_or_a_reason() -> None:
    for info in tasks.TASKS.values():
        if info.roles & TRAINING_ROLES and info.name != "ccg":
            assert info.source is not None or info.notes, info.name
    ccg = tasks.TASKS["ccg"]
    assert ccg.source is None
    assert ccg.needs_data_path
    assert "LDC" in ccg.notes


def test_targets_without_a_source_explain_why() -> None:
    for info in tasks.TASKS.values():
        if info.source is None:
            assert info.notes, info.name


def test_metrics_headline_and_score() -> None:
    for info in tasks.TASKS.values():
        assert info.metrics, info.name
        if "f1" in info.metrics:
            assert info.metrics[0] == "f1", info.name
        if info.type == "qa":
            assert info.xtreme_score == "em_f1_mean"
        else:
            assert info.xtreme_score in info.metrics, info.name


def test_multiple_choice_tasks_have_num_choices() -> None:
    expected = {"hellaswag": 4, "commonsenseqa": 5, "cosmosqa": 4, "xcopa": 2, "siqa": 3, "copa": 2}
    for info in tasks.TASKS.values():
        if info.type == "multiple_choice":
            assert info.num_choices == expected[info.name]
        else:
            assert info.num_choices is None


def test_labels() -> None:
    assert tasks.TASKS["xnli"].labels == ("entailment", "neutral", "contradiction")
    assert len(tasks.TASKS["udpos"].labels) == 17
    assert tasks.TASKS["panx"].labels[0] == "O"
    assert tasks.TASKS["ccg"].labels == ()


def test_untrained_retrieval_tasks_have_no_recipe() -> None:
    # XTREME-R trains dual encoders for Mewsli-X and LAReQA; Tatoeba and BUCC never train.
    trained = {t for t, rule in protocol.PROTOCOLS["xtreme-r"].items() if rule.stage == "target"}
    assert {"mewslix", "lareqa"} <= trained
    for info in tasks.TASKS.values():
        assert (info.recipe is None) == (info.type == "retrieval" and info.name not in trained), info.name
        assert info.trains == (info.type != "retrieval")


def test_resolve_handles_aliases_and_case() -> None:
    assert tasks.resolve("XNLI") == "xnli"
    assert tasks.resolve(" PAN-X ") == "panx"
    assert tasks.resolve("WikiANN") == "panx"
    assert tasks.resolve("SQuAD2") == "squad_v2"
    assert tasks.resolve("TyDiQA-GoldP") == "tydiqa"
    assert tasks.get("Mewsli-X").name == "mewslix"
    with pytest.raises(KeyError):
        tasks.resolve("nosuchtask")


def test_suggest() -> None:
    assert tasks.suggest("xnil") == "xnli"
    assert tasks.suggest("zzzzzzzz") is None


def test_expand_has_no_duplicates() -> None:
    expanded = tasks.expand(["xtreme-r", "xnli"])
    assert len(expanded) == len(set(expanded)) == 10
    assert expanded == list(tasks.GROUPS["xtreme-r"])
    both = tasks.expand(["XTREME", "xtreme-r", "pan-x"])
    assert len(both) == len(set(both)) == 12


def test_config_for() -> None:
    udpos = tasks.TASKS["udpos"].source
    tatoeba = tasks.TASKS["tatoeba"].source
    assert udpos is not None and tatoeba is not None
    assert udpos.config_for("en") == "udpos.English"
    assert tatoeba.config_for("de") == "tatoeba.deu"
    assert tatoeba.config_for("zh") == "tatoeba.cmn"
    mlqa = tasks.TASKS["mlqa"].source
    assert mlqa is not None and mlqa.config_for("de") == "MLQA.de.de"
    panx = tasks.TASKS["panx"].source
    assert panx is not None and panx.config_for("en") == "PAN-X.en"


def test_language_mapped_configs_cover_every_language() -> None:
    for info in tasks.TASKS.values():
        source = info.source
        if source is not None and source.config and "{Language}" in source.config:
            assert set(info.languages) <= set(source.config_by_language), info.name


def test_tagging_targets_have_no_translations() -> None:
    assert tasks.TASKS["udpos"].translations is None
    assert tasks.TASKS["panx"].translations is None


def test_translations() -> None:
    xnli = tasks.TASKS["xnli"].translations
    assert xnli is not None and xnli.source is not None  # XNLI-MT 1.0 is facebook/xnli's train split
    assert (xnli.source.dataset, xnli.source.config_for("de"), xnli.source.splits["train"]) == (
        "facebook/xnli", "de", "train")
    assert xnli.source.fields == ("premise", "hypothesis", "label")  # the MNLI schema
    assert len(xnli.languages) == 14 and "en" not in xnli.languages
    pawsx = tasks.TASKS["pawsx"].translations
    assert pawsx is not None and pawsx.source is not None
    assert pawsx.languages == ("de", "es", "fr", "ja", "ko", "zh")
    for name in ("xquad", "mlqa"):
        tr = tasks.TASKS[name].translations
        assert tr is not None and tr.languages == ("ar", "de", "es", "hi", "vi", "zh")
    for info in tasks.TASKS.values():
        if info.translations is not None:
            assert set(info.translations.languages) <= set(info.languages), info.name
