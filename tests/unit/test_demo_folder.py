"""`make demo`'s work folder (hack/demo.py): removed when the demo ends, Ctrl-C included, unless
`--keep` (make demo KEEP=1) asks to keep it, and then the demo says where it is. The demo itself
runs on the real control plane in tests/integration/test_demo.py; here only its exit path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import demo


def _interrupted_demo(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    folders: list[Path] = []

    def interrupted(workdir: Path, stage: demo.Stage, *, once: bool) -> None:
        (workdir / "cluster").mkdir()
        (workdir / "cluster" / "admin.kubeconfig").write_text("a kubeconfig with a client key")
        folders.append(workdir)
        raise KeyboardInterrupt  # Ctrl-C while the cluster runs

    monkeypatch.setattr(demo, "run_kwok", interrupted)
    return folders


def test_ctrl_c_removes_the_work_folder_with_its_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = _interrupted_demo(monkeypatch)
    assert demo.main([]) == 0
    (folder,) = folders
    assert not folder.exists()
    assert f"removed the work folder {folder}" in capsys.readouterr().out


def test_keep_keeps_the_work_folder_and_says_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = _interrupted_demo(monkeypatch)
    assert demo.main(["--keep"]) == 0
    (folder,) = folders
    try:
        assert (folder / "cluster" / "admin.kubeconfig").exists()
        assert f"kept the work folder {folder}" in capsys.readouterr().out
    finally:
        shutil.rmtree(folder)
