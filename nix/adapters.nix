# Adapters for the image builders people use, on top of lib.nix's layersFromHints. They need
# nixpkgs (and nix2container), which the offline tests here do not have: CI checks that these
# files parse (`nix-instantiate --parse`) but cannot build them. See README "Using the hints
# in a Nix build" for what each relies on.
let
  hintsLib = import ./lib.nix;
in
{
  # nix2container: `buildLayer` with `layersFile` (nix2container PR #220) takes a JSON list of
  # store path lists, one per layer, bottom first -- exactly what layersFromHints writes. Use
  # the result in `buildImage { layers = [ (nix2containerLayers { ... }) ]; }`.
  nix2containerLayers =
    { nix2container, name, roots, hints, hintsTool, maxLayers ? 100, reserve ? 1 }:
    nix2container.buildLayer {
      deps = roots;
      layersFile = hintsLib.layersFromHints {
        name = "${name}-layers.json";
        inherit roots hints hintsTool maxLayers reserve;
      };
    };

  # nixpkgs dockerTools.streamLayeredImage: its conf.json carries `store_layers` (a list of
  # lists of store paths), which it computes at build time with `layeringPipeline` (auto-layer
  # by default). This builds the image as usual and replaces that one field with our layers;
  # everything else (config, customisation layer, tarball streaming) stays nixpkgs'. `roots`
  # must cover the image's store closure: `contents` plus store paths the config refers to.
  streamLayeredImageWithHints =
    { pkgs, hints, hintsTool, roots, maxLayers ? 100, ... }@args:
    let
      image = pkgs.dockerTools.streamLayeredImage
        (builtins.removeAttrs args [ "pkgs" "hints" "hintsTool" "roots" ] // { inherit maxLayers; });
      layers = hintsLib.layersFromHints {
        name = "${image.name}-layers.json";
        inherit roots hints hintsTool maxLayers;
      };
      conf = pkgs.runCommand "${image.name}-conf.json" { nativeBuildInputs = [ pkgs.jq ]; } ''
        jq --slurpfile layers ${layers} '.store_layers = $layers[0]' ${image.conf} > $out
      '';
    in
    pkgs.writeShellScript image.name ''exec ${image.streamScript} ${conf} "$@"'';
}
