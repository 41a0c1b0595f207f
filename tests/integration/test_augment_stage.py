"""A target stage with augmentation really trains, evaluates, and records what augmentation did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xtrc.loader import load_text
from xtrc.plan import build

pytestmark = pytest.mark.integration

FIXTURES = "builtin:fixtures?train=160&dev=30&test=30&languages=en,de,es"

SPEC = """\
apiVersion: xtrc.dev/v1alpha1
kind: Experiment
metadata: {name: aug}
model: builtin:tiny-xlmr
storage: {uri: "STORE"}
seeds: [1]
factors:
  augmentation:
    - name: cs
      code_switch: {languages: [de, es], dictionaries: "FIXTURES_DICTIONARIES", word_prob: 0.5, dynamic: DYNAMIC}
    - name: tt
      translate_train: {languages: [de], ratio: 0.5, paths: {panx: "TRANSLATIONS"}}
targets: [panx]
languages: {panx: [en, de]}
training:
  defaults: {learning_rate: 1.0e-3, batch_size: 16, epochs: 2, max_seq_length: 48, eval_every_steps: 100,
             checkpoint_every_steps: 100, precision: fp32}
data: {root: "FIXTURES_DATA"}
compute: {gpus: 0}
"""


def run_stage(config_json: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xtrc_runtime.cli", "run-stage", "--config", config_json],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("dynamic", ["true", "false"])
def test_augmented_target_stages_train_and_record_statistics(tmp_path: Path, dynamic: str) -> None:
    # Translate-train data for PAN-X (none exists publicly): German rows in PAN-X's own schema.
    translations = tmp_path / "panx-tt"
    (translations / "de").mkdir(parents=True)
    rows = [{"tokens": ["Anna", "wohnt", "in", "Berlin"], "ner_tags": [1, 0, 0, 5], "langs": ["de"] * 4}] * 40
    (translations / "de" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = (SPEC.replace("STORE", str(tmp_path / "store")).replace("DYNAMIC", dynamic)
            .replace("TRANSLATIONS", str(translations))
            .replace("FIXTURES_DICTIONARIES", FIXTURES.replace("?", "/dictionaries?"))
            .replace("FIXTURES_DATA", FIXTURES.replace("?", "/data?")))
    plan = build(load_text(spec))
    assert len(plan.stages) == 2
    for key, stage in plan.stages.items():
        result = run_stage(stage.to_json())
        assert result.returncode == 0, result.stderr[-3000:]
        stage_dir = tmp_path / "store" / "stages" / key
        metrics = json.loads((stage_dir / "metrics.json").read_text())
        assert set(metrics["tasks"]["panx"]["languages"]) == {"en", "de"}
        stats = metrics["augmentation"]
        if stage.augmentation.code_switch is not None:
            cs = stats["code_switch.panx"]
            assert cs["dynamic"] is (dynamic == "true")
            assert cs["words_switched"] > 0
            assert sum(cs["words_switched_per_language"].values()) == cs["words_switched"]
            assert set(cs["dictionary_coverage"]) == {"de", "es"}
            assert "augmentation code_switch.panx" in result.stderr  # the log says it too
        else:
            tt = stats["translate_train.panx"]
            assert tt["examples_added_per_language"] == {"de": 20}  # half of the 40 German rows
            assert metrics["train"]["examples"]["panx"] == 160  # English; the translations come on top
        assert (stage_dir / "_SUCCESS").exists()
