//! Registry commands that are not about local images: `login` and `logout`, with docker's
//! flags, prompts, warnings and credential storage, and `manifest inspect`.

use std::io::{BufRead, IsTerminal, Read};

use serde::Serialize;
use serde_json::{json, Value};
use wharf_client::Query;
use wharf_distribution::{RemoteManifest, RemotePlatform, RemoteView};

use super::{out, Ctx, StatusError};
use crate::cli::{LoginArgs, LogoutArgs, ManifestInspectArgs};
use crate::credentials::{self, AuthEntry, INDEX_SERVER};
use crate::format::jsonfmt;

/// `login`
pub(crate) fn login(ctx: &Ctx, a: &LoginArgs) -> anyhow::Result<i32> {
    let mut user = a.username.clone().unwrap_or_default().trim().to_string();
    let mut password = a.password.clone().unwrap_or_default();
    if !password.is_empty() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        if a.password_stdin {
            return Err(StatusError::exit(
                1,
                "conflicting options: cannot specify both --password and --password-stdin",
            ));
        }
    }
    if a.password_stdin {
        if user.is_empty() {
            return Err(StatusError::exit(
                1,
                "Must provide --username with --password-stdin",
            ));
        }
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        password = s.trim_end_matches(['\n', '\r']).to_string();
    }
    let server = match a.server.as_deref() {
        None | Some("") | Some("docker.io") => INDEX_SERVER.to_string(),
        Some(s) => credentials::hostname(s),
    };
    // No credentials given: try the stored ones before prompting, as docker does.
    if user.is_empty() && password.is_empty() {
        if let Some(stored) = credentials::get(&ctx.config, &server)? {
            if !stored.username.is_empty() && !stored.password.is_empty() {
                eprintln!(
                    "Authenticating with existing credentials... [Username: {}]",
                    stored.username
                );
                if let Ok(resp) = authenticate(ctx, &stored) {
                    eprint!("\n Info -> To login with a different account, run 'docker logout' followed by 'docker login'\n\n\n");
                    out(&format!("{}\n", status_of(&resp)));
                    return Ok(0);
                }
            }
        }
    }
    if user.is_empty() || password.is_empty() {
        if !std::io::stdin().is_terminal() {
            return Err(StatusError::exit(
                1,
                "Error: Cannot perform an interactive login from a non TTY device",
            ));
        }
        if user.is_empty() {
            user = prompt("Username: ", false)?.trim().to_string();
            if user.is_empty() {
                return Err(StatusError::exit(1, "Error: Non-null Username Required"));
            }
        }
        if password.is_empty() {
            password = prompt("Password: ", true)?;
            if password.is_empty() {
                return Err(StatusError::exit(1, "Error: Password Required"));
            }
        }
    }
    let mut entry = AuthEntry {
        username: user,
        password,
        server,
        ..Default::default()
    };
    let resp = authenticate(ctx, &entry)?;
    let token = resp
        .get("IdentityToken")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !token.is_empty() {
        entry.password.clear();
        entry.identity_token = token.to_string();
    }
    finish(ctx, entry, status_of(&resp))
}

