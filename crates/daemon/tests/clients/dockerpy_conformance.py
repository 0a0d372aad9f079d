"""docker-py calls that must behave as against dockerd (issue 13), one check per argument.

Run by crates/daemon/tests/conformance.rs: `python3 dockerpy_conformance.py <check>` with
DOCKER_HOST (and DOCKER_CONFIG) set; a failed check raises.
"""
import os
import socket
import sys
import tempfile
import time

import docker
from docker.types import Healthcheck, LogConfig

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
api = c.api


def kill_waits_for_exit():
    # dockerd answers a SIGKILL only once the exit is recorded.
    ct = c.containers.run("busybox", "sleep 100", detach=True)
    ct.kill()
    ct.reload()
    st = ct.attrs["State"]
    assert (st["Running"], st["ExitCode"], ct.status) == (False, 137, "exited"), st
    # Also when paused: the frozen process dies once thawed.
    ct = c.containers.run("busybox", "sleep 100", detach=True)
    ct.pause()
    ct.kill()
    ct.reload()
    assert (ct.status, ct.attrs["State"]["ExitCode"]) == ("exited", 137), ct.attrs["State"]


def commit_right_after_exit():
    for i in range(3):
        ct = c.containers.run("busybox", f"sh -c 'echo {i} > /f'", detach=True)
        img = ct.commit(f"committed{i}", "1")
        ct.wait()
        out = c.containers.run(img.id, "cat /f", remove=True)
        assert out == f"{i}\n".encode(), out


def healthcheck_null_start_period():
    hc = {"Test": ["CMD", "true"], "Interval": None, "Timeout": None, "Retries": None,
          "StartPeriod": None, "StartInterval": None}
    ct = c.containers.create("busybox", "true", healthcheck=hc)
    ct.reload()
    assert ct.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "true"], ct.attrs["Config"]
    ct.remove()


def exec_tty_framed_by_start():
    ct = c.containers.run("busybox", "sleep 100", detach=True)
    # The exec has a terminal; the start asks for a multiplexed stream, as dockerd frames it.
    eid = api.exec_create(ct.id, "echo hi", tty=True)["Id"]
    out = api.exec_start(eid, tty=False, demux=True)
    assert out == (b"hi\r\n", None), out
    eid = api.exec_create(ct.id, "sh -c 'echo out; echo err >&2'", tty=False)["Id"]
    out = api.exec_start(eid, tty=True)
    assert out == b"out\nerr\n" or out == b"err\nout\n", out
    ct.remove(force=True)


def exec_detach_keys_from_config():
    # DOCKER_CONFIG's config.json sets "detachKeys": "ctrl-x"; docker-py sends it with the exec.
    ct = c.containers.run("busybox", "sleep 100", detach=True)
    eid = api.exec_create(ct.id, "cat", stdin=True, tty=True)["Id"]
    assert api.exec_inspect(eid)["DetachKeys"] == "ctrl-x"
    sock = api.exec_start(eid, socket=True, tty=True)
    raw = sock._sock
    raw.settimeout(30)
    raw.sendall(b"\x18")
    while raw.recv(4096):
        pass  # the daemon closes the stream on detach
    assert api.exec_inspect(eid)["Running"], "detaching must not stop the exec"
    ct.remove(force=True)


def attach_logs_of_exited_container():
    ct = c.containers.run("busybox", "echo hello", detach=True)
    ct.wait()
    out = ct.attach(logs=True, stream=False)
    assert out == b"hello\n", (out, ct.logs())


def log_config_in_inspect():
    # With and without a driver name (`docker run --log-opt` sends none).
    for kind in ["json-file", ""]:
        lc = LogConfig(type=kind, config={"max-size": "1m", "max-file": "2"})
        ct = c.containers.create("busybox", "true", log_config=lc)
        got = ct.attrs["HostConfig"]["LogConfig"]
        assert got == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}, got
        ct.remove()


def rshared_bind_propagation():
    src = tempfile.mkdtemp(dir=os.environ["WHARF_TEST_DIR"])
    ct = c.containers.create("busybox", "true", volumes={src: {"bind": "/mnt", "mode": "rw,rshared"}})
    mounts = ct.attrs["Mounts"]
    assert [m["Propagation"] for m in mounts] == ["rshared"], mounts
    ct.remove()


def runtime_name_kept():
    ct = c.containers.run("busybox", "echo ran", runtime="runc", detach=True)
    assert ct.wait()["StatusCode"] == 0
    assert ct.logs() == b"ran\n"
    ct.reload()
    assert ct.attrs["HostConfig"]["Runtime"] == "runc", ct.attrs["HostConfig"]["Runtime"]


def unknown_log_driver_message():
    try:
        c.containers.create("busybox", "true", log_config=LogConfig(type="nope"))
        raise AssertionError("an unknown log driver must be refused")
    except docker.errors.APIError as e:
        assert e.status_code == 400, e
        assert e.explanation == "logger: no log driver named 'nope' is registered", e.explanation


def load_non_tar_reports_in_stream():
    try:
        c.images.load(b"this is not a tar archive")
        raise AssertionError("loading garbage must fail")
    except docker.errors.ImageLoadError:
        pass


def memory_swap_reported():
    ct = c.containers.create("busybox", "true", mem_limit="64m")
    hc = ct.attrs["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"]) == (64 << 20, 128 << 20), hc


def oom_in_exec_emits_event():
    since = int(time.time()) - 1
    ct = c.containers.run("busybox", "sleep 100", detach=True, mem_limit="16m", memswap_limit="16m")
    # A shell string that grows past the limit.
    r = ct.exec_run(["sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done"])
    assert r.exit_code == 137, r
    ct.reload()
    assert ct.status == "running"
    deadline = time.time() + 30
    while True:
        evs = c.events(since=since, until=int(time.time()) + 1, decode=True,
                       filters={"container": ct.id, "event": "oom"})
        if any(e.get("Action") == "oom" for e in evs):
            break
        assert time.time() < deadline, "no oom event"
        time.sleep(0.2)
    ct.remove(force=True)


globals()[sys.argv[1]]()
print("check ok:", sys.argv[1])
