"""docker-py volume calls against wharfd: create, list, inspect, prune, remove, and runs with
volume, bind and subpath mounts. Run by crates/daemon/tests/volumes.rs; argv[1] is a host dir.
"""
import os
import sys

import docker
from docker.types import Mount

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
host = sys.argv[1]

v = c.volumes.create(name="pyvol", driver="local", labels={"app": "py"})
assert v.name == "pyvol" and v.attrs["Driver"] == "local", v.attrs
assert v.attrs["Labels"] == {"app": "py"}, v.attrs
assert v.attrs["Mountpoint"].endswith("/volumes/pyvol/_data"), v.attrs
assert [x.name for x in c.volumes.list(filters={"label": "app=py"})] == ["pyvol"]
assert c.volumes.get("pyvol").attrs["Scope"] == "local"
try:
    c.volumes.get("nope")
    raise AssertionError("a missing volume must raise NotFound")
except docker.errors.NotFound:
    pass
try:
    c.volumes.create(name="bad/name")
    raise AssertionError("an illegal name must raise APIError")
except docker.errors.APIError as e:
    assert e.status_code == 400, e

# Volume, bind and subpath mounts.
out = c.containers.run("busybox", "sh -c 'mkdir -p /v/sub && echo deep > /v/sub/f'",
                       volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
# docker-py 7.1's Mount has no subpath argument; it is a dict, as the API takes it.
sub = Mount("/s", "pyvol", type="volume")
sub["VolumeOptions"] = {"Subpath": "sub"}
out = c.containers.run("busybox", "cat /s/f", remove=True, mounts=[sub])
assert out == b"deep\n", out
with open(os.path.join(host, "h.txt"), "w") as f:
    f.write("from host\n")
out = c.containers.run("busybox", "cat /h/h.txt", remove=True,
                       mounts=[Mount("/h", host, type="bind", read_only=True)])
assert out == b"from host\n", out

# In use: refused; then removed; prune reports what it removed.
ct = c.containers.create("busybox", "true", volumes=["pyvol:/v", "/anon"])
try:
    c.volumes.get("pyvol").remove()
    raise AssertionError("an in-use volume must not be removed")
except docker.errors.APIError as e:
    assert e.status_code == 409, e
anon = [m["Name"] for m in c.api.inspect_container(ct.id)["Mounts"] if m["Destination"] == "/anon"][0]
ct.remove()
res = c.volumes.prune()
assert res["VolumesDeleted"] == [anon], res
res = c.volumes.prune(filters={"all": "true"})
assert res["VolumesDeleted"] == ["pyvol"], res
assert c.volumes.list() == []
print("docker-py volumes: ok")
