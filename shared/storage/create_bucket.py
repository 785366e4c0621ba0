"""`python -m shared.storage.create_bucket`: create STORAGE_URL's bucket if it does not exist, then exit 0.

docker compose runs it once (service storage-init, from the API image) before the API and workers start,
against the S3 server there (SeaweedFS); it works against any S3 endpoint boto3 can reach (AWS_ENDPOINT_URL
and the standard credential variables). It waits for the endpoint to answer, up to --wait-s seconds, since
a freshly started server takes a moment; an existing bucket (ours) counts as success.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from shared.config import Settings
from shared.storage.s3 import CLIENT_CONFIG

log = logging.getLogger("inference.storage")
EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def create_bucket(bucket: str, wait_s: float, client: Any = None) -> None:
    """Create `bucket`, retrying while the endpoint does not answer; raise after `wait_s` seconds."""
    client = client or boto3.session.Session().client("s3", config=CLIENT_CONFIG)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            log.info("created bucket %s", bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in EXISTS:
                log.info("bucket %s exists", bucket)
                return
            error: Exception = exc
        except BotoCoreError as exc:  # the endpoint is not answering yet
            error = exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not create bucket {bucket!r} within {wait_s} s: {error}") from error
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for the endpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    if not settings.storage_bucket:
        print("STORAGE_URL is not an s3:// URL: no bucket to create", file=sys.stderr)
        return 2
    create_bucket(settings.storage_bucket, args.wait_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