/// The `Status` of an `/auth` answer ("Login Succeeded").
fn status_of(resp: &Value) -> String {
    resp.get("Status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `POST /auth`: the daemon checks the credentials against the registry.
fn authenticate(ctx: &Ctx, e: &AuthEntry) -> anyhow::Result<Value> {
    let body = json!({"username": e.username, "password": e.password, "serveraddress": e.server});
    Ok(ctx
        .client
        .post("/auth", &Query::new(), Some(&body))?
        .json()?)
}

/// Stores the credentials that worked and prints docker's closing lines.
fn finish(ctx: &Ctx, entry: AuthEntry, status: String) -> anyhow::Result<i32> {
    let plain = credentials::store(&ctx.config, &entry)
        .map_err(|e| StatusError::exit(1, format!("Error saving credentials: {e}")))?;
    if let (true, Some(path)) = (plain, ctx.config.path.as_ref()) {
        eprintln!(
            "\nWARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            path.display()
        );
    }
    if !status.is_empty() {
        out(&format!("{status}\n"));
    }
    Ok(0)
}

/// Reads one line from the terminal after `prompt`, without echo for a password.
fn prompt(prompt: &str, hidden: bool) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let _quiet = if hidden {
        crate::tty::NoEcho::enter(0).ok()
    } else {
        None
    };
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if hidden {
        eprintln!();
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `logout`
pub(crate) fn logout(ctx: &Ctx, a: &LogoutArgs) -> anyhow::Result<i32> {
    let (shown, mut keys) = match a.server.as_deref().filter(|s| !s.is_empty()) {
        None => (INDEX_SERVER.to_string(), vec![INDEX_SERVER.to_string()]),
        Some(s) => {
            let host = credentials::hostname(s);
            // Older CLIs filed credentials under any of these forms.
            (
                host.clone(),
                vec![
                    s.to_string(),
                    host.clone(),
                    format!("http://{host}"),
                    format!("https://{host}"),
                ],
            )
        }
    };
    out(&format!("Removing login credentials for {shown}\n"));
    // As docker: errors are kept per distinct key, and reported only when every try failed.
    let tried = keys.len();
    keys.dedup();
    let mut errors = Vec::new();
    for k in keys {
        if let Err(e) = credentials::erase(&ctx.config, &k) {
            errors.push(format!("{k}: {e}"));
        }
    }
    if errors.len() == tried {
        eprintln!("WARNING: could not erase credentials:");
        for e in errors {
            eprintln!("{e}");
        }
    }
    Ok(0)
}

/// `manifest inspect`: asks the registry itself, as docker's CLI does, with its TLS policy:
/// https, verified unless the registry is insecure (loopback, or `--insecure`), and plain http
/// only with `--insecure`.
pub(crate) fn manifest_inspect(ctx: &Ctx, a: &ManifestInspectArgs) -> anyhow::Result<i32> {
    let [image] = a.refs.as_slice() else {
        return Err(StatusError::exit(
            1,
            "inspecting a local manifest list is not supported (wharf has no `manifest create`)",
        ));
    };
    let reference = wharf_distribution::Reference::parse(image)
        .map_err(|e| StatusError::exit(1, e.to_string()))?
        .with_default_tag();
    let domain = reference.domain().to_string();
    let config = wharf_distribution::RegistryConfig {
        insecure: if a.insecure { vec![domain] } else { Vec::new() },
        http_fallback: a.insecure,
        certs_dirs: vec![std::path::PathBuf::from("/etc/docker/certs.d")],
        ..Default::default()
    };
    let registry = wharf_distribution::Registry::new(config, std::path::PathBuf::new())?;
    let creds = credentials::get(&ctx.config, &credentials::registry_of(image))?.map(|e| {
        wharf_distribution::Credentials {
            username: e.username,
            password: e.password,
            identitytoken: e.identity_token,
            serveraddress: e.server,
            ..Default::default()
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Like docker, any failure to read it is "no such manifest".
    let view = rt
        .block_on(registry.remote_view(&reference, creds.as_ref()))
        .map_err(|_| StatusError::exit(1, format!("no such manifest: {reference}")))?;
    let compact = match (&view, a.verbose) {
        (RemoteView::Manifest(m), false) => m.raw.to_vec(),
        (RemoteView::Manifest(m), true) => image_manifest(m)?.into_bytes(),
        (RemoteView::List(list), false) => serde_json::to_vec(&ManifestList {
            schema_version: 2,
            media_type: "application/vnd.docker.distribution.manifest.list.v2+json",
            manifests: list
                .iter()
                .map(|m| ListEntry {
                    media_type: &m.descriptor.media_type,
                    size: m.descriptor.size,
                    digest: &m.descriptor.digest,
                    platform: m.descriptor.platform.clone().unwrap_or_default(),
                })
                .collect(),
        })?,
        (RemoteView::List(list), true) => {
            let items = list
                .iter()
                .map(image_manifest)
                .collect::<anyhow::Result<Vec<_>>>()?;
            format!("[{}]", items.join(",")).into_bytes()
        }
    };
    // docker prints the list it builds as `manifestlist` marshals it: three spaces.
    let unit = if matches!((&view, a.verbose), (RemoteView::List(_), false)) {
        "   "
    } else {
        "\t"
    };
    out(&format!("{}\n", jsonfmt::indent(&compact, 0, unit)));
    Ok(0)
}

/// The manifest list docker's CLI builds from an index's entries (`manifestlist`'s field
/// order).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestList<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<ListEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEntry<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
    platform: RemotePlatform,
}

/// Docker's `ImageManifest` JSON, compact: `Ref`, `Descriptor`, `Raw` (base64) and the
/// manifest again under `SchemaV2Manifest` or `OCIManifest`, in its own key order.
fn image_manifest(m: &RemoteManifest) -> anyhow::Result<String> {
    let key = if m.descriptor.media_type == "application/vnd.docker.distribution.manifest.v2+json" {
        "SchemaV2Manifest"
    } else {
        "OCIManifest"
    };
    Ok(format!(
        "{{\"Ref\":{},\"Descriptor\":{},\"Raw\":{},\"{key}\":{}}}",
        serde_json::to_string(&m.reference)?,
        serde_json::to_string(&m.descriptor)?,
        serde_json::to_string(&wharf_api_types::base64::encode(&m.raw))?,
        std::str::from_utf8(&m.raw)?,
    ))
}
