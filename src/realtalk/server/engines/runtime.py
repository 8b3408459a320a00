"""A GGUF model on llama.cpp through `xllamacpp`: a prebuilt wheel, so the set-up compiles nothing.

xllamacpp runs llama.cpp's own server in-process; `handle_completions` takes the request as JSON
and streams the reply through a callback that may return True to stop. Each request names one of
the runtime's slots (one by default) and asks for `cache_prompt`, so a prompt that starts like
the slot's previous one (the same system prompt and tools, a conversation that grew by a turn)
evaluates only its new tokens; `prefill` evaluates a prefix ahead of time for that reason.

Slots keep separate caches, which llama.cpp cannot share between slots. A prompt whose start
another slot has evaluated (the ~840-token system prompt and tools: ~6 s on 2 cores) is copied
from that slot first, through llama.cpp's slot save and restore (a few ms; files in a private
temporary folder, removed at once).

That server also listens on an ephemeral 127.0.0.1 port with permissive CORS; we use it only for
those slot copies. It gets a random API key only this process knows, so nothing else on the
machine (or a web page in a browser) can use it.

One generation at a time: a lock serializes requests, so concurrent connections queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
import urllib.request
import weakref
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtalk.server.engines.base import EngineError, EngineUnavailableError

__all__ = ["Completion", "FirstToken", "LlamaRuntime", "Prompt", "default_threads"]

logger = logging.getLogger("realtalk.server")

_HOST_PROMPT_CACHE_MIB = 64  # llama.cpp's host-memory copy of old prompts (default 8 GiB)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_WORTH_COPYING = 600  # characters (~170 tokens, ~1 s on 2 cores) another slot has over this one
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat's unit


#: A prompt as text, or as text and token ids (ids stand for themselves: what the model generated
#: need not be what its text would tokenize to).
Prompt = str | list[str | int]


def _text_key(prompt: Prompt) -> str:
    """``prompt`` as one string, ids marked, for comparing prompts by their prefixes."""
    if isinstance(prompt, str):
        return prompt
    return "".join(part if isinstance(part, str) else f"\x00{part}\x00" for part in prompt)


@dataclass(frozen=True)
class FirstToken:
    """The first token of a completion and the model's likeliest first tokens, as natural-log
    probabilities before any grammar: what the model itself leaned towards writing first."""

    text: str
    logprob: float
    likeliest: dict[str, float]


@dataclass
class Completion:
    """Token counts of one completion, filled in as it runs (and its `first` token, if asked)."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    first: FirstToken | None = None


def _first_token(token: dict[str, Any]) -> FirstToken:
    """A generated token of llama.cpp's `logprobs.content` as a `FirstToken`."""
    return FirstToken(
        token.get("token", ""),
        float(token.get("logprob", -math.inf)),
        {p["token"]: float(p["logprob"]) for p in token.get("top_logprobs") or ()},
    )


def default_threads() -> int:
    """$REALTALK_LLM_THREADS, else the cores other programs leave free now: at least 1, at most 4.

    llama.cpp's threads wait for each other at every step of every token, so a thread that loses
    its core stalls them all. Measured on 2 cores, Qwen 0.5B to its sixth word: idle, 2 threads
    368 ms and 1 thread 654 ms; with both cores busy elsewhere, 2 threads 1,563 ms and 1 thread
    889 ms. So as many threads as cores are free when the model loads (what other processes use,
    over a moment, from /proc; this process's own work does not count).
    """
    explicit = os.environ.get("REALTALK_LLM_THREADS", "")
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    free = (cores or 2) - _cores_busy_elsewhere()
    return max(1, min(4, int(free + 0.5)))


def _cores_busy_elsewhere(window_s: float = 0.5) -> float:
    """How many cores other processes kept busy over `window_s` (0 where /proc cannot tell)."""

    def sample() -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # less idle, iowait
        times = os.times()
        return busy / _TICKS, times.user + times.system

    try:
        busy0, own0 = sample()
        start = time.monotonic()
        time.sleep(window_s)
        busy1, own1 = sample()
        elapsed = time.monotonic() - start
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / elapsed)


