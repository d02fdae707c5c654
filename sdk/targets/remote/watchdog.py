"""Run one command on the device and end it when the SSH session ends or goes silent.

Invoked as ``python3 -I -S -c SOURCE HEARTBEAT N K1=V1 .. KN=VN ARGV...`` (seconds of silence
allowed, N environment settings, then the command).  Without a terminal sshd does not signal a
command when the connection closes, times out or drops: it only closes the command's pipes,
and a benchmark would keep running on the device.  Worse, an sshd with its default settings
(no ClientAliveInterval) never notices a link that died silently.  So this watchdog holds the
session's stdin, where the client writes a heartbeat byte every keepalive interval; it runs
the command in its own session and process group with stdin from /dev/null, and kills the
group when stdin reaches EOF or no heartbeat came for HEARTBEAT seconds (0: never).  The
command gets a private TMPDIR, removed when it ends, so nothing it or its libraries put there
stays behind.  Exit status: the command's, 128+N when it died of signal N, 127 when it could
not be started.  Only builtin modules, so it starts in a few milliseconds.
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
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # the watchdog's handlers are not the command's
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


def private_tmpdir(env):
    """A fresh 0700 directory under the command's TMPDIR (or /tmp), or None if none can be made."""
    base = env.get("TMPDIR") or "/tmp"
    for _ in range(5):
        path = os.path.join(base, "edgeship-run-" + os.urandom(8).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


def remove_tree(path):
    """rm -rf without importing shutil (every import delays each remote command)."""
    if not path:
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files + dirs:
            full = os.path.join(root, name)
            try:
                if os.path.isdir(full) and not os.path.islink(full):
                    os.rmdir(full)
                else:
                    os.unlink(full)
            except OSError:
                pass
    try:  # noqa: SIM105 (no contextlib: see above)
        os.rmdir(path)
    except OSError:
        pass


def supervise(pid, heartbeat):
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() when the command ends
    heard = time.monotonic()
    while True:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            return status(code)
        wait = 5.0 if heartbeat <= 0 else max(0.05, min(5.0, heard + heartbeat - time.monotonic()))
        ready = select.select([0, wake_r], [], [], wait)[0]
        if wake_r in ready:
            os.read(wake_r, 512)
        if 0 in ready:
            if not os.read(0, 65536):  # the session ended
                return stop(pid)
            heard = time.monotonic()
        if heartbeat > 0 and time.monotonic() - heard > heartbeat:  # the link died silently
            return stop(pid)


def main():
    heartbeat = float(sys.argv[1])
    count = int(sys.argv[2])
    env = dict(os.environ)
    for item in sys.argv[3:3 + count]:
        key, _, value = item.partition("=")
        env[key] = value
    tmpdir = private_tmpdir(env)
    if tmpdir:
        env["TMPDIR"] = tmpdir
    try:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        signal.signal(signal.SIGHUP, lambda *_: sys.exit(128 + signal.SIGHUP))
        pid = start(sys.argv[3 + count:], env)
        try:
            return supervise(pid, heartbeat)
        except SystemExit:
            stop(pid)
            raise
    finally:
        remove_tree(tmpdir)


if __name__ == "__main__":
    sys.exit(main())
