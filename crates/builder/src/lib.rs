//! The Dockerfile frontend and the build engine behind `POST /build`.
//!
//! [`dockerfile`] parses a Dockerfile into spanned, typed instructions (pure); [`context`]
//! reads the build context the API receives; [`engine`] runs the stages the target needs
//! through a [`Worker`] the daemon implements (containers, images, layers), with a
//! content-keyed [`cache`].
//!
//! Beyond the classic API's query parameters, two inputs come from `wharf build`: the
//! `nocachefilter` parameter (`--no-cache-filter`) and secrets for `RUN --mount=type=secret`
//! in the `X-Wharf-Build-Secrets` header (a header, so they stay out of URLs and the context).
//!
//! BuildKit's gRPC session API (what `docker buildx` speaks) is not served. It could be added
//! beside the classic `POST /build` as a second frontend: `/session` hijacks the connection
//! into an HTTP/2 gRPC server for the client's filesync and auth providers, and a
//! `moby.buildkit.v1.Control/Solve` service would call this same engine with a context read
//! through filesync instead of a tar.
#![forbid(unsafe_code)]

pub mod cache;
pub mod context;
mod dispatch;
pub mod dockerfile;
pub mod engine;
mod error;
pub mod worker;

pub use cache::CacheStore;
pub use context::Context;
pub use dispatch::copy_tree;
pub use engine::{BuildOptions, Engine, Event, Secrets};
pub use error::BuildError;
pub use worker::{CacheMount, ImageInfo, MountSpec, RunSpec, SecretMount, Worker};
