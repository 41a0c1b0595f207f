"""Start moto's S3-compatible server (``moto.server.main``) with a durable request log, so that
a killed server can be started again with its objects.

moto keeps its state in memory only. Its recorder (``MOTO_ENABLE_RECORDING``) appends every
request it receives, body included, to ``MOTO_RECORDER_FILEPATH`` before handling it. This
launcher adds two things moto's server does not do by itself:

* the recorder's append is serialised with a lock: moto writes a large entry and its newline in
  two writes, so two concurrent requests could otherwise interleave into one broken line;
* on start, an existing log is replayed (moto's own ``recorder.replay_recording``) against a
  private server on another loopback port that shares this process's backends, *before* the
  public port is bound: clients see "connection refused" until the state is back, never a
  half-restored store (moto's replay assumes no other traffic while it runs).

A partial last line (the server was killed while logging a request it had not handled yet) is
dropped. Run: ``python moto_launcher.py -H 127.0.0.1 -p PORT`` (moto.server's own arguments).
"""

from __future__ import annotations

import os
import sys
import threading
import time


def _serialise_recorder() -> None:
    from moto.moto_api import recorder

    lock = threading.Lock()
    record = recorder._record_request

    def locked(*args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            return record(*args, **kwargs)

    recorder._record_request = locked


def _replay(path: str) -> int:
    """Replay the log at ``path`` into this process's backends; the number of requests."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "wb") as f:
            f.write(data)
    count = data.count(b"\n")
    if not count:
        return 0
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    private = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    private.start()
    try:
        host, port = private.get_host_and_port()
        recorder.replay_recording(target_host=f"http://{host}:{port}")
    finally:
        private.stop()
    return count


def main() -> None:
    _serialise_recorder()
    path = os.environ.get("MOTO_RECORDER_FILEPATH", "moto_recording")
    started = time.monotonic()
    replayed = _replay(path)
    print(f"moto_launcher: replayed {replayed} requests from {path} in {time.monotonic() - started:.2f}s",
          file=sys.stderr, flush=True)
    from moto.server import main as serve

    serve(sys.argv[1:])


if __name__ == "__main__":
    main()
