"""Malformed specs: every problem is reported as FILE:LINE:COL: field.path: message, with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import NamedTuple

import pytest

from xtrc import cli, spec, yamlsafe
from xtrc.errors import SpecError
from xtrc.loader import load_text

REPO = Path(__file__).resolve().parents[2]

MINIMAL = dedent("""\
    apiVersion: xtrc.dev/v1alpha1
    kind: Experiment
    metadata:
      name: tiny
    storage:
      uri: ./store
    targets: [xnli]
""")


class Case(NamedTuple):
    id: str
    text: str
    line: int
    column: int | None
    path: str
    message: str


def _grid_over_stage_limit() -> str:
    levels = "".join(f"    - name: level{i}\n      tasks: [mnli]\n" for i in range(99))
    seeds = ", ".join(str(i) for i in range(spec.MAX_STAGES // 1000))
    return MINIMAL.replace("targets: [xnli]", "targets: [xtreme-r]") + dedent(f"""\
        seeds: [{seeds}]
        data:
          root: ./data
        factors:
          intermediate:
            - none
    """) + levels


def _alias_bomb() -> str:
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcd", "bcde"):
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return MINIMAL + "\n".join(rows) + "\n"


CASES: list[Case] = [
    Case("unknown-top-level-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        seed: [1, 2]
    """), 8, 1, "seed", "unknown field; did you mean 'seeds'?"),
    Case("unknown-nested-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          gpu: 2
    """), 9, 3, "compute.gpu", "did you mean 'gpus'?"),
    Case("unknown-target-task", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnil]
    """), 7, 11, "targets[0]", "unknown task 'xnil'; did you mean 'xnli'?"),
    Case("unknown-intermediate-task-in-list", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - name: multi
              tasks: [mnli, qqpp]
    """), 12, 21, "factors.intermediate[1].tasks[1]", "unknown task 'qqpp'"),
    Case("unknown-target-after-group", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xtreme-r-qa, xnil]
    """), 7, 24, "targets[1]", "unknown task 'xnil'; did you mean 'xnli'?"),
    Case("unknown-intermediate-task-after-group", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - name: all
              tasks: [phang2020, qqpp]
    """), 12, 26, "factors.intermediate[1].tasks[1]", "unknown task 'qqpp'"),
    Case("unknown-task-as-training-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        training:
          tasks:
            xnlii:
              learning_rate: 1.0e-5
    """), 10, 5, "training.tasks.xnlii", "unknown task 'xnlii'; did you mean 'xnli'?"),
    Case("target-task-as-intermediate", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - xnli
    """), 11, 7, "factors.intermediate[1].tasks[0]", "'xnli' is a target task, not an intermediate task"),
    Case("intermediate-task-as-target", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli, mnli]
    """), 7, 17, "targets[1]", "'mnli' is not a target task"),
    Case("name-uppercase", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: Tiny
        storage:
          uri: ./store
        targets: [xnli]
    """), 4, 9, "metadata.name", "'Tiny' must be a DNS-1123 name"),
    Case("name-underscore", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: my_exp
        storage:
          uri: ./store
        targets: [xnli]
    """), 4, 9, "metadata.name", "'my_exp' must be a DNS-1123 name"),
    Case("name-too-long", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: abcdefghijklmnopqrstuvwxyz01234
        storage:
          uri: ./store
        targets: [xnli]
    """), 4, 9, "metadata.name", "at most 30 characters"),
    Case("wrong-api-version", dedent("""\
        apiVersion: xtrc.dev/v1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
    """), 1, 13, "apiVersion", "'xtrc.dev/v1alpha1'"),
    Case("wrong-kind", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experimnet
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
    """), 2, 7, "kind", "'Experiment'"),
    Case("missing-storage", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        targets: [xnli]
    """), 1, 1, "storage", "required field is missing"),
    Case("missing-targets", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
    """), 1, 1, "targets", "required field is missing"),
    Case("missing-storage-uri", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          secret: creds
        targets: [xnli]
    """), 6, 3, "storage.uri", "required field is missing"),
    Case("empty-targets", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: []
    """), 7, 10, "targets", "at least 1 item"),
    Case("duplicate-seeds", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        seeds: [1, 2, 1]
    """), 8, 8, "seeds", "seeds repeat"),
    Case("negative-seed", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        seeds: [1, -1]
    """), 8, 12, "seeds[1]", "greater than or equal to 0"),
    Case("learning-rate-zero", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        training:
          defaults:
            learning_rate: 0
    """), 10, 20, "training.defaults.learning_rate", "greater than 0"),
    Case("learning-rate-negative-per-task", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        training:
          tasks:
            xnli:
              learning_rate: -1.0e-5
    """), 11, 22, "training.tasks.xnli.learning_rate", "greater than 0"),
    Case("precision-not-allowed", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        training:
          defaults:
            precision: fp8
    """), 10, 16, "training.defaults.precision", "'bf16'"),
    Case("word-prob-above-one", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          augmentation:
            - none
            - name: cs
              code_switch:
                languages: [de]
                dictionaries: ./dicts
                word_prob: 1.5
    """), 15, 20, "factors.augmentation[1].code_switch.word_prob", "less than or equal to 1"),
    Case("code-switch-no-languages", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          augmentation:
            - none
            - name: cs
              code_switch:
                languages: []
                dictionaries: ./dicts
    """), 13, 20, "factors.augmentation[1].code_switch.languages", "at least 1 item"),
    Case("bad-language-code", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          augmentation:
            - none
            - name: cs
              code_switch:
                languages: [de, deu1]
                dictionaries: ./dicts
    """), 13, 25, "factors.augmentation[1].code_switch.languages[1]", "'deu1' must be an ISO 639 language code"),
    Case("storage-scheme-ftp", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ftp://example.org/store
        targets: [xnli]
    """), 6, 8, "storage.uri", "unsupported store scheme 'ftp'"),
    Case("credential-in-storage-options", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: s3://bucket/store
          options:
            endpoint_url: https://s3.example.org
            aws_secret_access_key: hunter2
        targets: [xnli]
    """), 9, 5, "storage.options.aws_secret_access_key", "looks like a credential"),
    Case("hub-token-in-spec", MINIMAL + dedent("""\
        hub:
          token: hf_abcdefgh
    """), 9, 3, "hub.token", "credentials never go in a spec: put it in a Kubernetes Secret and name the Secret "
       "in hub.secret (key 'token')"),
    Case("hub-token-at-top-level", MINIMAL + "hf_token: hf_abcdefgh\n", 8, 1, "hf_token",
         "name the Secret in hub.secret"),
    Case("hub-secret-typo-is-a-typo", MINIMAL + "hub: {secrets: hf}\n", 8, 7, "hub.secrets",
         "unknown field; did you mean 'secret'?"),
    Case("hub-endpoint-with-credentials", MINIMAL + "hub: {endpoint: 'https://me:hf_abc@mirror.example.org'}\n",
         8, 17, "hub.endpoint", "'me:…@' in a URL is a credential, and credentials never go in a spec: remove it "
         "and put the credentials in a Kubernetes Secret named in hub.secret"),
    Case("hub-endpoint-with-query", MINIMAL + "hub: {endpoint: 'https://mirror.example.org/?token=abc'}\n",
         8, 17, "hub.endpoint", "a hub endpoint takes no '?query' or '#fragment'"),
    Case("hub-endpoint-not-http", MINIMAL + "hub: {endpoint: 's3://mirror/hf'}\n", 8, 17, "hub.endpoint",
         "'s3://mirror/hf' is not a hub URL; write https://host[:port][/path]"),
    Case("hub-secret-not-a-name", MINIMAL + "hub: {secret: hf_abcdefgh}\n", 8, 15, "hub.secret",
         "must be a DNS-1123 name"),
    Case("bad-memory-quantity", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          memory: 64GB
    """), 9, 11, "compute.memory", "'64GB' must be a Kubernetes quantity"),
    Case("bad-duration", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          deadline: 2 days
    """), 9, 13, "compute.deadline", "'2 days' is not a duration"),
    Case("gpus-not-integer", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          gpus: two
    """), 9, 9, "compute.gpus", "valid integer"),
    Case("gpus-fractional", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          gpus: 1.5
    """), 9, 9, "compute.gpus", "valid integer"),
    Case("gpus-boolean", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          gpus: true
    """), 9, 9, "compute.gpus", "valid integer"),
    Case("arms-with-factorial-design", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        design: factorial
        arms:
          - intermediate: none
            augmentation: none
    """), 8, 9, "design", "set design: arms"),
    Case("arm-unknown-level", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - mnli
        design: arms
        arms:
          - intermediate: mnlii
            augmentation: none
    """), 14, 19, "arms[0].intermediate", "no intermediate level named 'mnlii'; did you mean 'mnli'?"),
    Case("design-arms-without-arms", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        design: arms
        arms: []
    """), 9, 7, "arms", "design: arms needs a non-empty arms: list"),
    Case("duplicate-level-names", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - mnli
            - name: mnli
              tasks: [qqp]
    """), 12, 13, "factors.intermediate[2].name", "level name 'mnli' repeats level 1"),
    Case("augmentation-level-without-method", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          augmentation:
            - none
            - name: cs
    """), 11, 7, "factors.augmentation[1]", "level 'cs' has no method"),
    Case("bad-level-name", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - name: Multi Task
              tasks: [mnli, qqp]
    """), 11, 13, "factors.intermediate[1].name", "must be a level name"),
    Case("ccg-without-data-path", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - name: tagging
              tasks: [mnli, ccg]
    """), 12, 21, "factors.intermediate[1].tasks[1]", "'ccg' has no public data source"),
    Case("ccg-via-group-without-data-path", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        factors:
          intermediate:
            - none
            - name: all9
              tasks: [phang2020]
    """), 12, 15, "factors.intermediate[1].tasks[0]", "'ccg' has no public data source"),
    Case("translate-train-panx-without-path", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [panx]
        factors:
          augmentation:
            - none
            - name: tt
              translate_train:
                languages: [de]
    """), 13, 9, "factors.augmentation[1].translate_train",
        "target 'panx': no public translate-train data exists"),
    Case("translate-train-language-outside-xquad", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xquad]
        factors:
          augmentation:
            - none
            - name: tt
              translate_train:
                languages: [de, ru]
    """), 13, 20, "factors.augmentation[1].translate_train.languages", "not for ru"),
    Case("languages-override-unknown-language", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        languages:
          xnli: [en, haw]
    """), 9, 14, "languages.xnli[1]", "'xnli' has no language 'haw' in xtreme-r"),
    Case("languages-override-alias-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [panx]
        languages:
          pan-x: [en, xx]
    """), 9, 15, "languages.pan-x[1]", "has no language 'xx'"),
    Case("bad-model-ref", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        model: builtin:huge
        storage:
          uri: ./store
        targets: [xnli]
    """), 5, 8, "model", "unknown built-in model 'builtin:huge'"),
    Case("builtin-model-typo", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        model: builtin:tiny-xlm
        storage:
          uri: ./store
        targets: [xnli]
    """), 5, 8, "model", "did you mean 'builtin:tiny-xlmr'?"),
    Case("builtin-data-root-typo", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        data:
          root: builtin:fixtures/dat
    """), 9, 9, "data.root", "no built-in data 'builtin:fixtures/dat'; did you mean 'builtin:fixtures/data'?"),
    Case("builtin-data-option-typo", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        data:
          tasks:
            xnli: {path: "builtin:fixtures/data?trian=10"}
    """), 10, 18, "data.tasks.xnli.path", "unknown option 'trian' of builtin:fixtures; did you mean 'train'?"),
    Case("factorial-grid-over-stage-limit", _grid_over_stage_limit(),
         12, 3, "factors", f"more than the limit of {spec.MAX_STAGES}"),
    Case("yaml-duplicate-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        kind: Experiment
    """), 8, 1, "kind", "duplicate key 'kind' (first at line 2)"),
    Case("yaml-duplicate-nested-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
          name: other
        storage:
          uri: ./store
        targets: [xnli]
    """), 5, 3, "metadata.name", "duplicate key 'name' (first at line 4)"),
    Case("yaml-non-string-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          1: x
    """), 9, 3, "compute", "mapping key '1' is read as int, not a string; quote it"),
    Case("yaml-python-object-tag", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata: !!python/object:builtins.dict
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
    """), 3, 11, "metadata", "YAML tags such as '!!python/object:builtins.dict' are not allowed"),
    Case("yaml-merge-key", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata: &base
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        compute:
          <<: *base
    """), 9, 3, "compute", "merge keys (<<) are not supported"),
    Case("yaml-alias-bomb", _alias_bomb(), 12, 1, "e", f"more than {yamlsafe.MAX_NODES} values"),
    Case("yaml-syntax-error", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: a: b
        targets: [xnli]
    """), 6, 9, "", "invalid YAML: mapping values are not allowed"),
    Case("yaml-two-documents", dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: tiny
        storage:
          uri: ./store
        targets: [xnli]
        ---
        apiVersion: xtrc.dev/v1alpha1
    """), 9, 1, "", "one YAML document; found several"),
    Case("yaml-empty-file", "", 1, 1, "", "the file is empty"),
    Case("yaml-only-comments", "# nothing here\n", 1, 1, "", "the file is empty"),
    Case("not-a-mapping", "- apiVersion: xtrc.dev/v1alpha1\n", 1, 1, "", "a spec is a mapping"),
]


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["validate", str(path)])
    return code, capsys.readouterr().err