class LlamaRuntime:
    """One GGUF model loaded with xllamacpp; `complete` streams text pieces.

    ``n_ctx`` is each slot's context; ``slots`` how many prompts llama.cpp keeps evaluated.
    """

    def __init__(
        self, path: Path, *, n_ctx: int = 4096, n_threads: int | None = None, slots: int = 1
    ) -> None:
        try:
            import xllamacpp
        except ImportError as exc:
            raise EngineUnavailableError(
                "xllamacpp is not installed (pip install .[local], or run scripts/setup)"
            ) from exc
        if not path.is_file():
            raise EngineUnavailableError(f"the model file {path} does not exist")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx * slots  # shared out evenly
        params.n_parallel = slots
        n_threads = n_threads or default_threads()
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.verbosity = -1
        params.api_keys = [secrets.token_hex(24)]
        params.cache_ram_mib = _HOST_PROMPT_CACHE_MIB
        self._key = params.api_keys[0]
        self._copies = ""
        if slots > 1:
            self._copies = tempfile.mkdtemp(prefix="realtalk-slots-")
            weakref.finalize(self, shutil.rmtree, self._copies, ignore_errors=True)
            params.slot_save_path = self._copies
        try:
            self._server: Any = xllamacpp.Server(params)
        except Exception as exc:  # a corrupt or foreign file fails inside llama.cpp
            raise EngineUnavailableError(f"llama.cpp could not load {path}: {exc}") from exc
        logger.info("llama.cpp loaded %s on %d thread(s)", path.name, n_threads)
        self.path = path
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.lock = threading.Lock()
        #: The last prompt each slot evaluated in full (its cache holds it; "" if unknown).
        self._evaluated = [""] * slots

    def complete(
        self,
        prompt: Prompt,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        grammar: str | None = None,
        repeat_penalty: float = 1.0,
        stop: threading.Event | None = None,
        usage: Completion | None = None,
        tokens: list[tuple[int, bytes]] | None = None,
        likeliest: int = 0,
        slot: int = 0,
    ) -> Generator[str, None, None]:
        """The completion of `prompt` in `slot`, piece by piece; closing the iterator stops
        the model.

        The caller holds `lock`. llama.cpp generates in a loop of its own and hands pieces over
        as they come: a reader that stops reading does not stop it. To pause, set `stop` (the
        model stops at its next token) and later continue with a new request whose prompt ends
        with the text so far (its evaluation is cached, so that costs about one token).
        ``tokens``, if given, receives the id and bytes of each token generated (but those with
        no text, such as the end of the turn). ``likeliest`` > 0 fills ``usage.first`` with the
        first token and that many of the likeliest tokens in its place.
        """
        request: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": max_tokens,
            "temperature": temperature,
            "repeat_penalty": repeat_penalty,
            "cache_prompt": True,
            "stream": True,
            "timings_per_token": True,  # the prompt's size, even for a reply stopped early
            "id_slot": slot,
        }
        if temperature == 0.0:
            request["top_k"] = 1
        if grammar is not None:
            request["grammar"] = grammar
        if tokens is not None or likeliest:
            # each chunk then names its token and the likeliest ones (no measurable cost: 43 ms a
            # token for Qwen 0.5B with 0, 1 or 20 on 2 cores)
            request["n_probs"] = max(1, likeliest)
        counts = usage if usage is not None else Completion()
        key = _text_key(prompt)
        self._seed(slot, key)
        evaluated = self._evaluated
        evaluated[slot] = ""  # until llama.cpp has evaluated this prompt
        # Unbounded: llama.cpp's loop does not wait for this callback's reader anyway, and a
        # callback that never blocks sees `stop` at the very next token.
        pieces: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        halt = threading.Event()
        deliver = pieces.put

        def on_chunk(raw: str) -> bool:
            if halt.is_set() or (stop is not None and stop.is_set()):
                return True  # tells llama.cpp to stop generating
            data = json.loads(raw)
            if "error" in data:
                deliver(("error", data["error"]))
                return True
            evaluated[slot] = key  # a chunk comes once the prompt is evaluated
            choice = (data.get("choices") or [{}])[0]
            text = choice.get("text") or ""
            if choice.get("finish_reason"):
                counts.finish_reason = choice["finish_reason"]
            timings = data.get("timings")
            if timings:
                counts.prompt_tokens = int(timings.get("cache_n", 0) + timings.get("prompt_n", 0))
            found = data.get("usage")
            if found:
                counts.prompt_tokens = int(found.get("prompt_tokens", 0))
                counts.output_tokens = int(found.get("completion_tokens", 0))
            for token in (choice.get("logprobs") or {}).get("content") or ():
                if likeliest and counts.first is None:
                    counts.first = _first_token(token)
                if tokens is not None and token.get("bytes"):
                    tokens.append((int(token["id"]), bytes(token["bytes"])))
            if text:
                counts.output_tokens += 0 if found else 1
                deliver(("text", text))
            return False

        def work() -> None:
            try:
                self._server.handle_completions(json.dumps(request), on_chunk)
            except BaseException as exc:
                deliver(("error", exc))
            finally:
                deliver(("end", None))

        thread = threading.Thread(target=work, name="realtalk-llama-cpp", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = pieces.get()
                if kind == "end":
                    return
                if kind == "error":
                    if isinstance(value, BaseException):
                        raise EngineError(f"llama.cpp failed: {value}") from value
                    raise EngineError(f"llama.cpp refused the request: {value.get('message')}")
                yield value
        finally:
            halt.set()
            thread.join()

    def prefill(self, prompt: Prompt, slot: int = 0, *, grammar: str | None = None) -> None:
        """Evaluate `prompt` in `slot` now, so a later prompt that starts with it costs only
        the rest. A `grammar` is compiled too (llama.cpp's llguidance: the first grammar of
        a process costs ~800 ms on 2 cores, the ones after it a few ms).

        Nothing is done if the slot's last prompt starts with it: a warm-up as a reply ends
        and another as the user starts speaking often ask for the same conversation, and
        llama.cpp would still generate a token (~30 ms of both cores) to find it cached.
        """
        with self.lock:
            if self._evaluated[slot].startswith(_text_key(prompt)):
                return
            for _ in self.complete(prompt, max_tokens=1, slot=slot, grammar=grammar):
                pass

    def _seed(self, slot: int, key: str) -> None:
        """Copy into `slot` another slot's cache that holds much more of `key`'s start."""
        if len(self._evaluated) == 1:
            return
        # os.path.commonprefix compares characters, which is what prompts need here
        shared = [len(os.path.commonprefix([key, done])) for done in self._evaluated]  # noqa: RUF071
        source = max(range(len(shared)), key=shared.__getitem__)
        if shared[source] - shared[slot] < _WORTH_COPYING:
            return
        try:
            self._slot_action(source, "save")
            self._slot_action(slot, "restore")
        except OSError as exc:  # only time is lost: llama.cpp evaluates the prompt itself
            logger.debug("copying llama.cpp slot %d to %d failed: %s", source, slot, exc)
            return
        finally:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self._copies, "copy.bin"))
        self._evaluated[slot] = self._evaluated[source]

    def _slot_action(self, slot: int, action: str) -> None:
        request = urllib.request.Request(
            f"{self._server.listening_address}/slots/{slot}?action={action}",
            data=b'{"filename": "copy.bin"}',
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
            method="POST",
        )
        with _DIRECT.open(request, timeout=10) as response:  # never through a proxy
            response.read()
