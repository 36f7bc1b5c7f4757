"""schemathesis hooks for pipeline-ledger: how to send an NDJSON batch (the document gives a
batch's lines as an array; the body is one JSON document per line)."""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()
