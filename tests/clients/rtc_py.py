"""A WebRTC participant driven by the integration tests: an aiortc peer connection that sends a
sine tone as its microphone and measures the audio it receives per speaker, signalled over the
Socket.IO `webrtc-signal` event. Commands are JSON lines on stdin, everything the client sees is
JSON lines on stdout.

Usage: rtc_py.py URL TOKEN MEETING_ID TONE_HZ   (URL like http://127.0.0.1:PORT, socket path /ws)

Commands (stdin), handled one at a time in order:
  {"cmd":"offer"}                 offer the mic track; the ack carries the answer
                                  -> {"ev":"answered"} | {"ev":"offer_refused","ack":...}
  {"cmd":"mic","on":bool}         tone (true) or digital silence (false)
  {"cmd":"answers","on":bool}     answer the server's offers (true, the default) or leave them
                                  unanswered ({"ev":"reoffer_ignored"} for each)
  {"cmd":"stats"}                 -> {"ev":"stats","users":{uid:{"frames","audible_frames","rms",
                                      "freq","since_audible"}}}   (rms/freq over the last ~0.5 s;
                                      since_audible in seconds, null if never audible)
  {"cmd":"reset"}                 zero the counters and buffers of every speaker
  {"cmd":"state"}                 -> {"ev":"state","connection","ice","signaling"}
  {"cmd":"emit","event":E,"data":D}  emit with an ack -> {"ev":"ack","event":E,"ack":...,"error":...}
  {"cmd":"quit"}                  close and exit 0 (stdin EOF does the same)

Events (stdout):
  {"ev":"connect","id":sid}  {"ev":"connection-ack","data":...}  {"ev":"ready"}
      (events the server sends on connecting may print before "connect"; wait for "ready")
  {"ev":"connect_error","message":...} (then exit 1)  {"ev":"disconnect"}
  {"ev":"event","name":...,"data":...}   every other socket event but ping, audio, webrtc-signal
  {"ev":"reoffer","mlines":N}  after answering a server offer with N `m=audio` lines
  {"ev":"answer_ack","ack":...}  the server's ack of that answer
  {"ev":"track","user":uid}  a remote track (or a reused m-line now carrying another speaker)
  {"ev":"pcstate","state":...}  every connectionstatechange
  {"ev":"candidate_error"}  a server candidate aiortc would not take
  {"ev":"error","cmd":...,"message":...}  a command or a signal that failed

Signals from the server are applied strictly in order by one task; a lock keeps them from
interleaving with our own offer/answer exchange, so a server re-offer that arrives right after
the ack of our offer waits until that answer is applied.
"""

import asyncio
import collections
import fractions
import json
import sys
import time

import av
import numpy as np
import socketio
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

RATE = 48000
FRAME = 960  # 20 ms
AMPLITUDE = 8000
AUDIBLE_RMS = 200.0  # on the s16 scale
WINDOW = RATE // 2  # samples kept per speaker for rms and frequency


