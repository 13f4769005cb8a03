"""A python-socketio client driven by the integration tests: commands as JSON lines on stdin,
everything the client sees as JSON lines on stdout. Binary values travel as {"$bin": base64};
{"$f32": [numbers]} in a command becomes little-endian Float32 bytes."""

import asyncio
import base64
import json
import struct
import sys
import time
from urllib.parse import urlencode

import socketio


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bin": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, dict):
        return {k: enc(x) for k, x in v.items()}
    return v


def dec(v):
    if isinstance(v, list):
        return [dec(x) for x in v]
    if isinstance(v, dict):
        if "$bin" in v:
            return base64.b64decode(v["$bin"])
        if "$f32" in v:
            xs = [float("nan") if x == "NaN" else x for x in v["$f32"]]
            return struct.pack("<%df" % len(xs), *xs)
        return {k: dec(x) for k, x in v.items()}
    return v


sio = None
last_error = None


def make_client():
    client = socketio.AsyncClient(reconnection=False)

    @client.event
    async def connect():
        out({"ev": "connect", "id": client.get_sid(), "transport": client.transport()})

    @client.event
    async def connect_error(data):
        global last_error
        last_error = data.get("message") if isinstance(data, dict) else str(data)

    @client.event
    async def disconnect(*args):
        out({"ev": "disconnect", "reason": str(args[0]) if args else ""})

    @client.on("*")
    async def any_event(event, *args):
        out({"ev": "event", "name": event, "data": enc(args[0] if args else None), "t": int(time.time() * 1000)})

    return client


async def handle(cmd):
    global sio, last_error
    op = cmd["op"]
    if op == "connect":
        if sio is not None and sio.connected:
            await sio.disconnect()
        sio = make_client()
        last_error = None
        url = cmd["url"]
        if cmd.get("query"):
            url += "?" + urlencode(cmd["query"])
        try:
            await sio.connect(
                url,
                auth=cmd.get("auth"),
                socketio_path=cmd.get("path", "/ws").strip("/"),
                transports=cmd.get("transports") or ["polling", "websocket"],
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError as e:
            out({"ev": "connect_error", "message": last_error or str(e)})
    elif op == "emit":
        data = dec(cmd["data"])
        if cmd.get("ack"):
            try:
                res = await sio.call(cmd["event"], data, timeout=5)
                out({"ev": "ack", "id": cmd.get("id"), "error": None, "data": enc(res)})
            except Exception as e:  # a timeout or a closed connection
                out({"ev": "ack", "id": cmd.get("id"), "error": str(e) or type(e).__name__, "data": None})
        else:
            await sio.emit(cmd["event"], data)
    elif op == "disconnect":
        await sio.disconnect()
    elif op == "exit":
        sys.exit(0)


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        await handle(json.loads(line))


if __name__ == "__main__":
    asyncio.run(main())
