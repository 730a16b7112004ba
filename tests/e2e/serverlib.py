"""A `tessera serve` process on a free loopback port, for end-to-end tests."""
import http.client
import json
import signal
import socket
import subprocess
import time

import openai

from conftest import tessera_bin


class Resp:
    def __init__(self, status, body):
        self.status_code, self.text = status, body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def request(port, method, path, body=None, headers=None, timeout=120):
    """One request on a fresh connection (stdlib only, independent of the client's stack)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Resp(r.status, r.read())
    finally:
        conn.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc, port, timeout, logs, stop):
    """Until the server process `proc` answers /health on `port`; an AssertionError with its
    log (`logs()`) when it exits first or, after stop(), when `timeout` seconds pass."""
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}):\n{logs()}")
        try:
            if request(port, "GET", "/health", timeout=1).status_code == 200:
                return
        except OSError:
            pass
        if time.time() > deadline:
            stop()
            raise AssertionError("server did not become healthy:\n" + logs())
        time.sleep(0.1)


class Server:
    def __init__(self, model, *args, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [tessera_bin(), "serve", "-m", str(model), "--host", "127.0.0.1", "--port",
             str(self.port), "-t", "2", *map(str, args)],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_healthy(self.proc, self.port, 60, self.logs, self.stop)

    def logs(self):
        self.log.flush()
        return open(self.log_path).read()

    def client(self, api_key="unused", **kw):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0,
                             timeout=120, **kw)

    def post(self, path, body=None, headers=None):
        return request(self.port, "POST", path, body, headers)

    def get(self, path, timeout=120):
        return request(self.port, "GET", path, timeout=timeout)

    def metrics(self):
        out = {}
        for line in self.get("/metrics", timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_metric(self, name, pred, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.metrics()[name]
            if pred(v):
                return v
            time.sleep(0.05)
        raise AssertionError(f"{name} = {self.metrics()[name]} after {timeout} s")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # A sanitized server (make test-asan, the checked tiers) reports into its log;
        # any report fails the test that ran it, even one that did not kill the server.
        report = sanitizer_report(open(self.log_path, errors="replace").read())
        if report:
            raise AssertionError("sanitizer report from the server:\n" + report)
        return self.proc.returncode


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def sanitizer_report(log):
    """The first sanitizer report in a server log (with 40 lines after it), or ''."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            return "\n".join(lines[i:i + 40])
    return ""


def smollm2_server(model, log_path, *args):
    """SmolLM2 with a 1,024-token context and a small KV pool (chat and browser tests);
    `args`: more `tessera serve` flags."""
    return Server(model, "--max-model-len", 1024, "--kv-cache-memory", "160MiB", *args,
                  log_path=log_path)
