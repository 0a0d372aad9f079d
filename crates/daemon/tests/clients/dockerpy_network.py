"""docker-py network calls against wharfd: create, list, inspect, connect, disconnect, prune,
remove, a container's ports, MAC and IP addresses and network stats, static addresses,
aliases and links at create and connect (running and created containers), forced disconnect.

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

# Network stats: the container's own interfaces, counting the traffic it made.
gw = ns["Gateway"]
# Traffic from the container: a TCP attempt to the gateway (answered or refused).
ct.exec_run("wget -q -T 2 -O- http://%s:9/" % gw)
st = ct.stats(stream=False)["networks"]
assert set(st) == {"eth0"}, st
assert st["eth0"]["tx_packets"] >= 1 and st["eth0"]["tx_bytes"] > 0, st
assert {"rx_errors", "rx_dropped", "tx_errors", "tx_dropped"} <= set(st["eth0"]), st

# A network with its own subnet (a /24 of this daemon's pool that nothing else takes).
a, b, third, _ = n.attrs["IPAM"]["Config"][0]["Subnet"].split("/")[0].split(".")
pre = "%s.%s.%d" % (a, b, int(third) + 14)
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=pre + ".0/24")])
fixed = c.networks.create("pyfixed", ipam=ipam)
# Running: static address and alias at connect.
fixed.connect(ct, ipv4_address=pre + ".20", aliases=["pyalias"])
ct.reload()
ep = ct.attrs["NetworkSettings"]["Networks"]["pyfixed"]
assert ep["IPAddress"] == pre + ".20" and ep["Aliases"] == ["pyalias"], ep
assert pre + ".20/24" in ct.exec_run("ip -4 -o addr").output.decode()
# Created: connected before its first start, with a link to the running one.
cr = c.containers.create("busybox", "sleep 100", name="pycreated")
fixed.connect(cr, ipv4_address=pre + ".21", links=[("pyweb", "webby")])
cr.start()
cr.reload()
assert cr.attrs["NetworkSettings"]["Networks"]["pyfixed"]["IPAddress"] == pre + ".21"
for name in ("webby", "pyalias"):
    out = cr.exec_run("nslookup -type=a %s 127.0.0.11" % name).output.decode()
    assert "Address: %s.20" % pre in out, out
# Taken address: refused at connect of a running container.
try:
    fixed.connect(ct2 := c.containers.run("busybox", "sleep 100", detach=True),
                  ipv4_address=pre + ".21")
    raise AssertionError("a taken address must fail")
except docker.errors.APIError as e:
    assert "Address already in use" in str(e), e
ct2.remove(force=True)
# Forced disconnect, of a running container and of a stopped one.
fixed.disconnect(cr, force=True)
cr.stop(timeout=0)
fixed.disconnect(ct, force=True)
fixed.reload()
assert fixed.attrs["Containers"] == {}, fixed.attrs["Containers"]
cr.remove(force=True)
fixed.remove()

# Legacy link on the default bridge at create.
ln = c.containers.run("busybox", "sleep 100", detach=True, links={"pyweb": "web"})
assert "WEB_NAME=/%s/web" % ln.name in ln.exec_run("env").output.decode()
ln.remove(force=True)

# A MAC address of the container's own choosing.
mc = c.containers.run("busybox", "sleep 100", detach=True, mac_address="02:42:ac:11:ff:01")
mc.reload()
assert mc.attrs["NetworkSettings"]["MacAddress"] == "02:42:ac:11:ff:01", mc.attrs["NetworkSettings"]
assert mc.exec_run("cat /sys/class/net/eth0/address").output.decode().strip() == "02:42:ac:11:ff:01"
mc.remove(force=True)
ct.remove(force=True)
pruned = c.networks.prune()
assert pruned["NetworksDeleted"] == ["pynet"], pruned
try:
    c.networks.get("pynet")
    raise AssertionError("pruned")
except docker.errors.NotFound:
    pass
print("docker-py network: ok")
