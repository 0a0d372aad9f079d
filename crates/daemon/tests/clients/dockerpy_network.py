"""docker-py network calls against wharfd: create, list, inspect, connect, disconnect, prune,
remove, and a container's ports, MAC and IP addresses.

Run by crates/daemon/tests/dockerpy.rs with DOCKER_HOST set; any failed check raises.
"""
import os
import socket

import docker

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
n = c.networks.create("pynet", driver="bridge", labels={"k": "v"})
assert n.name == "pynet" and len(n.id) == 64
assert [x.name for x in c.networks.list(names=["pynet"])] == ["pynet"]
assert "pynet" in [x.name for x in c.networks.list(filters={"label": "k=v"})]
n.reload()
assert n.attrs["Driver"] == "bridge" and n.attrs["IPAM"]["Config"][0]["Subnet"]
try:
    c.networks.create("pynet")
    raise AssertionError("a duplicate name must fail")
except docker.errors.APIError as e:
    assert e.status_code == 409, e

ct = c.containers.run("busybox", "sleep 100", detach=True, name="pyweb",
                      ports={"80/tcp": ("127.0.0.1", None)})
ct.reload()
port = ct.ports["80/tcp"][0]
assert port["HostIp"] == "127.0.0.1" and int(port["HostPort"]) > 0
s = socket.socket()
s.bind(("127.0.0.1", 0))
busy = s.getsockname()[1]
s.listen()
ns = ct.attrs["NetworkSettings"]
assert ns["IPAddress"] and ns["MacAddress"].startswith("02:42:")
assert ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]

n.connect(ct)
n.reload()
assert ct.id in n.attrs["Containers"], n.attrs["Containers"]
ct.reload()
assert ct.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
n.disconnect(ct)
n.reload()
assert n.attrs["Containers"] == {}
try:
    c.containers.run("busybox", "true", remove=True, ports={"80/tcp": ("127.0.0.1", busy)})
    raise AssertionError("a busy port must fail")
except docker.errors.APIError as e:
    assert "port is already allocated" in str(e), e
ct.remove(force=True)
pruned = c.networks.prune()
assert pruned["NetworksDeleted"] == ["pynet"], pruned
try:
    c.networks.get("pynet")
    raise AssertionError("pruned")
except docker.errors.NotFound:
    pass
print("docker-py network: ok")
