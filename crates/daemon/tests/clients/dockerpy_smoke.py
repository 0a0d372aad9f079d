"""docker-py (the Python SDK) against wharfd: the calls scripts and tools make most.

Run by crates/daemon/tests/dockerpy.rs with DOCKER_HOST set; any failed check raises.
"""
import io
import os
import tarfile
import time

import docker

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
assert c.ping()
assert c.version()["ApiVersion"] == "1.45"
assert c.info()["OSType"] == "linux"

assert c.containers.run("busybox", "echo hello", remove=True) == b"hello\n"
try:
    c.containers.run("busybox", "sh -c 'exit 3'", remove=True)
    raise AssertionError("a failing run must raise ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3

ct = c.containers.run("busybox", "sh -c 'echo out; echo err >&2; exec sleep 100'", detach=True,
                      name="py1", labels={"a": "b"}, environment={"X": "1"})
deadline = time.time() + 30
while ct.logs() != b"out\nerr\n":
    assert time.time() < deadline, ct.logs()
    time.sleep(0.1)
assert ct.logs(stderr=False) == b"out\n"
r = ct.exec_run("sh -c 'echo $X; exit 3'", environment={"X": "2"})
assert (r.exit_code, r.output) == (3, b"2\n"), r
ct.reload()
assert ct.status == "running" and ct.labels == {"a": "b"}
assert [x.name for x in c.containers.list(filters={"label": "a=b"})] == ["py1"]

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"data!"
    info = tarfile.TarInfo("f.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert ct.put_archive("/tmp", buf.getvalue())
bits, stat = ct.get_archive("/tmp/f.txt")
assert (stat["name"], stat["size"]) == ("f.txt", 5)
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert t.extractfile("f.txt").read() == b"data!"

assert "PID" in ct.top()["Titles"]
assert "memory_stats" in ct.stats(stream=False)
ct.pause()
ct.reload()
assert ct.status == "paused"
ct.unpause()
ct.kill()
assert ct.wait()["StatusCode"] == 137
ct.remove()

assert ["busybox:latest"] in [i.tags for i in c.images.list()]
img = c.images.get("busybox")
img.tag("pytag", "1")
assert "pytag:1" in c.images.get("pytag:1").tags
c.images.remove("pytag:1")
try:
    c.containers.get("nope")
    raise AssertionError("an unknown container must raise NotFound")
except docker.errors.NotFound as e:
    assert "No such container: nope" in e.explanation

ct = c.containers.create("busybox", "true")
ct.start()
assert ct.wait()["StatusCode"] == 0
assert ct.id in c.containers.prune()["ContainersDeleted"]
assert any(e.get("Action") == "start" for e in c.events(since=0, until=int(time.time()) + 1, decode=True))
assert "LayersSize" in c.df()
print("docker-py: ok")
