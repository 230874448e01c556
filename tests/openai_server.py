"""A real local HTTP server speaking the OpenAI chat-completions protocol, with scripted replies.

Stdlib only (``http.server`` in a thread, ephemeral port on 127.0.0.1). It records every request it receives.
Replies come from ``script`` (a queue of actions, first in first out) and, when the queue is empty, from
``responder(body) -> action``. An action is a dict::

    {"content": "..."}                         200 with that assistant message
    {"status": 429 | 500 | ..., "error": "..."}  an OpenAI-style error body (with retry-after-ms: 1)
    {"delay": seconds, ...}                    sleep first (for timeouts / throughput)
    {"raw": "...", "status": 200}              a raw body (not a chat completion)

Also runnable as a process for benchmarks: ``python tests/openai_server.py --delay 0.05`` prints the port.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OBJECTS = ("a violin", "a lighthouse", "a windmill", "a piano", "a telescope", "a cactus", "a trumpet",
           "a lantern", "a globe", "a drum", "a harp", "a tractor")
_INPUT = re.compile(r"^Input: (\[.*\])\s*$", re.M)


def input_phrases(body: dict) -> list[str]:
    """The phrase list the rewrite prompt carries (first user message)."""
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    m = _INPUT.search(first)
    return json.loads(m.group(1)) if m else []


def good_reply(body: dict) -> dict:
    """A valid reply: one absent, non-COCO object per input phrase."""
    phrases = input_phrases(body)
    return {"content": json.dumps({"rewrites": [OBJECTS[i % len(OBJECTS)] for i in range(len(phrases))]})}


def completion(model: str, content: str) -> dict:
    return {"id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 stalls concurrent clients on SYN retries


class OpenAIServer:
    def __init__(self, responder=good_reply, delay: float = 0.0, port: int = 0):
        self.script: deque[dict] = deque()
        self.responder = responder
        self.delay = delay
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body, written apart, wait on a delayed ACK (~40 ms)

            def log_message(self, *args) -> None:  # quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {}
                with server._lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "headers": {k.lower(): v for k, v in self.headers.items()}})
                    action = server.script.popleft() if server.script else None
                if action is None:
                    action = server.responder(body)
                time.sleep(action.get("delay", server.delay))
                status = action.get("status", 200)
                headers = {"Content-Type": "application/json"}
                if "raw" in action:
                    payload = action["raw"]
                elif status == 200:
                    payload = json.dumps(completion(body.get("model", "?"), action["content"]))
                else:
                    headers["retry-after-ms"] = "1"
                    payload = json.dumps({"error": {"message": action.get("error", f"scripted {status}"),
                                                    "type": "server_error", "code": status}})
                data = payload.encode("utf-8")
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (timeout test)

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="openai-server", daemon=True)

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def push(self, *actions: dict) -> None:
        with self._lock:
            self.script.extend(actions)

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before every reply")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = OpenAIServer(delay=args.delay, port=args.port).start()
    sys.stdout.write(f"{server.port}\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
