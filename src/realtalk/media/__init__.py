"""Media layer: audio frames, resampling, G.711, paced playout, images and WAV files.

Knows nothing about OpenAI or the Realtime protocol; everything above it builds on these types.
"""

from .frame import AudioFrame, float_to_int16
from .g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .image import FrameThrottler, data_url, encode_jpeg, encode_jpeg_async, fit_size
from .playout import AudioOutput, FlushResult
from .resample import InputAudioConverter, StreamResampler, downmix, resample_oneshot
from .wav import iter_frames, read_wav, write_wav

__all__ = [
    "AudioFrame",
    "AudioOutput",
    "FlushResult",
    "FrameThrottler",
    "InputAudioConverter",
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "data_url",
    "downmix",
    "encode_jpeg",
    "encode_jpeg_async",
    "fit_size",
    "float_to_int16",
    "iter_frames",
    "read_wav",
    "resample_oneshot",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
