# The Nix side of hints: pure build-time functions that need only builtins.derivation.
#
#   layersFromHints { name, roots, hints, maxLayers ? 100, reserve ? 1, image ? name, hintsTool }
#
# is a derivation whose output is the `store_layers` JSON (a list of lists of store paths,
# bottom layer first) for the closure of `roots`, computed by `hints layer` from the checked-in
# hint file. It uses `__structuredAttrs` and `exportReferencesGraph`, so the closure graph
# comes from Nix itself: no import-from-derivation, no network, the same bytes everywhere.
# The `hints` binary is the builder; it reads the graph and its output path from
# `$NIX_ATTRS_JSON_FILE`. `image` is the image's name in the history (`hints scan --image`):
# an image the hint file lists in `size_first_images` is laid out as size-first, and one with
# `opt_outs` without those groups.
#
#   imageFromHints { name, roots, hints, config ? { }, maxLayers ? 100, reserve ? 1,
#                    image ? name, topLayer ? null, compression ? "gzip", hintsTool }
#
# is a derivation whose output is the image's description (JSON): every layer's store paths,
# digest, size and diff_id, and the full OCI config (`config` takes Docker's names: Cmd,
# Entrypoint, Env, WorkingDir, Labels, architecture). The build hashes the layers as it streams
# them and keeps no layer bytes, so the store is not duplicated into a tarball;
# `hints image copy result --out oci:DIR:TAG` materialises the image from the store, checking
# every digest, and `skopeo copy oci:DIR:TAG docker://…` pushes it. `topLayer` is a store path
# whose contents become the top layer (the image's customisation; permissions kept).
let
  # A derivation whose builder is `hints ARGS… --nix-build`, with the closure graph of `roots`
  # exported to it as `graph` and the attributes in `extra` passed as structured attributes.
  hintsBuild = { name, roots, hintsTool, system, args, extra ? { } }:
    builtins.derivation ({
      inherit name system;
      __structuredAttrs = true;
      exportReferencesGraph.graph = roots;
      builder = "${hintsTool}/bin/hints";
      args = args;
    } // extra);

  layoutArgs = { hints, strategy, maxLayers, reserve, image }:
    [ "--nix-build" "--hints" "${hints}" "--strategy" strategy "--image" image
      "--max-layers" (toString maxLayers) "--reserve" (toString reserve) ];
in
{
  layersFromHints =
    { name
    , roots
    , hints
    , maxLayers ? 100
    , reserve ? 1
    , image ? name
    , hintsTool
    , strategy ? "hints"
    , system ? builtins.currentSystem
    }:
    hintsBuild {
      inherit name roots hintsTool system;
      args = [ "layer" ] ++ layoutArgs { inherit hints strategy maxLayers reserve image; };
    };

  imageFromHints =
    { name
    , roots
    , hints
    , config ? { }
    , maxLayers ? 100
    , reserve ? 1
    , image ? name
    , topLayer ? null
    , compression ? "gzip"
    , hintsTool
    , strategy ? "hints"
    , system ? builtins.currentSystem
    }:
    hintsBuild {
      inherit name roots hintsTool system;
      args = [ "image" ] ++ layoutArgs { inherit hints strategy maxLayers reserve image; }
        ++ [ "--compression" compression ]
        ++ (if topLayer == null then [ ] else [ "--top-layer" "${topLayer}" ]);
      extra.imageConfig = config;
    };
}