def _binary(value):
    """A binary payload (the relay's audio) is reported by its length."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": len(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def out(obj):
    sys.stdout.write(json.dumps(obj, default=_binary) + "\n")
    sys.stdout.flush()


class Tone(MediaStreamTrack):
    """The microphone: mono s16 48 kHz sine, 20 ms frames paced in real time by their pts."""

    kind = "audio"

    def __init__(self, hz):
        super().__init__()
        self.hz = float(hz)
        self.on = True
        self._pts = 0
        self._start = None

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if self.on:
            t = (self._pts + np.arange(FRAME)) / RATE
            samples = (AMPLITUDE * np.sin(2 * np.pi * self.hz * t)).astype(np.int16)
        else:
            samples = np.zeros(FRAME, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, FRAME), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


def mono_samples(frame):
    """Channel 0 of a decoded audio frame as float64 on the s16 scale, packed or planar."""
    a = frame.to_ndarray()
    channels = len(frame.layout.channels) or 1
    if frame.format.is_planar:
        x = a[0]
    else:
        x = a.reshape(-1)[::channels]
    x = x.astype(np.float64)
    if np.issubdtype(a.dtype, np.floating):
        x *= 32768.0
    elif a.dtype == np.int32:
        x /= 65536.0
    return x


class Speaker:
    """What one remote speaker has sent us."""

    def __init__(self):
        self.rate = RATE
        self.reset()

    def reset(self):
        self.frames = 0
        self.audible_frames = 0
        self.last_audible = None
        self.buf = collections.deque()
        self.buffered = 0

    def add(self, frame):
        x = mono_samples(frame)
        self.rate = frame.sample_rate or RATE
        self.frames += 1
        if x.size and np.sqrt(np.mean(x * x)) > AUDIBLE_RMS:
            self.audible_frames += 1
            self.last_audible = time.monotonic()
        self.buf.append(x)
        self.buffered += x.size
        while self.buf and self.buffered - self.buf[0].size >= WINDOW:
            self.buffered -= self.buf.popleft().size

    def stats(self):
        x = np.concatenate(list(self.buf)) if self.buf else np.zeros(0)
        x = x[-WINDOW:]
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
        return {
            "frames": self.frames,
            "audible_frames": self.audible_frames,
            "rms": round(rms, 1),
            "freq": round(dominant_freq(x, self.rate), 1),
            "since_audible": None
            if self.last_audible is None
            else round(time.monotonic() - self.last_audible, 3),
        }


def dominant_freq(x, rate):
    """The strongest frequency in x (Hz): Hann-windowed rfft, parabolic peak interpolation."""
    if x.size < 16:
        return 0.0
    mag = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size)))
    mag[0] = 0.0
    k = int(np.argmax(mag))
    if mag[k] <= 0:
        return 0.0
    shift = 0.0
    if 0 < k < mag.size - 1:
        a, b, c = np.log(mag[k - 1] + 1e-12), np.log(mag[k] + 1e-12), np.log(mag[k + 1] + 1e-12)
        if a - 2 * b + c != 0:
            shift = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + shift) * rate / x.size


def sdp_msids(sdp):
    """{mid: msid value} for every m-section of an SDP that has both."""
    found, mid, msid = {}, None, None
    for line in sdp.splitlines() + ["m="]:
        line = line.strip()
        if line.startswith("m="):
            if mid is not None and msid is not None:
                found[mid] = msid
            mid, msid = None, None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):].strip()
        elif line.startswith("a=msid:"):
            msid = line[len("a=msid:"):].strip()
    return found


def user_of_msid(msid):
    """`<userId> a-<userId>` -> userId."""
    bits = msid.split()
    if len(bits) > 1 and bits[1].startswith("a-"):
        return bits[1][2:]
    return bits[0]


pc = None
sio = None
mic = None
speakers = {}  # uid -> Speaker
track_user = {}  # remote track -> uid (a reused m-line may move to another speaker)
signals = asyncio.Queue()
sig_lock = None  # asyncio.Lock around every offer/answer exchange
applying_sdp = None  # the remote SDP being applied (aiortc fires "track" before storing it)
tasks = set()


def spawn(coro):
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


def transceiver_of(track):
    for t in pc.getTransceivers():
        if t.receiver.track is track:
            return t
    return None


def user_from_sdp(track):
    sdp = applying_sdp or (pc.remoteDescription.sdp if pc.remoteDescription else "")
    t = transceiver_of(track)
    if t is None or t.mid is None:
        return None
    msid = sdp_msids(sdp).get(t.mid)
    return user_of_msid(msid) if msid else None


async def receive(track):
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        uid = track_user.get(track)
        if uid is not None:
            speakers.setdefault(uid, Speaker()).add(frame)


def on_track(track):
    if track.kind != "audio":
        return
    uid = track.id[2:] if track.id.startswith("a-") else None
    uid = uid or user_from_sdp(track) or track.id
    track_user[track] = uid
    speakers.setdefault(uid, Speaker())
    out({"ev": "track", "user": uid})
    spawn(receive(track))


def remap_tracks(sdp):
    """After a remote description: follow an m-line whose msid now names another speaker."""
    msids = sdp_msids(sdp)
    for t in pc.getTransceivers():
        track = t.receiver.track
        if track is None or track not in track_user or t.mid not in msids:
            continue
        uid = user_of_msid(msids[t.mid])
        if uid != track_user[track]:
            track_user[track] = uid
            speakers.setdefault(uid, Speaker())
            out({"ev": "track", "user": uid, "reused": True})


# Whether the server's offers are answered (`answers`).
answering = {"on": True}


async def set_remote(sdp, kind):
    global applying_sdp
    applying_sdp = sdp
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    finally:
        applying_sdp = None
    remap_tracks(sdp)


async def apply_signal(signal):
    kind = signal.get("type")
    if kind == "offer" and not answering["on"]:
        out({"ev": "reoffer_ignored"})
    elif kind == "offer":
        async with sig_lock:
            await set_remote(signal["sdp"], "offer")
            await pc.setLocalDescription(await pc.createAnswer())
            answer = {"signal": {"type": "answer", "sdp": pc.localDescription.sdp}}
            mlines = sum(1 for l in signal["sdp"].splitlines() if l.startswith("m=audio"))
            out({"ev": "reoffer", "mlines": mlines})
        try:
            ack = await sio.call("webrtc-signal", answer, timeout=15)
            out({"ev": "answer_ack", "ack": ack})
        except Exception as e:  # a timeout or a closed connection
            out({"ev": "answer_ack", "ack": None, "error": str(e) or type(e).__name__})
    elif kind == "answer":
        async with sig_lock:
            # The answer to our own offer comes in its ack too, applied already.
            if pc.signalingState != "stable":
                await set_remote(signal["sdp"], "answer")
    elif kind == "candidate":
        c = signal.get("candidate") or {}
        line = (c.get("candidate") or "").strip()
        if not line:
            return  # end of candidates
        if line.startswith("candidate:"):
            line = line[len("candidate:"):]
        async with sig_lock:
            try:
                cand = candidate_from_sdp(line)
                cand.sdpMid = c.get("sdpMid")
                cand.sdpMLineIndex = c.get("sdpMLineIndex")
                await pc.addIceCandidate(cand)
            except Exception:
                out({"ev": "candidate_error"})


async def signal_loop():
    while True:
        signal = await signals.get()
        try:
            await apply_signal(signal)
        except Exception as e:
            out({"ev": "error", "cmd": "signal:%s" % signal.get("type"), "message": str(e)})


def make_client():
    client = socketio.AsyncClient(reconnection=False)
    state = {"error": None}

    @client.event
    async def connect():
        out({"ev": "connect", "id": client.get_sid()})

    @client.event
    async def connect_error(data):
        state["error"] = data.get("message") if isinstance(data, dict) else str(data)

    @client.event
    async def disconnect(*args):
        out({"ev": "disconnect"})

    @client.on("connection-ack")
    async def connection_ack(data=None):
        out({"ev": "connection-ack", "data": data})

    @client.on("webrtc-signal")
    async def webrtc_signal(data=None):
        signal = data.get("signal") if isinstance(data, dict) else None
        if isinstance(signal, dict):
            signals.put_nowait(signal)

    @client.on("*")
    async def any_event(event, *args):
        if event not in ("ping", "audio"):
            out({"ev": "event", "name": event, "data": args[0] if args else None})

    return client, state


async def handle(cmd):
    op = cmd.get("cmd")
    if op == "offer":
        async with sig_lock:
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"signal": {"type": "offer", "sdp": pc.localDescription.sdp}}
            ack = await sio.call("webrtc-signal", offer, timeout=15)
            if isinstance(ack, dict) and ack.get("ok"):
                await set_remote(ack["signal"]["sdp"], "answer")
                out({"ev": "answered", "sdp": ack["signal"]["sdp"]})
            else:
                out({"ev": "offer_refused", "ack": ack})
    elif op == "mic":
        mic.on = bool(cmd.get("on"))
    elif op == "answers":
        answering["on"] = bool(cmd.get("on"))
    elif op == "stats":
        out({"ev": "stats", "users": {uid: s.stats() for uid, s in speakers.items()}})
    elif op == "reset":
        for s in speakers.values():
            s.reset()
    elif op == "state":
        out({
            "ev": "state",
            "connection": pc.connectionState,
            "ice": pc.iceConnectionState,
            "signaling": pc.signalingState,
        })
    elif op == "emit":
        try:
            ack = await sio.call(cmd["event"], cmd.get("data"), timeout=15)
            out({"ev": "ack", "event": cmd["event"], "ack": ack, "error": None})
        except Exception as e:  # a timeout or a closed connection
            out({"ev": "ack", "event": cmd["event"], "ack": None, "error": str(e) or type(e).__name__})
    elif op == "quit":
        return False
    else:
        raise ValueError("unknown command %r" % op)
    return True


async def close():
    try:
        await asyncio.wait_for(pc.close(), 5)
    except Exception:
        pass
    try:
        if sio.connected:
            await asyncio.wait_for(sio.disconnect(), 5)
        http = getattr(sio.eio, "http", None)  # left open after a refused connection
        if http is not None and not http.closed:
            await http.close()
    except Exception:
        pass


async def main():
    global pc, sio, mic, sig_lock
    url, token, meeting_id, tone_hz = sys.argv[1:5]
    sig_lock = asyncio.Lock()

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    mic = Tone(float(tone_hz))
    pc.addTrack(mic)
    pc.on("track", on_track)

    @pc.on("connectionstatechange")
    def on_state():
        out({"ev": "pcstate", "state": pc.connectionState})

    sio, state = make_client()
    try:
        await sio.connect(
            url,
            auth={"token": token, "meetingId": meeting_id},
            socketio_path="ws",
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError as e:
        out({"ev": "connect_error", "message": state["error"] or str(e)})
        await close()
        return 1
    spawn(signal_loop())
    out({"ev": "ready"})

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        if not line.strip():
            continue
        cmd = None
        try:
            cmd = json.loads(line)
            if not await handle(cmd):
                break
        except Exception as e:
            op = cmd.get("cmd") if isinstance(cmd, dict) else None
            out({"ev": "error", "cmd": op, "message": str(e) or type(e).__name__})
    await close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
