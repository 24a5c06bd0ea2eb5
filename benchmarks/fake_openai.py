"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for benchmarks and tests, with injected faults.

    with FakeOpenAI(reply=lambda body: "User: Hi\\nAssistant: Hello", faults=every_nth(...)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key)

`reply(body)` turns the request body into the assistant's message text. `faults(n, body)` names the fault to
inject into the n-th request (counting from 1), or None: "429" (with Retry-After), "500", "slow" (answers
only after `slow_seconds`, past the client's timeout), "malformed" (a 200 whose body is not JSON). A wrong
bearer key gets a 401 with OpenAI's error body. Each request takes `latency` seconds; requests are served
concurrently, one thread each, so clients that overlap requests really overlap here.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "slow", "malformed")


class FakeOpenAI:
    def __init__(self, reply: Callable[[dict], str], faults: Callable[[int, dict], str | None] | None = None,
                 latency: float = 0.0, slow_seconds: float = 2.0, retry_after: str = "0.05",
                 api_key: str = "test-key"):
        self.reply, self.faults, self.latency = reply, faults or (lambda n, body: None), latency
        self.slow_seconds, self.retry_after, self.api_key = slow_seconds, retry_after, api_key
        self.requests = 0  # past the key check
        self.refused = 0  # 401s
        self.injected: Counter = Counter()
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self  # the handler's way back to the counters and settings
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    """One request: check the key and the route, count it as in flight, answer (or inject its fault)."""

    def log_message(self, *args):  # quiet: tests read counters, not logs
        pass

    def do_POST(self):
        fake = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            with fake.lock:
                fake.refused += 1
            return self._json(401, {"error": {"message": "Incorrect API key provided.",
                                              "type": "invalid_request_error", "code": "invalid_api_key"}})
        if not self.path.endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        with fake.lock:
            fake.requests += 1
            number = fake.requests
            fake.in_flight += 1
            fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
        try:
            self._answer(fake, number, body)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _answer(self, fake: FakeOpenAI, number: int, body: dict) -> None:
        fault = fake.faults(number, body)
        if fault:
            with fake.lock:
                fake.injected[fault] += 1
        time.sleep(fake.latency)
        if fault == "429":
            return self._json(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                              {"Retry-After": fake.retry_after})
        if fault == "500":
            return self._json(500, {"error": {"message": "The server had an error"}})
        if fault == "slow":
            time.sleep(fake.slow_seconds)
        if fault == "malformed":
            return self._raw(200, b'{"id": "chatcmpl-1", "choices": [{"mess')
        self._json(200, _completion(number, body, fake.reply(body)))

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), headers)

    def _raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


def _completion(number: int, body: dict, text: str) -> dict:
    """A chat.completion body holding `text`, with word counts standing in for token usage."""
    words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {"id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": words, "completion_tokens": len(text.split()),
                      "total_tokens": words + len(text.split())}}


def every_nth(plan: dict[int, str]) -> Callable[[int, dict], str | None]:
    """Faults by request number modulo: {7: "429", 11: "500"} puts a 429 on every 7th request, and so on."""
    def faults(number: int, body: dict) -> str | None:
        return next((fault for every, fault in plan.items() if number % every == 0), None)
    return faults
