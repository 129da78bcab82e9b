import signal
import sys


def _interrupted(signum, frame):
    raise KeyboardInterrupt


# Until the server takes them over, SIGTERM stops it as Ctrl-C does, also
# while it is still importing: one line, no traceback.
signal.signal(signal.SIGTERM, _interrupted)
try:
    from posthouse.cli import main
    code = main()
except KeyboardInterrupt:
    print("posthouse: stopped while starting", file=sys.stderr)
    code = 0 if "serve" in sys.argv[1:] else 130
raise SystemExit(code)
