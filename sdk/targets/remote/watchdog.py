"""Run one command on the device and end it when the SSH session ends.

Invoked as ``python3 -I -S -c SOURCE N K1=V1 .. KN=VN ARGV...`` (N environment settings, then
the command).  Without a terminal sshd does not signal a command when the connection closes,
times out or drops: it only closes the command's pipes, and a benchmark would keep running on
the device.  This watchdog holds the session's stdin (the client never closes it), runs the
command in its own session and process group with stdin from /dev/null, and kills the group
when stdin reaches EOF.  Exit status: the command's, 128+N when it died of signal N, 127 when
it could not be started.  Only builtin modules, so it starts in a few milliseconds.
"""

import os
import select
import signal
import sys
import time


def start(argv, env):
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(2, ("edgeship: cannot run " + argv[0] + ": " + str(exc.strerror) + "\n").encode())
    os._exit(127)


def status(code):
    return 128 + os.WTERMSIG(code) if os.WIFSIGNALED(code) else os.WEXITSTATUS(code)


def stop(pid):
    """SIGTERM the command's process group, SIGKILL it 2 s later; return its status."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:  # noqa: SIM105 (no contextlib: every import delays each remote command)
            os.killpg(pid, sig)
        except OSError:
            pass
        deadline = time.time() + grace
        while time.time() < deadline:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                return status(code)
            time.sleep(0.02)
    return 128 + signal.SIGKILL


def main():
    count = int(sys.argv[1])
    env = dict(os.environ)
    for item in sys.argv[2:2 + count]:
        key, _, value = item.partition("=")
        env[key] = value
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() when the command ends
    pid = start(sys.argv[2 + count:], env)
    while True:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            return status(code)
        ready = select.select([0, wake_r], [], [], 5.0)[0]
        if wake_r in ready:
            os.read(wake_r, 512)
        if 0 in ready and not os.read(0, 65536):  # the session ended
            return stop(pid)


if __name__ == "__main__":
    sys.exit(main())
