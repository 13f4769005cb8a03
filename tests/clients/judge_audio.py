"""Judges an audio file as a listener's tools would, for the Rust tests.

    judge_audio.py FILE [WINDOW_SECONDS [HZ,HZ,...]]

Decodes FILE with PyAV through libopus (FFmpeg's `libopus` decoder; FFmpeg's own Opus decoder
when libopus is missing) and prints one JSON object: the codec, the sample rate, the duration
the container declares, the decoded duration, and for each window (0.25 s by default) its RMS
and its dominant frequency (Hann window, FFT peak), and with a list of frequencies, the share
of the window's power within 15 Hz of each ("tones": {"440": 0.31, ...}).
"""

import json
import sys

import av
import numpy as np


def to_float(frame):
    """A frame as mono float samples in [-1, 1], whatever the decoder's sample format."""
    a = frame.to_ndarray()
    scale = float(np.iinfo(a.dtype).max) + 1.0 if np.issubdtype(a.dtype, np.integer) else 1.0
    return (a.astype(np.float64) / scale).reshape(-1, frame.samples).mean(axis=0)


def decode(path):
    with av.open(path) as container:
        stream = container.streams.audio[0]
        name = "libopus" if "libopus" in av.codecs_available else stream.codec_context.name
        ctx = av.CodecContext.create(name, "r")
        ctx.extradata = stream.codec_context.extradata
        declared = float(stream.duration * stream.time_base) if stream.duration else None
        chunks = []
        # demux() ends with an empty packet, which flushes the decoder.
        for packet in container.demux(stream):
            for frame in ctx.decode(packet):
                chunks.append(to_float(frame))
        rate = ctx.sample_rate or 48000
    pcm = np.concatenate(chunks) if chunks else np.zeros(0)
    return name, rate, declared, pcm


def main():
    path = sys.argv[1]
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    tones = [float(f) for f in sys.argv[3].split(",")] if len(sys.argv) > 3 else []
    name, rate, declared, pcm = decode(path)
    n = int(rate * window)
    windows = []
    for start in range(0, len(pcm) - n + 1, n):
        w = pcm[start : start + n]
        rms = float(np.sqrt(np.mean(w * w)))
        spectrum = np.abs(np.fft.rfft(w * np.hanning(n)))
        freq = float(np.argmax(spectrum[1:]) + 1) * rate / n
        power = spectrum**2
        total = float(power.sum()) or 1.0
        bins = np.fft.rfftfreq(n, 1.0 / rate)
        shares = {
            f"{hz:g}": float(power[np.abs(bins - hz) <= 15.0].sum()) / total for hz in tones
        }
        windows.append({"t": start / rate, "rms": rms, "freq": freq, "tones": shares})
    print(json.dumps({
        "codec": name,
        "rate": rate,
        "declared": declared,
        "decoded": len(pcm) / rate,
        "windows": windows,
    }))


if __name__ == "__main__":
    main()
