//! Load/save/extraction timing for `bench/images/run.sh` (not a test).
//!
//! Usage: bench <store-root> <overlay2|vfs> <image.tar> <save-out.tar>
//! Prints `key=value` lines the script turns into a report.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use wharf_image::ImageService;
use wharf_storage::{Driver, DriverKind};

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, driver, image, save_out] = args.as_slice() else {
        bail!("usage: bench <store-root> <overlay2|vfs> <image.tar> <save-out.tar>");
    };
    let root = Path::new(root);
    let kind: DriverKind = driver.parse().context("driver")?;
    let drv = Driver::new(kind, &root.join(driver), &[]).context("driver")?;
    let svc = ImageService::open(&root.join("image"), drv).context("open store")?;
    let in_size = std::fs::metadata(image)?.len();

    let t = Instant::now();
    let lines = svc
        .load(&mut BufReader::with_capacity(1 << 20, File::open(image)?))
        .context("load")?;
    let load_s = t.elapsed().as_secs_f64();
    let img = svc.resolve("wharf-bench:latest").context("resolve")?;
    println!("loaded={}", lines.join("; "));
    println!("image_id={}", img.id);
    println!("layers={}", img.root_fs.layers.len());
    println!("load_s={load_s:.3}");
    println!("load_mb_s={:.1}", mb(in_size) / load_s);

    let t = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(save_out)?);
    svc.save(&["wharf-bench:latest".to_string()], &mut out)
        .context("save")?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let save_s = t.elapsed().as_secs_f64();
    let out_size = std::fs::metadata(save_out)?.len();
    println!("save_s={save_s:.3}");
    println!("save_mb_s={:.1}", mb(out_size) / save_s);

    // Pure extraction: the largest layer of the input, applied into an empty directory.
    let (name, layer) = largest_layer(Path::new(image))?;
    let dest = tempfile::Builder::new()
        .prefix("wharf-bench-extract-")
        .tempdir_in(root)?;
    let t = Instant::now();
    wharf_archive::apply_layer(
        dest.path(),
        &mut layer.as_slice(),
        &wharf_archive::ApplyOptions::default(),
    )
    .with_context(|| format!("apply {name}"))?;
    let ex_s = t.elapsed().as_secs_f64();
    println!("extract_layer={name}");
    println!("extract_mb_s={:.1}", mb(layer.len() as u64) / ex_s);
    svc.driver().cleanup()?;
    Ok(())
}

fn largest_layer(image: &Path) -> Result<(String, Vec<u8>)> {
    let mut best: Option<(String, Vec<u8>)> = None;
    let mut ar = tar::Archive::new(File::open(image)?);
    for entry in ar.entries()? {
        let mut e = entry?;
        let name = e.path()?.display().to_string();
        // The largest entry is a layer in any layout (configs and manifests are tiny).
        if best.as_ref().is_none_or(|(_, b)| e.size() > b.len() as u64) {
            let mut buf = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut buf)?;
            best = Some((name, buf));
        }
    }
    best.context("empty archive")
}
