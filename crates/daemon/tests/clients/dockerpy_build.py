"""docker-py's image builds against wharfd: images.build and the low-level streamed build.

Run by crates/daemon/tests/build.rs with DOCKER_HOST and CTX (a scratch directory) set.
"""
import gzip
import io
import os
import tarfile

import docker

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])
ctx = os.environ["CTX"]
os.makedirs(ctx, exist_ok=True)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write(
        "FROM busybox AS base\n"
        "ARG V=1\n"
        "RUN echo v=$V > /v\n"
        "FROM base AS final\n"
        "COPY . /ctx/\n"
        "RUN grep -q '10.1.2.3.*myhost' /etc/hosts\n"
        "CMD cat /v && ls /ctx\n"
        "FROM final AS extra\n"
        "RUN exit 9\n"
    )
with open(os.path.join(ctx, ".dockerignore"), "w") as f:
    f.write("ignored.txt\n")
for name in ("ignored.txt", "kept.txt"):
    with open(os.path.join(ctx, name), "w") as f:
        f.write(name)

# High level: buildargs, target (the failing stage after it is not built), labels,
# network_mode, extra_hosts, .dockerignore applied by the client.
img, logs = c.images.build(
    path=ctx, tag="pybuild:1", buildargs={"V": "2"}, target="final",
    labels={"built.by": "docker-py"}, network_mode="none",
    extra_hosts={"myhost": "10.1.2.3"}, rm=True, forcerm=True,
)
logs = list(logs)
assert any("Step 1/" in m.get("stream", "") for m in logs), logs
assert img.labels.get("built.by") == "docker-py", img.labels
assert "pybuild:1" in img.tags, img.tags
out = c.containers.run("pybuild:1", remove=True)
assert out == b"v=2\nDockerfile\nkept.txt\n", out

# A failing build raises BuildError with Docker's message.
try:
    c.images.build(path=ctx, target="extra", extra_hosts={"myhost": "10.1.2.3"})
    raise AssertionError("the failing stage must fail")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 9" in str(e), e

# squash is refused (not experimental), as dockerd does.
try:
    c.images.build(path=ctx, target="final", squash=True)
    raise AssertionError("squash must be refused")
except docker.errors.APIError as e:
    assert "experimental" in str(e), e

# Low level: a gzip context given as a file object, streamed and decoded.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    df = b"FROM busybox\nLABEL from=gzip\nCMD [\"echo\", \"gz\"]\n"
    ti = tarfile.TarInfo("Dockerfile")
    ti.size = len(df)
    t.addfile(ti, io.BytesIO(df))
gz = io.BytesIO(gzip.compress(buf.getvalue()))
msgs = list(c.api.build(fileobj=gz, custom_context=True, encoding="gzip", decode=True,
                        tag="pygz", isolation="default"))
ids = [m["aux"]["ID"] for m in msgs if "aux" in m]
assert len(ids) == 1 and ids[0].startswith("sha256:"), msgs
assert c.containers.run("pygz", remove=True) == b"gz\n"
assert c.images.get("pygz").labels == {"from": "gzip"}

# container_limits and shmsize apply to RUN: the step sees the memory limit and /dev/shm size.
lim = (b"FROM busybox\nRUN (cat /sys/fs/cgroup/memory.max 2>/dev/null"
       b" || cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
       b" df -k /dev/shm | tail -1 | awk '{print $2}') > /lim\nCMD cat /lim\n")
c.images.build(fileobj=io.BytesIO(lim), tag="pylim", rm=True, shmsize=8 << 20,
               container_limits={"memory": 64 << 20, "cpushares": 512})
assert c.containers.run("pylim", remove=True) == b"67108864\n8192\n"

# A remote context: docker-py sends a URL path as remote=, and the daemon fetches it.
import http.server
import threading

remote_tar = io.BytesIO()
with tarfile.open(fileobj=remote_tar, mode="w:gz") as t:
    df = b"FROM busybox\nCMD [\"echo\", \"remote\"]\n"
    ti = tarfile.TarInfo("Dockerfile")
    ti.size = len(df)
    t.addfile(ti, io.BytesIO(df))


class Serve(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = remote_tar.getvalue()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Serve)
threading.Thread(target=srv.serve_forever, daemon=True).start()
c.images.build(path="http://127.0.0.1:%d/ctx.tar.gz" % srv.server_port, tag="pyremote",
               rm=True)
srv.shutdown()
assert c.containers.run("pyremote", remove=True) == b"remote\n"

# docker-py's images.build defaults to rm=False: as with dockerd, the failed build's step
# containers stay (RUN v=, COPY, RUN grep, RUN exit 9); the rm=True build left none.
assert len(c.containers.list(all=True)) == 4, c.containers.list(all=True)
print("docker-py build: ok")
