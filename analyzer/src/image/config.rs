//! The image config and manifest: runtime settings, diff_ids, history, the closure label.

use std::collections::HashMap;

use layering_core::Closure;
use ocidir::oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use ocidir::OciDir;
use std::str::FromStr;

use super::{DescribedLayer, ImageError, RuntimeConfig, Source, CLOSURE_LABEL};

/// The config of an image of `closure` laid out as `layers`, created at `epoch`.
pub(super) fn image_config(closure: &Closure, layers: &[DescribedLayer], runtime: &RuntimeConfig, epoch: u64) -> Result<ImageConfiguration, ImageError> {
    let arch = architecture(runtime)?;
    let created = chrono::DateTime::from_timestamp(epoch as i64, 0).ok_or_else(|| ImageError::Config(format!("epoch {epoch} is out of range")))?.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let history = layers
        .iter()
        .map(|l| {
            let comment = match &l.source {
                Source::StorePaths(paths) => paths.join(" "),
                Source::Directory(dir) => dir.display().to_string(),
            };
            HistoryBuilder::default().created(created.clone()).created_by(format!("hints: {}", l.description)).comment(comment).build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let diff_ids: Vec<String> = layers.iter().map(|l| l.blob.diff_id.clone()).collect();
    let mut labels: HashMap<String, String> = runtime.labels.clone().into_iter().collect();
    labels.insert(CLOSURE_LABEL.to_string(), closure_graph(closure));
    let mut config = ConfigBuilder::default().labels(labels).env(runtime.env.clone());
    if !runtime.cmd.is_empty() {
        config = config.cmd(runtime.cmd.clone());
    }
    if !runtime.entrypoint.is_empty() {
        config = config.entrypoint(runtime.entrypoint.clone());
    }
    if let Some(wd) = &runtime.working_dir {
        config = config.working_dir(wd.clone());
    }
    Ok(ImageConfigurationBuilder::default()
        .architecture(arch)
        .os(Os::Linux)
        .created(created)
        .config(config.build()?)
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build()?)
        .history(history)
        .build()?)
}

/// Writes the config and the manifest of `layers` (whose blobs `dir` holds) and tags it.
/// Returns the manifest's digest.
pub(super) fn finish(dir: &OciDir, config: ImageConfiguration, layers: &[DescribedLayer], tag: &str) -> Result<String, ImageError> {
    let mut manifest = dir.new_empty_manifest()?.build()?;
    for l in layers {
        let b = &l.blob;
        let desc: Descriptor = DescriptorBuilder::default().media_type(MediaType::from(b.media_type.as_str())).digest(Digest::from_str(&b.digest)?).size(b.size).build()?;
        manifest.layers_mut().push(desc);
    }
    let platform = PlatformBuilder::default().architecture(config.architecture().clone()).os(Os::Linux).build()?;
    let desc = dir.insert_manifest_and_config(manifest, config, Some(tag), platform)?;
    Ok(desc.digest().to_string())
}

pub(super) fn architecture(runtime: &RuntimeConfig) -> Result<Arch, ImageError> {
    let name = match runtime.architecture.as_deref() {
        Some(a) => a,
        None => match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        },
    };
    match Arch::from(name) {
        Arch::Other(o) => Err(ImageError::Config(format!("architecture: `{o}` is not an OCI architecture (amd64, arm64, …)"))),
        a => Ok(a),
    }
}

/// The closure as compact JSON: `[[path, narSize, [reference indices]], …]` in the closure's
/// index order, which is path order.
fn closure_graph(closure: &Closure) -> String {
    let rows: Vec<serde_json::Value> = (0..closure.len()).map(|n| serde_json::json!([closure.path(n).as_str(), closure.nar_size(n), closure.refs(n)])).collect();
    serde_json::to_string(&rows).expect("plain JSON")
}
