"""A small OpenAI-compatible chat server for tests, run as its own process on 127.0.0.1.

    python -m tests.fake_llm_server SCRIPTS.json LOG.jsonl

It prints ``PORT <n>`` once listening. The request's ``model`` names a scenario of SCRIPTS.json:
``{"reply": text}`` answers with that text (streamed word by word when asked), ``{"status": 500}``
fails, ``{"raw": text}`` sends that body as is (malformed JSON; as one event when streaming), ``{"hang": seconds}`` waits that long
before answering, ``{"hang_after": n, "hang": seconds}`` streams n pieces and then stalls, ``"delay"``
spaces the streamed pieces by that many seconds. Every request
(model, stream, messages, Authorization header) is appended to LOG.jsonl."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Handler(BaseHTTPRequestHandler):
    scripts: dict = {}
    log_path: Path
    log_lock = threading.Lock()

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        model, stream = body.get("model", ""), bool(body.get("stream"))
        with self.log_lock, self.log_path.open("a", encoding="utf-8") as log:
            record = {"model": model, "stream": stream, "messages": body.get("messages", []),
                      "authorization": self.headers.get("Authorization", "")}
            log.write(json.dumps(record, ensure_ascii=False) + "\n")
        script = self.scripts.get(model)
        if script is None:
            self._send(404, {"error": {"message": f"model {model!r} not found"}})
            return
        if "hang" in script and "hang_after" not in script:
            time.sleep(script["hang"])
        if "status" in script:
            self._send(script["status"], {"error": {"message": "scripted failure"}})
        elif "raw" in script and stream:
            self._send_raw(200, f"data: {script['raw']}\n\n".encode(), "text/event-stream")
        elif "raw" in script:
            self._send_raw(200, script["raw"].encode("utf-8"), "application/json")
        elif stream:
            self._stream(model, script)
        else:
            self._send(200, completion(model, script["reply"]))

    def _stream(self, model: str, script: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        pieces = re.findall(r"\S+\s*|\s+", script["reply"])
        for i, piece in enumerate(pieces):
            if i == script.get("hang_after"):
                time.sleep(script["hang"])
            time.sleep(script.get("delay", 0))
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            self._event(chunk(model, delta, None))
        self._event(chunk(model, {}, "stop"))
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _send(self, status: int, payload: dict) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json")

    def _send_raw(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def completion(model: str, content: str) -> dict:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def chunk(model: str, delta: dict, finish: str | None) -> dict:
    return {
        "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def main() -> None:
    scripts_path, log_path = Path(sys.argv[1]), Path(sys.argv[2])
    Handler.scripts = json.loads(scripts_path.read_text(encoding="utf-8"))
    Handler.log_path = log_path
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()  # until the test stops the process


if __name__ == "__main__":
    main()
