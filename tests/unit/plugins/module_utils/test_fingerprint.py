from __future__ import annotations

import os

from ansible_collections.immutable.deploy.plugins.module_utils.images.fingerprint import context_files, fingerprint


def _context(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    (tmp_path / "app").write_text("v1")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "x.log").write_text("noise")
    return str(tmp_path), str(tmp_path / "Dockerfile")


def test_stable_for_same_inputs(tmp_path):
    ctx, df = _context(tmp_path)
    assert fingerprint(ctx, df, {"A": "1"}) == fingerprint(ctx, df, {"A": "1"})


def test_changes_with_each_input(tmp_path):
    ctx, df = _context(tmp_path)
    base = fingerprint(ctx, df)
    assert fingerprint(ctx, df, {"A": "1"}) != base
    assert fingerprint(ctx, df, target="prod") != base
    assert fingerprint(ctx, df, labels={"team": "a"}) != base
    (tmp_path / "app").write_text("v2")
    changed_file = fingerprint(ctx, df)
    assert changed_file != base
    os.chmod(tmp_path / "app", 0o755)
    assert fingerprint(ctx, df) != changed_file


def test_dockerignore_excludes_and_reincludes(tmp_path):
    ctx, df = _context(tmp_path)
    before = fingerprint(ctx, df)
    (tmp_path / ".dockerignore").write_text("logs\n*.tmp\n!keep.tmp\n")
    (tmp_path / "junk.tmp").write_text("x")
    (tmp_path / "keep.tmp").write_text("x")
    files = context_files(ctx)
    assert "logs/x.log" not in files and "junk.tmp" not in files
    assert "keep.tmp" in files and ".dockerignore" in files
    with_ignore = fingerprint(ctx, df)
    (tmp_path / "logs" / "x.log").write_text("more noise")
    assert fingerprint(ctx, df) == with_ignore != before
