# A NixOS module for `hints serve`: the analyzer as a service.
#
#   imports = [ hints.nixosModules.default ];   # or ./nix/module.nix
#   services.hints = {
#     enable = true;
#     database = "postgres://hints@db.internal/hints?sslmode=require";  # default: SQLite in the state directory
#     environmentFile = "/run/secrets/hints.env";  # e.g. PGPASSWORD=...
#   };
#
# The unit runs under a dynamic user with a private state directory (/var/lib/hints, where the
# default SQLite history lives), no new privileges and a read-only view of the system. Tokens
# are made once, as the service user, with
#   systemd-run --pty -p DynamicUser=yes -p StateDirectory=hints hints token create \
#     --db /var/lib/hints/hints.db --project P --scope push
# or, for PostgreSQL, from any machine that reaches the database.
{ config, lib, pkgs, ... }:
let
  cfg = config.services.hints;
in
{
  options.services.hints = {
    enable = lib.mkEnableOption "the hints layer-hint analyzer service";
    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      description = "The hints package.";
    };
    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:8080";
      description = "The address to listen on; put a TLS-terminating proxy in front for other hosts.";
    };
    database = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/hints/hints.db";
      description = "The history: an SQLite file or a postgres:// URL.";
    };
    maxBodyMiB = lib.mkOption {
      type = lib.types.ints.positive;
      default = 256;
      description = "The largest request body, and the largest closure once decompressed.";
    };
    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "A file of environment variables for secrets (PGPASSWORD, PGPASSFILE).";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.hints = {
      description = "hints: layer hints for Nix-built container images";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" "postgresql.service" ];
      wants = [ "network-online.target" ];
      environment.RUST_LOG = "info";
      serviceConfig = {
        ExecStart = lib.escapeShellArgs [
          (lib.getExe cfg.package) "serve" "--db" cfg.database "--listen" cfg.listen
          "--max-body-mib" (toString cfg.maxBodyMiB)
        ];
        DynamicUser = true;
        StateDirectory = "hints";
        WorkingDirectory = "/var/lib/hints";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        Restart = "on-failure";
        KillSignal = "SIGTERM";
        TimeoutStopSec = 60;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
      };
    };
  };
}
