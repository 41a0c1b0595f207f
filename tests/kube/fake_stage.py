"""A stand-in for `xtrc-runtime run-stage` in FakeCluster pods: starts in a fraction of a second.

The stage config comes from ``$XTRC_STAGE_CONFIG`` as in a real stage Job. What the stage does
comes from ``$XTRC_FAKE_STAGES`` (the test process's environment, which FakeCluster's pods
inherit): JSON mapping a selector to a behaviour. A selector is a stage key, or
``<kind>:<task,task>`` (train tasks, else evaluation tasks), or ``<kind>``, or ``*``; the first
that matches, in that order, wins (default ``ok``).

Behaviours: ``ok`` (write stage.json, metrics.json and then _SUCCESS to the store, exit 0),
``config-error`` (an ERROR line as the runtime logs it, exit 2), ``fail`` (exit 1, transient),
``sleep`` (run until killed), ``no-success`` (exit 0 without writing anything: a stage that
"finished" but did not commit). ``$XTRC_FAKE_SECONDS`` (default 0) is how long a stage works
before it does that.
"""

from __future__ import annotations

import json
import os
import sys
import time


def log(level: str, message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {level} {message}", file=sys.stderr, flush=True)


def main() -> int:
    config = json.loads(os.environ[sys.argv[sys.argv.index("--config-env") + 1]])
    key, kind = config["key"], config["kind"]
    tasks = config.get("train_tasks") or [e["task"] for e in config.get("eval_tasks", [])]
    rules = json.loads(os.environ.get("XTRC_FAKE_STAGES", "{}"))
    behaviour = next((rules[s] for s in (key, f"{kind}:{','.join(tasks)}", kind, "*") if s in rules), "ok")
    log("INFO", f"fake stage {key} ({kind} {','.join(tasks)}): {behaviour}")
    seconds = float(os.environ.get("XTRC_FAKE_SECONDS", "0"))
    for step in range(int(seconds * 10)):
        time.sleep(0.1)
        if step % 10 == 0:
            log("INFO", f"step {step // 10 + 1}")
    if behaviour == "sleep":
        while True:
            time.sleep(1)
    if behaviour == "config-error":
        log("ERROR", f"configuration error: no data for {tasks[0]} at /nonexistent/{tasks[0]}")
        print(json.dumps({"status": "config-error", "error": "no data"}))
        return 2
    if behaviour == "no-success":
        return 0
    if behaviour == "fail":
        log("ERROR", "stage failed: ConnectionError: the store went away")
        return 1
    import fsspec

    fs, root = fsspec.core.url_to_fs(config["store"], **config.get("storage_options", {}))
    base = f"{root.rstrip('/')}/stages/{key}"
    fs.makedirs(base, exist_ok=True)
    for name, body in (("stage.json", config), ("metrics.json", {"key": key, "fake": True}), ("_SUCCESS", {})):
        with fs.open(f"{base}/{name}", "w") as f:
            f.write(json.dumps(body))
    log("INFO", f"stage {key} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
