"""Runs the web server and the django-q2 worker together for `run.sh`, and stops both.

Each child runs in its own process group, so a Ctrl-C (SIGINT to the terminal's
foreground group) reaches only this supervisor, which passes exactly one SIGINT to each
child and then waits: a second signal can leave django-q2 hanging mid-shutdown
(PITFALLS.md 13). A child still alive after the grace period is killed. Python, unlike a
non-interactive bash, can handle SIGINT even when it was ignored when it started (as
for background jobs), and its children then start with the default SIGINT action.
"""

import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 25


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:8000"
    stopping = False

    def request_stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    python = sys.executable
    children = [
        subprocess.Popen([python, "manage.py", "qcluster"], process_group=0),
        subprocess.Popen(
            [python, "manage.py", "runserver", "--noreload", address], process_group=0
        ),
    ]
    # Until a signal comes or a child ends (a crash: stop the other one too).
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            # The whole group: qcluster's own worker processes too, not only its parent.
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
