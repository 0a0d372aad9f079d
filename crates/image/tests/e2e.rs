//! End-to-end tests of the image store against a real storage driver (root: layer files keep
//! their ownership). vfs for most, overlay2 where mounting matters.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};
use wharf_image::{CommitOptions, DeleteItem, ImageError, ImageService};
use wharf_storage::{Driver, DriverKind};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A store in its own temp dir; unmounts what the driver mounted when dropped.
struct Store {
    svc: Option<ImageService>,
    dir: tempfile::TempDir,
    kind: &'static str,
}

impl Store {
    fn new(kind: &'static str) -> Store {
        wharf_testutil::require_root!();
        let dir = tempfile::Builder::new()
            .prefix(&format!("wharf-image-e2e-{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let mut s = Store {
            svc: None,
            dir,
            kind,
        };
        s.reopen();
        s
    }

    fn driver(&self) -> Driver {
        let kind: DriverKind = self.kind.parse().unwrap();
        Driver::new(kind, &self.dir.path().join(self.kind), &[]).unwrap()
    }

    fn reopen(&mut self) {
        if let Some(old) = self.svc.take() {
            old.driver().cleanup().unwrap();
        }
        self.svc = Some(ImageService::open(&self.dir.path().join("image"), self.driver()).unwrap());
    }

    fn svc(&self) -> &ImageService {
        self.svc.as_ref().unwrap()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(s) = self.svc.take() {
            let _ = s.driver().cleanup();
        }
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn busybox_tar(dir: &Path) -> Vec<u8> {
    let p = dir.join(unique("busybox-") + ".tar");
    wharf_testutil::busybox_rootfs_tar(&p).unwrap();
    let bytes = fs::read(&p).unwrap();
    fs::remove_file(&p).unwrap();
    bytes
}

fn import_busybox(s: &Store, tag: Option<&str>) -> wharf_image::Image {
    let tar = busybox_tar(s.path());
    s.svc()
        .import(
            &mut Cursor::new(tar),
            tag,
            &["CMD [\"sh\"]".to_string()],
            Some("from test"),
            None,
        )
        .unwrap()
}

fn never_used(_: &str) -> bool {
    false
}

fn import_mount_and_check(kind: &'static str) {
    let s = Store::new(kind);
    let img = import_busybox(&s, Some("wharf-test/busybox:1"));
    assert!(img.id.starts_with("sha256:"));
    assert_eq!(img.repo_tags, vec!["wharf-test/busybox:1".to_string()]);
    assert_eq!(img.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(img.root_fs.layers.len(), 1);
    assert!(img.size > 0);
    // `docker image inspect` shape.
    let v = serde_json::to_value(&img).unwrap();
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Config",
        "Architecture",
        "Os",
        "Size",
        "GraphDriver",
        "RootFS",
        "Metadata",
    ] {
        assert!(v.get(key).is_some(), "inspect output lacks {key}: {v}");
    }
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert_eq!(v["GraphDriver"]["Name"], kind);
    assert_eq!(v["Comment"], "from test");
    assert!(
        v["Metadata"]["LastTagTime"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{v}"
    );
    // Every spelling of the reference finds it.
    for r in [
        "wharf-test/busybox:1",
        "docker.io/wharf-test/busybox:1",
        &img.id,
        &img.id[7..19],
    ] {
        assert_eq!(s.svc().resolve(r).unwrap().id, img.id, "{r}");
    }
    let err = s.svc().resolve("wharf-test/busybox:nope").unwrap_err();
    assert_eq!(err.to_string(), "No such image: wharf-test/busybox:nope");

    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &img.id).unwrap();
    let root = s.svc().mount_rw_layer(&cid).unwrap();
    assert!(root.join("bin/busybox").is_file());
    assert!(root.join("etc/passwd").is_file());
    s.svc().unmount_rw_layer(&cid).unwrap();
    // `docker export`: the whole merged tree as a tar.
    let mut exported = Vec::new();
    s.svc().export(&cid, &mut exported).unwrap();
    let names: Vec<String> = tar::Archive::new(Cursor::new(exported))
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string()
        })
        .collect();
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(names.iter().any(|n| n == "etc/passwd"), "{names:?}");
    s.svc().remove_rw_layer(&cid).unwrap();
    assert!(matches!(
        s.svc().mount_rw_layer(&cid),
        Err(ImageError::NoRwLayer(_))
    ));
}

#[test]
fn import_resolve_mount_vfs() {
    import_mount_and_check("vfs");
}

#[test]
fn import_resolve_mount_overlay2() {
    import_mount_and_check("overlay2");
}

#[test]
fn save_load_round_trip_keeps_id_and_bytes() {
    let a = Store::new("vfs");
    let img = import_busybox(&a, Some("roundtrip:v1"));
    let mut first = Vec::new();
    a.svc()
        .save(&["roundtrip:v1".to_string()], &mut first)
        .unwrap();
    let mut second = Vec::new();
    a.svc()
        .save(&["roundtrip:v1".to_string()], &mut second)
        .unwrap();
    assert_eq!(
        sha(&first),
        sha(&second),
        "save output must be deterministic"
    );

    let b = Store::new("vfs");
    let lines = b.svc().load(&mut Cursor::new(&first)).unwrap();
    assert_eq!(lines, vec!["Loaded image: roundtrip:v1".to_string()]);
    let loaded = b.svc().resolve("roundtrip:v1").unwrap();
    assert_eq!(loaded.id, img.id);
    assert_eq!(loaded.root_fs.layers, img.root_fs.layers);
    // Saving the loaded copy gives the same archive.
    let mut third = Vec::new();
    b.svc()
        .save(&["roundtrip:v1".to_string()], &mut third)
        .unwrap();
    assert_eq!(sha(&first), sha(&third));
    // Loading again is idempotent; by id the image is saved untagged.
    b.svc().load(&mut Cursor::new(&first)).unwrap();
    assert_eq!(b.svc().list().len(), 1);
    // A load that moves a tag says so, as Docker does; the old image stays, untagged.
    let other = import_busybox(&a, Some("roundtrip:v1"));
    let mut moved = Vec::new();
    a.svc()
        .save(&["roundtrip:v1".to_string()], &mut moved)
        .unwrap();
    let lines = b.svc().load(&mut Cursor::new(&moved)).unwrap();
    assert_eq!(
        lines,
        vec![
            format!("The image roundtrip:v1 already exists, renaming the old one with ID {} to empty string", img.id),
            "Loaded image: roundtrip:v1".to_string()
        ]
    );
    assert_eq!(b.svc().resolve("roundtrip:v1").unwrap().id, other.id);
    assert!(b.svc().resolve(&img.id).unwrap().repo_tags.is_empty());
    b.svc().remove(&other.id, true, true, &never_used).unwrap();
    let mut by_id = Vec::new();
    b.svc()
        .save(std::slice::from_ref(&img.id), &mut by_id)
        .unwrap();
    let c = Store::new("vfs");
    assert_eq!(
        c.svc().load(&mut Cursor::new(&by_id)).unwrap(),
        vec![format!("Loaded image ID: {}", img.id)]
    );
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Builds an OCI layout archive the way other tools do: gzip layer, nested index with
/// platforms, the name in `io.containerd.image.name`.
fn oci_layout_tar(rootfs_tar: &[u8], name: &str) -> (Vec<u8>, String) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(rootfs_tar).unwrap();
    let layer = gz.finish().unwrap();
    let diff_id = format!("sha256:{}", sha(rootfs_tar));
    let config = serde_json::json!({
        "architecture": wharf_image::host_arch(), "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "test"}]
    })
    .to_string()
    .into_bytes();
    let desc = |mt: &str, b: &[u8]| serde_json::json!({"mediaType": mt, "digest": format!("sha256:{}", sha(b)), "size": b.len()});
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)]
    })
    .to_string()
    .into_bytes();
    let mut mdesc = desc("application/vnd.oci.image.manifest.v1+json", &manifest);
    mdesc["platform"] =
        serde_json::json!({"architecture": wharf_image::host_arch(), "os": "linux"});
    let mut other = mdesc.clone();
    other["platform"] = serde_json::json!({"architecture": "unknown", "os": "unknown"});
    let inner = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [other, mdesc]})
        .to_string()
        .into_bytes();
    let mut idesc = desc("application/vnd.oci.image.index.v1+json", &inner);
    idesc["annotations"] = serde_json::json!({"io.containerd.image.name": name});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [idesc]})
        .to_string()
        .into_bytes();

    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for blob in [&layer, &config, &manifest, &inner] {
        add(&format!("blobs/sha256/{}", sha(blob)), blob);
    }
    add("index.json", &index);
    (b.into_inner().unwrap(), format!("sha256:{}", sha(&config)))
}

