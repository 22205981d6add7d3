"""The loopback server's batch APIs: OpenAI's Files + Batches and Anthropic's Message Batches, with
the real endpoints, JSONL formats and states, so `--batch` is tested against what providers do.

OpenAI: POST /v1/files (multipart, purpose "batch"), POST /v1/batches, GET /v1/batches[/{id}],
GET /v1/files/{id}/content. A batch goes validating -> in_progress -> finalizing -> completed, one
state per poll; its lines are answered (like chat completions, and logged as such with path
"batch") when it completes: successes in the output file, failures in the error file.
Anthropic: POST /v1/messages/batches, GET /v1/messages/batches/{id} (in_progress -> ended),
GET .../results (JSONL of succeeded / errored / expired results).

Faults, set on `state.batches` (a `BatchBook`): `hold` keeps batches in progress; `fail_contains`
fails the lines whose prompt contains the text (HTTP 400 in the error file, "errored" for
Anthropic); `expire` ends the next batch expired with only its first half answered. Each
submission is logged (path of the create call, outcome "batch_submitted", the custom_ids).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# (model, messages, max_tokens) -> a chat.completion object; (body) -> (HTTP status, Anthropic
# message object or error body, log fields)
Complete = Callable[[str, list[dict[str, Any]], Any], dict[str, Any]]
Message = Callable[[dict[str, Any]], tuple[int, dict[str, Any], dict[str, Any]]]

OPENAI_STEPS = ("validating", "in_progress", "finalizing", "completed")


@dataclass
class BatchBook:
    """Files, batches and the batch fault settings of one server."""

    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    hold: bool = False
    fail_contains: str | None = None
    expire: bool = False
    counter: int = 0

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:06d}"


def _text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


def add_batch_routes(
    app: web.Application, state: Any, complete: Complete, message: Message
) -> None:
    """Serve the batch APIs on `app`; `state` is the server's (log, lock), `complete` and
    `message` answer one request as the synchronous endpoints do."""
    book = state.batches = BatchBook()

    def log(entry: dict[str, Any]) -> None:
        state.record(
            {"prompt_hash": None, "attempt": None, "auth": True, "auth_sha256": None, **entry}
        )

    async def create_file(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        data = upload.file.read() if hasattr(upload, "file") else bytes(str(upload), "utf-8")
        file_id = book.new_id("file-")
        book.files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data),
                                  "created_at": int(time.time()), "filename": "batch.jsonl",
                                  "purpose": str(form.get("purpose", "batch")), "status": "processed"})  # fmt: skip

    async def file_content(request: web.Request) -> web.Response:
        data = book.files.get(request.match_info["file_id"])
        if data is None:
            return web.json_response({"error": {"message": "No such file"}}, status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def create_batch(request: web.Request) -> web.Response:
        body = await request.json()
        data = book.files.get(body.get("input_file_id", ""))
        if data is None:
            return web.json_response({"error": {"message": "input file not found"}}, status=400)
        lines = [json.loads(raw) for raw in data.decode().splitlines() if raw.strip()]
        batch_id = book.new_id("batch_")
        book.batches[batch_id] = {"kind": "openai", "lines": lines, "polls": 0, "expire": book.expire,
                                  "object": _openai_object(batch_id, body, len(lines))}  # fmt: skip
        book.expire = False
        log({"path": request.path, "model": lines[0]["body"].get("model") if lines else None,
             "outcome": "batch_submitted", "custom_ids": [line["custom_id"] for line in lines]})  # fmt: skip
        return web.json_response(book.batches[batch_id]["object"])

    async def get_batch(request: web.Request) -> web.Response:
        batch = book.batches.get(request.match_info["batch_id"])
        if batch is None or batch["kind"] != "openai":
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        _advance_openai(batch)
        return web.json_response(batch["object"])

    async def list_batches(request: web.Request) -> web.Response:
        data = [b["object"] for b in book.batches.values() if b["kind"] == "openai"][::-1]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})  # fmt: skip

    def _advance_openai(batch: dict[str, Any]) -> None:
        obj = batch["object"]
        if obj["status"] in ("completed", "expired", "failed", "cancelled"):
            return
        if book.hold and obj["status"] == "in_progress":
            return
        batch["polls"] += 1
        step = OPENAI_STEPS[min(batch["polls"], len(OPENAI_STEPS) - 1)]
        if step != "completed":
            obj["status"] = step
            return
        outputs, errors = [], []
        for index, line in enumerate(batch["lines"]):
            if batch["expire"] and index >= len(batch["lines"]) // 2:
                errors.append({"id": f"batch_req_{index}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired",
                                         "message": "This request could not be executed before the completion window expired."}})  # fmt: skip
                continue
            outputs_or_errors = _answer_openai(line)
            (outputs if outputs_or_errors["response"]["status_code"] == 200 else errors).append(
                outputs_or_errors
            )
        obj["status"] = "expired" if batch["expire"] else "completed"
        obj["request_counts"] = {
            "total": len(batch["lines"]),
            "completed": len(outputs),
            "failed": len(errors),
        }
        if outputs:
            obj["output_file_id"] = book.new_id("file-")
            book.files[obj["output_file_id"]] = "".join(
                json.dumps(o) + "\n" for o in outputs
            ).encode()
        if errors:
            obj["error_file_id"] = book.new_id("file-")
            book.files[obj["error_file_id"]] = "".join(
                json.dumps(e) + "\n" for e in errors
            ).encode()

    def _answer_openai(line: dict[str, Any]) -> dict[str, Any]:
        body = line["body"]
        messages = body["messages"]
        if book.fail_contains and book.fail_contains in _text(messages):
            log(
                {
                    "path": "batch",
                    "model": body.get("model"),
                    "outcome": "400",
                    "custom_id": line["custom_id"],
                }
            )
            return {"id": "batch_req", "custom_id": line["custom_id"],
                    "response": {"status_code": 400, "request_id": "req",
                                 "body": {"error": {"message": "injected failure", "type": "invalid_request_error"}}},
                    "error": None}  # fmt: skip
        completion = complete(
            body.get("model", ""),
            messages,
            body.get("max_completion_tokens") or body.get("max_tokens"),
        )
        usage = completion["usage"]
        log({"path": "batch", "model": body.get("model"), "outcome": "ok", "custom_id": line["custom_id"],
             "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]})  # fmt: skip
        return {"id": "batch_req", "custom_id": line["custom_id"],
                "response": {"status_code": 200, "request_id": "req", "body": completion}, "error": None}  # fmt: skip

    # Anthropic ------------------------------------------------------------------------------
    async def create_message_batch(request: web.Request) -> web.Response:
        body = await request.json()
        requests = body["requests"]
        batch_id = book.new_id("msgbatch_")
        book.batches[batch_id] = {"kind": "anthropic", "lines": requests, "polls": 0, "expire": book.expire,
                                  "results": None, "object": _anthropic_object(batch_id, len(requests))}  # fmt: skip
        book.expire = False
        log({"path": request.path, "model": requests[0]["params"].get("model") if requests else None,
             "outcome": "batch_submitted", "custom_ids": [r["custom_id"] for r in requests]})  # fmt: skip
        return web.json_response(book.batches[batch_id]["object"])

    async def get_message_batch(request: web.Request) -> web.Response:
        batch = book.batches.get(request.match_info["batch_id"])
        if batch is None or batch["kind"] != "anthropic":
            return web.json_response(
                {"type": "error", "error": {"type": "not_found_error", "message": "no batch"}},
                status=404,
            )
        obj = batch["object"]
        if obj["processing_status"] != "ended" and not book.hold:
            batch["polls"] += 1
            if batch["polls"] >= 2:
                _end_anthropic(
                    batch, f"{request.url.origin()}/v1/messages/batches/{obj['id']}/results"
                )
        return web.json_response(obj)

    def _end_anthropic(batch: dict[str, Any], results_url: str) -> None:
        results, counts = (
            [],
            {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        )
        for index, item in enumerate(batch["lines"]):
            params = item["params"]
            if batch["expire"] and index >= len(batch["lines"]) // 2:
                result: dict[str, Any] = {"type": "expired"}
            elif book.fail_contains and book.fail_contains in _text(params["messages"]):
                result = {"type": "errored", "error": {"type": "error",
                          "error": {"type": "invalid_request_error", "message": "injected failure"}}}  # fmt: skip
            else:
                status, msg, entry = message(params)
                log({**entry, "path": "batch", "custom_id": item["custom_id"]})
                result = (
                    {"type": "succeeded", "message": msg}
                    if status == 200
                    else {"type": "errored", "error": msg}
                )
            counts[
                {"succeeded": "succeeded", "errored": "errored", "expired": "expired"}[
                    result["type"]
                ]
            ] += 1
            results.append({"custom_id": item["custom_id"], "result": result})
        batch["results"] = "".join(json.dumps(r) + "\n" for r in results).encode()
        batch["object"].update(processing_status="ended", request_counts=counts, results_url=results_url,
                               ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))  # fmt: skip

    async def message_batch_results(request: web.Request) -> web.Response:
        batch = book.batches.get(request.match_info["batch_id"])
        if batch is None or batch.get("results") is None:
            return web.json_response(
                {"type": "error", "error": {"type": "not_found_error", "message": "no results"}},
                status=404,
            )
        return web.Response(body=batch["results"], content_type="application/binary")

    app.router.add_post("/v1/files", create_file)
    app.router.add_get("/v1/files/{file_id}/content", file_content)
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_post("/v1/messages/batches", create_message_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}", get_message_batch)
    app.router.add_get("/v1/messages/batches/{batch_id}/results", message_batch_results)


def _openai_object(batch_id: str, body: dict[str, Any], n: int) -> dict[str, Any]:
    now = int(time.time())
    return {"id": batch_id, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
            "input_file_id": body.get("input_file_id"), "completion_window": body.get("completion_window", "24h"),
            "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": now,
            "expires_at": now + 86400, "request_counts": {"total": n, "completed": 0, "failed": 0},
            "metadata": body.get("metadata")}  # fmt: skip


def _anthropic_object(batch_id: str, n: int) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": stamp, "expires_at": stamp, "archived_at": None,
            "cancel_initiated_at": None, "results_url": None}  # fmt: skip
