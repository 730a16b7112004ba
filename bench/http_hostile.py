#!/usr/bin/env python3
"""Hostile-client probes against a running `tessera serve` (loopback only).

Each probe is bounded in time and bytes and returns a dict of what it saw; tests/e2e/
test_http_hostile.py asserts on them, and run as a script this prints them as JSON:

  bench/http_hostile.py --port 21000 --pid $(pgrep ...) [--slowloris 1000 --seconds 30]

Probes: slowloris (N connections trickling header lines while normal requests are timed),
a chunked body far over the body limit, a huge header section, ambiguous framing, deeply
nested JSON in a chat message, numbers that overflow a double, fan-out larger than the queue.
"""
import argparse
import asyncio
import concurrent.futures as cf
import http.client
import json
import socket
import statistics
import threading
import time


def rss_bytes(pid):
    if not pid:
        return 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def request(port, method, path, body=None, headers=None, timeout=10.0):
    """(status, parsed JSON or text) on a fresh connection; status None on a network error."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e)
    finally:
        conn.close()


def raw(port, data, timeout=10.0, read_limit=65536):
    """Sends raw bytes, returns (status or None, seconds to the answer, first bytes)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        try:
            while len(buf) < read_limit and b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
    status = int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.") else None
    return status, time.perf_counter() - t0, buf[:200]


def send_stream(port, head, body_iter, timeout=30.0):
    """Sends `head`, then the body pieces until the server answers or stops reading.
    Returns (status or None, bytes of body sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head)
    sent = 0
    status = None
    s.setblocking(False)
    buf = b""
    deadline = time.time() + timeout
    try:
        for piece in body_iter:
            try:
                buf += s.recv(4096)
            except BlockingIOError:
                pass
            except OSError:
                break
            if buf.startswith(b"HTTP/1."):
                break
            view = memoryview(piece)
            while view:
                if time.time() > deadline:
                    raise TimeoutError
                try:
                    n = s.send(view)
                    view = view[n:]
                    sent += n
                except BlockingIOError:
                    time.sleep(0.001)
                    try:
                        buf += s.recv(4096)
                    except (BlockingIOError, OSError):
                        pass
                    if buf.startswith(b"HTTP/1."):
                        break
            if buf.startswith(b"HTTP/1."):
                break
        s.setblocking(True)
        s.settimeout(5)
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except (OSError, TimeoutError):
        pass
    finally:
        s.close()
    if buf.startswith(b"HTTP/1."):
        status = int(buf.split(b" ", 2)[1])
    return status, sent


# ----------------------------------------------------------------------------------------
# Probes

def probe_chunked_body(port, pid, mib=512, piece_kib=1024):
    """A chunked POST of `mib` MiB to /v1/completions; the answer should be 413 early."""
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * (piece_kib * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    rss0 = rss_bytes(pid)
    peak = [rss0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.02)

    w = threading.Thread(target=watch)
    w.start()
    t0 = time.perf_counter()
    status, sent = send_stream(port, head, (chunk for _ in range(mib * 1024 // piece_kib)))
    secs = time.perf_counter() - t0
    stop.set()
    w.join()
    return {"status": status, "mib_asked": mib, "mib_sent": round(sent / 2**20, 1),
            "seconds": round(secs, 2), "rss_before_mb": round(rss0 / 1e6, 1),
            "rss_peak_growth_mb": round((peak[0] - rss0) / 1e6, 1)}


def probe_huge_headers(port, pid, mb=100, auth_route=False):
    """`mb` MB of header lines on GET /health (or a keyed route); the answer should be 431."""
    path = b"/v1/models" if auth_route else b"/health"
    head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
    line = b"X-Pad: " + b"p" * 4000 + b"\r\n"
    rss0 = rss_bytes(pid)
    t0 = time.perf_counter()
    status, sent = send_stream(port, head, (line for _ in range(mb * 10**6 // len(line))))
    secs = time.perf_counter() - t0
    time.sleep(0.2)
    return {"status": status, "mb_asked": mb, "mb_sent": round(sent / 1e6, 1),
            "seconds": round(secs, 2), "rss_growth_mb": round((rss_bytes(pid) - rss0) / 1e6, 1)}


FRAMING = {
    "cl_te": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_cl": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "two_cl": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
              b"Content-Length: 20\r\n\r\n{}",
    "xchunked": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
                b"0\r\n\r\n",
    "te_gzip_chunked": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked"
                       b"\r\n\r\n0\r\n\r\n",
    "negative_cl": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "garbage_cl": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",
    "bad_chunk_size": b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\n{}\r\n0\r\n\r\n",
}


def probe_framing(port):
    """Ambiguous or invalid framing: each should be a 400 at once."""
    out = {}
    for name, data in FRAMING.items():
        status, secs, _ = raw(port, data, timeout=10)
        out[name] = {"status": status, "seconds": round(secs, 2)}
    return out


def nested(depth):
    return "[" * depth + "]" * depth


def probe_bodies(port, headers=None):
    """Request bodies that once crashed or got a 500: status of each."""
    deep_msg = ('{"messages":[{"role":"user","content":"hi","name":' + nested(20000) +
                '}],"max_tokens":1}').encode()
    deep_tool = ('{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"tools":[{"type":'
                 '"function","function":{"name":"f","parameters":' + nested(250) + '}}]}').encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    cases = {
        "deep_message_20000": ("/v1/chat/completions", deep_msg),
        "deep_tool_250": ("/v1/chat/completions", deep_tool),
        "temperature_1e400": ("/v1/completions",
                              b'{"prompt":"hi","max_tokens":1,"temperature":1e400}'),
        "logit_bias_1e400": ("/v1/completions",
                             b'{"prompt":"hi","max_tokens":1,"logit_bias":{"5":1e400}}'),
        "temperature_1e308": ("/v1/completions",
                              b'{"prompt":"hi","max_tokens":1,"temperature":1e308}'),
    }
    out = {}
    for name, (path, body) in cases.items():
        status, resp = request(port, "POST", path, body, h, timeout=30)
        out[name] = {"status": status,
                     "message": resp["error"]["message"][:120]
                     if isinstance(resp, dict) and "error" in resp else None}
    return out


def probe_fanout(port, n_prompts=200, n=2, n_clients=16, headers=None):
    """A request larger than the queue (prompts x n) while `n_clients` normal requests run:
    its status, and the other clients' statuses."""
    big = {"prompt": ["hi"] * n_prompts, "n": n, "max_tokens": 1}
    small = {"prompt": "Once upon a time", "max_tokens": 4}
    h = headers or {}
    with cf.ThreadPoolExecutor(n_clients + 4) as ex:
        bigs = [ex.submit(request, port, "POST", "/v1/completions", big, h, 60) for _ in range(4)]
        smalls = [ex.submit(request, port, "POST", "/v1/completions", small, h, 60)
                  for _ in range(n_clients)]
        big_status = [f.result()[0] for f in bigs]
        small_status = [f.result()[0] for f in smalls]
    return {"big": big_status, "small": small_status,
            "small_ok": sum(s == 200 for s in small_status)}


