{
  description = "hints: layer hints for Nix-built container images, learned from history";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        hints = pkgs.callPackage ./nix/package.nix { };
        default = hints;
      });
      # layersFromHints (pure, builtins.derivation only) and the builder adapters.
      lib = import ./nix/lib.nix // import ./nix/adapters.nix;
      overlays.default = final: prev: { hints = final.callPackage ./nix/package.nix { }; };
      # `hints serve` as a systemd service (services.hints).
      nixosModules.default = import ./nix/module.nix;
    };
}