def _matching_lines(err: str, path: Path, line: int, column: int | None, field: str, message: str) -> list[str]:
    where = f"{path}:{line}:" + (f"{column}:" if column is not None else "")
    return [
        row for row in err.splitlines()
        if row.startswith(where) and message in row and (not field or f": {field}" in row)
    ]


def test_minimal_spec_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    code, err = _validate(path, capsys)
    assert code == 0, err


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_malformed_spec(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(case.text, encoding="utf-8")
    code, err = _validate(path, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert f"{path}:{case.line}:" in err, err
    assert case.path in err, err
    assert case.message in err, err
    assert _matching_lines(err, path, case.line, case.column, case.path, case.message), err


def test_every_error_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(dedent("""\
        apiVersion: xtrc.dev/v1alpha1
        kind: Experiment
        metadata:
          name: Bad_Name
        storage:
          uri: ftp://example.org/store
        targets: [xnil]
        seeds: [-1]
        colour: blue
        compute:
          gpus: two
          memory: lots
    """), encoding="utf-8")
    code, err = _validate(path, capsys)
    assert code == 2
    assert "Traceback" not in err
    rows = err.splitlines()
    expected = [
        (4, 9, "metadata.name"),
        (6, 8, "storage.uri"),
        (7, 11, "targets[0]"),
        (8, 9, "seeds[0]"),
        (9, 1, "colour"),
        (11, 9, "compute.gpus"),
        (12, 11, "compute.memory"),
    ]
    assert len(rows) == len(expected), err
    for row, (line, column, field) in zip(rows, expected):
        assert re.match(rf"^{re.escape(str(path))}:{line}:{column}: {re.escape(field)}: \S", row), row


def test_debug_env_raises_instead_of_printing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XTRC_DEBUG", "1")
    path = tmp_path / "spec.yaml"
    path.write_text(MINIMAL.replace("xnli", "xnil"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        cli.main(["validate", str(path)])
    assert [issue.path for issue in info.value.issues] == ["targets[0]"]
    assert info.value.issues[0].line == 7


def test_cli_subprocess_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.replace("tiny", "Tiny"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "XTRC_DEBUG"}
    result = subprocess.run(
        [sys.executable, "-m", "xtrc.cli", "validate", str(bad)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{bad}:4:9: metadata.name: " in result.stderr


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _validate(tmp_path / "absent.yaml", capsys)
    assert code == 2
    assert "no such file" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("word", ["no", "on", "yes", "off", "y", "n"])
def test_yaml_11_booleans_stay_strings(word: str) -> None:
    exp = load_text(MINIMAL.replace("metadata:\n  name: tiny", f"metadata: {{name: {word}}}"))
    assert exp.metadata.name == word


def test_quoted_octal_salt_stays_a_string() -> None:
    exp = load_text(MINIMAL + 'salt: "0o17"\n')
    assert exp.salt == "0o17"


def test_unquoted_octal_salt_is_an_int_and_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_text(MINIMAL + "salt: 0o17\n")
    assert [(issue.line, issue.column, issue.path) for issue in info.value.issues] == [(8, 7, "salt")]


@pytest.mark.parametrize("name", ["smoke.yaml", "combined.yaml", "phang2020.yaml"])
def test_example_specs_validate(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "specs" / name
    code = cli.main(["validate", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{path}: ok (" in captured.out