async def _slow_client(port, stop, stats):
    """One slowloris connection: a request head trickled one header line every 2 s; when the
    server closes it, open another."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["opened"] += 1
        try:
            writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            i = 0
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=2.0)
                    if data:
                        stats["answered"] += 1
                    stats["closed_by_server"] += 1
                    break
                except asyncio.TimeoutError:
                    pass
                writer.write(f"X-Slow-{i}: {i}\r\n".encode())
                await writer.drain()
                i += 1
        except OSError:
            stats["closed_by_server"] += 1
        finally:
            writer.close()


def probe_slowloris(port, pid, n_conns=1000, seconds=30.0, n_normal=20, headers=None):
    """`n_conns` slow connections for `seconds` while `n_normal` requests are timed, spread
    over the attack (after a ramp-up of a few seconds)."""
    stats = {"opened": 0, "connect_errors": 0, "closed_by_server": 0, "answered": 0}
    rss0 = rss_bytes(pid)
    rss_during = []
    normal = []

    async def main():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_slow_client(port, stop, stats)) for _ in range(n_conns)]
        loop = asyncio.get_running_loop()
        ramp = min(5.0, seconds / 4)
        await asyncio.sleep(ramp)
        gap = (seconds - ramp) / max(1, n_normal)
        body = {"prompt": "Once upon a time", "max_tokens": 2}
        for _ in range(n_normal):
            t0 = time.perf_counter()
            status, _ = await loop.run_in_executor(
                None, request, port, "POST", "/v1/completions", body, headers, 10.0)
            normal.append((status, time.perf_counter() - t0))
            rss_during.append(rss_bytes(pid))
            await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t0)))
        stop.set()
        await asyncio.wait(tasks, timeout=5)
        for t in tasks:
            t.cancel()

    asyncio.run(main())
    lat = [t for s, t in normal if s == 200]
    return {"slow_connections": n_conns, "seconds": seconds, **stats,
            "normal_status": [s for s, _ in normal],
            "normal_ok": len(lat),
            "normal_latency_max_s": round(max(lat), 3) if lat else None,
            "normal_latency_median_s": round(statistics.median(lat), 3) if lat else None,
            "rss_before_mb": round(rss0 / 1e6, 1),
            "rss_during_max_mb": round(max(rss_during, default=0) / 1e6, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, default=0, help="server pid, for RSS figures")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--slowloris", type=int, default=1000, help="slow connections (0: skip)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--normal", type=int, default=20, help="normal requests timed in slowloris")
    ap.add_argument("--chunked-mib", type=int, default=512)
    ap.add_argument("--header-mb", type=int, default=100)
    ap.add_argument("--only", default="", help="comma-separated probe names")
    args = ap.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    probes = {
        "framing": lambda: probe_framing(args.port),
        "bodies": lambda: probe_bodies(args.port, headers),
        "fanout": lambda: probe_fanout(args.port, headers=headers),
        "huge_headers": lambda: probe_huge_headers(args.port, args.pid, args.header_mb),
        "chunked_body": lambda: probe_chunked_body(args.port, args.pid, args.chunked_mib),
        "slowloris": lambda: probe_slowloris(args.port, args.pid, args.slowloris, args.seconds,
                                             args.normal, headers=headers),
    }
    only = [p for p in args.only.split(",") if p] or list(probes)
    out = {}
    for name in only:
        if name == "slowloris" and args.slowloris == 0:
            continue
        out[name] = probes[name]()
        print(json.dumps({name: out[name]}), flush=True)
    out["server_alive"] = request(args.port, "GET", "/health", timeout=5)[0]
    print(json.dumps({"server_alive": out["server_alive"]}))


if __name__ == "__main__":
    main()
