"""8 kHz <-> 16 kHz resampling with libsoxr (the resampler sox itself uses)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole 16-bit mono buffer."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype="<i2").tobytes()


class StreamResampler:
    """Resamples a live stream frame by frame, keeping filter state between frames.

    A fresh whole-buffer resample per 20 ms frame would click at every frame edge;
    soxr's stream object carries the filter history across calls. The live call path
    (8 -> 16 kHz) uses ``Upsampler2x`` instead: soxr's stream resampler hands out its
    output in ~100 ms blocks at every quality above "quick" (measured: nothing for four
    20 ms frames, then 104 ms at once), which made every end of turn and every barge-in
    up to 100 ms late.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate, self.to_rate = from_rate, to_rate
        self._up: Upsampler2x | None = None
        self._stream: soxr.ResampleStream | None = None
        if to_rate == 2 * from_rate:
            self._up = Upsampler2x()
        elif from_rate != to_rate:
            self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")

    @property
    def delay_samples(self) -> float:
        """Output samples by which the stream lags its input (the filter's group delay)."""
        return self._up.delay_samples if self._up is not None else 0.0

    def process(self, pcm: bytes, last: bool = False) -> bytes:
        if self._up is not None:
            return self._up.process(pcm)
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype="<i2").tobytes()


class Upsampler2x:
    """Doubles the sample rate with output for every input sample (31.5 samples of group
    delay: 1.9 ms at 8 -> 16 kHz).

    A Kaiser-windowed sinc low-pass at 95 % of the input band (3.8 kHz for 8 kHz input),
    run as two polyphase branches (even and odd output samples); the last input samples
    are kept between calls so frame edges are seamless. Measured at 8 -> 16 kHz: flat to
    3 kHz, -0.3 dB at 3.4 kHz; the image of a tone up to 3.4 kHz (at 8 kHz minus its
    frequency) is more than 80 dB below it. The design is relative to the rates, so it
    holds for any 2x.
    """

    TAPS = 64
    CUTOFF = 0.95  # of the input's Nyquist frequency

    def __init__(self) -> None:
        n = np.arange(self.TAPS) - (self.TAPS - 1) / 2
        fc = self.CUTOFF / 4  # the input's Nyquist is a quarter of the output rate
        taps = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(self.TAPS, 8.0)
        taps *= 2 / taps.sum()  # zero stuffing halves the level; each phase sums to 1
        self._even, self._odd = taps[0::2], taps[1::2]
        self._history = np.zeros(len(self._even) - 1)
        self.delay_samples = (self.TAPS - 1) / 2

    def process(self, pcm: bytes) -> bytes:
        if not pcm:
            return b""
        x = np.concatenate([self._history, np.frombuffer(pcm, dtype="<i2")])
        self._history = x[len(x) - len(self._history) :]
        out = np.empty(2 * (len(x) - len(self._history)))
        out[0::2] = np.convolve(x, self._even, "valid")
        out[1::2] = np.convolve(x, self._odd, "valid")
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
