"""`inferq` (or `python -m inferq`): the service from a shell. JSON goes to stdout, errors and progress bars to
stderr; any error is one line on stderr and exit status 1.

    inferq predict rows.json                 # rows: a JSON array of rows, or {"instances": [...]}
    inferq submit rows.json                  # prints the job id
    inferq status JOB_ID
    inferq result JOB_ID --timeout 60
    inferq cancel JOB_ID
    inferq batch upload rows.npy --wait --output predictions.ndjson
    inferq batch status BATCH_ID
    inferq batch download BATCH_ID predictions.npy
    inferq batch cancel BATCH_ID

The service URL is --url, else $INFERQ_URL, else http://127.0.0.1:8000; the API key is --api-key, else
$INFERQ_API_KEY.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from inferq import core
from inferq.errors import ClientError
from inferq.sync import Batch, Client


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="inferq", description="Client of the batched-inference service.")
    top.add_argument(
        "--url",
        default=core.base_url(None),
        help=f"service URL (default: {core.base_url(None)}; ${core.URL_VARIABLE} sets the default)",
    )
    top.add_argument("--api-key", help=f"API key, sent as Authorization: Bearer (default: ${core.API_KEY_VARIABLE})")
    top.add_argument("--model", help="model to run predictions and batches on (default: the service's first)")
    top.add_argument("--version", help="model version or version label (default: the newest when the job runs)")
    commands = top.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="predict rows and print the predictions")
    predict.add_argument("file", help='JSON array of rows or {"instances": [...]}; - for stdin')
    predict.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    submit = commands.add_parser("submit", help="enqueue rows as a job and print its id")
    submit.add_argument("file", help='JSON array of rows or {"instances": [...]}; - for stdin')
    commands.add_parser("status", help="print a job's status").add_argument("job_id")
    result = commands.add_parser("result", help="wait for a job and print its predictions")
    result.add_argument("job_id")
    result.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    commands.add_parser("cancel", help="cancel a job that has not started").add_argument("job_id")

    batch = commands.add_parser("batch", help="bulk batches").add_subparsers(dest="batch_command", required=True)
    upload = batch.add_parser("upload", help="upload a .ndjson/.jsonl, .csv or .npy file as a batch")
    upload.add_argument("file")
    upload.add_argument("--wait", action="store_true", help="wait for the batch to end, with a progress bar")
    upload.add_argument(
        "--output",
        help="with --wait: download the results here (.npy or NDJSON); exit status 1 if the batch did not complete",
    )
    upload.add_argument("--on-error", choices=["reject", "skip"], help="skip: run the valid rows, report the others")
    upload.add_argument("--callback-url", help="URL to POST the batch's final status to")
    upload.add_argument("--metadata", type=json.loads, help="a JSON object stored with the batch")
    upload.add_argument("--quiet", action="store_true", help="no progress bars")
    batch.add_parser("status", help="print a batch's status").add_argument("batch_id")
    wait = batch.add_parser("wait", help="wait for a batch to end, with a progress bar")
    wait.add_argument("batch_id")
    download = batch.add_parser("download", help="save a batch's results (.npy if the path ends so, else NDJSON)")
    download.add_argument("batch_id")
    download.add_argument("path")
    download.add_argument("--partial", action="store_true", help="the rows finished so far of a running batch")
    batch.add_parser("cancel", help="cancel a batch").add_argument("batch_id")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with Client(args.url, api_key=args.api_key, model=args.model, version=args.version) as client:
            output = run(client, args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        details = getattr(exc, "details", None)
        for item in details or []:
            print(f"  {json.dumps(item)}", file=sys.stderr)
        return 1
    except (OSError, ValueError, httpx.InvalidURL) as exc:  # unreadable file, bad JSON, a URL that is not one
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if output is not None:
        print(json.dumps(output))
    return 0


def run(client: Client, args: argparse.Namespace) -> Any:
    """Do one command; returns what to print as JSON."""
    if args.command == "predict":
        return client.predict(_rows(args.file), timeout=args.timeout)
    if args.command == "submit":
        return {"id": client.submit(_rows(args.file)).id}
    if args.command == "status":
        return {"id": args.job_id, "status": client.job(args.job_id).status()}
    if args.command == "result":
        return client.job(args.job_id).result(timeout=args.timeout)
    if args.command == "cancel":
        return client.job(args.job_id).cancel()
    return run_batch(client, args)


def run_batch(client: Client, args: argparse.Namespace) -> Any:
    command = args.batch_command
    if command == "upload":
        batch = client.submit_batch(
            args.file,
            on_error=args.on_error,
            callback_url=args.callback_url,
            metadata=args.metadata,
            progress=not args.quiet,
        )
        if not args.wait:
            return batch.doc
        doc = batch.wait(progress=not args.quiet)
        if args.output:
            save_results(batch, args.output)
        return doc
    if command == "status":
        return client.batch(args.batch_id).status()
    if command == "wait":
        return client.batch(args.batch_id).wait(progress=True)
    if command == "download":
        size = client.batch(args.batch_id).download(args.path, partial=args.partial)
        return {"path": args.path, "bytes": size}
    return client.batch(args.batch_id).cancel()


class BatchDidNotComplete(ClientError):
    """`batch upload --wait --output` on a batch that ended other than completed."""


def save_results(batch: Batch, path: str) -> None:
    """Download a completed batch's results to `path`; raise for any other end (a cancelled batch's finished
    rows are saved first)."""
    doc = batch.doc or {}
    if doc.get("output_url"):
        size = batch.download(path)
        print(f"results: {path} ({size} bytes)", file=sys.stderr)
    if doc.get("status") != "completed":
        saved = f"only the finished rows are in {path}" if doc.get("output_url") else f"{path} was not written"
        raise BatchDidNotComplete(
            f"batch {batch.id} is {doc.get('status')}, not completed: {saved} (see `inferq batch status {batch.id}`)"
        )


def _rows(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else open(path).read()
    doc = json.loads(text)
    return doc["instances"] if isinstance(doc, dict) and "instances" in doc else doc
