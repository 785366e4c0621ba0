"""A lean closed-loop HTTP load generator (raw asyncio, keep-alive), run in its own process so its CPU
is not the service's. Prints one JSON object: requests, jobs, seconds, latencies (ms) and errors.

Modes:
  wait   each client: POST /predict?wait=30 (or --path: any synchronous route, e.g. KServe's infer), expect 200
  poll   each client: POST /predict (202), then GET /result/<id>?wait=30 (long-poll), expect 200
  flight keep `--in-flight` jobs submitted and not yet read, over `--clients` connections: submit while
         under the target, else long-poll the oldest job
  classic  POST /predict to the classic recipe (no job ids), expect 200

Usage: python -m bench.loadgen --url http://127.0.0.1:8000 --mode wait --clients 64 --seconds 8 --body FILE
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time
from urllib.parse import urlsplit

import orjson

WAIT_PATH = "/predict?wait=30"


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int, headers: str = "") -> None:
        self.host, self.port, self.headers = host, port, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{self.headers}\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            await self.close()
            return await self.request(method, path, body)
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def run(
    url: str,
    mode: str,
    clients: int,
    seconds: float,
    body: bytes,
    in_flight: int,
    stop_file: str | None = None,
    wait_path: str = WAIT_PATH,
    headers: str = "",
) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    errors: collections.Counter = collections.Counter()
    requests = 0
    deadline = time.perf_counter() + seconds
    pending: collections.deque = collections.deque()

    async def watch_stop_file() -> None:
        nonlocal deadline
        while stop_file and time.perf_counter() < deadline:
            if os.path.exists(stop_file):
                deadline = 0.0
            await asyncio.sleep(0.05)

    async def submit(conn: Connection) -> str | None:
        nonlocal requests
        status, data = await conn.request("POST", "/predict", body)
        requests += 1
        if status != 202:
            errors[f"submit {status}"] += 1
            return None
        return orjson.loads(data)["id"]

    async def read_result(conn: Connection, job_id: str) -> bool:
        nonlocal requests
        status, data = await conn.request("GET", f"/result/{job_id}?wait=30")
        requests += 1
        if status != 200 or orjson.loads(data).get("status") != "finished":
            errors[f"result {status}"] += 1
            return False
        return True

    async def closed_loop_client() -> None:
        nonlocal requests
        conn = Connection(parts.hostname, parts.port, headers)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if mode in ("wait", "classic"):
                path = wait_path if mode == "wait" else "/predict"
                status, _ = await conn.request("POST", path, body)
                requests += 1
                ok = status == 200
                if not ok:
                    errors[f"{status}"] += 1
            else:
                job_id = await submit(conn)
                ok = job_id is not None and await read_result(conn, job_id)
            if ok:
                latencies.append(time.perf_counter() - started)
        await conn.close()

    async def flight_client() -> None:
        conn = Connection(parts.hostname, parts.port)
        while time.perf_counter() < deadline:
            if len(pending) < in_flight:
                started = time.perf_counter()
                job_id = await submit(conn)
                if job_id:
                    pending.append((job_id, started))
            elif pending:
                job_id, started = pending.popleft()
                if await read_result(conn, job_id):
                    latencies.append(time.perf_counter() - started)
        await conn.close()

    worker = flight_client if mode == "flight" else closed_loop_client
    began = time.perf_counter()
    await asyncio.gather(watch_stop_file(), *(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "mode": mode,
        "clients": clients,
        "seconds": elapsed,
        "requests": requests,
        "jobs": len(latencies),
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
        "errors": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["wait", "poll", "flight", "classic"], required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--body", required=True, help="file holding the JSON request body")
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--stop-file", help="stop early once this file exists")
    parser.add_argument("--path", default=WAIT_PATH, help="the route --mode wait posts to")
    parser.add_argument("--header", action="append", default=[], help="an extra request header, NAME: VALUE")
    args = parser.parse_args()
    with open(args.body, "rb") as f:
        body = f.read()
    result = asyncio.run(
        run(
            args.url,
            args.mode,
            args.clients,
            args.seconds,
            body,
            args.in_flight,
            args.stop_file,
            args.path,
            "".join(f"{h}\r\n" for h in args.header),
        )
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
