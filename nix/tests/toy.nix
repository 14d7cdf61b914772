# A realistic toy world for end-to-end tests, built with builtins.derivation and a static
# busybox only (no nixpkgs). About 200 store paths: a libc, base libraries, two large paths,
# salted mid-level libraries, three runtimes with many small modules, and three images that
# share the base. Runtime references come from writing dependency paths into the outputs, so
# Nix's own scanner finds them.
#
# `revision` bumps mid-level library i every (2 + i mod 4) revisions: its hash changes, and
# with it the hash of everything above it, as in real Nix.
{ busybox, revision ? 1 }:
let
  bb = builtins.path { path = busybox; name = "busybox-static"; };
  mod = a: b: a - b * (a / b);
  range = n: builtins.genList (i: i) n;
  mk = { name, size, deps ? [ ], salt ? "" }: builtins.derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "${bb}/bin/sh";
    PATH = "${bb}/bin";
    args = [ "-c" ''
      mkdir -p $out
      echo ${toString deps} > $out/refs
      yes "${name} ${salt}" | head -c ${toString size} > $out/data
    '' ];
  };
  libc = mk { name = "libc-2.39"; size = 2000000; };
  base = map (i: mk {
    name = "base${toString i}-1.${toString i}";
    size = 20000 + 7000 * i;
    deps = [ libc ] ++ (if i > 0 && mod i 3 == 0 then [ (builtins.elemAt base (i - 1)) ] else [ ]);
  }) (range 20);
  b = builtins.elemAt base;
  openssl = mk { name = "openssl-3.0.13"; size = 3000000; deps = [ libc (b 0) (b 1) ]; };
  icu = mk { name = "icu-74.2"; size = 8000000; deps = [ libc ]; };
  mid = map (i: mk {
    name = "mid${toString i}-2.${toString i}";
    size = 5000 + 3000 * (mod i 10);
    deps = [ libc (b (mod i 20)) (b (mod (i * 7) 20)) ];
    salt = toString (revision / (2 + mod i 4));
  }) (range 40);
  m = builtins.elemAt mid;
  py = mk { name = "python-3.12.4"; size = 25000000; deps = [ libc openssl ] ++ map m (range 10); };
  node = mk { name = "node-20.11.1"; size = 15000000; deps = [ libc openssl icu ] ++ map (i: m (10 + i)) (range 10); };
  tools = mk { name = "tools-1.36.1"; size = 1000000; deps = [ libc ] ++ map (i: m (20 + i)) (range 10); };
  pyMods = map (k: mk { name = "py-mod${toString k}-0.${toString k}"; size = 2000 + 500 * k; deps = [ py (m (mod k 40)) ]; }) (range 60);
  nodeMods = map (k: mk { name = "node-mod${toString k}-1.${toString k}"; size = 1500 + 700 * k; deps = [ node (m (mod (k * 3) 40)) ]; }) (range 50);
  toolMods = map (k: mk { name = "tool${toString k}-0.1.${toString k}"; size = 800 + 300 * k; deps = [ tools (m (30 + mod k 10)) ]; }) (range 30);
in
{
  py-app = mk { name = "py-app-1.0"; size = 4000; deps = [ py tools ] ++ pyMods; };
  node-app = mk { name = "node-app-1.0"; size = 4000; deps = [ node tools ] ++ nodeMods; };
  toolbox = mk { name = "toolbox-1.0"; size = 4000; deps = [ tools openssl ] ++ toolMods; };
}
