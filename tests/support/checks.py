"""What the Python test drivers share: whether a process is really gone, and a tiny case runner
that reports every failure, goes on, and ends with the "N passed, M failed" line."""
import sys

_passed, _failed = [], []


def alive(pid):
    """A zombie counts as gone: this machine's init reaps orphans lazily."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def run_case(name, fn, *args):
    try:
        fn(*args)
        _passed.append(name)
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        _failed.append(name)
        print(f"FAIL {name}: {e}", file=sys.stderr)


def case(name):
    """Decorator: runs the function at once as a test case."""
    def wrap(fn):
        run_case(name, fn)
        return fn
    return wrap


def finish():
    print(f"{len(_passed)} passed, {len(_failed)} failed")
    sys.exit(1 if _failed else 0)
