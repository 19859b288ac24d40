#!/usr/bin/python3
"""test_server.py - llama-server with libfasa: N parallel slots answer N concurrent
greedy requests; each slot's tokens must equal the same prompt decoded alone.

  test_server.py --server BIN --model GGUF --data val_tokens.bin --window-len N
                 [--windows 5,6,7,8] [--prefill 256] [--gen 24] [--fasa-profile P --fasa-budget B]
                 [--log FILE]

Prints one line per comparison, then the adapter's summary line from the server
log ("fasa: N graphs served ...; fell back ...: reasons"), and a final line
"RESULT pass|fail|fallback": fallback when the concurrent batches were not served
by libfasa (several sequences in one batch), so the comparison tested llama.cpp's
attention against libfasa's and says nothing about the adapter. Only 127.0.0.1
is contacted; every wait is bounded.
"""
import argparse
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, body, timeout=120):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_healthy(port, proc, seconds=120):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--window-len", type=int, required=True)
    ap.add_argument("--windows", default="5,6,7,8")
    ap.add_argument("--prefill", type=int, default=256)
    ap.add_argument("--gen", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fasa-profile")
    ap.add_argument("--fasa-budget", default="256")
    ap.add_argument("--log", required=True)
    ap.add_argument("--expect", help="file of 'tokens W: ids' lines (llama-fasa-tool generate) "
                    "that the alone runs must equal")
    a = ap.parse_args()

    raw = open(a.data, "rb").read()
    toks = struct.unpack(f"<{len(raw) // 2}H", raw)
    windows = [int(w) for w in a.windows.split(",")]
    prompts = [list(toks[w * a.window_len: w * a.window_len + a.prefill]) for w in windows]
    n = len(prompts)
    port = free_port()
    cmd = [a.server, "-m", a.model, "--host", "127.0.0.1", "--port", str(port), "-np", str(n),
           "-c", str(n * (a.prefill + a.gen + 64)), "-t", str(a.threads), "-fa", "--no-warmup"]
    if a.fasa_profile:
        cmd += ["--fasa-profile", a.fasa_profile, "--fasa-budget", a.fasa_budget]
    log = open(a.log, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    rc = "fail"
    try:
        if not wait_healthy(port, proc):
            print("server did not become healthy")
            return 1
        body = lambda p: {"prompt": p, "n_predict": a.gen, "temperature": 0.0, "cache_prompt": False,
                          "return_tokens": True, "samplers": ["top_k"], "top_k": 1}
        alone = [post(port, body(p))["tokens"] for p in prompts]
        together = [None] * n
        def worker(i):
            together[i] = post(port, body(prompts[i]))["tokens"]
        ths = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(timeout=300)
        same = 0
        for i in range(n):
            ok = together[i] == alone[i]
            same += ok
            print(f"server: slot request {i} (window {windows[i]}): concurrent vs alone "
                  f"{'identical' if ok else 'DIFFERENT'}")
        expect_ok = True
        if a.expect:
            ref = {}
            for line in open(a.expect):
                if line.startswith("tokens "):
                    w, ids = line[7:].split(":", 1)
                    ref[int(w)] = [int(x) for x in ids.split()]
            for i, w in enumerate(windows):
                ok = ref.get(w) == alone[i]
                expect_ok &= ok
                print(f"server: window {w} alone vs llama-fasa-tool generate: {'identical' if ok else 'DIFFERENT'}")
        rc = "pass" if same == n and expect_ok else "fail"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    summary = [l for l in open(a.log, errors="replace") if l.startswith("fasa:")]
    for l in summary:
        print("server log: " + l.rstrip())
    if any("several sequences" in l for l in summary):
        rc = "fallback" if rc == "fail" else "pass-with-fallback"
    print("RESULT " + rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
