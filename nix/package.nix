# The `hints` binary, built from this repository with nixpkgs' Rust tooling.
{ lib, rustPlatform, pkg-config, openssl, zlib }:
rustPlatform.buildRustPackage {
  pname = "hints";
  version = "0.1.0";
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type: !(lib.hasInfix "/target" path) && !(lib.hasInfix "/.hints" path);
  };
  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "--bin" "hints" ];
  # `ocidir` hashes with OpenSSL; gzip goes through zlib.
  nativeBuildInputs = [ pkg-config ];
  buildInputs = [ openssl zlib ];
  # The test suite needs a Nix store and ../shared; it runs in this repository's CI instead.
  doCheck = false;
  meta = {
    description = "Layer hints for Nix-built container images, learned from history";
    mainProgram = "hints";
    license = with lib.licenses; [ mit asl20 ];
  };
}
