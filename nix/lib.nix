# The Nix side of hints: pure build-time functions that need only builtins.derivation.
#
#   layersFromHints { name, roots, hints, maxLayers ? 100, reserve ? 1, hintsTool }
#
# is a derivation whose output is the `store_layers` JSON (a list of lists of store paths,
# bottom layer first) for the closure of `roots`, computed by `hints layer` from the checked-in
# hint file. It uses `__structuredAttrs` and `exportReferencesGraph`, so the closure graph
# comes from Nix itself: no import-from-derivation, no network, the same bytes everywhere.
# The `hints` binary is the builder; it reads the graph and its output path from
# `$NIX_ATTRS_JSON_FILE`.
#
#   imageFromHints { name, roots, hints, config ? { }, maxLayers ? 100, reserve ? 1,
#                    topLayer ? null, compression ? "gzip", hintsTool }
#
# is a derivation whose output is the image's description (JSON): every layer's store paths,
# digest, size and diff_id, and the full OCI config (`config` takes Docker's names: Cmd,
# Entrypoint, Env, WorkingDir, Labels, architecture). The build hashes the layers as it streams
# them and keeps no layer bytes, so the store is not duplicated into a tarball;
# `hints image copy result --out oci:DIR:TAG` materialises the image from the store, checking
# every digest, and `skopeo copy oci:DIR:TAG docker://…` pushes it. `topLayer` is a store path
# whose contents become the top layer (the image's customisation; permissions kept).
{
  layersFromHints =
    { name
    , roots
    , hints
    , maxLayers ? 100
    , reserve ? 1
    , hintsTool
    , strategy ? "hints"
    , system ? builtins.currentSystem
    }:
    builtins.derivation {
      inherit name system;
      __structuredAttrs = true;
      exportReferencesGraph.graph = roots;
      builder = "${hintsTool}/bin/hints";
      args = [ "layer" "--nix-build" "--hints" "${hints}" "--strategy" strategy
               "--max-layers" (toString maxLayers) "--reserve" (toString reserve) ];
    };

  imageFromHints =
    { name
    , roots
    , hints
    , config ? { }
    , maxLayers ? 100
    , reserve ? 1
    , topLayer ? null
    , compression ? "gzip"
    , hintsTool
    , strategy ? "hints"
    , system ? builtins.currentSystem
    }:
    builtins.derivation {
      inherit name system;
      __structuredAttrs = true;
      exportReferencesGraph.graph = roots;
      imageConfig = config;
      builder = "${hintsTool}/bin/hints";
      args = [ "image" "--nix-build" "--hints" "${hints}" "--strategy" strategy
               "--max-layers" (toString maxLayers) "--reserve" (toString reserve)
               "--compression" compression ]
        ++ (if topLayer == null then [ ] else [ "--top-layer" "${topLayer}" ]);
    };
}
