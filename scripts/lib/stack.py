"""The Python side of scripts/lib/stack.sh: the same launcher, called as a command.

The Python scripts keep their own subprocess.Popen handles (their CPU and memory
readings need the services' pids, and a parent must reap its children), but what
they start, how they wait and how they stop is stack.sh's:

    proc = subprocess.Popen(stack.service_argv("inventory"), env=env, ...)
        stack.sh execs into $BIN_DIR/inventory (BIN_DIR / PROFILE in env), so
        proc.pid is the service's
    stack.ready("inventory", url + "/health/ready", proc, log_path, timeout=60)
        polls until 2xx; StackError with the log's tail when the process exits
        first or the timeout passes
    stack.nats_argv(port, store), stack.listening(name, port, proc, log_path)
        a JetStream nats-server, and the wait for its port
    stack.stop(proc)
        SIGTERM, SIGKILL after 10 s, then reaped

Standard library only.
"""

import os
import socket
import subprocess

STACK_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stack.sh")


class StackError(RuntimeError):
    """A process that did not come up; the message says why and shows its log tail."""


def service_argv(service, bin_dir=None):
    """argv that runs SERVICE from bin_dir (default: BIN_DIR, else PROFILE's target folder)."""
    return ["bash", STACK_SH, "exec", *(["--bin-dir", bin_dir] if bin_dir else []), service]


def nats_argv(port, store):
    return ["bash", STACK_SH, "nats", str(port), store]


def _wait(command, name, what, proc, log_path, timeout):
    out = subprocess.run(["bash", STACK_SH, command, name, str(what), str(proc.pid), log_path or "-", str(timeout)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise StackError(out.stderr.strip() or f"{name} did not come up")


def ready(name, url, proc, log_path=None, timeout=60):
    _wait("ready", name, url, proc, log_path, timeout)


def listening(name, port, proc, log_path=None, timeout=10):
    _wait("listening", name, port, proc, log_path, timeout)


def stop(proc, timeout=10):
    if proc.poll() is None:
        subprocess.run(["bash", STACK_SH, "stop", str(proc.pid)], env=dict(os.environ, STACK_STOP_TIMEOUT=str(timeout)),
                       check=False)
    proc.wait()


def bin_dir(default_profile):
    return subprocess.run(["bash", STACK_SH, "bin-dir", default_profile], capture_output=True, text=True,
                          check=True).stdout.strip()


def build(message, *cargo_args, cwd=None):
    """`cargo build CARGO_ARGS` after MESSAGE, unless BUILD=no."""
    subprocess.run(["bash", STACK_SH, "build", message, *cargo_args], cwd=cwd, check=True)


def nats_server():
    """The nats-server stack.sh would run, or None."""
    out = subprocess.run(["bash", STACK_SH, "nats-server"], capture_output=True, text=True)
    return out.stdout.strip() or None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """One service process on a loopback port of its own that stays the same across
    restarts, ENV on top of this process's environment, its log in WORK/<service>-<index>.log."""

    def __init__(self, service, index, env, work):
        self.service, self.index, self.env, self.work = service, index, env, work
        self.port = free_port()
        self.proc = None
        self.name = f"{service}-{index}"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, bin_dir=None):
        path = os.path.join(self.work, f"{self.name}.log")
        env = dict(os.environ, PORT=str(self.port), **self.env)
        self.proc = subprocess.Popen(service_argv(self.service, bin_dir), env=env,
                                     stdout=open(path, "ab"), stderr=subprocess.STDOUT)
        ready(self.name, self.url + "/health/ready", self.proc, path, timeout=60)

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
