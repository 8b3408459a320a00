"""Debian's baresip as the caller: a temp config (loopback only, no STUN, no sound card), a WAV
played as the microphone (``aufile``), what it hears written by ``sndfile``, and commands over
its ``ctrl_tcp`` netstring socket (dial, send DTMF, hang up)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

MODULES = Path("/usr/lib/baresip/modules")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Baresip:
    def __init__(self, folder: Path, microphone: Path, *, account: str = "") -> None:
        exe = shutil.which("baresip")
        if exe is None or not MODULES.is_dir():
            pytest.skip("baresip is not installed (scripts/setup installs it)")
        self.exe = exe
        self.folder = folder
        self.recordings = folder / "recordings"
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.ctrl_port = free_port()
        sip_port = free_port(socket.SOCK_DGRAM)
        config = f"""
poll_method		poll
sip_listen		127.0.0.1:{sip_port}
sip_transports		udp,tcp
audio_player		aubridge,nowhere
audio_source		aufile,{microphone}
audio_alert		aubridge,nowhere
ausrc_srate		8000
auplay_srate		8000
ausrc_channels		1
auplay_channels		1
audio_buffer		20-160
rtp_ports		20000-40000
jitter_buffer_delay	1-10
module_path		{MODULES}
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{self.ctrl_port}
snd_path		{self.recordings}
net_interface		127.0.0.1
dns_server		127.0.0.1:53
"""
        (folder / "config").write_text(config)
        uri = account or "<sip:caller@127.0.0.1>;regint=0"
        (folder / "accounts").write_text(f"{uri};audio_codecs=PCMU,PCMA\n")
        (folder / "contacts").write_text("")
        self.process: asyncio.subprocess.Process | None = None
        self.log = bytearray()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.exe,
            "-f",
            str(self.folder),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        async with asyncio.timeout(20):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                    writer.close()
                    return
                except OSError:
                    if self.process.returncode is not None:
                        log = self.log.decode(errors="replace")
                        raise RuntimeError(f"baresip exited: {log}") from None
                    await asyncio.sleep(0.1)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.log += line

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        writer.write(str(len(body)).encode() + b":" + body + b",")
        await writer.drain()
        try:
            async with asyncio.timeout(10):
                while True:
                    length = await reader.readuntil(b":")
                    data = await reader.readexactly(int(length[:-1]))
                    await reader.readexactly(1)
                    reply: dict[str, Any] = json.loads(data)
                    if reply.get("response"):
                        return reply
        finally:
            writer.close()

    def output(self) -> str:
        return self.log.decode(errors="replace")

    def heard(self) -> list[Path]:
        """WAVs of what baresip decoded from us (sndfile's ``dump-*-dec.wav``)."""
        return sorted(self.recordings.glob("dump-*-dec.wav"))

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with_quit = True
            try:
                await self.command("quit")
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                with_quit = False
            try:
                await asyncio.wait_for(self.process.wait(), 5 if with_quit else 0.1)
            except TimeoutError:
                self.process.terminate()
                await self.process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
