"""docker-py against wharfd whose docker.io mirror is a local registry ($REGISTRY).

The test put busybox there as library/pybox:1; this pulls it by tag, by digest, all tags and
with a platform, reads /distribution/{name}/json, pushes a tag back and logs in. Nothing here may
miss on the mirror: a miss falls back to Docker Hub, and tests talk to loopback only.
"""
import os

import docker

reg = os.environ["REGISTRY"]
c = docker.from_env(timeout=120)

img = c.images.pull("pybox", tag="1")
assert "pybox:1" in img.tags, img.tags
digests = [d for d in img.attrs["RepoDigests"] if d.startswith("pybox@sha256:")]
assert digests, img.attrs["RepoDigests"]

data = c.images.get_registry_data("pybox:1")
assert data.id == digests[0].split("@", 1)[1], (data.id, digests)
assert data.has_platform("linux/amd64"), data.attrs

c.images.remove("pybox:1")
by_digest = c.images.pull(digests[0])
assert by_digest.id == img.id, (by_digest.id, img.id)

every = c.images.pull("pybox", all_tags=True)
assert any("pybox:1" in i.tags for i in every), [i.tags for i in every]

with_platform = c.images.pull("pybox", tag="1", platform="linux/amd64")
assert with_platform.id == img.id

assert with_platform.tag(f"{reg}/py/pushed", "1")
last = None
for msg in c.images.push(f"{reg}/py/pushed", tag="1", stream=True, decode=True):
    assert "error" not in msg, msg
    last = msg
assert last and last.get("aux", {}).get("Digest", "").startswith("sha256:"), last

resp = c.login(username="anyone", password="x", registry=reg, reauth=True)
assert resp.get("Status") == "Login Succeeded", resp

print("docker-py registry: ok")
