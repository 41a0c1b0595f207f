"""Reading a store whose fsspec backend is missing, or broken: `xtrc report`, `plan` and `run` as the
installed script, the backend a real distribution on PYTHONPATH that fsspec loads by its entry point."""

from __future__ import annotations

from pathlib import Path

from test_report_cli import rq_spec, run


def fsspec_backend(tmp: Path, protocol: str, target: str, source: str | None = None) -> dict[str, str]:
    """The environment of a process in which fsspec loads ``protocol`` from ``target`` (module:Class),
    an entry point of a distribution on PYTHONPATH, as installing a backend package leaves one;
    ``source``: that module's code (None: the module is missing)."""
    site = tmp / "site"
    dist = site / "xtrc_test_backend-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xtrc-test-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[fsspec.specs]\n{protocol} = {target}\n")
    if source is not None:
        (site / f"{target.split(':')[0]}.py").write_text(source)
    return {"PYTHONPATH": str(site)}


def test_a_store_protocol_without_its_backend_says_to_install_it(tmp_path: Path) -> None:
    spec = rq_spec(tmp_path / "spec")
    env = fsspec_backend(tmp_path, "gs", "xtrc_absent_backend:FileSystem")
    hint = "install its fsspec backend (pip install 'xtrc[s3]' for s3://)"
    for command, ending in (("report", ""), ("plan", ", or pass --no-store"), ("run", "")):
        result = run(command, str(spec), "--store", "gs://bucket/store", env=env)
        assert result.returncode == 2, result.stderr
        assert "error: cannot read store gs://bucket/store: " in result.stderr and hint + ending in result.stderr
        assert "Traceback" not in result.stderr
        assert "retrying" not in result.stderr  # `xtrc run`: no wait installs a backend


BUGGY_BACKEND = """\
from fsspec.spec import AbstractFileSystem


class FileSystem(AbstractFileSystem):
    protocol = "gs"

    def find(self, path, *args, **kwargs):
        import xtrc_absent_listing_helper  # the bug: a module its listing needs and nothing installs

    ls = find
"""


def test_an_import_error_while_reading_the_store_is_not_called_a_missing_backend(tmp_path: Path) -> None:
    spec = rq_spec(tmp_path / "spec")
    env = fsspec_backend(tmp_path, "gs", "xtrc_buggy_backend:FileSystem", BUGGY_BACKEND)
    for command in ("report", "plan"):
        result = run(command, str(spec), "--store", "gs://bucket/store", env=env)
        assert result.returncode == 1, result.stderr  # a bug: its traceback, not a usage error
        assert "ModuleNotFoundError: No module named 'xtrc_absent_listing_helper'" in result.stderr
        assert "fsspec backend" not in result.stderr
