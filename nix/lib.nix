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
}
