"""Count the AWS calls moto recorded, by service:Operation.

Usage: python count_calls.py [RECORDING]   (default: $ROLECALL_TEST_MOTO_RECORDING)
Prints a JSON object such as {"iam:CreateRole": 2, "s3:PUT bucket": 1}.

scripts/moto.sh starts moto with MOTO_ENABLE_RECORDING, so every request
(except /moto-api/*) is appended to the recording as one JSON line with its
headers, method, url and body. Empty it with
POST /moto-api/recorder/reset-recording (scripts/moto.sh reset does).
Query/JSON protocols give the operation name (Action=, X-Amz-Target); S3 is
REST, so it is named by method and target: "s3:GET /", "s3:PUT bucket",
"s3:GET object", plus "?subresource" when present.
"""

import base64
import collections
import json
import os
import re
import sys
from urllib.parse import parse_qs, urlparse


def operation(entry: dict) -> str:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    scope = re.search(r"Credential=[^/]*/[^/]*/[^/]*/([^/]*)/", headers.get("authorization", ""))
    service = scope.group(1) if scope else "?"
    if "x-amz-target" in headers:
        return f"{service}:{headers['x-amz-target'].split('.')[-1]}"
    url = urlparse(entry["url"])
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    params = parse_qs(url.query, keep_blank_values=True)
    if "form-urlencoded" in headers.get("content-type", ""):
        params.update(parse_qs(body, keep_blank_values=True))
    if "Action" in params:
        return f"{service}:{params['Action'][0]}"
    parts = [p for p in url.path.split("/") if p]
    target = "/" if not parts else "bucket" if len(parts) == 1 else "object"
    sub = "".join(f"?{k}" for k in sorted(parse_qs(url.query, keep_blank_values=True)))
    return f"{service}:{entry['method']} {target}{sub}"


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ["ROLECALL_TEST_MOTO_RECORDING"]
    with open(path) as f:
        counts = collections.Counter(operation(json.loads(line)) for line in f if line.strip())
    print(json.dumps(dict(sorted(counts.items())), indent=1))


if __name__ == "__main__":
    main()
