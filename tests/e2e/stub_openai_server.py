"""A tiny OpenAI-compatible streaming server with known timings, for benchmark tests.

Every completion streams `max_tokens` one-token chunks over chunked SSE: the first after
`ttft` seconds, the others `itl` seconds apart, then a finish chunk, an optional usage
chunk and `[DONE]`. Chat requests first get a role-only chunk straight away (it carries
no output, so it must not count as the first token). Modes: `reject_every=k` answers
every k-th request with HTTP 429; `hang=True` sends the headers and then nothing.
Listens on 127.0.0.1 only.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    def __init__(self, ttft=0.05, itl=0.02, usage=True, reject_every=0, hang=False):
        self.ttft, self.itl, self.usage = ttft, itl, usage
        self.reject_every, self.hang = reject_every, hang
        self.requests = []  # parsed request bodies, in arrival order
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _chunk(self, obj):
                data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
                data += b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _sleep(self, seconds):
                stub.stopping.wait(seconds)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": "stub-model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    n = len(stub.requests)
                if stub.reject_every and n % stub.reject_every == 0:
                    self._json(429, {"error": {"message": "too many requests", "code": 429}})
                    return
                chat = self.path == "/v1/chat/completions"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                if stub.hang:
                    self._sleep(30)
                    return
                prompt = body.get("prompt", "")
                n_prompt = len(prompt) if isinstance(prompt, list) else len(prompt.split())
                n_out = body["max_tokens"]
                if chat:
                    self._chunk({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                                    "content": ""}}]})
                for i in range(n_out):
                    self._sleep(stub.ttft if i == 0 else stub.itl)
                    if chat:
                        self._chunk({"choices": [{"index": 0, "delta": {"content": f" t{i}"}}]})
                    else:
                        self._chunk({"choices": [{"index": 0, "text": f" t{i}"}]})
                key = "delta" if chat else "text"
                self._chunk({"choices": [{"index": 0, key: {} if chat else "",
                                          "finish_reason": "length"}]})
                if stub.usage:
                    self._chunk({"choices": [], "usage": {"prompt_tokens": n_prompt,
                                                          "completion_tokens": n_out,
                                                          "total_tokens": n_prompt + n_out}})
                self._chunk(b"[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler
