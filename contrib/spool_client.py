#!/usr/bin/env python3
"""Submit a file to a running `spool watch` and wait for its signed callback.

    python3 contrib/spool_client.py --api http://127.0.0.1:7300 --token TOKEN \
        --secret CALLBACK_SECRET --workflow web INPUT [--upload] [--priority 10] [--param k=v]

Standard library only. Starts a one-shot HTTP server on 127.0.0.1 for the callback, submits
the job (POST /v1/jobs with an idempotency key, so running it twice never makes two jobs),
checks every callback's X-Spool-Signature (HMAC-SHA256 of the body under the daemon's
api.callback_secret), and prints the manifest when the job succeeds. With --upload the
file is sent first (PUT /v1/blobs/<sha256>) for a daemon on another machine; otherwise
INPUT must be a path the daemon can read under its api.input_roots.
Exit status: 0 succeeded, 1 failed or refused, 2 bad signature.
"""
import argparse, hashlib, hmac, http.server, json, os, queue, sys, threading, urllib.request, urllib.error


def call(api, token, method, path, body=None, content_type="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(api + path, data=data, method=method)
    req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def callback_server(secret, events):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(want, self.headers.get("X-Spool-Signature", ""))
            self.send_response(200 if signed else 401)
            self.end_headers()
            events.put((signed, json.loads(body)))

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def upload(api, token, path):
    data = open(path, "rb").read()
    digest = hashlib.sha256(data).hexdigest()
    status, reply = call(api, token, "PUT", f"/v1/blobs/{digest}", data, "application/octet-stream")
    if status not in (200, 201):
        sys.exit(f"upload refused ({status}): {reply}")
    return f"blob:{digest}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--api", default="http://127.0.0.1:7300")
    ap.add_argument("--token", default=os.environ.get("SPOOL_TOKEN"))
    ap.add_argument("--secret", default=os.environ.get("SPOOL_CALLBACK_SECRET", ""))
    ap.add_argument("--workflow", required=True)
    ap.add_argument("--output")
    ap.add_argument("--priority", type=int, default=0)
    ap.add_argument("--param", action="append", default=[], help="k=v (v read as JSON when it parses)")
    ap.add_argument("--upload", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()

    events = queue.Queue()
    server = callback_server(args.secret, events)
    params = {}
    for p in args.param:
        k, _, v = p.partition("=")
        try:
            params[k] = json.loads(v)
        except ValueError:
            params[k] = v
    data = open(args.input, "rb").read() if not args.upload else b""
    source = upload(args.api, args.token, args.input) if args.upload else os.path.abspath(args.input)
    key = hashlib.sha256((source + args.workflow + json.dumps(params, sort_keys=True)).encode() + data[:65536]).hexdigest()
    request = {"input": source, "workflow": args.workflow, "priority": args.priority, "params": params,
               "idempotency_key": key, "callback": f"http://127.0.0.1:{server.server_port}/spool"}
    if args.upload:
        request["name"] = os.path.basename(args.input)
    if args.output:
        request["output"] = os.path.abspath(args.output)
    status, reply = call(args.api, args.token, "POST", "/v1/jobs", request)
    if status not in (200, 201):
        print(f"refused ({status}): {reply.get('error') if reply else reply}", file=sys.stderr)
        return 1
    job = reply["id"]
    print(f"job {job} ({'created' if reply['created'] else 'submitted before'}, {reply['status']})", file=sys.stderr)
    while True:
        try:
            signed, event = events.get(timeout=args.timeout)
        except queue.Empty:
            print("no callback in time", file=sys.stderr)
            return 1
        if not signed:
            print("a callback with a bad signature: ignored", file=sys.stderr)
            return 2
        if event.get("job") != job:
            continue
        kind = event.get("event")
        print(f"  {kind} {event.get('progress', '')}", file=sys.stderr)
        if kind == "succeeded":
            print(json.dumps(event.get("manifest_json") or event.get("manifest"), indent=2))
            return 0
        if kind in ("failed", "cancelled", "skipped"):
            print(f"job {kind}: {event.get('reason')}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