#[test]
fn load_oci_layout_with_index_and_gzip_layer() {
    let s = Store::new("vfs");
    let rootfs = busybox_tar(s.path());
    let (archive, config_id) = oci_layout_tar(&rootfs, "example.com/team/app:2");
    let lines = s.svc().load(&mut Cursor::new(archive)).unwrap();
    assert_eq!(
        lines,
        vec!["Loaded image: example.com/team/app:2".to_string()]
    );
    let img = s.svc().resolve("example.com/team/app:2").unwrap();
    assert_eq!(img.id, config_id);
    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &img.id).unwrap();
    assert!(s
        .svc()
        .mount_rw_layer(&cid)
        .unwrap()
        .join("bin/busybox")
        .is_file());
    s.svc().unmount_rw_layer(&cid).unwrap();
    s.svc().remove_rw_layer(&cid).unwrap();
}

#[test]
fn corrupt_archives_fail_cleanly() {
    let s = Store::new("vfs");
    let rootfs = busybox_tar(s.path());
    let (mut archive, _) = oci_layout_tar(&rootfs, "broken:1");
    // Flip a byte inside the first blob: its digest no longer matches its name.
    let at = 512 * 3 + 100;
    archive[at] ^= 0xff;
    let err = s.svc().load(&mut Cursor::new(archive)).unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::InvalidArgument,
        "{err}"
    );
    let err = s
        .svc()
        .load(&mut Cursor::new(b"not a tar at all".to_vec()))
        .unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::InvalidArgument,
        "{err}"
    );
    assert!(s.svc().list().is_empty());
    assert_eq!(
        fs::read_dir(s.path().join("image/content/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

fn tool(name: &str) -> PathBuf {
    let p = Path::new("/usr/bin").join(name);
    assert!(
        p.exists(),
        "{name} is missing: install it (apt-get install {name}) as the README says"
    );
    p
}

#[test]
fn skopeo_and_umoci_accept_our_archives() {
    let s = Store::new("vfs");
    let img = import_busybox(&s, Some("interop:latest"));
    let tar_path = s.path().join("save.tar");
    let mut f = fs::File::create(&tar_path).unwrap();
    s.svc()
        .save(&["interop:latest".to_string()], &mut f)
        .unwrap();
    drop(f);

    let out = Command::new(tool("skopeo"))
        .arg("inspect")
        .arg("--raw")
        .arg(format!("docker-archive:{}", tar_path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo docker-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(tool("skopeo"))
        .arg("inspect")
        .arg("--raw")
        .arg("--config")
        .arg(format!("docker-archive:{}", tar_path.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        format!("sha256:{}", sha(&out.stdout)),
        img.id,
        "skopeo must see our exact config"
    );

    let layout = s.path().join("layout");
    fs::create_dir(&layout).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(tool("skopeo"))
        .arg("inspect")
        .arg(format!("oci:{}:latest", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo oci: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bundle = s.path().join("bundle");
    let out = Command::new(tool("umoci"))
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[test]
fn commit_adds_the_container_diff_as_a_layer() {
    let s = Store::new("overlay2");
    let base = import_busybox(&s, Some("commit-base:1"));
    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &base.id).unwrap();
    let root = s.svc().mount_rw_layer(&cid).unwrap();
    fs::write(root.join("etc/committed"), b"hello").unwrap();
    fs::remove_file(root.join("etc/group")).unwrap();
    let changes = s.svc().changes(&cid).unwrap();
    assert!(
        changes.iter().any(|c| c.path == "/etc/committed"),
        "{changes:?}"
    );
    s.svc().unmount_rw_layer(&cid).unwrap();

    let opts = CommitOptions {
        repo_tag: Some("committed:v1".into()),
        author: Some("tester".into()),
        comment: Some("added a file".into()),
        changes: vec!["ENV FOO=bar".into()],
        ..Default::default()
    };
    let img = s.svc().commit(&cid, opts).unwrap();
    assert_eq!(img.parent, base.id);
    assert_eq!(img.root_fs.layers.len(), 2);
    assert_eq!(img.root_fs.layers[0], base.root_fs.layers[0]);
    assert_eq!(
        img.config.env.as_deref(),
        Some(&["FOO=bar".to_string()][..])
    );
    assert_eq!(img.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
    let hist = s.svc().history("committed:v1").unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].id, img.id);
    assert_eq!(hist[0].comment, "added a file");
    assert_eq!(hist[1].id, base.id);
    assert_eq!(hist[1].tags, Some(vec!["commit-base:1".to_string()]));

    let c2 = unique("c");
    s.svc().create_rw_layer(&c2, &img.id).unwrap();
    let root2 = s.svc().mount_rw_layer(&c2).unwrap();
    assert_eq!(fs::read(root2.join("etc/committed")).unwrap(), b"hello");
    assert!(!root2.join("etc/group").exists());
    s.svc().unmount_rw_layer(&c2).unwrap();
    for c in [&cid, &c2] {
        s.svc().remove_rw_layer(c).unwrap();
    }
}

#[test]
fn rmi_untags_refcounts_and_refuses_in_use() {
    let s = Store::new("vfs");
    let img = import_busybox(&s, Some("rmi-a:1"));
    s.svc().tag("rmi-a:1", "rmi-b", Some("2")).unwrap();
    assert_eq!(s.svc().resolve(&img.id).unwrap().repo_tags.len(), 2);

    // Two repositories: deleting by id needs force.
    let err = s
        .svc()
        .remove(&img.id, false, true, &never_used)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("referenced in multiple repositories"),
        "{err}"
    );
    // Untagging one of two tags deletes nothing.
    let items = s.svc().remove("rmi-b:2", false, true, &never_used).unwrap();
    assert_eq!(items, vec![DeleteItem::Untagged("rmi-b:2".into())]);
    // The last tag of an image a container uses needs force.
    let used = |id: &str| id == img.id;
    let err = s.svc().remove("rmi-a:1", false, true, &used).unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::Conflict
    );
    assert!(
        err.to_string().starts_with(
            "conflict: unable to remove repository reference \"rmi-a:1\" (must force)"
        ),
        "{err}"
    );

    // A second image sharing the base layer keeps it alive.
    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &img.id).unwrap();
    let child = s.svc().commit(&cid, CommitOptions::default()).unwrap();
    s.svc().remove_rw_layer(&cid).unwrap();
    let err = s
        .svc()
        .remove(&img.id, false, true, &never_used)
        .unwrap_err();
    assert!(err.to_string().contains("dependent child images"), "{err}");

    let items = s
        .svc()
        .remove(
            &format!("sha256:{}", &child.id[7..15]),
            false,
            true,
            &never_used,
        )
        .unwrap();
    // prune_parents: the untagged-by-then parent stays because it is still tagged.
    assert_eq!(items, vec![DeleteItem::Deleted(child.id.clone())]);
    let items = s.svc().remove("rmi-a:1", false, true, &never_used).unwrap();
    assert_eq!(
        items,
        vec![DeleteItem::Untagged("rmi-a:1".into())]
            .into_iter()
            .chain([DeleteItem::Deleted(img.id.clone())])
            .collect::<Vec<_>>()
    );
    assert!(s.svc().list().is_empty());
    assert_eq!(s.svc().disk_usage().unwrap().layers_size, 0);
    let left: Vec<_> = fs::read_dir(s.path().join("image/layerdb"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        fs::read_dir(s.path().join("image/content/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn prune_removes_dangling_images() {
    let s = Store::new("vfs");
    let tagged = import_busybox(&s, Some("keep:1"));
    let tar = busybox_tar(s.path());
    let mut tar2 = tar.clone();
    // A different layer (extra trailing zero block) so the dangling image is its own.
    tar2.extend_from_slice(&[0u8; 512]);
    let dangling = s
        .svc()
        .import(&mut Cursor::new(tar2), None, &[], None, None)
        .unwrap();
    assert!(dangling.repo_tags.is_empty());
    let (items, freed) = s.svc().prune(true, &never_used).unwrap();
    assert_eq!(items, vec![DeleteItem::Deleted(dangling.id.clone())]);
    assert!(freed > 0);
    assert_eq!(s.svc().list().len(), 1);
    let (items, _) = s.svc().prune(false, &|id: &str| id == tagged.id).unwrap();
    assert!(items.is_empty());
    let (items, _) = s.svc().prune(false, &never_used).unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
}

#[test]
fn open_cleans_crash_leftovers() {
    let mut s = Store::new("vfs");
    let img = import_busybox(&s, Some("survivor:1"));
    let image_root = s.path().join("image");
    // A half-written blob, a half-written metadata file, a driver layer nobody recorded,
    // and a layer record whose data never made it.
    fs::write(image_root.join("content/ingest/deadbeef"), b"partial").unwrap();
    fs::write(image_root.join("imagedb/.tmp-1234"), b"{").unwrap();
    let orphan = unique("orphan");
    let tar = busybox_tar(s.path());
    s.svc()
        .driver()
        .create_layer(&orphan, None, &mut Cursor::new(tar))
        .unwrap();
    let ghost = "f".repeat(64);
    fs::write(
        image_root.join(format!("layerdb/{ghost}.json")),
        format!(r#"{{"chain_id":"sha256:{ghost}","diff_id":"sha256:{ghost}","parent":null,"cache_id":"nothing-here","size":1}}"#),
    )
    .unwrap();
    let stray_blob = image_root.join(format!("content/blobs/sha256/{}", sha(b"stray")));
    fs::write(&stray_blob, b"stray").unwrap();

    s.reopen();
    assert_eq!(
        fs::read_dir(image_root.join("content/ingest"))
            .unwrap()
            .count(),
        0
    );
    assert!(!image_root.join("imagedb/.tmp-1234").exists());
    assert!(!s.svc().driver().exists(&orphan));
    assert!(!image_root.join(format!("layerdb/{ghost}.json")).exists());
    assert!(!stray_blob.exists());
    assert_eq!(s.svc().resolve("survivor:1").unwrap().id, img.id);
    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &img.id).unwrap();
    assert!(s
        .svc()
        .mount_rw_layer(&cid)
        .unwrap()
        .join("bin/busybox")
        .is_file());
    s.svc().unmount_rw_layer(&cid).unwrap();
    s.svc().remove_rw_layer(&cid).unwrap();
}

#[test]
fn rw_layers_of_unknown_containers_are_reconciled() {
    let s = Store::new("vfs");
    let img = import_busybox(&s, None);
    let (keep, drop_me) = (unique("c"), unique("c"));
    s.svc().create_rw_layer(&keep, &img.id).unwrap();
    s.svc().create_rw_layer(&drop_me, &img.id).unwrap();
    s.svc()
        .reconcile_rw_layers(std::slice::from_ref(&keep))
        .unwrap();
    assert!(s.svc().driver().exists(&keep));
    assert!(!s.svc().driver().exists(&drop_me));
    let usage = s.svc().disk_usage().unwrap();
    assert_eq!(usage.images[0].containers, 1);
    // The store itself knows a container sits on the image, whatever the callback says.
    let err = s
        .svc()
        .remove(&img.id, false, true, &never_used)
        .unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::Conflict
    );
    let expected = format!("image is being used by container {keep}");
    assert!(err.to_string().ends_with(&expected), "{err}");
    let (pruned, _) = s.svc().prune(false, &never_used).unwrap();
    assert!(pruned.is_empty());
    s.svc().remove_rw_layer(&keep).unwrap();
}

/// The pre-25 `docker save` layout: `<v1id>/layer.tar` (+ `json`, `VERSION`), a second image
/// whose layer.tar is a symlink to the first's (Docker's dedup), `<config>.json`, `repositories`.
#[test]
fn load_legacy_docker_save_archive() {
    let s = Store::new("vfs");
    let rootfs = busybox_tar(s.path());
    let diff_id = format!("sha256:{}", sha(&rootfs));
    let config = |cmd: &str| {
        serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
        .to_string()
        .into_bytes()
    };
    let (c1, c2) = (config("sh"), config("ls"));
    let (v1a, v1b) = ("a".repeat(64), "b".repeat(64));
    let manifest = serde_json::json!([
        {"Config": format!("{}.json", sha(&c1)), "RepoTags": ["legacy:1"], "Layers": [format!("{v1a}/layer.tar")]},
        {"Config": format!("{}.json", sha(&c2)), "RepoTags": null, "Layers": [format!("{v1b}/layer.tar")]}
    ])
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    add(&format!("{v1a}/VERSION"), b"1.0");
    add(&format!("{v1a}/json"), b"{}");
    add(&format!("{v1a}/layer.tar"), &rootfs);
    add(&format!("{}.json", sha(&c1)), &c1);
    add(&format!("{}.json", sha(&c2)), &c2);
    add("manifest.json", manifest.as_bytes());
    add("repositories", br#"{"legacy":{"1":"aaaa"}}"#);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(
        &mut h,
        format!("{v1b}/layer.tar"),
        format!("../{v1a}/layer.tar"),
    )
    .unwrap();
    let archive = b.into_inner().unwrap();

    let lines = s.svc().load(&mut Cursor::new(archive)).unwrap();
    assert_eq!(
        lines,
        vec![
            "Loaded image: legacy:1".to_string(),
            format!("Loaded image ID: sha256:{}", sha(&c2))
        ]
    );
    let imgs = s.svc().list();
    assert_eq!(imgs.len(), 2);
    // Both images share the one layer.
    assert_eq!(
        s.svc()
            .disk_usage()
            .unwrap()
            .images
            .iter()
            .filter(|i| i.shared_size > 0)
            .count(),
        2
    );
    assert_eq!(
        fs::read_dir(s.path().join("image/layerdb"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn forced_rmi_keeps_layers_a_container_still_uses() {
    let s = Store::new("vfs");
    let img = import_busybox(&s, Some("forced:1"));
    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &img.id).unwrap();
    let used = |id: &str| id == img.id;
    let items = s.svc().remove(&img.id, true, true, &used).unwrap();
    assert_eq!(
        items,
        vec![
            DeleteItem::Untagged("forced:1".into()),
            DeleteItem::Deleted(img.id.clone())
        ]
    );
    assert!(s.svc().list().is_empty());
    // The container's rootfs still works and its layers are still on disk.
    let root = s.svc().mount_rw_layer(&cid).unwrap();
    assert!(root.join("bin/busybox").is_file());
    s.svc().unmount_rw_layer(&cid).unwrap();
    assert!(s.svc().disk_usage().unwrap().layers_size > 0);
    s.svc().remove_rw_layer(&cid).unwrap();
    assert_eq!(s.svc().disk_usage().unwrap().layers_size, 0);
}

const CRASH_ROOT_ENV: &str = "WHARF_IMAGE_CRASH_ROOT";
const CRASH_MODE_ENV: &str = "WHARF_IMAGE_CRASH_MODE";

/// Hands out `data` until half of it is read, then signals the parent (marker file) and hangs
/// until the parent kills the process.
struct HangHalfway {
    data: Cursor<Vec<u8>>,
    limit: u64,
    marker: PathBuf,
}

impl std::io::Read for HangHalfway {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.position() >= self.limit {
            fs::write(&self.marker, b"").unwrap();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        let room = (self.limit - self.data.position()).min(buf.len() as u64) as usize;
        std::io::Read::read(&mut self.data, &mut buf[..room])
    }
}

/// Child half of `kill_during_import_or_load_leaves_nothing`: opens the store named by the
/// environment and starts an import or load that never finishes.
#[test]
#[ignore = "helper run in a child process by kill_during_import_or_load_leaves_nothing"]
fn crash_helper() {
    let root = PathBuf::from(std::env::var(CRASH_ROOT_ENV).expect("run by the parent test"));
    let mode = std::env::var(CRASH_MODE_ENV).expect("run by the parent test");
    let driver = Driver::new(DriverKind::Vfs, &root.join("vfs"), &[]).unwrap();
    let svc = ImageService::open(&root.join("image"), driver).unwrap();
    let tar = busybox_tar(&root);
    let data = if mode == "load" {
        let mut saved = Vec::new();
        let img = svc
            .import(&mut Cursor::new(tar), None, &[], None, None)
            .unwrap();
        svc.save(std::slice::from_ref(&img.id), &mut saved).unwrap();
        svc.remove(&img.id, true, true, &never_used).unwrap();
        saved
    } else {
        tar
    };
    let limit = data.len() as u64 / 2;
    let mut src = HangHalfway {
        data: Cursor::new(data),
        limit,
        marker: root.join("marker"),
    };
    let res = if mode == "load" {
        svc.load(&mut src).map(|_| ())
    } else {
        svc.import(&mut src, Some("crash:1"), &[], None, None)
            .map(|_| ())
    };
    panic!("the reader hangs, so this is unreachable: {res:?}");
}

/// Kills a process mid-import (inside layer extraction) and mid-load (inside blob ingest),
/// then checks the next open leaves no trace of the half-done work.
#[test]
fn kill_during_import_or_load_leaves_nothing() {
    for mode in ["import", "load"] {
        let mut s = Store::new("vfs");
        let keep = import_busybox(&s, Some("keep:1"));
        s.svc.take().unwrap().driver().cleanup().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_helper", "--nocapture"])
            .env(CRASH_ROOT_ENV, s.path())
            .env(CRASH_MODE_ENV, mode)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill guard: the child never outlives this test, even if an assertion fails.
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let marker = s.path().join("marker");
        while !marker.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("helper exited early ({mode}): {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        let guard = Kill(child);
        drop(guard);

        s.reopen();
        let images = s.svc().list();
        assert_eq!(images.len(), 1, "{mode}: {images:?}");
        assert_eq!(images[0].id, keep.id);
        let root = s.path().join("image");
        assert_eq!(
            fs::read_dir(root.join("content/ingest")).unwrap().count(),
            0,
            "{mode}"
        );
        assert_eq!(
            fs::read_dir(root.join("layerdb")).unwrap().count(),
            1,
            "{mode}"
        );
        // Only the kept image's config and layer remain.
        assert_eq!(
            fs::read_dir(root.join("content/blobs/sha256"))
                .unwrap()
                .count(),
            2,
            "{mode}"
        );
        // The driver holds only the kept layer: the half-extracted one (a staging dir) is gone.
        let driver_dirs = fs::read_dir(s.path().join("vfs/dir")).unwrap().count();
        assert_eq!(driver_dirs, 1, "{mode}");
        assert_eq!(
            s.svc().disk_usage().unwrap().layers_size,
            s.svc().resolve("keep:1").unwrap().size
        );
    }
}

/// A small archive our own `save` wrote (2 layers, the second whites out a file of the first).
/// Loading it must give the same ID, and saving it again the same bytes: the format is stable.
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/testdata/fixture-save.tar"
);
const FIXTURE_ID: &str = "sha256:0df393b2694ee2bbd2aab8b7089f5cd00cf337ea73e1ffab0855cb3acbe800bd";

#[test]
fn checked_in_fixture_loads_runs_and_saves_byte_identical() {
    let s = Store::new("overlay2");
    let fixture = fs::read(FIXTURE).unwrap();
    assert_eq!(
        s.svc().load(&mut Cursor::new(&fixture)).unwrap(),
        vec!["Loaded image: wharf-fixture:1".to_string()]
    );
    let img = s.svc().resolve("wharf-fixture:1").unwrap();
    assert_eq!(img.id, FIXTURE_ID);
    assert_eq!(img.config.labels.as_ref().unwrap()["fixture"], "wharf");
    let hist = s.svc().history(FIXTURE_ID).unwrap();
    assert_eq!(
        hist.iter()
            .map(|h| h.created_by.as_str())
            .collect::<Vec<_>>(),
        ["ADD two", "ADD one"]
    );
    assert_eq!(hist[0].id, FIXTURE_ID);
    assert_eq!(hist[1].id, "<missing>");

    let cid = unique("c");
    s.svc().create_rw_layer(&cid, &img.id).unwrap();
    let root = s.svc().mount_rw_layer(&cid).unwrap();
    assert_eq!(fs::read(root.join("etc/conf")).unwrap(), b"key=value\n");
    assert!(root.join("etc/keep.txt").is_file());
    assert!(
        !root.join("etc/hello.txt").exists(),
        "the whiteout in layer two hides it"
    );
    s.svc().unmount_rw_layer(&cid).unwrap();
    s.svc().remove_rw_layer(&cid).unwrap();

    let mut again = Vec::new();
    s.svc()
        .save(&["wharf-fixture:1".to_string()], &mut again)
        .unwrap();
    assert!(
        again == fixture,
        "save output changed: the archive format or layer bytes are not stable"
    );
}

/// Layers are extracted speculatively in archive order; an archive listing them out of order
/// must still give the right image, with the wrongly guessed layers cleaned away.
#[test]
fn out_of_order_layers_load_correctly() {
    let s = Store::new("overlay2");
    let fixture = fs::read(FIXTURE).unwrap();
    let mut entries: Vec<(tar::Header, Vec<u8>)> = tar::Archive::new(Cursor::new(fixture))
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (e.header().clone(), data)
        })
        .collect();
    let img = {
        let cfg: serde_json::Value = serde_json::from_slice(
            &entries
                .iter()
                .find(|(h, _)| h.path().unwrap().ends_with(&FIXTURE_ID[7..]))
                .unwrap()
                .1,
        )
        .unwrap();
        cfg["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap()[7..].to_string())
            .collect::<Vec<_>>()
    };
    let pos = |hex: &str| {
        entries
            .iter()
            .position(|(h, _)| h.path().unwrap().ends_with(hex))
            .unwrap()
    };
    let (a, b) = (pos(&img[0]), pos(&img[1]));
    entries.swap(a, b);
    let mut out = tar::Builder::new(Vec::new());
    for (mut h, data) in entries {
        let path = h.path().unwrap().into_owned();
        out.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    let archive = out.into_inner().unwrap();

    s.svc().load(&mut Cursor::new(archive)).unwrap();
    assert_eq!(s.svc().resolve("wharf-fixture:1").unwrap().id, FIXTURE_ID);
    assert_eq!(
        fs::read_dir(s.path().join("image/layerdb"))
            .unwrap()
            .count(),
        2
    );
    let cid = unique("c");
    s.svc().create_rw_layer(&cid, FIXTURE_ID).unwrap();
    let root = s.svc().mount_rw_layer(&cid).unwrap();
    assert!(root.join("etc/keep.txt").is_file());
    assert!(!root.join("etc/hello.txt").exists());
    s.svc().unmount_rw_layer(&cid).unwrap();
    s.svc().remove_rw_layer(&cid).unwrap();
}

/// A private dockerd (Debian's docker.io) on its own socket and roots; stopped with SIGTERM
/// (so it takes its containerd along) when dropped.
struct Dockerd {
    child: std::process::Child,
    sock: PathBuf,
}

impl Dockerd {
    fn start(dir: &Path) -> Dockerd {
        fs::create_dir_all(dir).unwrap();
        let sock = dir.join("docker.sock");
        let log = fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--storage-driver",
                "vfs",
                "--bridge",
                "none",
                "--iptables=false",
                // Else it turns the host's global net.ipv4.ip_forward on and leaves it.
                "--ip-forward=false",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Dockerd { child, sock };
        for _ in 0..300 {
            if d.docker(&["version"]).status.success() {
                return d;
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "dockerd exited with {status}: {}",
                    fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "dockerd did not come up: {}",
            fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Real Docker reads our `save` output (same image ID) and we read what real Docker saves
/// (its image runs here: the rootfs mounts with busybox in it). Needs Debian's docker.io.
#[test]
fn real_docker_round_trip() {
    let s = Store::new("overlay2");
    if Command::new("dockerd").arg("--version").output().is_err() {
        eprintln!("docker.io is not installed: skipping the real-Docker interop check");
        return;
    }
    let d = Dockerd::start(&s.path().join("docker"));
    let img = import_busybox(&s, Some("wharf-interop:1"));
    let ours = s.path().join("ours.tar");
    s.svc()
        .save(
            &["wharf-interop:1".to_string()],
            &mut fs::File::create(&ours).unwrap(),
        )
        .unwrap();
    let out = d.docker(&["load", "-i", ours.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "docker load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.docker(&["image", "inspect", "-f", "{{.Id}}", "wharf-interop:1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        img.id,
        "Docker must keep our image ID"
    );

    let theirs = s.path().join("theirs.tar");
    let out = d.docker(&["save", "-o", theirs.to_str().unwrap(), "wharf-interop:1"]);
    assert!(
        out.status.success(),
        "docker save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(d);
    let other = Store::new("overlay2");
    let lines = other
        .svc()
        .load(&mut fs::File::open(&theirs).unwrap())
        .unwrap();
    assert_eq!(lines, vec!["Loaded image: wharf-interop:1".to_string()]);
    assert_eq!(other.svc().resolve("wharf-interop:1").unwrap().id, img.id);
    let cid = unique("c");
    other.svc().create_rw_layer(&cid, &img.id).unwrap();
    assert!(other
        .svc()
        .mount_rw_layer(&cid)
        .unwrap()
        .join("bin/busybox")
        .is_file());
    other.svc().unmount_rw_layer(&cid).unwrap();
    other.svc().remove_rw_layer(&cid).unwrap();
}

/// go-containerregistry's `tarball` format: config named `sha256:<hex>`, gzip layers named
/// `<hex>.tar.gz`, only a manifest.json.
#[test]
fn load_crane_style_tarball() {
    let s = Store::new("vfs");
    let rootfs = busybox_tar(s.path());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&rootfs).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&rootfs))]}})
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!([{"Config": format!("sha256:{}", sha(&config)),
        "RepoTags": ["crane/style:1"], "Layers": [format!("{}.tar.gz", sha(&layer))]}])
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    };
    add(&format!("sha256:{}", sha(&config)), &config);
    add(&format!("{}.tar.gz", sha(&layer)), &layer);
    add("manifest.json", manifest.as_bytes());
    let lines = s
        .svc()
        .load(&mut Cursor::new(b.into_inner().unwrap()))
        .unwrap();
    assert_eq!(lines, vec!["Loaded image: crane/style:1".to_string()]);
    let img = s.svc().resolve("crane/style:1").unwrap();
    assert_eq!(img.id, format!("sha256:{}", sha(&config)));
    // The gzip blob is gone; the uncompressed layer tar is kept under its diff ID.
    let blobs: Vec<String> = fs::read_dir(s.path().join("image/content/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        blobs.contains(&sha(&rootfs)) && !blobs.contains(&sha(&layer)),
        "{blobs:?}"
    );
}

/// Archive paths climbing out of the root, and a manifest pointing outside, are refused
/// without touching anything outside the store.
#[test]
fn hostile_load_archives_are_refused() {
    let s = Store::new("vfs");
    let outside = s.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let raw_tar = |name: &str, data: &[u8]| {
        // Written by hand: the tar crate refuses to build `..` paths.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    };
    let traversal = raw_tar("../outside/evil", b"x");
    let err = s.svc().load(&mut Cursor::new(traversal)).unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::InvalidArgument,
        "{err}"
    );
    assert!(err.to_string().contains("../outside/evil"), "{err}");

    let manifest = br#"[{"Config":"../../etc/passwd","RepoTags":["x:1"],"Layers":[]}]"#;
    let err = s
        .svc()
        .load(&mut Cursor::new(raw_tar("manifest.json", manifest)))
        .unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::InvalidArgument,
        "{err}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(s.svc().list().is_empty());
}

#[test]
fn schema1_manifests_are_not_supported() {
    let s = Store::new("vfs");
    let manifest = br#"{"schemaVersion":1,"name":"old","tag":"1","fsLayers":[],"history":[]}"#;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "digest": format!("sha256:{}", sha(manifest)), "size": manifest.len()}]})
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        (format!("blobs/sha256/{}", sha(manifest)), &manifest[..]),
        ("index.json".to_string(), index.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let err = s
        .svc()
        .load(&mut Cursor::new(b.into_inner().unwrap()))
        .unwrap_err();
    assert_eq!(
        wharf_errdefs::Classify::kind(&err),
        wharf_errdefs::ErrorKind::NotImplemented,
        "{err}"
    );
    assert!(s.svc().list().is_empty());
}
