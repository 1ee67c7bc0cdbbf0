"""Audio primitives shared by telephony and recognition.

Inside the program audio is always 16-bit signed little-endian mono PCM; G.711 exists
only at the wire (``g711``), and nothing is ever routed through 8-bit linear PCM.
"""

from hotline.audio.frames import FRAME_MS, frame_bytes, iter_frames
from hotline.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from hotline.audio.resample import StreamResampler, resample
from hotline.audio.wav import AudioFormatError, read_wav, write_wav

__all__ = [
    "FRAME_MS",
    "AudioFormatError",
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "frame_bytes",
    "iter_frames",
    "read_wav",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
